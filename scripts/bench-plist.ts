// Benchmarks the plist codec (src/mdm/plist.ts) against the `plist` npm package on
// typical MDM messages. Run: npx tsx scripts/bench-plist.ts
import * as plist from 'plist'
import { decodePlist, encodePlist, type PlistValue } from '../src/mdm/plist.js'

const udid = '00008030-001A35E02E38802E'

const authenticate: PlistValue = {
  BuildVersion: '21E236',
  DeviceName: 'Ada’s iPhone',
  IMEI: '35 328509 482917 4',
  MEID: '35328509482917',
  MessageType: 'Authenticate',
  Model: 'iPhone12,8',
  ModelName: 'iPhone',
  OSVersion: '17.4.1',
  ProductName: 'iPhone12,8',
  SerialNumber: 'F17ZK0XLN735',
  Topic: 'com.apple.mgmt.External.5c3b7c1e-3f2a-4e44-9a41-2b1f6a3b8c9d',
  UDID: udid,
}

const tokenUpdate: PlistValue = {
  AwaitingConfiguration: false,
  MessageType: 'TokenUpdate',
  PushMagic: '6B1E4F2A-93C1-4D07-8C55-1E0F7A2B9D34',
  Token: Buffer.from('c4a1e0f2b7d94e3a8f6c2d1b0a9e8f7c6d5b4a3928172635445362718a9b0c1d', 'hex'),
  Topic: 'com.apple.mgmt.External.5c3b7c1e-3f2a-4e44-9a41-2b1f6a3b8c9d',
  UDID: udid,
  UnlockToken: Buffer.alloc(1200, 0x5a),
}

// A DeviceInformation report is the biggest message a device sends on most check-ins.
const deviceInformationReport: PlistValue = {
  CommandUUID: '0F1D2C3B-4A59-4687-9A0B-1C2D3E4F5A6B',
  QueryResponses: {
    AvailableDeviceCapacity: 91.53,
    BatteryLevel: 0.87,
    BluetoothMAC: 'f0:99:b6:12:34:56',
    BuildVersion: '21E236',
    CellularTechnology: 3,
    DeviceCapacity: 119.1,
    DeviceName: 'Ada’s iPhone',
    EASDeviceIdentifier: 'R3K6M8P0Q2S4U6W8Y0A2C4E6G8',
    ICCID: '8901 4104 2707 5561 9473',
    IMEI: '35 328509 482917 4',
    IsActivationLockEnabled: true,
    IsCloudBackupEnabled: true,
    IsDeviceLocatorServiceEnabled: true,
    IsDoNotDisturbInEffect: false,
    IsMDMLostModeEnabled: false,
    IsSupervised: true,
    MEID: '35328509482917',
    Model: 'MX9R2LL/A',
    ModelName: 'iPhone',
    ModemFirmwareVersion: '5.00.00',
    OSUpdateSettings: {
      AutoCheckEnabled: true,
      AutomaticAppInstallationEnabled: true,
      AutomaticOSInstallationEnabled: false,
      BackgroundDownloadEnabled: true,
      CatalogURL: 'https://mesu.apple.com/assets/catalog.xml',
      IsDefaultCatalog: true,
      PerformPeriodicCheck: true,
      PreviousScanDate: new Date('2024-04-02T08:15:30Z'),
      PreviousScanResult: 0,
    },
    OSVersion: '17.4.1',
    PhoneNumber: '+1 (408) 555-0134',
    ProductName: 'iPhone12,8',
    SerialNumber: 'F17ZK0XLN735',
    ServiceSubscriptions: [
      {
        CarrierSettingsVersion: '56.0',
        CurrentCarrierNetwork: 'Carrier',
        ICCID: '8901410427075561947',
        IMEI: '35 328509 482917 4',
        IsDataPreferred: true,
        IsRoaming: false,
        IsVoicePreferred: true,
        Label: 'Primary',
        Slot: 'CTSubscriptionSlotOne',
      },
    ],
    SubscriberCarrierNetwork: 'Carrier',
    SupplementalBuildVersion: '21E236',
    TotalDiskSpace: 128_000_000_000,
    UDID: udid,
    WiFiMAC: 'f0:99:b6:12:34:57',
  },
  Status: 'Acknowledged',
  UDID: udid,
}

