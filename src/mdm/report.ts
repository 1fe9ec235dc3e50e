// Command reports (PUT to ServerURL): Idle polls and results of earlier commands.
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
import { OrchardError } from '../errors.js'
import { resolveChannel, type Channel } from './identity.js'
import { isPlistDict, type PlistDict, type PlistValue } from './plist.js'

export const reportStatuses = ['Idle', 'Acknowledged', 'Error', 'CommandFormatError', 'NotNow'] as const
export type ReportStatus = (typeof reportStatuses)[number]

export interface ErrorChainItem {
  ErrorCode?: number
  ErrorDomain?: string
  LocalizedDescription?: string
  USEnglishDescription?: string
}

export interface CommandReport {
  channel: Channel
  status: ReportStatus
  /** Absent on Idle. */
  commandUuid?: string
  errorChain?: ErrorChainItem[]
  /** The decoded dictionary: response keys (QueryResponses, SecurityInfo, ...) at the top level. */
  raw: PlistDict
}

export function parseCommandReport(value: PlistValue): CommandReport {
  if (!isPlistDict(value)) throw new OrchardError('malformed_message', 'a command report must be a dictionary')
  const status = value['Status']
  if (typeof status !== 'string') throw new OrchardError('malformed_message', 'Status is missing')
  if (!(reportStatuses as readonly string[]).includes(status)) {
    throw new OrchardError('malformed_message', `unknown Status ${JSON.stringify(status.slice(0, 64))}`)
  }
  const channel = resolveChannel(value)
  const uuid = value['CommandUUID']
  if (status !== 'Idle' && (typeof uuid !== 'string' || uuid === '')) {
    throw new OrchardError('malformed_message', `Status ${status} needs a CommandUUID`)
  }
  const report: CommandReport = { channel, status: status as ReportStatus, raw: value }
  if (typeof uuid === 'string' && uuid !== '') report.commandUuid = uuid
  const chain = value['ErrorChain']
  if (Array.isArray(chain)) {
    report.errorChain = chain.filter(isPlistDict).map((item) => {
      const entry: ErrorChainItem = {}
      const code = item['ErrorCode']
      if (typeof code === 'number') entry.ErrorCode = code
      else if (typeof code === 'bigint') entry.ErrorCode = Number(code)
      for (const key of ['ErrorDomain', 'LocalizedDescription', 'USEnglishDescription'] as const) {
        const text = item[key]
        if (typeof text === 'string') entry[key] = text
      }
      return entry
    })
  }
  return report
}
