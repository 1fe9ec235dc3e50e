// The MachineInfo dictionary an ADE device sends during Setup Assistant (the content of the
// CMS that src/crypto/machine-info.ts verifies), and the `x-apple-aspen-deviceinfo` header
// that carries the same CMS, base64, on configuration_web_url requests. apple-protocol.md §7.
// https://developer.apple.com/documentation/devicemanagement/machineinfo
// Keys and types: apple-schema other.json `machineinfo` (Apple's other/machineinfo.yaml).
// Pure: no I/O.
import { OrchardError } from '../errors.js'
import { decodePlist, isPlistDict, PlistError, type PlistDict, type PlistValue } from './plist.js'

export interface MachineInfo {
  /** UDID. Required. */
  udid: string
  /** SERIAL. Required. */
  serialNumber: string
  /** PRODUCT, the model identifier ("iPhone15,2", "Mac14,3"). */
  product: string | null
  /** VERSION: the OS build ("21A329"). */
  version: string | null
  /** OS_VERSION ("17.0.1"; iOS 17 / macOS 14 and later). */
  osVersion: string | null
  /** SUPPLEMENTAL_BUILD_VERSION (Rapid Security Response build). */
  supplementalBuildVersion: string | null
  /** SUPPLEMENTAL_OS_VERSION_EXTRA (Rapid Security Response letter, "(a)"). */
  supplementalOsVersionExtra: string | null
  /** LANGUAGE chosen in Setup Assistant. */
  language: string | null
  imei: string | null
  meid: string | null
  /** MDM_CAN_REQUEST_SOFTWARE_UPDATE (default false): the device can update its OS from Setup Assistant. */
  canRequestSoftwareUpdate: boolean
  /** SOFTWARE_UPDATE_DEVICE_ID (iOS 17.4 / macOS 14.4). */
  softwareUpdateDeviceId: string | null
  /** PAIRING_TOKEN (watchOS). */
  pairingToken: Buffer | null
  /** The decoded dictionary, unknown keys included. */
  raw: PlistDict
}

type KeyType = 'string' | 'boolean' | 'data'

/** The schema's keys and types; unknown keys are kept in `raw` as they are. */
const machineInfoKeys: Readonly<Record<string, KeyType>> = {
  UDID: 'string',
  SERIAL: 'string',
  PRODUCT: 'string',
  VERSION: 'string',
  OS_VERSION: 'string',
  SUPPLEMENTAL_BUILD_VERSION: 'string',
  SUPPLEMENTAL_OS_VERSION_EXTRA: 'string',
  IMEI: 'string',
  MEID: 'string',
  LANGUAGE: 'string',
  MDM_CAN_REQUEST_SOFTWARE_UPDATE: 'boolean',
  PAIRING_TOKEN: 'data',
  SOFTWARE_UPDATE_DEVICE_ID: 'string',
}

/** Longest UDID or serial number accepted (real ones have 12 to 40 characters). */
const maxIdentifierLength = 256

/** A MachineInfo is a flat dict of a dozen keys: tight limits, far above what devices send. */
const plistLimits = { maxDepth: 8, maxElements: 10_000, maxBytes: 256 * 1024 }

const malformed = (message: string, cause?: unknown) => new OrchardError('malformed_message', `MachineInfo: ${message}`, cause === undefined ? {} : { cause })

function typeOf(value: PlistValue): string {
  if (typeof value === 'string') return 'string'
  if (typeof value === 'boolean') return 'boolean'
  if (typeof value === 'number' || typeof value === 'bigint') return 'number'
  if (value instanceof Date) return 'date'
  if (Buffer.isBuffer(value)) return 'data'
  if (Array.isArray(value)) return 'array'
  return 'dictionary'
}

function requiredIdentifier(dict: PlistDict, key: 'UDID' | 'SERIAL'): string {
  const value = dict[key]
  if (value === undefined) throw malformed(`${key} is missing`)
  if (typeof value !== 'string') throw malformed(`${key} must be a string, got ${typeOf(value)}`)
  const trimmed = value.trim()
  if (trimmed === '') throw malformed(`${key} is empty`)
  if (trimmed.length > maxIdentifierLength) throw malformed(`${key} is longer than ${maxIdentifierLength} characters`)
  return trimmed
}

const optionalString = (dict: PlistDict, key: string): string | null => {
  const value = dict[key]
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null
}

/** Decodes the signed MachineInfo content (XML plist; binary is accepted too). Throws OrchardError('malformed_message'). */
export function decodeMachineInfo(content: Buffer): MachineInfo {
  let value: PlistValue
  try {
    value = decodePlist(content, plistLimits)
  } catch (error) {
    if (error instanceof PlistError || error instanceof TypeError) throw malformed(`not a valid plist: ${error.message}`, error)
    throw error
  }
  if (!isPlistDict(value)) throw malformed(`the plist must be a dictionary, got ${typeOf(value)}`)
  const udid = requiredIdentifier(value, 'UDID')
  const serialNumber = requiredIdentifier(value, 'SERIAL')
  for (const [key, expected] of Object.entries(machineInfoKeys)) {
    const entry = value[key]
    if (entry !== undefined && typeOf(entry) !== expected)
      throw malformed(`${key} must be ${expected === 'data' ? 'data' : `a ${expected}`}, got ${typeOf(entry)}`)
  }
  const pairingToken = value['PAIRING_TOKEN']
  return {
    udid,
    serialNumber,
    product: optionalString(value, 'PRODUCT'),
    version: optionalString(value, 'VERSION'),
    osVersion: optionalString(value, 'OS_VERSION'),
    supplementalBuildVersion: optionalString(value, 'SUPPLEMENTAL_BUILD_VERSION'),
    supplementalOsVersionExtra: optionalString(value, 'SUPPLEMENTAL_OS_VERSION_EXTRA'),
    language: optionalString(value, 'LANGUAGE'),
    imei: optionalString(value, 'IMEI'),
    meid: optionalString(value, 'MEID'),
    canRequestSoftwareUpdate: value['MDM_CAN_REQUEST_SOFTWARE_UPDATE'] === true,
    softwareUpdateDeviceId: optionalString(value, 'SOFTWARE_UPDATE_DEVICE_ID'),
    pairingToken: Buffer.isBuffer(pairingToken) ? pairingToken : null,
    raw: value,
  }
}

/** Longest header accepted: base64 of the 256 KiB crypto/machine-info.ts takes. */
const maxHeaderLength = Math.ceil((256 * 1024) / 3) * 4

/**
 * The `x-apple-aspen-deviceinfo` header: standard base64 (with padding) of the MachineInfo
 * CMS; pass the result to verifyMachineInfo. Surrounding whitespace is ignored, anything
 * else that is not canonical base64 is refused. Throws OrchardError('malformed_message').
 */
export function decodeDeviceInfoHeader(value: string): Buffer {
  // A missing header arrives as undefined from untyped callers: refuse it like an empty one.
  const text = typeof value === 'string' ? value.trim() : ''
  if (text.length === 0) throw new OrchardError('malformed_message', 'x-apple-aspen-deviceinfo: header is empty')
  if (text.length > maxHeaderLength)
    throw new OrchardError('malformed_message', `x-apple-aspen-deviceinfo: header is longer than ${maxHeaderLength} characters`)
  // Buffer.from skips junk, accepts the URL alphabet and missing padding: the canonical
  // re-encoding is equal only for strict input (and refuses non-zero padding bits too).
  const bytes = text.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined
  if (!bytes || bytes.toString('base64') !== text) throw new OrchardError('malformed_message', 'x-apple-aspen-deviceinfo: header is not base64')
  return bytes
}
