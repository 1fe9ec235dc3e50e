// How a simulated iPad answers the commands a FaithfulDevice does not model itself (profiles and
// apps are its part): queries from what the device is, actions that change its state (locked,
// Lost Mode, erased), and for anything else the Error a device gives for a command it does not
// know. Shapes from Apple's device-management reference (developer.apple.com/documentation/devicemanagement).
import { X509Certificate, createHash, randomBytes } from 'node:crypto'
import type { PlistDict, PlistValue } from '../mdm/plist.js'
import type { CommandAnswer } from './faithful-device.js'

/** What a simulated device is, and what commands did to it. */
export interface SimulatedDeviceState {
  udid: string
  serialNumber: string
  model: string
  modelName: string
  deviceName: string
  osVersion: string
  buildVersion: string
  supervised: boolean
  wifiMac: string
  bluetoothMac: string
  /** The identity certificate (DER) and the CA certificates the profile installed. */
  identityCertificateDer: Buffer
  caCertificatesDer: Buffer[]
  /** The lock screen message of the last DeviceLock (null: not locked since start). */
  lockMessage: string | null
  lostMode: { message: string | null; phoneNumber: string | null; footnote: string | null } | null
  /** EraseDevice acknowledged: the device is wiped and talks to the server no more. */
  erased: boolean
  activationLockBypassCode: string
}

function mac(): string {
  const bytes = randomBytes(6)
  bytes[0] = (bytes[0]! & 0xfc) | 0x02 // locally administered, unicast
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':')
}

export function newDeviceState(fields: {
  udid: string
  serialNumber: string
  model: string
  modelName: string
  deviceName: string
  supervised: boolean
  identityCertificateDer: Buffer
  caCertificatesDer: Buffer[]
}): SimulatedDeviceState {
  const code = randomBytes(16).toString('hex').toUpperCase()
  return {
    ...fields,
    osVersion: '18.1',
    buildVersion: '22B83',
    wifiMac: mac(),
    bluetoothMac: mac(),
    lockMessage: null,
    lostMode: null,
    erased: false,
    activationLockBypassCode: code.match(/.{1,5}/g)!.join('-'),
  }
}

/** The Error a device answers with: one ErrorChain entry. */
export function errorAnswer(code: number, domain: string, description: string): CommandAnswer {
  return {
    status: 'Error',
    keys: { ErrorChain: [{ ErrorCode: code, ErrorDomain: domain, LocalizedDescription: description, USEnglishDescription: description }] },
  }
}

const acknowledged = (keys: PlistDict = {}): CommandAnswer => ({ status: 'Acknowledged', keys })
const text = (value: PlistValue | undefined): string | null => (typeof value === 'string' ? value : null)

/** The DeviceInformation values this device knows, by query name. */
function deviceInformation(state: SimulatedDeviceState): PlistDict {
  return {
    UDID: state.udid,
    DeviceName: state.deviceName,
    OSVersion: state.osVersion,
    BuildVersion: state.buildVersion,
    ModelName: state.modelName,
    Model: 'MHQR3LL/A',
    ProductName: state.model,
    SoftwareUpdateDeviceID: state.model.startsWith('iPad13') ? 'J407AP' : state.model,
    SerialNumber: state.serialNumber,
    DeviceCapacity: 64,
    AvailableDeviceCapacity: 41.5,
    BatteryLevel: 0.8,
    IsSupervised: state.supervised,
    IsDeviceLocatorServiceEnabled: false,
    IsActivationLockEnabled: false,
    IsCloudBackupEnabled: false,
    WiFiMAC: state.wifiMac,
    BluetoothMAC: state.bluetoothMac,
    IsMDMLostModeEnabled: state.lostMode !== null,
    IsMultiUser: false,
    EASDeviceIdentifier: createHash('sha1').update(state.udid).digest('hex').slice(0, 32).toUpperCase(),
    ServiceSubscriptions: [],
  }
}

