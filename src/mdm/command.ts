// Command envelopes (server -> device): { CommandUUID, Command: { RequestType, ...keys } }.
// https://developer.apple.com/documentation/devicemanagement/commands-and-queries
import { randomUUID } from 'node:crypto'
import { OrchardError } from '../errors.js'
import { decodePlist, encodePlist, isPlistDict, PlistError, type PlistDict, type PlistValue } from './plist.js'

export interface EncodedCommand {
  uuid: string
  requestType: string
  /** The exact plist bytes every target receives. */
  payload: Buffer
}

const requestTypePattern = /^[A-Za-z][A-Za-z0-9]{0,99}$/
const maxUuidLength = 200

/** Builds and encodes a command; a fresh CommandUUID unless one is given. */
export function buildCommand(requestType: string, keys: PlistDict = {}, uuid: string = randomUUID()): EncodedCommand {
  if (!requestTypePattern.test(requestType)) throw new OrchardError('validation_failed', `RequestType ${JSON.stringify(requestType)} is not a valid name`)
  const command: PlistDict = { RequestType: requestType }
  for (const [key, value] of Object.entries(keys)) if (key !== 'RequestType') command[key] = value
  try {
    return { uuid, requestType, payload: encodePlist({ CommandUUID: uuid, Command: command }) }
  } catch (error) {
    // Text a plist cannot carry (control characters, U+FFFE...) came with the request.
    if (error instanceof PlistError) throw new OrchardError('validation_failed', `the command cannot be sent: ${error.message}`, { cause: error })
    throw error
  }
}

/** Checks a command plist given as bytes (kept byte for byte) and reads its UUID and type. */
export function readCommandPlist(payload: Buffer): EncodedCommand {
  let value: PlistValue
  try {
    value = decodePlist(payload)
  } catch (error) {
    throw new OrchardError('validation_failed', `the command is not a valid plist: ${(error as Error).message}`, { cause: error })
  }
  return { ...readCommandEnvelope(value), payload }
}

export function readCommandEnvelope(value: PlistValue): { uuid: string; requestType: string } {
  if (!isPlistDict(value)) throw new OrchardError('validation_failed', 'a command must be a dictionary')
  const uuid = value['CommandUUID']
  if (typeof uuid !== 'string' || uuid.length === 0 || uuid.length > maxUuidLength) {
    throw new OrchardError('validation_failed', 'CommandUUID must be a non-empty string of at most 200 characters')
  }
  const command = value['Command']
  if (!isPlistDict(command)) throw new OrchardError('validation_failed', 'Command must be a dictionary')
  const requestType = command['RequestType']
  if (typeof requestType !== 'string' || !requestTypePattern.test(requestType)) {
    throw new OrchardError('validation_failed', 'Command.RequestType must be a command name such as DeviceInformation')
  }
  return { uuid, requestType }
}
