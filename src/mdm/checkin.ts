// Check-in messages (PUT to CheckInURL, Content-Type application/x-apple-aspen-mdm-checkin).
// https://developer.apple.com/documentation/devicemanagement/check-in
import { OrchardError } from '../errors.js'
import { checkinSchema, type CheckinMessageType, type PlistKeyType } from './generated/checkin-schema.js'
import { resolveChannel, type Channel } from './identity.js'
import { isPlistDict, type PlistDict, type PlistValue } from './plist.js'

interface Base {
  channel: Channel
  /** The decoded dictionary, unknown keys included. */
  raw: PlistDict
}

export interface AuthenticateMessage extends Base {
  type: 'Authenticate'
  topic: string
  serialNumber?: string
  model?: string
  modelName?: string
  productName?: string
  deviceName?: string
  osVersion?: string
  buildVersion?: string
  imei?: string
  meid?: string
}

export interface TokenUpdateMessage extends Base {
  type: 'TokenUpdate'
  topic: string
  token: Buffer
  pushMagic: string
  unlockToken?: Buffer
  awaitingConfiguration: boolean
}

export interface CheckOutMessage extends Base {
  type: 'CheckOut'
  topic?: string
}

export interface UserAuthenticateMessage extends Base {
  type: 'UserAuthenticate'
  /** Absent on the first request of a login, present on the second. */
  digestResponse?: string
}

export interface SetBootstrapTokenMessage extends Base {
  type: 'SetBootstrapToken'
  /** Absent or empty = delete the stored token. */
  bootstrapToken?: Buffer
  awaitingConfiguration: boolean
}

export interface GetBootstrapTokenMessage extends Base {
  type: 'GetBootstrapToken'
  awaitingConfiguration: boolean
}

export interface DeclarativeManagementMessage extends Base {
  type: 'DeclarativeManagement'
  endpoint: string
  /** JSON bytes (e.g. the status report); a plist <data> holds them, not base64 text. */
  data?: Buffer
}

export interface GetTokenMessage extends Base {
  type: 'GetToken'
  tokenServiceType: string
  tokenParameters?: PlistDict
}

export type CheckinMessage =
  | AuthenticateMessage
  | TokenUpdateMessage
  | CheckOutMessage
  | UserAuthenticateMessage
  | SetBootstrapTokenMessage
  | GetBootstrapTokenMessage
  | DeclarativeManagementMessage
  | GetTokenMessage

export const checkinMessageTypes = Object.keys(checkinSchema) as CheckinMessageType[]

function malformed(message: string): OrchardError {
  return new OrchardError('malformed_message', message)
}

function typeOf(value: PlistValue): PlistKeyType {
  if (typeof value === 'string') return 'string'
  if (typeof value === 'boolean') return 'boolean'
  if (typeof value === 'bigint') return 'integer'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'real'
  if (value instanceof Date) return 'date'
  if (Buffer.isBuffer(value)) return 'data'
  if (Array.isArray(value)) return 'array'
  return 'dictionary'
}

/** Known keys must have the schema's type; unknown keys are kept as they are. */
function checkKeyTypes(type: CheckinMessageType, dict: PlistDict): void {
  const keys: Readonly<Record<string, PlistKeyType>> = checkinSchema[type].keys
  for (const [key, value] of Object.entries(dict)) {
    const expected = keys[key]
    if (expected === undefined || expected === 'any') continue
    const actual = typeOf(value)
    const fits = actual === expected || (expected === 'real' && actual === 'integer')
    if (!fits) throw malformed(`${type}: ${key} must be ${expected}, got ${actual}`)
  }
}

/**
 * Longest string value taken from a check-in. Real values are short (a topic, a version, a
 * serial number); a longer one is refused rather than stored: an index entry of PostgreSQL
 * holds at most ~2.7 KB, and 512 characters stay under it even as 4-byte UTF-8.
 */
export const maxCheckinStringLength = 512