function certificateList(state: SimulatedDeviceState): PlistDict[] {
  const commonName = (der: Buffer) => /^CN=(.*)$/m.exec(new X509Certificate(der).subject)?.[1] ?? ''
  return [
    { CommonName: commonName(state.identityCertificateDer), Data: state.identityCertificateDer, IsIdentity: true },
    ...state.caCertificatesDer.map((der) => ({ CommonName: commonName(der), Data: der, IsIdentity: false })),
  ]
}

/** Answers a command the FaithfulDevice leaves to it, changing `state` as the device would change. */
export function answerCommand(state: SimulatedDeviceState, requestType: string, command: PlistDict): CommandAnswer {
  const needsSupervision = () => errorAnswer(12081, 'MCMDMErrorDomain', 'The device is not supervised.')
  switch (requestType) {
    case 'DeviceInformation': {
      const all = deviceInformation(state)
      const queries = Array.isArray(command['Queries']) ? command['Queries'].filter((q): q is string => typeof q === 'string') : Object.keys(all)
      return acknowledged({ QueryResponses: Object.fromEntries(queries.filter((q) => q in all).map((q) => [q, all[q]!])) })
    }
    case 'SecurityInfo':
      return acknowledged({
        SecurityInfo: {
          HardwareEncryptionCaps: 3,
          PasscodePresent: false,
          PasscodeCompliant: true,
          PasscodeCompliantWithProfiles: true,
          PasscodeLockGracePeriodEnforced: 0,
          FDE_Enabled: false,
          ManagementStatus: { EnrolledViaDEP: false, IsUserEnrollment: false, UserApprovedEnrollment: true },
        },
      })
    case 'CertificateList':
      return acknowledged({ CertificateList: certificateList(state) })
    case 'DeviceLock':
      state.lockMessage = text(command['Message']) ?? ''
      return acknowledged()
    case 'EraseDevice':
      state.erased = true
      return acknowledged()
    case 'EnableLostMode':
      if (!state.supervised) return needsSupervision()
      state.lostMode = { message: text(command['Message']), phoneNumber: text(command['PhoneNumber']), footnote: text(command['Footnote']) }
      return acknowledged()
    case 'DisableLostMode':
      if (state.lostMode === null) return errorAnswer(12067, 'MCMDMErrorDomain', 'The device is not in Lost Mode.')
      state.lostMode = null
      return acknowledged()
    case 'DeviceLocation':
      if (state.lostMode === null) return errorAnswer(12067, 'MCMDMErrorDomain', 'The device is not in Lost Mode.')
      return acknowledged({
        Latitude: 59.9139,
        Longitude: 10.7522,
        HorizontalAccuracy: 65,
        VerticalAccuracy: 10,
        Altitude: 23,
        Speed: 0,
        Course: -1,
        Timestamp: new Date(),
      })
    case 'PlayLostModeSound':
      if (state.lostMode === null) return errorAnswer(12067, 'MCMDMErrorDomain', 'The device is not in Lost Mode.')
      return acknowledged()
    case 'RestartDevice':
    case 'ShutDownDevice':
      return state.supervised ? acknowledged() : needsSupervision()
    case 'ClearPasscode':
    case 'ClearRestrictionsPassword':
    case 'ScheduleOSUpdateScan':
      return acknowledged()
    case 'Settings': {
      const items = Array.isArray(command['Settings']) ? command['Settings'] : []
      return acknowledged({ Settings: items.map(() => ({ Status: 'Acknowledged' })) })
    }
    case 'ActivationLockBypassCode':
      if (!state.supervised) return needsSupervision()
      return acknowledged({ ActivationLockBypassCode: state.activationLockBypassCode })
    case 'AvailableOSUpdates':
      return acknowledged({ AvailableOSUpdates: [] })
    case 'OSUpdateStatus':
      return acknowledged({ OSUpdateStatus: [] })
    case 'ScheduleOSUpdate':
      return acknowledged({ UpdateResults: [] })
    case 'Restrictions':
      return acknowledged({ GlobalRestrictions: {}, ProfileRestrictions: {} })
    default:
      // What a device answers a RequestType it does not know (or the simulator does not model).
      return errorAnswer(12021, 'MCMDMErrorDomain', `Unsupported command “${requestType}”.`)
  }
}
