// The DeclarativeManagement check-in, routed by Endpoint. Until declarations are built
// this serves an empty, valid declaration set and keeps the status reports.
// https://developer.apple.com/documentation/devicemanagement/declarativemanagement
import { createHash } from 'node:crypto'
import { OrchardError } from '../errors.js'
import type { Channel } from '../mdm/identity.js'
import { unstorableFields } from '../model/storable-text.js'
import type { DdmStatusStore } from './ddm-store.js'
import { emptyReply, jsonReply, type MdmReply } from './mdm-types.js'

export interface DeclarativeManagementHandler {
  handle(channel: Channel, endpoint: string, data: Buffer | undefined): Promise<MdmReply>
}

// Stable values: a token that changed on every request would make devices sync forever.
const emptySetToken = createHash('sha256').update('orchard:no-declarations').digest('hex').slice(0, 32)
const emptySetTimestamp = '1970-01-01T00:00:00Z'

/** A status check-in's Data: a JSON object the database can store, else malformed_message with the reason. */
export function parseStatusReport(data: Buffer | undefined): Record<string, unknown> {
  if (!data || data.length === 0) throw new OrchardError('malformed_message', 'DeclarativeManagement status: Data is missing')
  let report: unknown
  try {
    report = JSON.parse(data.toString('utf8'))
  } catch (error) {
    throw new OrchardError('malformed_message', `DeclarativeManagement status: Data is not JSON: ${(error as Error).message}`)
  }
  if (typeof report !== 'object' || report === null || Array.isArray(report)) {
    throw new OrchardError('malformed_message', 'DeclarativeManagement status: Data must be a JSON object')
  }
  const unstorable = unstorableFields(report, 1)[0]
  if (unstorable) throw new OrchardError('malformed_message', `DeclarativeManagement status: Data at ${unstorable.pointer || '/'} ${unstorable.detail}`)
  return report as Record<string, unknown>
}

export function createEmptyDeclarativeManagement(store: DdmStatusStore): DeclarativeManagementHandler {
  return {
    async handle(channel, endpoint, data) {
      if (endpoint === 'tokens') {
        return jsonReply({ SyncTokens: { DeclarationsToken: emptySetToken, Timestamp: emptySetTimestamp } })
      }
      if (endpoint === 'declaration-items') {
        return jsonReply({
          Declarations: { Activations: [], Configurations: [], Assets: [], Management: [] },
          DeclarationsToken: emptySetToken,
        })
      }
      if (endpoint.startsWith('declaration/')) {
        // 404: the declaration is not on the server, so the device removes it.
        return { status: 404, body: null }
      }
      if (endpoint === 'status') {
        const report = parseStatusReport(data)
        await store.storeStatusReport(channel.enrollmentId, JSON.stringify(report))
        return emptyReply
      }
      throw new OrchardError('malformed_message', `DeclarativeManagement: unknown Endpoint ${JSON.stringify(endpoint.slice(0, 100))}`)
    },
  }
}