const deviceInformationCommand: PlistValue = {
  Command: {
    Queries: [
      'DeviceName',
      'OSVersion',
      'BuildVersion',
      'ModelName',
      'Model',
      'ProductName',
      'SerialNumber',
      'DeviceCapacity',
      'AvailableDeviceCapacity',
      'BatteryLevel',
      'IMEI',
      'MEID',
      'WiFiMAC',
      'BluetoothMAC',
      'IsSupervised',
      'OSUpdateSettings',
    ],
    RequestType: 'DeviceInformation',
  },
  CommandUUID: '0F1D2C3B-4A59-4687-9A0B-1C2D3E4F5A6B',
}

const installProfileCommand: PlistValue = {
  Command: { Payload: Buffer.alloc(6000, 0x3c), RequestType: 'InstallProfile' },
  CommandUUID: '2A3B4C5D-6E7F-4809-9A1B-2C3D4E5F6A7B',
}

interface Result {
  microseconds: number
  opsPerSecond: number
}

function measure(fn: () => unknown): Result {
  for (let i = 0; i < 2000; i++) fn() // warm-up: let the JIT settle
  let iterations = 0
  const start = process.hrtime.bigint()
  let elapsed = 0n
  while (elapsed < 400_000_000n) {
    for (let i = 0; i < 200; i++) fn()
    iterations += 200
    elapsed = process.hrtime.bigint() - start
  }
  const microseconds = Number(elapsed) / 1000 / iterations
  return { microseconds, opsPerSecond: 1_000_000 / microseconds }
}

const rows: string[][] = []
function row(operation: string, message: string, bytes: number, ours: Result, theirs: Result | undefined): void {
  const format = (r: Result) => `${r.microseconds.toFixed(2).padStart(8)} µs  ${Math.round(r.opsPerSecond).toLocaleString('en-US').padStart(9)}/s`
  rows.push([
    operation,
    message,
    `${bytes} B`,
    format(ours),
    theirs === undefined ? '' : format(theirs),
    theirs === undefined ? '' : `${(theirs.microseconds / ours.microseconds).toFixed(1)}x`,
  ])
}

const messages: [string, PlistValue][] = [
  ['Authenticate', authenticate],
  ['TokenUpdate', tokenUpdate],
  ['DeviceInformation report', deviceInformationReport],
]

for (const [name, value] of messages) {
  const xml = encodePlist(value)
  const xmlText = xml.toString('utf8')
  row(
    'decode XML',
    name,
    xml.length,
    measure(() => decodePlist(xml)),
    measure(() => plist.parse(xmlText)),
  )
}
for (const [name, value] of messages) {
  const binary = Buffer.from(plist.buildBinary(value as plist.PlistValue))
  row(
    'decode binary',
    name,
    binary.length,
    measure(() => decodePlist(binary)),
    measure(() => plist.parseBinary(binary)),
  )
}
for (const [name, value] of [...messages, ['DeviceInformation command', deviceInformationCommand], ['InstallProfile command', installProfileCommand]] as [
  string,
  PlistValue,
][]) {
  const bytes = encodePlist(value).length
  // Both sides produce bytes ready to send: the package builds a string, so add the UTF-8 encoding.
  row(
    'encode XML',
    name,
    bytes,
    measure(() => encodePlist(value)),
    measure(() => Buffer.from(plist.build(value as plist.PlistValue), 'utf8')),
  )
}

const header = ['operation', 'message', 'size', 'ours (per op, ops/s)', 'plist package', 'speed-up']
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
const line = (cells: string[]) =>
  cells
    .map((c, i) => c.padEnd(widths[i]!))
    .join('  ')
    .trimEnd()
console.log(`Node ${process.version}, ${process.arch}`)
console.log(line(header))
console.log(line(widths.map((w) => '-'.repeat(w))))
for (const r of rows) console.log(line(r))
