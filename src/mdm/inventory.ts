// What query responses tell about a device, in the shape the inventory tables keep.
// https://developer.apple.com/documentation/devicemanagement/deviceinformationresponse
import { createHash, X509Certificate } from 'node:crypto'
import { plistToJson, type JsonValue } from './json.js'
import { isPlistDict, type PlistDict, type PlistValue } from './plist.js'

export interface DeviceInformationFacts {
  deviceName?: string
  osVersion?: string
  buildVersion?: string
  model?: string
  modelName?: string
  productName?: string
  /** macOS 12, iOS 15 and later: what Apple's software lookup document lists the device under (a Mac's board ID, J413AP). */
  softwareUpdateDeviceId?: string
  serialNumber?: string
  imei?: string
  meid?: string
  isSupervised?: boolean
  /** Digits of PhoneNumber and of each ServiceSubscriptions entry's PhoneNumber; undefined when the answer had none of those keys. */
  phoneNumbers?: string[]
  all: JsonValue
}

/** The phone numbers a DeviceInformation answer gives, digits only (a SIM's "+47 912 34 567" is 4791234567). */
function phoneNumbersOf(responses: PlistDict): string[] | undefined {
  const subscriptions = responses['ServiceSubscriptions']
  if (!('PhoneNumber' in responses) && !Array.isArray(subscriptions)) return undefined
  const raw = [responses['PhoneNumber'], ...dicts(subscriptions).map((subscription) => subscription['PhoneNumber'])]
  const numbers = raw.filter((value): value is string => typeof value === 'string').map((value) => value.replace(/[^0-9]/g, ''))
  return [...new Set(numbers.filter((digits) => digits.length >= 3 && digits.length <= 20))]
}

export interface ApplicationFacts {
  identifier: string
  name?: string
  version?: string
  shortVersion?: string
  bundleSize?: number
  isManaged?: boolean
  attributes: JsonValue
}

export interface ProfileFacts {
  identifier: string
  uuid?: string
  displayName?: string
  isManaged?: boolean
  attributes: JsonValue
}

export interface CertificateFacts {
  sha256: string
  commonName?: string
  isIdentity?: boolean
  data: Buffer
}

export type InventoryUpdate =
  | { kind: 'device_information'; facts: DeviceInformationFacts }
  | { kind: 'security_info'; info: JsonValue }
  | { kind: 'applications'; applications: ApplicationFacts[] }
  | { kind: 'profiles'; profiles: ProfileFacts[] }
  | { kind: 'certificates'; certificates: CertificateFacts[] }

const str = (dict: PlistDict, key: string): string | undefined => {
  const value = dict[key]
  return typeof value === 'string' ? value : undefined
}
const bool = (dict: PlistDict, key: string): boolean | undefined => {
  const value = dict[key]
  return typeof value === 'boolean' ? value : undefined
}
const num = (dict: PlistDict, key: string): number | undefined => {
  const value = dict[key]
  if (typeof value === 'number') return value
  if (typeof value === 'bigint') return Number(value)
  return undefined
}
const dicts = (value: PlistValue | undefined): PlistDict[] => (Array.isArray(value) ? value.filter(isPlistDict) : [])

/** The inventory a successful report carries for its request type, if any. */
export function inventoryFromReport(requestType: string, report: PlistDict): InventoryUpdate | undefined {
  switch (requestType) {
    case 'DeviceInformation': {
      const responses = report['QueryResponses']
      if (!isPlistDict(responses)) return undefined
      return {
        kind: 'device_information',
        facts: {
          deviceName: str(responses, 'DeviceName'),
          osVersion: str(responses, 'OSVersion'),
          buildVersion: str(responses, 'BuildVersion'),
          model: str(responses, 'Model'),
          modelName: str(responses, 'ModelName'),
          productName: str(responses, 'ProductName'),
          softwareUpdateDeviceId: str(responses, 'SoftwareUpdateDeviceID') || undefined,
          serialNumber: str(responses, 'SerialNumber'),
          imei: str(responses, 'IMEI'),
          meid: str(responses, 'MEID'),
          isSupervised: bool(responses, 'IsSupervised'),
          phoneNumbers: phoneNumbersOf(responses),
          all: plistToJson(responses),
        },
      }
    }
    case 'SecurityInfo': {
      const info = report['SecurityInfo']
      return isPlistDict(info) ? { kind: 'security_info', info: plistToJson(info) } : undefined
    }
    case 'InstalledApplicationList':
      return {
        kind: 'applications',
        applications: dicts(report['InstalledApplicationList'])
          .filter((app) => typeof app['Identifier'] === 'string' && app['Identifier'] !== '')
          .map((app) => ({
            identifier: app['Identifier'] as string,
            name: str(app, 'Name'),
            version: str(app, 'Version'),
            shortVersion: str(app, 'ShortVersion'),
            bundleSize: num(app, 'BundleSize'),
            isManaged: bool(app, 'IsManaged'),
            attributes: plistToJson(app),
          })),
      }
    case 'ProfileList':
      return {
        kind: 'profiles',
        profiles: dicts(report['ProfileList'])
          .filter((profile) => typeof profile['PayloadIdentifier'] === 'string')
          .map((profile) => ({
            identifier: profile['PayloadIdentifier'] as string,
            uuid: str(profile, 'PayloadUUID'),
            displayName: str(profile, 'PayloadDisplayName'),
            isManaged: bool(profile, 'IsManaged'),
            attributes: plistToJson(profile),
          })),
      }
    case 'CertificateList':
      return {
        kind: 'certificates',
        certificates: dicts(report['CertificateList'])
          .filter((cert) => Buffer.isBuffer(cert['Data']))
          .map((cert) => {
            const data = cert['Data'] as Buffer
            return {
              sha256: createHash('sha256').update(data).digest('hex'),
              commonName: str(cert, 'CommonName') ?? commonNameOf(data),
              isIdentity: bool(cert, 'IsIdentity'),
              data,
            }
          }),
      }
    default:
      return undefined
  }
}

function commonNameOf(der: Buffer): string | undefined {
  try {
    return /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(der).subject)?.[1]
  } catch {
    return undefined
  }
}