function bounded(value: string, key: string): string {
  if (value.length > maxCheckinStringLength) throw malformed(`${key} is longer than ${maxCheckinStringLength} characters`)
  return value
}

function requireString(dict: PlistDict, key: string, type: string): string {
  const value = dict[key]
  if (typeof value !== 'string' || value === '') throw malformed(`${type}: ${key} is required`)
  return bounded(value, `${type}: ${key}`)
}

const optionalString = (dict: PlistDict, key: string): string | undefined => {
  const value = dict[key]
  return typeof value === 'string' && value !== '' ? bounded(value, key) : undefined
}

const optionalData = (dict: PlistDict, key: string): Buffer | undefined => {
  const value = dict[key]
  return Buffer.isBuffer(value) ? value : undefined
}

export function parseCheckinMessage(value: PlistValue): CheckinMessage {
  if (!isPlistDict(value)) throw malformed('a check-in message must be a dictionary')
  const type = value['MessageType']
  if (typeof type !== 'string') throw malformed('MessageType is missing')
  if (!(checkinMessageTypes as string[]).includes(type)) throw malformed(`unknown MessageType ${JSON.stringify(type.slice(0, 64))}`)
  const messageType = type as CheckinMessageType
  checkKeyTypes(messageType, value)
  const channel = resolveChannel(value)
  const base = { channel, raw: value }
  const awaitingConfiguration = value['AwaitingConfiguration'] === true

  switch (messageType) {
    case 'Authenticate':
      if (channel.kind !== 'device') throw malformed('Authenticate is only sent on the device channel')
      return {
        ...base,
        type: 'Authenticate',
        topic: requireString(value, 'Topic', type),
        serialNumber: optionalString(value, 'SerialNumber'),
        model: optionalString(value, 'Model'),
        modelName: optionalString(value, 'ModelName'),
        productName: optionalString(value, 'ProductName'),
        deviceName: optionalString(value, 'DeviceName'),
        osVersion: optionalString(value, 'OSVersion'),
        buildVersion: optionalString(value, 'BuildVersion'),
        imei: optionalString(value, 'IMEI'),
        meid: optionalString(value, 'MEID'),
      }
    case 'TokenUpdate': {
      const token = optionalData(value, 'Token')
      if (!token || token.length === 0) throw malformed('TokenUpdate: Token is required')
      return {
        ...base,
        type: 'TokenUpdate',
        topic: requireString(value, 'Topic', type),
        token,
        pushMagic: requireString(value, 'PushMagic', type),
        unlockToken: optionalData(value, 'UnlockToken'),
        awaitingConfiguration,
      }
    }
    case 'CheckOut':
      if (channel.kind !== 'device') throw malformed('CheckOut is only sent on the device channel')
      return { ...base, type: 'CheckOut', topic: optionalString(value, 'Topic') }
    case 'UserAuthenticate':
      if (channel.kind === 'device') throw malformed('UserAuthenticate needs UserID (it is sent on a user channel)')
      return { ...base, type: 'UserAuthenticate', digestResponse: typeof value['DigestResponse'] === 'string' ? value['DigestResponse'] : undefined }
    case 'SetBootstrapToken':
      return { ...base, type: 'SetBootstrapToken', bootstrapToken: optionalData(value, 'BootstrapToken'), awaitingConfiguration }
    case 'GetBootstrapToken':
      return { ...base, type: 'GetBootstrapToken', awaitingConfiguration }
    case 'DeclarativeManagement':
      return { ...base, type: 'DeclarativeManagement', endpoint: requireString(value, 'Endpoint', type), data: optionalData(value, 'Data') }
    case 'GetToken': {
      const parameters = value['TokenParameters']
      return {
        ...base,
        type: 'GetToken',
        tokenServiceType: requireString(value, 'TokenServiceType', type),
        tokenParameters: isPlistDict(parameters) ? parameters : undefined,
      }
    }
  }
}
