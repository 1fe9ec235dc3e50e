// The DeclarativeManagement check-in of a device channel (User Enrollment too), served from the device's stored
// declaration set (computed on the first check-in when there is none): tokens, the manifest
// (declaration-items), each declaration with the device's substitutions, and status reports.
// https://developer.apple.com/documentation/devicemanagement/declarativemanagement
import { OrchardError } from '../errors.js'
import { declarationItems, substitute, syncTimestamp, type SetDeclaration } from '../mdm/declarations.js'
import type { Channel } from '../mdm/identity.js'
import { parseStatusReport, type DeclarativeManagementHandler } from '../device/declarative-management.js'
import { emptyReply, jsonReply, type MdmReply } from '../device/mdm-types.js'
import type { DeclarationSetStore, StoredSet } from './declaration-set-store.js'
import { substitutionsOf, type DeclarationSets } from './declaration-sets.js'
import type { LegacyProfileUrls } from './legacy-profile-urls.js'
import type { StatusChannel } from './status-channel.js'

const kinds = new Set(['activation', 'configuration', 'asset', 'management'])

export function createDeclarativeCheckIn(deps: {
  store: DeclarationSetStore
  sets: DeclarationSets
  status: StatusChannel
  /** User channels keep the empty set. */
  fallback: DeclarativeManagementHandler
  /** Where devices fetch the library profiles of legacy-profile declarations; null without secret keys. */
  profileUrls: LegacyProfileUrls | null
}): DeclarativeManagementHandler {
  const { store } = deps

  async function setOf(deviceId: string): Promise<StoredSet> {
    const stored = await store.set(deviceId)
    if (stored) return stored
    await deps.sets.recompute({ deviceIds: [deviceId] })
    const computed = await store.set(deviceId)
    if (!computed) throw new OrchardError('unknown_enrollment', 'this device has no declaration set (it is not enrolled)')
    return computed
  }

  async function declaration(deviceId: string, path: string): Promise<MdmReply> {
    const [kind, ...rest] = path.split('/')
    const identifier = rest.join('/')
    if (!kind || !kinds.has(kind) || !identifier) return { status: 404, body: null }
    const item = (await setOf(deviceId)).items.find((entry) => entry.identifier === identifier && entry.kind === kind)
    // 404: not in its set (any more), so the device removes it.
    if (!item) return { status: 404, body: null }
    let payload = item.payload
    if (!payload && item.declaration_id) {
      const stored = await store.payload(item.declaration_id)
      const device = stored && (await store.device(deviceId))
      if (stored && device) payload = substitute(stored.payload, substitutionsOf(device))
      if (payload && stored?.profileId) {
        // The device's own signed URL of the profile (without secret keys there is none to give).
        if (!deps.profileUrls) return { status: 404, body: null }
        payload = { ...payload, ProfileURL: deps.profileUrls.urlOf(deviceId, item.declaration_id) }
      }
    }
    if (!payload) return { status: 404, body: null }
    return jsonReply({ Type: item.type, Identifier: item.identifier, ServerToken: item.server_token, Payload: payload })
  }

  return {
    async handle(channel: Channel, endpoint, data) {
      // A User Enrollment's device channel is the device (its EnrollmentID); user channels keep the empty set.
      if (channel.kind !== 'device') return deps.fallback.handle(channel, endpoint, data)
      const deviceId = channel.deviceId
      if (endpoint === 'tokens') {
        const set = await setOf(deviceId)
        return jsonReply({ SyncTokens: { DeclarationsToken: set.token, Timestamp: syncTimestamp(set.changedAt) } })
      }
      if (endpoint === 'declaration-items') {
        const set = await setOf(deviceId)
        const items: SetDeclaration[] = set.items.map((item) => ({
          identifier: item.identifier,
          type: item.type,
          kind: item.kind,
          serverToken: item.server_token,
          declarationId: item.declaration_id,
        }))
        return jsonReply({ Declarations: declarationItems(items).manifest, DeclarationsToken: set.token })
      }
      if (endpoint.startsWith('declaration/')) return declaration(deviceId, endpoint.slice('declaration/'.length))
      if (endpoint === 'status') {
        await deps.status.receive(deviceId, parseStatusReport(data))
        return emptyReply
      }
      throw new OrchardError('malformed_message', `DeclarativeManagement: unknown Endpoint ${JSON.stringify(endpoint.slice(0, 100))}`)
    },
  }
}
