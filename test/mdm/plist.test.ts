import { readFileSync } from 'node:fs'
import * as plist from 'plist'
import t, { type Test } from 'tap'
import { encodeBinaryPlist } from '../helpers/binary-plist.js'
import { seededRandom as prng } from '../helpers/random.js'
import { plistToJson } from '../../src/mdm/json.js'
import {
  decodePlist,
  defaultPlistLimits,
  encodePlist,
  isPlistDict,
  PlistError,
  type PlistDict,
  type PlistLimits,
  type PlistValue,
} from '../../src/mdm/plist.js'

// ---------------------------------------------------------------------------------------
// Helpers

const HEADER =
  '<?xml version="1.0" encoding="UTF-8"?>\n' + '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'

/** A whole XML document around `body`, which is the content of <plist>. */
function doc(body: string): string {
  return `${HEADER}<plist version="1.0">\n${body}\n</plist>\n`
}

function decodeText(text: string, limits?: Partial<PlistLimits>): PlistValue {
  return decodePlist(Buffer.from(text, 'utf8'), limits)
}

function fixture(name: string): Buffer {
  return readFileSync(new URL(`./fixtures/${name}`, import.meta.url))
}

/** Runs fn and returns the PlistError it throws; fails the test on anything else. */
function plistError(t: Test, fn: () => unknown): PlistError | undefined {
  try {
    fn()
  } catch (error) {
    if (error instanceof PlistError) return error
    t.fail(`expected a PlistError, got ${String(error)}`)
    return undefined
  }
  t.fail('expected a PlistError, nothing was thrown')
  return undefined
}

/** Asserts code, message and byte offset; `at` is a byte offset, or the first occurrence of a substring. */
function rejects(t: Test, input: string | Buffer, code: PlistError['code'], message: RegExp, at?: number | string, limits?: Partial<PlistLimits>): void {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input
  const error = plistError(t, () => decodePlist(bytes, limits))
  if (error === undefined) return
  t.equal(error.code, code, `code for ${error.message}`)
  t.match(error.message, message)
  if (at !== undefined) {
    const offset = typeof at === 'number' ? at : bytes.indexOf(at)
    t.ok(offset >= 0, `marker ${JSON.stringify(at)} is in the input`)
    t.equal(error.offset, offset, `offset of: ${error.message}`)
    t.ok(error.message.endsWith(`at byte ${offset}`), 'the message says where')
  }
}

/**
 * The first difference between two plist values, or undefined. Strict about types (bigint
 * is not number, Buffer is not Uint8Array) and key order; tap's strictSame is not usable
 * here because it compares a dict's "constructor" key as the object's constructor.
 */
function difference(actual: unknown, expected: unknown, path = '$'): string | undefined {
  const show = (v: unknown) =>
    typeof v === 'bigint'
      ? `${v}n`
      : Buffer.isBuffer(v)
        ? `<${v.toString('hex')}>`
        : typeof v === 'object'
          ? Object.prototype.toString.call(v)
          : JSON.stringify(v)
  const differs = `${path}: ${show(actual)} instead of ${show(expected)}`
  if (typeof actual !== typeof expected) return differs
  if (typeof expected === 'number') return actual === expected || (Number.isNaN(actual) && Number.isNaN(expected)) ? undefined : differs
  if (typeof expected !== 'object' || expected === null) return actual === expected ? undefined : differs
  if (Buffer.isBuffer(expected)) return Buffer.isBuffer(actual) && actual.equals(expected) ? undefined : differs
  if (expected instanceof Date) return actual instanceof Date && actual.getTime() === expected.getTime() ? undefined : differs
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return differs
    for (let i = 0; i < expected.length; i++) {
      const inner = difference(actual[i], expected[i], `${path}[${i}]`)
      if (inner !== undefined) return inner
    }
    return undefined
  }
  if (!isPlistDict(actual) || !isPlistDict(expected)) return differs
  const keys = Object.keys(expected)
  if (JSON.stringify(Object.keys(actual)) !== JSON.stringify(keys))
    return `${path}: keys ${JSON.stringify(Object.keys(actual))} instead of ${JSON.stringify(keys)}`
  for (const key of keys) {
    const inner = difference(actual[key], expected[key], `${path}[${JSON.stringify(key)}]`)
    if (inner !== undefined) return inner
  }
  return undefined
}

/** For comparing with the plist package: its <data> is a Uint8Array and its integers are numbers. */
function comparable(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value)
  if (value instanceof Uint8Array) return Buffer.from(value)
  if (Array.isArray(value)) return value.map(comparable)
  if (value instanceof Date) return value
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, comparable(v)]))
  }
  return value
}

// A small bplist00 writer, enough to build well-formed and broken binary plists.
// Objects are pre-encoded buffers; containers name their children by object index.

function bMarker(type: number, length: number): Buffer {
  if (length < 15) return Buffer.from([(type << 4) | length])
  return Buffer.concat([Buffer.from([(type << 4) | 0xf]), bInt(length)])
}

function bInt(value: number | bigint): Buffer {
  const v = BigInt(value)
  if (v >= 0n && v < 0x100n) return Buffer.from([0x10, Number(v)])
  if (v >= 0n && v < 0x10000n) return Buffer.from([0x11, Number(v >> 8n), Number(v & 0xffn)])
  if (v >= 0n && v < 0x1_0000_0000n) {
    const b = Buffer.alloc(5, 0x12)
    b.writeUInt32BE(Number(v), 1)
    return b
  }
  if (v >= -(2n ** 63n) && v < 2n ** 63n) {
    const b = Buffer.alloc(9, 0x13)
    b.writeBigInt64BE(v, 1)
    return b
  }
  const b = Buffer.alloc(17, 0x14)
  b.writeBigInt64BE(v >> 64n, 1)
  b.writeBigUInt64BE(v & (2n ** 64n - 1n), 9)
  return b
}

function bReal(value: number, size: 4 | 8 = 8): Buffer {
  const b = Buffer.alloc(1 + size, size === 4 ? 0x22 : 0x23)
  if (size === 4) b.writeFloatBE(value, 1)
  else b.writeDoubleBE(value, 1)
  return b
}

function bDate(date: Date): Buffer {
  const b = Buffer.alloc(9, 0x33)
  b.writeDoubleBE((date.getTime() - 978_307_200_000) / 1000, 1)
  return b
}

function bData(data: Buffer): Buffer {
  return Buffer.concat([bMarker(0x4, data.length), data])
}

function bString(text: string): Buffer {
  if (/^[\x00-\x7f]*$/.test(text)) return Buffer.concat([bMarker(0x5, text.length), Buffer.from(text, 'latin1')])
  return Buffer.concat([bMarker(0x6, text.length), Buffer.from(text, 'utf16le').swap16()])
}

function bRefs(refs: number[], refSize: number): Buffer {
  const b = Buffer.alloc(refs.length * refSize)
  refs.forEach((ref, i) => b.writeUIntBE(ref, i * refSize, refSize))
  return b
}

function bArray(refs: number[], refSize = 1): Buffer {
  return Buffer.concat([bMarker(0xa, refs.length), bRefs(refs, refSize)])
}

function bDict(keys: number[], values: number[], refSize = 1): Buffer {
  return Buffer.concat([bMarker(0xd, keys.length), bRefs(keys, refSize), bRefs(values, refSize)])
}

const B_FALSE = Buffer.from([0x08])
const B_TRUE = Buffer.from([0x09])

interface BplistOptions {
  top?: number
  refSize?: number
  offsetSize?: number
  objectCount?: number
}

/** Lays out header, objects, offset table and trailer. */
function bplist(objects: Buffer[], options: BplistOptions = {}): Buffer {
  const parts: Buffer[] = [Buffer.from('bplist00', 'latin1')]
  const offsets: number[] = []
  let at = 8
  for (const object of objects) {
    offsets.push(at)
    parts.push(object)
    at += object.length
  }
  const offsetSize = options.offsetSize ?? (at < 0x100 ? 1 : at < 0x10000 ? 2 : 4)
  const tableAt = at
  parts.push(bRefs(offsets, offsetSize))
  const trailer = Buffer.alloc(32)
  trailer[6] = offsetSize
  trailer[7] = options.refSize ?? 1
  trailer.writeBigUInt64BE(BigInt(options.objectCount ?? objects.length), 8)
  trailer.writeBigUInt64BE(BigInt(options.top ?? 0), 16)
  trailer.writeBigUInt64BE(BigInt(tableAt), 24)
  parts.push(trailer)
  return Buffer.concat(parts)
}

/** Writes any value as a binary plist, one object per node (no sharing). */
function toBplist(value: PlistValue): Buffer {
  const encoders: ((refSize: number) => Buffer)[] = []
  const add = (v: PlistValue): number => {
    const index = encoders.length
    encoders.push(() => Buffer.alloc(0))
    if (typeof v === 'string') encoders[index] = () => bString(v)
    else if (typeof v === 'number') encoders[index] = () => (Number.isSafeInteger(v) ? bInt(v) : bReal(v))
    else if (typeof v === 'bigint') encoders[index] = () => bInt(v)
    else if (typeof v === 'boolean') encoders[index] = () => (v ? B_TRUE : B_FALSE)
    else if (v instanceof Date) encoders[index] = () => bDate(v)
    else if (Buffer.isBuffer(v)) encoders[index] = () => bData(v)
    else if (Array.isArray(v)) {
      const refs = v.map(add)
      encoders[index] = (refSize) => bArray(refs, refSize)
    } else {
      const keys: number[] = []
      const values: number[] = []
      for (const [k, item] of Object.entries(v)) {
        keys.push(add(k))
        values.push(add(item))
      }
      encoders[index] = (refSize) => bDict(keys, values, refSize)
    }
    return index
  }
  add(value)
  const refSize = encoders.length < 0x100 ? 1 : encoders.length < 0x10000 ? 2 : 4
  return bplist(
    encoders.map((encode) => encode(refSize)),
    { refSize },
  )
}

// ---------------------------------------------------------------------------------------
// Real-shaped MDM messages

const authenticateXml = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>BuildVersion</key>
	<string>21E236</string>
	<key>DeviceName</key>
	<string>Ada’s iPhone</string>
	<key>IMEI</key>
	<string>35 328509 482917 4</string>
	<key>MEID</key>
	<string>35328509482917</string>
	<key>MessageType</key>
	<string>Authenticate</string>
	<key>Model</key>
	<string>iPhone12,8</string>
	<key>ModelName</key>
	<string>iPhone</string>
	<key>OSVersion</key>
	<string>17.4.1</string>
	<key>ProductName</key>
	<string>iPhone12,8</string>
	<key>SerialNumber</key>
	<string>F17ZK0XLN735</string>
	<key>Topic</key>
	<string>com.apple.mgmt.External.5c3b7c1e-3f2a-4e44-9a41-2b1f6a3b8c9d</string>
	<key>UDID</key>
	<string>00008030-001A35E02E38802E</string>
</dict>
</plist>
`

const tokenUpdateXml = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>AwaitingConfiguration</key>
	<false/>
	<key>MessageType</key>
	<string>TokenUpdate</string>
	<key>PushMagic</key>
	<string>6B1E4F2A-93C1-4D07-8C55-1E0F7A2B9D34</string>
	<key>Token</key>
	<data>
	xKHg8rfZTjqPbC0bCp6PfG1bSjkoFyY1RFNicYqbDB0=
	</data>
	<key>Topic</key>
	<string>com.apple.mgmt.External.5c3b7c1e-3f2a-4e44-9a41-2b1f6a3b8c9d</string>
	<key>UDID</key>
	<string>00008030-001A35E02E38802E</string>
	<key>UnlockToken</key>
	<data>
	AAAABFZFUlMAAAAEAAAABFRZUEUAAAAEAAAAAVVVSUQAAAAQ
	PQTklYa9R1+3tdbH4CsqWEhNQ0sAAAAoAAAAAAAAAAAAAAAA
	</data>
</dict>
</plist>
`

const deviceInformationXml = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CommandUUID</key>
	<string>0F1D2C3B-4A59-4687-9A0B-1C2D3E4F5A6B</string>
	<key>QueryResponses</key>
	<dict>
		<key>AvailableDeviceCapacity</key>
		<real>91.530000000000001</real>
		<key>BatteryLevel</key>
		<real>0.87000000000000000</real>
		<key>DeviceCapacity</key>
		<real>119.1</real>
		<key>DeviceName</key>
		<string>Bob&#39;s iPad &amp; Keyboard</string>
		<key>IsSupervised</key>
		<true/>
		<key>OSUpdateSettings</key>
		<dict>
			<key>PreviousScanDate</key>
			<date>2024-04-02T08:15:30Z</date>
			<key>PreviousScanResult</key>
			<integer>0</integer>
		</dict>
		<key>TotalDiskSpace</key>
		<integer>18446744073709551615</integer>
		<key>UsedSpace</key>
		<integer>-9223372036854775808</integer>
	</dict>
	<key>Status</key>
	<string>Acknowledged</string>
	<key>UDID</key>
	<string>00008030-001A35E02E38802E</string>
</dict>
</plist>
`

const errorReportXml = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CommandUUID</key>
	<string>7C1B1F1E-3C5D-4D8E-9F00-112233445566</string>
	<key>ErrorChain</key>
	<array>
		<dict>
			<key>ErrorCode</key>
			<integer>4001</integer>
			<key>ErrorDomain</key>
			<string>MCProfileErrorDomain</string>
			<key>LocalizedDescription</key>
			<string>The profile &#x201C;Wi-Fi&#x201D; could not be installed.</string>
			<key>USEnglishDescription</key>
			<string>The profile “Wi-Fi” could not be installed.</string>
		</dict>
		<dict>
			<key>ErrorCode</key>
			<integer>-1</integer>
			<key>ErrorDomain</key>
			<string>MCInstallationErrorDomain</string>
			<key>LocalizedDescription</key>
			<string>Payload &lt;com.example.wifi&gt; isn&apos;t valid: &quot;SSID&quot; is missing.</string>
		</dict>
	</array>
	<key>Status</key>
	<string>Error</string>
	<key>UDID</key>
	<string>00008030-001A35E02E38802E</string>
</dict>
</plist>
`

t.test('MDM messages', async (t) => {
  t.test('Authenticate check-in', async (t) => {
    const message = decodeText(authenticateXml)
    t.strictSame(message, {
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
      UDID: '00008030-001A35E02E38802E',
    })
    t.ok(isPlistDict(message))
    t.strictSame(comparable(message), comparable(plist.parse(authenticateXml)), 'the plist package agrees')
  })

  t.test('TokenUpdate: <data> with line breaks, <false/>', async (t) => {
    const message = decodeText(tokenUpdateXml) as PlistDict
    t.equal(message.MessageType, 'TokenUpdate')
    t.equal(message.AwaitingConfiguration, false)
    t.equal(message.PushMagic, '6B1E4F2A-93C1-4D07-8C55-1E0F7A2B9D34')
    t.ok(Buffer.isBuffer(message.Token))
    t.equal((message.Token as Buffer).toString('hex'), 'c4a1e0f2b7d94e3a8f6c2d1b0a9e8f7c6d5b4a3928172635445362718a9b0c1d')
    t.ok(Buffer.isBuffer(message.UnlockToken))
    t.equal((message.UnlockToken as Buffer).length, 72)
    t.equal((message.UnlockToken as Buffer).subarray(0, 8).toString('hex'), '0000000456455253')
    t.strictSame(comparable(message), comparable(plist.parse(tokenUpdateXml)), 'the plist package agrees')
  })

  t.test('command report: Acknowledged, QueryResponses with 64-bit integers', async (t) => {
    const message = decodeText(deviceInformationXml)
    t.strictSame(message, {
      CommandUUID: '0F1D2C3B-4A59-4687-9A0B-1C2D3E4F5A6B',
      QueryResponses: {
        AvailableDeviceCapacity: 91.53,
        BatteryLevel: 0.87,
        DeviceCapacity: 119.1,
        DeviceName: "Bob's iPad & Keyboard",
        IsSupervised: true,
        OSUpdateSettings: { PreviousScanDate: new Date('2024-04-02T08:15:30Z'), PreviousScanResult: 0 },
        TotalDiskSpace: 18446744073709551615n,
        UsedSpace: -9223372036854775808n,
      },
      Status: 'Acknowledged',
      UDID: '00008030-001A35E02E38802E',
    })
    t.strictSame(comparable(message), comparable(plist.parse(deviceInformationXml)), 'the plist package agrees (it rounds big integers)')
  })

  t.test('error report: ErrorChain, named and numeric entities', async (t) => {
    const message = decodeText(errorReportXml) as PlistDict
    t.equal(message.Status, 'Error')
    t.strictSame(message.ErrorChain, [
      {
        ErrorCode: 4001,
        ErrorDomain: 'MCProfileErrorDomain',
        LocalizedDescription: 'The profile “Wi-Fi” could not be installed.',
        USEnglishDescription: 'The profile “Wi-Fi” could not be installed.',
      },
      {
        ErrorCode: -1,
        ErrorDomain: 'MCInstallationErrorDomain',
        LocalizedDescription: 'Payload <com.example.wifi> isn\'t valid: "SSID" is missing.',
      },
    ])
    t.strictSame(comparable(message), comparable(plist.parse(errorReportXml)), 'the plist package agrees')
  })

  t.test('command envelope: encoded, then decoded by us and by the plist package', async (t) => {
    const command = {
      CommandUUID: '0F1D2C3B-4A59-4687-9A0B-1C2D3E4F5A6B',
      Command: {
        RequestType: 'DeviceInformation',
        Queries: ['DeviceName', 'OSVersion', 'SerialNumber', 'DeviceCapacity', 'AvailableDeviceCapacity', 'IsSupervised'],
      },
    }
    const bytes = encodePlist(command)
    t.strictSame(decodePlist(bytes), command)
    t.strictSame(plist.parse(bytes.toString('utf8')), command)
    t.equal(
      bytes.toString('utf8'),
      `${HEADER}<plist version="1.0">
<dict>
	<key>CommandUUID</key>
	<string>0F1D2C3B-4A59-4687-9A0B-1C2D3E4F5A6B</string>
	<key>Command</key>
	<dict>
		<key>RequestType</key>
		<string>DeviceInformation</string>
		<key>Queries</key>
		<array>
			<string>DeviceName</string>
			<string>OSVersion</string>
			<string>SerialNumber</string>
			<string>DeviceCapacity</string>
			<string>AvailableDeviceCapacity</string>
			<string>IsSupervised</string>
		</array>
	</dict>
</dict>
</plist>
`,
    )
  })
})

// ---------------------------------------------------------------------------------------
// Fixtures written by Python's plistlib (test/mdm/fixtures/generate.py)

const authenticateFixture = {
  MessageType: 'Authenticate',
  Topic: 'com.apple.mgmt.External.5c3b7c1e-3f2a-4e44-9a41-2b1f6a3b8c9d',
  UDID: '00008030-001A35E02E38802E',
  SerialNumber: 'F17ZK0XLN735',
  Model: 'iPhone12,8',
  ModelName: 'iPhone',
  OSVersion: '17.4.1',
  BuildVersion: '21E236',
  ProductName: 'iPhone12,8',
  IMEI: '35 328509 482917 4',
  MEID: '35328509482917',
  DeviceName: 'Ada’s iPhone 🍏 & <Co>',
}

const deviceInformationFixture = {
  CommandUUID: '0F1D2C3B-4A59-4687-9A0B-1C2D3E4F5A6B',
  Status: 'Acknowledged',
  UDID: '00008030-001A35E02E38802E',
  QueryResponses: {
    DeviceCapacity: 119.1,
    AvailableDeviceCapacity: 91.53,
    BatteryLevel: 0.5,
    TotalBytes: 18446744073709551615n,
    Int64Max: 9223372036854775807n,
    Int64Min: -9223372036854775808n,
    SafeMax: 9007199254740991,
    Unsafe: 9007199254740993n,
    Sizes: [0, 255, 256, 65535, 65536, 4294967295, 4294967296, -1],
    Tiny: 1.25e-7,
    Huge: 1e300,
    IsSupervised: true,
    IsMDMLostModeEnabled: false,
    LastBackup: new Date('2024-04-02T08:15:30Z'),
    Epoch: new Date(0),
    Token: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Empty: { Dict: {}, Array: [], String: '', Data: Buffer.alloc(0) },
    Apps: Array.from({ length: 20 }, (_, i) => ({ Identifier: `com.example.app${i}`, Name: `App ${i}`, Version: `1.${i}` })),
    LongString: 'x'.repeat(300),
    Unicode: 'Grüße, 日本, 😀',
  },
}

t.test('plistlib fixtures: XML and binary decode to the same values', async (t) => {
  for (const [name, expected] of [
    ['authenticate', authenticateFixture],
    ['device-information', deviceInformationFixture],
  ] as const) {
    const xml = fixture(`${name}.xml.plist`)
    const binary = fixture(`${name}.binary.plist`)
    t.strictSame(decodePlist(xml), expected, `${name}.xml.plist`)
    t.strictSame(decodePlist(binary), expected, `${name}.binary.plist`)
    t.strictSame(comparable(plist.parse(xml.toString('utf8'))), comparable(decodePlist(xml)), `${name}: the plist package agrees on XML`)
    t.strictSame(decodePlist(encodePlist(decodePlist(binary))), expected, `${name}: binary -> XML -> value`)
  }
  const decoded = decodePlist(fixture('device-information.binary.plist')) as PlistDict
  t.strictSame(Object.keys(decoded), ['CommandUUID', 'Status', 'UDID', 'QueryResponses'], 'binary dict keys keep their order')
})

// ---------------------------------------------------------------------------------------
// XML syntax

t.test('XML prolog, comments, processing instructions, whitespace, BOM', async (t) => {
  t.equal(decodeText('<plist><string>a</string></plist>'), 'a', 'no declaration, no DOCTYPE')
  t.equal(decodeText(' \r\n\t<plist version="1.0"><true/></plist>'), true, 'leading whitespace')
  t.equal(decodePlist(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(doc('<integer>7</integer>'))])), 7, 'UTF-8 BOM')
  t.strictSame(
    decodeText(`<?xml version="1.0"?><!-- c1 --><!DOCTYPE plist SYSTEM "x>y"><?pi ok?><!-- c2 -->
<plist><!-- a --><dict><!-- b --><key>k</key><!-- c --><string>v</string><!-- d --></dict><!-- e --></plist><!-- f --><?after?>
`),
    { k: 'v' },
    'comments and processing instructions anywhere between elements',
  )
  t.strictSame(
    decodeText('<plist\n  version = "1.0"  foo=\'b>ar\'\n><array  ><true  /><false/></array ></plist >'),
    [true, false],
    'attributes and spaces in tags',
  )
  t.strictSame(decodeText('<plist><dict id="x"><key a="1">k</key><string xml:space="preserve">v</string></dict></plist>'), { k: 'v' }, 'attributes ignored')
})

t.test('values: strings, entities, CDATA, whitespace', async (t) => {
  t.equal(decodeText(doc('<string>  two\n\tlines  </string>')), '  two\n\tlines  ', 'whitespace inside <string> is kept exactly')
  t.equal(decodeText(doc('<string>a\r\nb</string>')), 'a\r\nb', 'CR LF kept as sent')
  t.equal(decodeText(doc('<string>&lt;&gt;&amp;&quot;&apos;&#39;&#x27;</string>')), `<>&"'''`)
  t.equal(decodeText(doc('<string>&#65;&#x1F600;&#x000041;</string>')), 'A😀A')
  t.equal(decodeText(doc('<string>a<![CDATA[<b>&amp;]]>c<!-- x -->d</string>')), 'a<b>&amp;cd', 'CDATA is raw, comments vanish')
  t.equal(decodeText(doc('<string>x > y ]] z</string>')), 'x > y ]] z')
  t.equal(decodeText(doc('<string/>')), '')
  t.equal(decodeText(doc('<string></string>')), '')
  t.equal(decodeText(doc('<string>日本語 ✓ 😀</string>')), '日本語 ✓ 😀')
  t.equal(decodeText(doc('<string>tab\there</string  >')), 'tab\there', 'space before ">" in a close tag')
})

t.test('values: empty forms, booleans', async (t) => {
  t.strictSame(decodeText(doc('<dict/>')), {})
  t.strictSame(decodeText(doc('<dict>\n</dict>')), {})
  t.strictSame(decodeText(doc('<array/>')), [])
  t.strictSame(decodeText(doc('<array></array>')), [])
  t.strictSame(decodeText(doc('<data/>')), Buffer.alloc(0))
  t.strictSame(decodeText(doc('<data></data>')), Buffer.alloc(0))
  t.strictSame(decodeText(doc('<array><true/><false/><true></true><false> </false></array>')), [true, false, true, false])
  t.strictSame(decodeText(doc('<dict><key/><string>empty key</string></dict>')), { '': 'empty key' })
})

t.test('values: integers', async (t) => {
  const cases: [string, number | bigint][] = [
    ['0', 0],
    ['-0', 0],
    ['+42', 42],
    ['-42', -42],
    ['007', 7],
    [' 12 ', 12],
    ['0x1F', 31],
    ['0XfF', 255],
    ['-0x10', -16],
    ['9007199254740991', 9007199254740991],
    ['-9007199254740991', -9007199254740991],
    ['9007199254740992', 9007199254740992n],
    ['-9007199254740992', -9007199254740992n],
    ['9223372036854775807', 9223372036854775807n],
    ['-9223372036854775808', -9223372036854775808n],
    ['18446744073709551615', 18446744073709551615n],
    ['0xFFFFFFFFFFFFFFFF', 18446744073709551615n],
    ['00000000000000000000000000018446744073709551615', 18446744073709551615n],
  ]
  for (const [text, expected] of cases) {
    const value = decodeText(doc(`<integer>${text}</integer>`))
    t.equal(typeof value, typeof expected, `${text} is a ${typeof expected}`)
    t.ok(value === expected, `<integer>${text}</integer> -> ${expected}`)
  }
  t.ok(Object.is(decodeText(doc('<integer>-0</integer>')), 0), 'no negative zero integer')
})

t.test('values: reals', async (t) => {
  const cases: [string, number][] = [
    ['1.5', 1.5],
    ['-0.25', -0.25],
    ['.5', 0.5],
    ['5.', 5],
    ['3', 3],
    ['1e3', 1000],
    ['1.25E-7', 1.25e-7],
    ['+2.5e+2', 250],
    ['119.09999999999999', 119.1],
    [' 7.5\n', 7.5],
    ['inf', Infinity],
    ['+inf', Infinity],
    ['-inf', -Infinity],
    ['INF', Infinity],
    ['infinity', Infinity],
  ]
  for (const [text, expected] of cases) t.equal(decodeText(doc(`<real>${text}</real>`)), expected, `<real>${text}</real>`)
  t.ok(Number.isNaN(decodeText(doc('<real>nan</real>'))), 'nan')
  t.ok(Number.isNaN(decodeText(doc('<real>NaN</real>'))), 'NaN')
})

t.test('values: dates', async (t) => {
  const cases: [string, string][] = [
    ['2024-04-02T08:15:30Z', '2024-04-02T08:15:30.000Z'],
    ['2024-02-29T23:59:59Z', '2024-02-29T23:59:59.000Z'],
    ['2024-04-02T08:15:30.5Z', '2024-04-02T08:15:30.500Z'],
    ['2024-04-02T08:15:30.123456Z', '2024-04-02T08:15:30.123Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['0099-12-31T00:00:00Z', '0099-12-31T00:00:00.000Z'],
    ['9999-12-31T23:59:59Z', '9999-12-31T23:59:59.000Z'],
    ['\n2001-01-01T00:00:00Z\n', '2001-01-01T00:00:00.000Z'],
  ]
  for (const [text, iso] of cases) {
    const value = decodeText(doc(`<date>${text}</date>`))
    t.ok(value instanceof Date, `${text} is a Date`)
    t.equal((value as Date).toISOString(), iso)
  }
})

t.test('values: data (base64)', async (t) => {
  t.strictSame(decodeText(doc('<data>AAEC</data>')), Buffer.from([0, 1, 2]))
  t.strictSame(decodeText(doc('<data>\n\t\tAA\n\t\tEC\r\n  /w==\n\t</data>')), Buffer.from([0, 1, 2, 0xff]), 'whitespace and newlines anywhere')
  t.strictSame(decodeText(doc('<data>AAE=</data>')), Buffer.from([0, 1]))
  t.strictSame(decodeText(doc('<data>AAE</data>')), Buffer.from([0, 1]), 'missing padding tolerated')
  t.strictSame(decodeText(doc('<data>+/+/</data>')), Buffer.from('+/+/', 'base64'))
})

t.test('dict keys: order kept, any string allowed, prototypes untouched', async (t) => {
  const value = decodeText(
    doc(`<dict>
	<key>zeta</key><integer>1</integer>
	<key>__proto__</key><dict><key>polluted</key><true/></dict>
	<key>alpha</key><integer>2</integer>
	<key>constructor</key><string>c</string>
	<key>toString</key><string>s</string>
	<key>hasOwnProperty</key><false/>
	<key>&lt;&amp;&gt;</key><string>escaped</string>
	<key> spaced key </key><string>kept</string>
</dict>`),
  ) as PlistDict
  t.strictSame(Object.keys(value), ['zeta', '__proto__', 'alpha', 'constructor', 'toString', 'hasOwnProperty', '<&>', ' spaced key '])
  t.equal(Object.getPrototypeOf(value), Object.prototype, 'the prototype was not replaced')
  t.ok(Object.hasOwn(value, '__proto__'), '__proto__ is an own key')
  t.strictSame(Object.getOwnPropertyDescriptor(value, '__proto__')?.value, { polluted: true })
  t.equal(value.constructor, 'c')
  t.equal(value.toString, 's')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is clean')
  t.equal(Object.getPrototypeOf({}), Object.prototype)
  t.ok(isPlistDict(value))
  t.strictSame(decodePlist(encodePlist(value)), value, '__proto__ and friends round-trip')
  // As JSON (webhooks, inventory, the API): the same own keys, in the same order, nothing polluted.
  const json = plistToJson(value) as Record<string, unknown>
  t.strictSame(Object.keys(json), Object.keys(value))
  t.equal(Object.getPrototypeOf(json), Object.prototype, 'the JSON prototype was not replaced')
  t.strictSame(Object.getOwnPropertyDescriptor(json, '__proto__')?.value, { polluted: true })
  t.equal(json['constructor'], 'c')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is clean')
  t.equal(
    JSON.stringify(json),
    '{"zeta":1,"__proto__":{"polluted":true},"alpha":2,"constructor":"c","toString":"s","hasOwnProperty":false,"<&>":"escaped"," spaced key ":"kept"}',
  )
  // A limit of JavaScript objects, not of the codec: integer-like keys enumerate first.
  t.strictSame(Object.keys(decodeText(doc('<dict><key>b</key><true/><key>2</key><true/><key>1</key><true/></dict>')) as PlistDict), ['1', '2', 'b'])
})

// ---------------------------------------------------------------------------------------
// Errors

t.test('malformed XML: each error names what and where', async (t) => {
  const p = (body: string) => `<plist version="1.0">${body}</plist>`
  rejects(t, '', 'plist_malformed', /^empty input at byte 0$/, 0)
  rejects(t, '  \n ', 'plist_malformed', /empty input|no <plist>/)
  rejects(t, 'hello', 'plist_malformed', /not a property list: unexpected text "hello"/, 0)
  rejects(t, '{"MessageType":"Authenticate"}', 'plist_malformed', /not a property list/, 0)
  rejects(t, '<dict><key>a</key><true/></dict>', 'plist_malformed', /expected a <plist> root element, found <dict>/, 0)
  rejects(t, '<?xml version="1.0"?>', 'plist_malformed', /no <plist> element/)
  rejects(t, '<plist/>', 'plist_malformed', /<plist> holds no value/, 0)
  rejects(t, '<plist></plist>', 'plist_malformed', /<plist> holds no value/, '</plist>')
  rejects(t, '<plist> \n </plist>', 'plist_malformed', /<plist> holds no value/, '</plist>')
  rejects(t, p('<true/><false/>'), 'plist_malformed', /more than one value in <plist>: unexpected <false>/, '<false/>')
  rejects(t, p('<dict><key>a</key></dict>'), 'plist_malformed', /key "a" has no value before <\/dict>/, '</dict>')
  rejects(t, p('<dict><key>a</key><key>b</key><true/></dict>'), 'plist_malformed', /key "a" has no value/, '<key>b')
  rejects(t, p('<dict><string>v</string></dict>'), 'plist_malformed', /<string> in a <dict> without a <key>/, '<string>')
  rejects(t, p('<dict><key>a</key><true/><dict/></dict>'), 'plist_malformed', /<dict> in a <dict> without a <key>/, '<dict/>')
  rejects(t, p('<dict><key>Status</key><true/><key>Status</key><false/></dict>'), 'plist_malformed', /duplicate key "Status"/, '<key>Status</key><false/>')
  rejects(t, p('<array><key>a</key></array>'), 'plist_malformed', /<key> outside a <dict>/, '<key>')
  rejects(t, p('<key>a</key>'), 'plist_malformed', /<key> outside a <dict>/, '<key>')
  rejects(t, p('<array><true/></dict>'), 'plist_malformed', /mismatched <\/dict>, expected <\/array>/, '</dict>')
  rejects(t, p('<dict><key>a</key><string>v</key></dict>'), 'plist_malformed', /mismatched <\/key>, expected <\/string>/, '</key></dict>')
  rejects(t, p('<true/></array>'), 'plist_malformed', /unexpected <\/array>, expected <\/plist>/, '</array>')
  rejects(t, p('<dict>oops<key>a</key><true/></dict>'), 'plist_malformed', /text outside elements "oops/, 'oops')
  rejects(t, p('<array><![CDATA[x]]></array>'), 'plist_malformed', /CDATA\) outside elements/, '<![CDATA[')
  rejects(t, `x${p('<true/>')}`, 'plist_malformed', /unexpected text "x/, 0)
  rejects(t, `${p('<true/>')}x`, 'plist_malformed', /content after <\/plist>: "x"/, 'x')
  rejects(t, `${p('<true/>')}<plist><true/></plist>`, 'plist_malformed', /content after <\/plist>/, '<plist><true/></plist>')
  rejects(t, p('<foo/>'), 'plist_malformed', /unknown element <foo>/, '<foo/>')
  rejects(t, p('<Dict/>'), 'plist_malformed', /unknown element <Dict>/, '<Dict/>')
  rejects(t, p('<plist><true/></plist>'), 'plist_malformed', /nested <plist>/, '<plist><true/>')
  rejects(t, p('<string>a<b>c</b></string>'), 'plist_malformed', /unexpected "<b>c<\/b><\/string" inside <string>/, '<b>')
  rejects(t, p('< dict/>'), 'plist_malformed', /expected an element name after "<"/, '< dict')
  rejects(t, p('<dict"x"/>'), 'plist_malformed', /invalid character in the name of <dict>/, '"x"')
  rejects(t, p('<dict / >'), 'plist_malformed', /"\/" not followed by ">" in the <dict> tag/, '/ >')
  rejects(t, p('<dict <key>'), 'plist_malformed', /"<" inside the <dict> tag/, '<key>')
  rejects(t, p('<true>yes</true>'), 'plist_malformed', /<true> must be empty/, '<true>')
  rejects(t, p('<string>x</string >junk'), 'plist_malformed', /text outside elements "junk/, 'junk')
  rejects(t, p('<array></ array>'), 'plist_malformed', /expected an element name after "<\/"/, '</ array>')
  rejects(t, p('<array></array x>'), 'plist_malformed', /unexpected "x" in <\/array>/, 'x>')
})

t.test('malformed values', async (t) => {
  const p = (body: string) => doc(body)
  for (const bad of ['', ' ', '12a', '1.5', '0x', '0xG', '--1', '1e3', '+', '١٢']) {
    rejects(t, p(`<integer>${bad}</integer>`), 'plist_malformed', /invalid <integer>/, '<integer>')
  }
  rejects(t, p('<integer/>'), 'plist_malformed', /invalid <integer> ""/, '<integer/>')
  for (const big of ['18446744073709551616', '-9223372036854775809', '0x10000000000000000', '-0x8000000000000001', '9'.repeat(100)]) {
    rejects(t, p(`<integer>${big}</integer>`), 'plist_unsupported', /is outside the 64-bit range/, '<integer>')
  }
  for (const bad of ['', 'abc', '1e', '0x10', '1.2.3', 'e5', 'nan1', '- 1']) {
    rejects(t, p(`<real>${bad}</real>`), 'plist_malformed', /invalid <real>/, '<real>')
  }
  rejects(t, p('<real/>'), 'plist_malformed', /invalid <real>/, '<real/>')
  for (const bad of [
    '',
    '2024-04-02',
    '2024-04-02T08:15:30',
    '2024-04-02 08:15:30Z',
    '2024-13-01T00:00:00Z',
    '2024-00-01T00:00:00Z',
    '2024-02-30T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2024-04-31T00:00:00Z',
    '2024-04-02T24:00:00Z',
    '2024-04-02T08:60:00Z',
    '2024-04-02T08:15:60Z',
    '2024-04-02T08:15:30+02:00',
    '24-04-02T08:15:30Z',
    'yesterday',
  ]) {
    rejects(t, p(`<date>${bad}</date>`), 'plist_malformed', /invalid <date>/, '<date>')
  }
  rejects(t, p('<date/>'), 'plist_malformed', /invalid <date>/, '<date/>')
  for (const bad of ['!!!!', 'AA-_', 'AAAAA', 'A===', 'AA=A', 'AAA==', 'AA==AA==', 'AAAA&#65;', 'é']) {
    rejects(t, p(`<data>${bad}</data>`), 'plist_malformed', /invalid base64 in <data>/, '<data>')
  }
})

t.test('entities: only the five XML ones and valid character references', async (t) => {
  const p = (text: string) => doc(`<string>${text}</string>`)
  rejects(t, p('a &nbsp; b'), 'plist_malformed', /unknown entity &nbsp;/, '&nbsp;')
  rejects(t, p('&AMP;'), 'plist_malformed', /unknown entity &AMP;/, '&AMP;')
  rejects(t, p('fish & chips'), 'plist_malformed', /unterminated entity "& chips"/, '&')
  rejects(t, p('&amp'), 'plist_malformed', /unterminated entity/, '&amp')
  rejects(t, p(`&${'a'.repeat(40)};`), 'plist_malformed', /unterminated entity/, '&')
  for (const ref of ['&#0;', '&#x0;', '&#8;', '&#xB;', '&#xD800;', '&#xDFFF;', '&#xFFFE;', '&#xFFFF;', '&#x110000;', '&#99999999;']) {
    rejects(t, p(ref), 'plist_malformed', /is not an XML character/, ref)
  }
  for (const ref of ['&#;', '&#x;', '&#12a;', '&#xG1;', '&# 65;', '&#-65;', '&#X41;']) {
    rejects(t, p(ref), 'plist_malformed', /malformed character reference/, ref)
  }
  rejects(t, doc('<dict><key>&bogus;</key><true/></dict>'), 'plist_malformed', /unknown entity &bogus;/, '&bogus;')
})

t.test('DOCTYPE internal subsets and entity declarations are refused', async (t) => {
  const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE plist [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<plist><string>&lol2;</string></plist>`
  rejects(t, billionLaughs, 'plist_unsupported', /DOCTYPE with an internal subset/, '[')
  rejects(
    t,
    '<!DOCTYPE plist SYSTEM "file:///etc/passwd" [<!ENTITY x SYSTEM "file:///etc/passwd">]><plist><string>&x;</string></plist>',
    'plist_unsupported',
    /internal subset/,
    '[',
  )
  t.equal(
    decodeText('<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "x[y]"><plist><true/></plist>'),
    true,
    '"[" inside a quoted system id is not a subset',
  )
  rejects(t, '<!ENTITY x "y"><plist><true/></plist>', 'plist_unsupported', /entity declarations are not supported/, 0)
  rejects(t, '<plist><!ENTITY x "y"><true/></plist>', 'plist_unsupported', /entity declarations are not supported/, '<!ENTITY')
  rejects(t, '<!DOCTYPE plist><!DOCTYPE plist><plist><true/></plist>', 'plist_malformed', /unexpected <!DOCTYPE>/, '<!DOCTYPE plist><plist>')
  rejects(t, '<plist><!DOCTYPE plist><true/></plist>', 'plist_malformed', /unexpected <!DOCTYPE>/, '<!DOCTYPE')
  rejects(t, '<!ELEMENT plist ANY><plist><true/></plist>', 'plist_malformed', /unexpected markup "<!ELEMENT/, 0)
})

t.test('truncated input: every proper prefix of a document is malformed', async (t) => {
  for (const text of [
    authenticateXml,
    errorReportXml,
    doc('<dict><key>a</key><array><data>AA==</data><date>2024-01-01T00:00:00Z</date><string><![CDATA[x]]><!--c--></string></array></dict>'),
  ]) {
    const bytes = Buffer.from(text, 'utf8')
    const end = bytes.indexOf('</plist>') + '</plist>'.length
    let wrong = 0
    for (let length = 0; length < end; length++) {
      try {
        decodePlist(bytes.subarray(0, length))
        wrong++
      } catch (error) {
        if (!(error instanceof PlistError) || error.code !== 'plist_malformed') wrong++
      }
    }
    t.equal(wrong, 0, `all ${end} prefixes rejected as plist_malformed`)
  }
  rejects(t, '<plist><dict><key>a', 'plist_malformed', /input ends inside <key> opened at byte 13/, 19)
  rejects(t, '<plist><array>', 'plist_malformed', /input ends inside <array> opened at byte 7/, 14)
  rejects(t, '<plist><array><!-- x', 'plist_malformed', /input ends inside a comment opened at byte 14/, 20)
  rejects(t, '<plist><?pi', 'plist_malformed', /input ends inside a processing instruction/, 11)
  rejects(t, '<plist version="1.0', 'plist_malformed', /input ends inside an attribute of <plist>/, 19)
  rejects(t, '<!DOCTYPE plist', 'plist_malformed', /input ends inside <!DOCTYPE>/, 15)
  rejects(t, '<plist><string><![CDATA[abc', 'plist_malformed', /input ends inside a CDATA section opened at byte 15/, 27)
})

t.test('encodings: invalid UTF-8 and UTF-16 are refused; offsets count bytes', async (t) => {
  const bad = Buffer.concat([Buffer.from('<plist><string>é'), Buffer.from([0xff]), Buffer.from('</string></plist>')])
  rejects(t, bad, 'plist_malformed', /invalid UTF-8/, 17)
  for (const sequence of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80]]) {
    const input = Buffer.concat([Buffer.from('<plist><string>ab'), Buffer.from(sequence), Buffer.from('</string></plist>')])
    rejects(t, input, 'plist_malformed', /invalid UTF-8/, 17)
  }
  rejects(t, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<plist>'), Buffer.from([0xfe])]), 'plist_malformed', /invalid UTF-8/, 10)
  rejects(t, Buffer.from('\ufeff<plist><true/></plist>', 'utf16le'), 'plist_unsupported', /UTF-16/, 0)
  rejects(t, Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from('<plist/>', 'utf16le').swap16()]), 'plist_unsupported', /UTF-16/, 0)
  // The byte offset, not the string index, even after multi-byte characters and a BOM.
  rejects(
    t,
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<plist><string>日本😀</string><oops/></plist>')]),
    'plist_malformed',
    /more than one value/,
    3 + Buffer.byteLength('<plist><string>日本😀</string>'),
  )
})

// ---------------------------------------------------------------------------------------
// Limits

function nestedArrays(depth: number): string {
  return doc(`${'<array>'.repeat(depth)}${'</array>'.repeat(depth)}`)
}

t.test('limits: depth, elements, bytes', async (t) => {
  t.strictSame(defaultPlistLimits, { maxDepth: 64, maxElements: 200_000, maxBytes: 16 * 1024 * 1024 })
  t.ok(Object.isFrozen(defaultPlistLimits))

  t.ok(Array.isArray(decodeText(nestedArrays(64))), 'maxDepth 64 deep is fine')
  const deep = nestedArrays(65)
  rejects(t, deep, 'plist_limit_exceeded', /nesting deeper than maxDepth 64/, deep.indexOf('<array>') + 64 * '<array>'.length)
  rejects(t, doc('<dict><key>a</key><array/></dict>'), 'plist_limit_exceeded', /maxDepth 1/, '<array/>', { maxDepth: 1 })
  rejects(t, doc('<dict><key>a</key><array></array></dict>'), 'plist_limit_exceeded', /maxDepth 1/, '<array>', { maxDepth: 1 })
  t.strictSame(decodeText(doc('<dict><key>a</key><true/></dict>'), { maxDepth: 1 }), { a: true })

  t.strictSame(decodeText(doc('<array><true/><false/></array>'), { maxElements: 3 }), [true, false], 'the array and two values')
  rejects(t, doc('<array><true/><false/><true/></array>'), 'plist_limit_exceeded', /more than maxElements 3 values/, '<true/></array>', { maxElements: 3 })
  t.strictSame(decodeText(doc('<dict><key>a</key><true/><key>b</key><true/></dict>'), { maxElements: 3 }), { a: true, b: true }, 'keys are not counted')

  const text = doc('<string>hello</string>')
  const length = Buffer.byteLength(text)
  t.equal(decodeText(text, { maxBytes: length }), 'hello', 'exactly maxBytes is fine')
  const error = plistError(t, () => decodeText(text, { maxBytes: length - 1 }))
  t.equal(error?.code, 'plist_limit_exceeded')
  t.match(error?.message, new RegExp(`input is ${length} bytes, more than maxBytes ${length - 1}`))
  t.equal(
    decodeText(nestedArrays(3).replace('<array>', '<dict><key>x</key><array>').replace('</array>\n</plist>', '</array></dict>\n</plist>'), { maxDepth: 4 }) !==
      undefined,
    true,
    'partial limits keep the other defaults',
  )
})

t.test('adversarial 1 MB inputs are rejected or parsed in one pass', async (t) => {
  const MB = 1024 * 1024
  const fill = (unit: string) => unit.repeat(Math.ceil(MB / unit.length))
  rejects(t, `<plist>${fill('<array>')}`, 'plist_limit_exceeded', /maxDepth 64/)
  rejects(t, `<plist>${fill('<dict><key>a</key>')}`, 'plist_limit_exceeded', /maxDepth 64/)
  t.equal((decodeText(`<plist><array>${fill('<true/>')}</array></plist>`) as PlistValue[]).length, Math.ceil(MB / 7), 'about 150 000 values')
  rejects(t, `<plist><array>${fill('<true/>').repeat(2)}</array></plist>`, 'plist_limit_exceeded', /maxElements 200000/)
  rejects(t, `<plist><array>${fill('<a/>')}</array></plist>`, 'plist_malformed', /unknown element <a>/)
  t.equal((decodeText(`<plist><string>${fill('&amp;')}</string></plist>`) as string).length, Math.ceil(MB / 5))
  t.equal((decodeText(`<plist><string>${fill('&#x1F600;')}</string></plist>`) as string).length, 2 * Math.ceil(MB / 9))
  t.equal((decodeText(`<plist><string>${fill('<![CDATA[x]]><!---->')}</string></plist>`) as string).length, Math.ceil(MB / 20))
  rejects(t, `<plist><string>${fill('&')}</string></plist>`, 'plist_malformed', /unterminated entity/)
  rejects(t, `<plist><string>${fill('&amp')}</string></plist>`, 'plist_malformed', /unknown entity|unterminated entity/)
  rejects(t, `<plist><string>${fill('a')}`, 'plist_malformed', /input ends inside <string>/)
  rejects(t, `<plist><!--${fill('-')}`, 'plist_malformed', /input ends inside a comment/)
  rejects(t, `<!DOCTYPE plist "${fill('x')}`, 'plist_malformed', /input ends inside <!DOCTYPE>/)
  rejects(t, `<plist a="${fill('x')}`, 'plist_malformed', /input ends inside an attribute/)
  rejects(t, `<plist><${fill('a')}/></plist>`, 'plist_malformed', /unknown element <a{40}…>/)
  t.equal(decodeText(`${fill('<!---->')}<plist><true/></plist>${fill('<?x?>')}`), true)
  rejects(t, `<plist><integer>${fill('9')}</integer></plist>`, 'plist_unsupported', /outside the 64-bit range/)
  rejects(t, `<plist><real>${fill('9')}x</real></plist>`, 'plist_malformed', /invalid <real> "9{40}…"/)
  t.equal((decodeText(`<plist><data>${fill('AAAA\n')}</data></plist>`) as Buffer).length, Math.ceil(MB / 5) * 3)
  const manyKeys = Array.from({ length: 40_000 }, (_, i) => `<key>k${i}</key><true/>`).join('')
  t.equal(Object.keys(decodeText(`<plist><dict>${manyKeys}</dict></plist>`) as PlistDict).length, 40_000)
  rejects(t, `<plist><dict>${fill('<key>a</key><true/>')}</dict></plist>`, 'plist_malformed', /duplicate key "a"/)
  rejects(t, `<plist><dict>${fill('<key>a</key>')}</dict></plist>`, 'plist_malformed', /key "a" has no value/)
  rejects(t, fill('<'), 'plist_malformed', /expected an element name/)
  rejects(t, `<plist>${fill('</array>')}`, 'plist_malformed', /unexpected <\/array>/)
})

// ---------------------------------------------------------------------------------------
// Binary plists

t.test('binary: every object type', async (t) => {
  const date = new Date('2024-04-02T08:15:30.250Z')
  const value: PlistDict = {
    ascii: 'hello',
    utf16: 'Grüße 😀',
    long: 'y'.repeat(40),
    empty: '',
    int1: 255,
    int2: 65535,
    int4: 4294967295,
    int8: -1,
    int8big: 9223372036854775807n,
    int16: 18446744073709551615n,
    real: 0.1,
    date,
    data: Buffer.from('deadbeef', 'hex'),
    bigData: Buffer.alloc(300, 7),
    t: true,
    f: false,
    array: Array.from({ length: 20 }, (_, i) => i),
    nested: { a: [[], {}, [{ b: 'c' }]] },
  }
  t.strictSame(decodePlist(toBplist(value)), value)
  t.equal(decodePlist(bplist([bReal(1.5, 4)])), 1.5, 'float32')
  t.equal(decodePlist(bplist([bInt(-5)])), -5, 'negative 8-byte integer')
  t.equal(decodePlist(bplist([bInt(2n ** 64n - 1n)])), 18446744073709551615n, '16-byte integer')
  t.equal(decodePlist(bplist([bInt(-(2n ** 100n))])), -(2n ** 100n), '16-byte integers are signed 128-bit')
  t.equal(decodePlist(bplist([Buffer.from([0x14, ...Buffer.alloc(15), 7])])), 7, 'a small 16-byte integer is a number')
  t.strictSame(decodePlist(bplist([bDate(new Date(0))])), new Date(0))
  t.equal(decodePlist(bplist([Buffer.from([0x50])])), '', 'empty ASCII string')
  t.equal(decodePlist(bplist([Buffer.from([0x53, 0x63, 0x61, 0xe9])])), 'caé', 'bytes above 0x7f in an ASCII string are read as Latin-1')
  const offsets2 = toBplist({ big: Buffer.alloc(70_000, 1), tail: 'x' })
  t.equal((decodePlist(offsets2) as PlistDict).tail, 'x', '2-byte offsets')
  const wide = toBplist(Array.from({ length: 300 }, (_, i) => `s${i}`))
  t.equal((decodePlist(wide) as string[])[299], 's299', '2-byte object references')
  // Shared objects (as CoreFoundation and plistlib write repeated strings): decoded once, used everywhere.
  const shared = bplist([bArray([1, 1, 2, 2]), bString('UDID'), bDict([1], [1])])
  t.strictSame(decodePlist(shared), ['UDID', 'UDID', { UDID: 'UDID' }, { UDID: 'UDID' }])
  const sharedDicts = decodePlist(shared) as PlistDict[]
  t.not(sharedDicts[2], sharedDicts[3], 'a shared dict decodes to separate objects')
  t.strictSame(decodePlist(bplist([bDict([1, 2], [3, 3]), bString('__proto__'), bString('constructor'), B_TRUE])), { ['__proto__']: true, constructor: true })
  t.equal(Object.getPrototypeOf(decodePlist(bplist([bDict([1], [2]), bString('__proto__'), bDict([], [])]))), Object.prototype)
})

t.test('binary: malformed, unsupported and hostile files', async (t) => {
  const good = bplist([bArray([1]), B_TRUE])
  t.strictSame(decodePlist(good), [true])
  rejects(t, Buffer.from('bplist'), 'plist_malformed', /truncated binary plist header/, 6)
  rejects(t, Buffer.from('bplist00'), 'plist_malformed', /too short for its trailer/, 8)
  rejects(t, Buffer.from('bplist15xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'), 'plist_unsupported', /binary plist version "15"/, 6)
  rejects(t, Buffer.from('bplist01'), 'plist_unsupported', /version "01"/, 6)

  const trailer = (buf: Buffer, field: 'offsetSize' | 'refSize' | 'count' | 'top' | 'table', value: number | bigint): Buffer => {
    const copy = Buffer.from(buf)
    const at = copy.length - 32
    if (field === 'offsetSize') copy[at + 6] = Number(value)
    else if (field === 'refSize') copy[at + 7] = Number(value)
    else copy.writeBigUInt64BE(BigInt(value), at + { count: 8, top: 16, table: 24 }[field])
    return copy
  }
  const end = good.length - 32
  rejects(t, trailer(good, 'offsetSize', 0), 'plist_malformed', /offset size 0 in the trailer/, end + 6)
  rejects(t, trailer(good, 'offsetSize', 9), 'plist_malformed', /offset size 9/, end + 6)
  rejects(t, trailer(good, 'refSize', 0), 'plist_malformed', /object reference size 0/, end + 7)
  rejects(t, trailer(good, 'count', 0), 'plist_malformed', /no objects/, end + 8)
  rejects(t, trailer(good, 'count', 2n ** 64n - 1n), 'plist_malformed', /offset table .* outside the file/, end + 24)
  rejects(t, trailer(good, 'count', 1000), 'plist_malformed', /offset table \(1000 entries at byte \d+\) outside the file/, end + 24)
  rejects(t, trailer(good, 'top', 2), 'plist_malformed', /top object #2 of 2/, end + 16)
  rejects(t, trailer(good, 'top', 2n ** 63n), 'plist_malformed', /top object/, end + 16)
  rejects(t, trailer(good, 'table', 0), 'plist_malformed', /offset table/, end + 24)
  rejects(t, trailer(good, 'table', good.length), 'plist_malformed', /offset table/, end + 24)
  rejects(t, trailer(good, 'table', 2n ** 64n - 1n), 'plist_malformed', /offset table/, end + 24)

  const badOffset = Buffer.from(good)
  badOffset[end - 1] = 0xf0 // object #1's offset points into the offset table
  rejects(t, badOffset, 'plist_malformed', /object #1 offset 240 outside the object area/, end - 1)
  const lowOffset = Buffer.from(good)
  lowOffset[end - 2] = 3 // object #0 inside the header
  rejects(t, lowOffset, 'plist_malformed', /object #0 offset 3 outside the object area/, end - 2)
  rejects(t, bplist([bArray([5]), B_TRUE]), 'plist_malformed', /reference to object #5 of 2/, 9)
  rejects(t, bplist([Buffer.from([0xa1, 0x01, 0x01]), B_TRUE], { refSize: 2 }), 'plist_malformed', /reference to object #257 of 2/, 9)
  rejects(t, bplist([Buffer.from([0xa5, 1])]), 'plist_malformed', /object #0 runs past the object area/, 9)
  rejects(t, bplist([Buffer.from([0x4f, 0x13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]), 'plist_malformed', /runs past the object area/, 18)
  rejects(t, bplist([Buffer.from([0x4f, 0x10])]), 'plist_malformed', /runs past/, 10)
  rejects(t, bplist([Buffer.from([0x5f, 0x23, 0, 0, 0, 0, 0, 0, 0, 1])]), 'plist_malformed', /invalid length marker 0x23/, 9)
  rejects(t, bplist([Buffer.from([0x13, 1, 2])]), 'plist_malformed', /object #0 runs past/, 9)
  rejects(t, bplist([Buffer.from([0x33, 0, 0])]), 'plist_malformed', /object #0 runs past/, 9)
  rejects(t, bplist([Buffer.from([0x63, 0, 0x41])]), 'plist_malformed', /object #0 runs past/, 9)
  for (const marker of [0x0f, 0x01, 0x15, 0x21, 0x24, 0x30, 0x34, 0x70, 0x90, 0xe0, 0xf0]) {
    rejects(
      t,
      bplist([Buffer.from([marker, 0, 0, 0, 0, 0, 0, 0, 0])]),
      'plist_malformed',
      new RegExp(`unknown object marker 0x${marker.toString(16).padStart(2, '0')} \\(object #0\\)`),
      8,
    )
  }
  const nanDate = Buffer.alloc(9, 0x33)
  nanDate.writeDoubleBE(Number.NaN, 1)
  rejects(t, bplist([nanDate]), 'plist_malformed', /date out of range/, 8)
  const farDate = Buffer.alloc(9, 0x33)
  farDate.writeDoubleBE(1e300, 1)
  rejects(t, bplist([farDate]), 'plist_malformed', /date out of range/, 8)
  rejects(t, bplist([Buffer.from([0x00])]), 'plist_unsupported', /null \(object #0\)/, 8)
  rejects(t, bplist([Buffer.from([0x80, 1])]), 'plist_unsupported', /UID \(object #0/, 8)
  rejects(t, bplist([Buffer.from([0xc1, 1]), B_TRUE]), 'plist_unsupported', /set \(object #0\)/, 8)
  rejects(t, bplist([Buffer.from([0xb1, 1]), B_TRUE]), 'plist_unsupported', /set \(object #0\)/, 8)
  rejects(t, bplist([bDict([1], [1]), bInt(3)]), 'plist_malformed', /dict key object #1 is not a string/, 11)
  rejects(t, bplist([bDict([1], [2]), bArray([]), B_TRUE]), 'plist_malformed', /dict key object #1 is not a string/)
  rejects(t, bplist([bDict([1, 2], [3, 3]), bString('a'), bString('a'), B_TRUE]), 'plist_malformed', /duplicate key "a" in dict #0/, 10)
  rejects(t, bplist([bDict([1, 1], [2, 2]), bString('a'), B_TRUE]), 'plist_malformed', /duplicate key "a"/, 10)
})

t.test('binary: cycles, shared-object bombs and limits', async (t) => {
  rejects(t, bplist([bArray([0])]), 'plist_malformed', /reference cycle: object #0 contains itself/, 8)
  rejects(t, bplist([bDict([1], [2]), bString('self'), bArray([3]), bDict([1], [0])]), 'plist_malformed', /reference cycle: object #0/, 8)
  t.strictSame(decodePlist(bplist([bArray([1, 1]), bArray([2]), B_TRUE])), [[true], [true]], 'a shared child is not a cycle')

  // Each level holds the next one twice: 2^40 paths from 42 objects.
  const levels = 40
  const bomb = bplist([...Array.from({ length: levels }, (_, i) => bArray([i + 1, i + 1])), bString('boom')])
  rejects(t, bomb, 'plist_limit_exceeded', /maxDepth 64|maxElements 200000/)
  const wideBomb = bplist(
    [
      bArray(
        Array.from({ length: 1000 }, () => 1),
        2,
      ),
      bArray(
        Array.from({ length: 1000 }, () => 2),
        2,
      ),
      bString('x'),
    ],
    { refSize: 2 },
  )
  rejects(t, wideBomb, 'plist_limit_exceeded', /more than maxElements 200000 values/)
  const dataBomb = bplist([bArray(Array.from({ length: 100 }, () => 1)), bData(Buffer.alloc(1000, 1))])
  rejects(t, dataBomb, 'plist_limit_exceeded', /shared <data> objects expand past maxBytes 50000/, undefined, { maxBytes: 50_000 })
  t.equal((decodePlist(dataBomb, { maxBytes: 200_000 }) as Buffer[]).length, 100)

  const deep = bplist([...Array.from({ length: 65 }, (_, i) => bArray(i < 64 ? [i + 1] : []))])
  rejects(t, deep, 'plist_limit_exceeded', /nesting deeper than maxDepth 64 \(object #64\)/)
  t.ok(decodePlist(deep, { maxDepth: 65 }))
  rejects(t, toBplist([1, 2, 3]), 'plist_limit_exceeded', /more than maxElements 3/, undefined, { maxElements: 3 })
  t.strictSame(decodePlist(toBplist([1, 2]), { maxElements: 3 }), [1, 2])
  const big = toBplist({ a: 'x'.repeat(1000) })
  rejects(t, big, 'plist_limit_exceeded', /more than maxBytes 1000/, undefined, { maxBytes: 1000 })
})

// ---------------------------------------------------------------------------------------
// Encoding

t.test('encoding: Apple layout and every type', async (t) => {
  const out = encodePlist({
    MessageType: 'Authenticate',
    Count: 3,
    Negative: -7,
    Ratio: 0.5,
    Huge: 1e21,
    Big: 18446744073709551615n,
    Yes: true,
    No: false,
    When: new Date('2024-04-02T08:15:30.789Z'),
    Bytes: Buffer.from([0, 1, 2, 0xff]),
    View: new Uint8Array([9, 8, 7, 6, 5]).subarray(1, 3),
    List: ['a', [], {}],
    Skipped: undefined,
    Text: 'Tom & Jerry <3 > "quotes" \'apos\' \r\n\ttab \u2028\u2029\u0085',
  } as unknown as PlistValue).toString('utf8')
  t.equal(
    out,
    `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>MessageType</key>
	<string>Authenticate</string>
	<key>Count</key>
	<integer>3</integer>
	<key>Negative</key>
	<integer>-7</integer>
	<key>Ratio</key>
	<real>0.5</real>
	<key>Huge</key>
	<real>1e+21</real>
	<key>Big</key>
	<integer>18446744073709551615</integer>
	<key>Yes</key>
	<true/>
	<key>No</key>
	<false/>
	<key>When</key>
	<date>2024-04-02T08:15:30Z</date>
	<key>Bytes</key>
	<data>AAEC/w==</data>
	<key>View</key>
	<data>CAc=</data>
	<key>List</key>
	<array>
		<string>a</string>
		<array/>
		<dict/>
	</array>
	<key>Text</key>
	<string>Tom &amp; Jerry &lt;3 &gt; "quotes" 'apos' &#13;
	tab &#8232;&#8233;&#133;</string>
</dict>
</plist>
`,
  )
  t.equal(encodePlist('top').toString(), `${HEADER}<plist version="1.0">\n<string>top</string>\n</plist>\n`, 'a bare root value')
  t.equal(
    encodePlist({ a: undefined } as unknown as PlistValue).toString(),
    `${HEADER}<plist version="1.0">\n<dict/>\n</plist>\n`,
    'only undefined entries: an empty dict',
  )
  t.equal(encodePlist({ '<&>': 1 }).toString().includes('<key>&lt;&amp;&gt;</key>'), true, 'keys are escaped')
  t.equal(encodePlist(-0).toString().includes('<integer>0</integer>'), true)
  t.equal(
    encodePlist(2 ** 53)
      .toString()
      .includes('<real>9007199254740992</real>'),
    true,
    'an unsafe integer stays a number: <real>',
  )
  t.equal(
    encodePlist(-(2n ** 63n))
      .toString()
      .includes('<integer>-9223372036854775808</integer>'),
    true,
  )
  t.equal(encodePlist(new Date('0001-01-01T00:00:00Z')).toString().includes('<date>0001-01-01T00:00:00Z</date>'), true)
  t.equal(encodePlist(new Date(-1)).toString().includes('<date>1969-12-31T23:59:59Z</date>'), true, 'milliseconds are dropped, not rounded')
  t.equal(
    encodePlist(Object.assign(Object.create(null) as PlistDict, { a: 1 }))
      .toString()
      .includes('<key>a</key>'),
    true,
    'null-prototype dicts',
  )
  t.ok(Buffer.isBuffer(encodePlist(true)))
})

t.test('encoding: refused values say what and where', async (t) => {
  const refuses = (value: unknown, code: PlistError['code'], message: RegExp) => {
    const error = plistError(t, () => encodePlist(value as PlistValue))
    t.equal(error?.code, code, String(message))
    t.match(error?.message, message)
  }
  refuses(null, 'plist_unsupported', /^null has no property-list form at \$$/)
  refuses({ a: { b: [1, null] } }, 'plist_unsupported', /null has no property-list form at \$\.a\.b\[1\]/)
  refuses({ 'odd key': null }, 'plist_unsupported', /at \$\["odd key"\]/)
  refuses(undefined, 'plist_unsupported', /undefined has no property-list form at \$/)
  refuses([1, undefined], 'plist_unsupported', /undefined has no property-list form at \$\[1\]/)

  refuses([1, , 3], 'plist_unsupported', /undefined .* at \$\[1\]/)
  refuses(Number.NaN, 'plist_unsupported', /NaN has no property-list form/)
  refuses({ x: Infinity }, 'plist_unsupported', /Infinity has no property-list form at \$\.x/)
  refuses(-Infinity, 'plist_unsupported', /-Infinity/)
  refuses(2n ** 64n, 'plist_unsupported', /integer 18446744073709551616 is outside the 64-bit range/)
  refuses(-(2n ** 63n) - 1n, 'plist_unsupported', /outside the 64-bit range/)
  refuses(new Date(Number.NaN), 'plist_unsupported', /invalid date/)
  refuses(new Date('+010000-01-01T00:00:00Z'), 'plist_unsupported', /year outside 0000-9999/)
  refuses(new Date('-000001-01-01T00:00:00Z'), 'plist_unsupported', /year outside/)
  refuses('a\u0000b', 'plist_unsupported', /character U\+0000 at index 1, which XML 1\.0 cannot carry at \$/)
  refuses(['\u001f'], 'plist_unsupported', /U\+001F .* at \$\[0\]/)
  refuses('\ufffe', 'plist_unsupported', /U\+FFFE/)
  refuses('\uffff', 'plist_unsupported', /U\+FFFF/)
  refuses('lone \ud800 high', 'plist_unsupported', /U\+D800/)
  refuses('lone \udc00 low', 'plist_unsupported', /U\+DC00/)
  refuses('end \ud83d', 'plist_unsupported', /U\+D83D/)
  refuses({ ['bad\u0001key']: 1 }, 'plist_unsupported', /U\+0001/)
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = { inner: cyclic }
  refuses(cyclic, 'plist_unsupported', /cycle: the value contains itself at \$\.self\.inner/)
  const cyclicArray: unknown[] = []
  cyclicArray.push(cyclicArray)
  refuses(cyclicArray, 'plist_unsupported', /cycle: .* at \$\[0\]/)
  let deep: unknown = 1
  for (let i = 0; i < 600; i++) deep = [deep]
  refuses(deep, 'plist_limit_exceeded', /nesting deeper than 512/)
  refuses(new Map([['a', 1]]), 'plist_unsupported', /Map is not a plain object, array, Date or Buffer/)
  refuses({ when: new (class Custom {})() }, 'plist_unsupported', /Custom is not a plain object.* at \$\.when/)
  refuses(new Uint16Array(2), 'plist_unsupported', /Uint16Array/)
  refuses(() => 1, 'plist_unsupported', /function has no property-list form/)
  refuses(Symbol('s'), 'plist_unsupported', /symbol has no property-list form/)
  const shared = { x: 1 }
  t.ok(encodePlist({ a: shared, b: shared, c: [shared, shared] }), 'a shared (acyclic) object is fine')
})

// ---------------------------------------------------------------------------------------
// Round trips

function randomValue(random: () => number, depth: number, forPlistPackage: boolean): PlistValue {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const kind = Math.floor(random() * (depth > 3 ? 8 : 10))
  switch (kind) {
    case 0:
    case 1: {
      const pieces = [
        'a',
        'Z',
        ' ',
        '\t',
        '\n',
        '\r',
        '&',
        '<',
        '>',
        '"',
        "'",
        ']]>',
        '&amp;',
        'é',
        '日本',
        '😀',
        '\u2028',
        '\u2029',
        '\u0085',
        '\ud7ff',
        '\ue000',
        '<![CDATA[',
        '<!--',
        '?>',
      ]
      if (!forPlistPackage) pieces.push('\ufffd') // xmldom warns about it on the console
      return Array.from({ length: Math.floor(random() * 6) }, () => pick(pieces)).join('')
    }
    case 2:
      return pick([
        0,
        1,
        -1,
        42,
        255,
        256,
        65535,
        2 ** 31,
        -(2 ** 31),
        2 ** 32,
        Number.MAX_SAFE_INTEGER,
        Number.MIN_SAFE_INTEGER,
        Math.floor(random() * 1e9) - 5e8,
      ])
    case 3:
      if (forPlistPackage) return pick([0.5, -2.25, 1e-7, 3.141592653589793, 1e300, -1.5e-300, 2 ** 53, 1e21])
      return pick([0.5, -2.25, 1e-7, 3.141592653589793, 1e300, -1.5e-300, 2 ** 53, 1e21, random() * 1000, -random()])
    case 4:
      return forPlistPackage ? random() < 0.5 : pick([9007199254740992n, 18446744073709551615n, -9223372036854775808n, 12345678901234567890n, true, false])
    case 5:
      return new Date(Math.floor(((random() * 2 - 0.5) * 4e12) / 1000) * 1000)
    case 6:
      return Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)))
    case 7:
      return random() < 0.5
    case 8:
      return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth + 1, forPlistPackage))
    default: {
      const keys = ['MessageType', 'UDID', '', ' ', 'a&b', '<key>', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'Grüße', '😀', 'x\ny', 'CF$UID']
      if (!forPlistPackage) keys.push('__proto__')
      const dict: PlistDict = {}
      for (let i = Math.floor(random() * 6); i > 0; i--) {
        Object.defineProperty(dict, pick(keys), {
          value: randomValue(random, depth + 1, forPlistPackage),
          enumerable: true,
          writable: true,
          configurable: true,
        })
      }
      return dict
    }
  }
}

t.test('round trip: decode(encode(v)) equals v, XML and binary', async (t) => {
  const random = prng(20240402)
  let checked = 0
  for (let i = 0; i < 400; i++) {
    const value = randomValue(random, 0, false)
    const encoded = encodePlist(value)
    if (!t.equal(difference(decodePlist(encoded), value), undefined, `value #${i}`)) {
      t.comment(encoded.toString())
      break
    }
    if (!t.equal(difference(decodePlist(toBplist(value)), value), undefined, `value #${i} as a binary plist`)) break
    checked++
  }
  t.equal(checked, 400)
})

t.test('round trip: the plist package reads what we write', async (t) => {
  const random = prng(7)
  for (let i = 0; i < 300; i++) {
    const value = randomValue(random, 0, true)
    const xml = encodePlist(value).toString('utf8')
    if (!t.equal(difference(comparable(plist.parse(xml)), comparable(value)), undefined, `value #${i}`)) {
      t.comment(xml)
      break
    }
  }
  // And where both read the same XML, both agree (integers the package can hold exactly).
  for (const xml of [authenticateXml, tokenUpdateXml, errorReportXml]) {
    t.strictSame(comparable(decodeText(xml)), comparable(plist.parse(xml)))
  }
})

// ---------------------------------------------------------------------------------------
// Fuzzing: mutated documents may decode or fail, but only ever with PlistError.

// PostgreSQL text cannot hold U+0000: a string or key with one is refused where the plist is
// decoded (the MDM surface answers 400, never 500), naming where it is.
t.test('NUL in strings and keys is refused with its key path, XML and binary', async (t) => {
  const cases: Array<[PlistValue, RegExp]> = [
    [{ UDID: 'ABC\u0000' }, /^string at \$\.UDID contains U\+0000 \(NUL\)/],
    [{ QueryResponses: { Apps: ['ok', { Name: '\u0000' }] } }, /^string at \$\.QueryResponses\.Apps\[1\]\.Name contains U\+0000/],
    [{ Command: { 'Message\u0000': 'x' } }, /^key "Message\\u0000" in \$\.Command contains U\+0000/],
    [{ '\u0000': 1 }, /^key "\\u0000" in \$ contains U\+0000/],
    [{ 'odd key': [{ Deep: 'x\u0000y' }] }, /^string at \$\["odd key"\]\[0\]\.Deep contains U\+0000/],
    ['just\u0000text', /^string at \$ contains U\+0000/],
  ]
  // encodePlist refuses NUL: write a marker, then put a raw NUL in its place (as broken writers do).
  const withRawNul = (value: PlistValue) =>
    Buffer.from(
      encodePlist(JSON.parse(JSON.stringify(value).replace(/\\u0000/g, 'NUL-HERE')) as PlistValue)
        .toString('utf8')
        .replace(/NUL-HERE/g, '\u0000'),
    )
  for (const [value, message] of cases) {
    rejects(t, withRawNul(value), 'plist_unsupported', message)
    rejects(t, encodeBinaryPlist(value), 'plist_unsupported', message)
  }
  rejects(t, doc('<dict><key>A</key><string><![CDATA[x\u0000]]></string></dict>'), 'plist_unsupported', /^string at \$\.A contains U\+0000/, '<string>')
  rejects(t, doc('<array><string>ok</string><string>\u0000</string></array>'), 'plist_unsupported', /^string at \$\[1\] contains/)
  rejects(t, doc('<string>&#0;</string>'), 'plist_malformed', /character reference &#0; is not an XML character/, '&#0;')
  t.strictSame(
    decodeText(doc('<!-- \u0000 --><dict><key>A</key><data>AA==</data></dict>')),
    { A: Buffer.alloc(1) },
    'NUL outside strings and keys (a comment) and in <data> bytes is fine',
  )
  t.strictSame(decodePlist(encodeBinaryPlist({ A: Buffer.alloc(4) })), { A: Buffer.alloc(4) }, 'binary <data> may hold zero bytes')
})

t.test('binary: an unpaired surrogate in a UTF-16 string or key is malformed', async (t) => {
  rejects(t, encodeBinaryPlist({ A: [{ B: 'x\ud800' }] }), 'plist_malformed', /^string at \$\.A\[0\]\.B is not valid UTF-16 \(an unpaired surrogate\)/)
  rejects(t, encodeBinaryPlist({ 'k\udc00': 1 }), 'plist_malformed', /^key "k\\udc00" in \$ is not valid UTF-16/)
  t.strictSame(decodePlist(encodeBinaryPlist({ A: '😀 é ✓' })), { A: '😀 é ✓' }, 'pairs are characters')
})

t.test('fuzz: mutated plists throw nothing but PlistError', async (t) => {
  const random = prng(0x0ddba11)
  const seeds: Buffer[] = [
    Buffer.from(authenticateXml),
    Buffer.from(tokenUpdateXml),
    Buffer.from(deviceInformationXml),
    Buffer.from(errorReportXml),
    fixture('device-information.xml.plist'),
    fixture('authenticate.binary.plist'),
    fixture('device-information.binary.plist'),
    toBplist(deviceInformationFixture),
    Buffer.from(
      doc(
        '<dict><key>a</key><array><data>AA==</data><date>2024-01-01T00:00:00Z</date><real>inf</real><integer>0x10</integer><string><![CDATA[x]]>&#x41;<!--c--></string></array></dict>',
      ),
    ),
  ]
  const tokens = [
    '<',
    '>',
    '/',
    '</',
    '/>',
    '&',
    ';',
    '&#',
    '&#x',
    '&#0;',
    '&#x110000;',
    '&lt;',
    '"',
    "'",
    '[',
    ']]>',
    '<![CDATA[',
    '<!--',
    '-->',
    '<?',
    '?>',
    '<!DOCTYPE plist [',
    '<!ENTITY',
    '<dict>',
    '</dict>',
    '<array>',
    '</array>',
    '<key>k</key>',
    '<key>',
    '</key>',
    '<string>',
    '</string>',
    '<integer>',
    '<real>',
    '<date>',
    '<data>',
    '<true/>',
    '<plist>',
    '</plist>',
    '0x',
    '-',
    '9'.repeat(30),
    '=',
    '\u0000',
    '\uffff',
    'é',
    '😀',
  ].map((token) => Buffer.from(token))
  const extremes = [0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xd0, 0xdf, 0xef, 0xfe, 0xff]
  const outcomes = { decoded: 0, malformed: 0, limit: 0, unsupported: 0 }
  const iterations = 6000
  let unexpected = 0
  for (let i = 0; i < iterations && unexpected < 5; i++) {
    let input = Buffer.from(seeds[i % seeds.length]!)
    const binary = input.subarray(0, 6).toString('latin1') === 'bplist'
    for (let m = 1 + Math.floor(random() * 3); m > 0; m--) {
      const at = Math.floor(random() * input.length)
      switch (Math.floor(random() * (binary ? 8 : 6))) {
        case 0:
          input[at] = Math.floor(random() * 256)
          break
        case 1:
          input = Buffer.concat([input.subarray(0, at), tokens[Math.floor(random() * tokens.length)]!, input.subarray(at)])
          break
        case 2:
          input = Buffer.concat([input.subarray(0, at), input.subarray(Math.min(input.length, at + 1 + Math.floor(random() * 40)))])
          break
        case 3: {
          const from = Math.floor(random() * input.length)
          input = Buffer.concat([input.subarray(0, at), input.subarray(from, from + Math.floor(random() * 60)), input.subarray(at)])
          break
        }
        case 4:
          input = input.subarray(0, at)
          break
        case 5:
          input[at] = extremes[Math.floor(random() * extremes.length)]!
          break
        default: {
          // Binary: hit the trailer and offset table, where sizes and offsets live.
          const tail = Math.max(0, input.length - 1 - Math.floor(random() * 64))
          input[tail] = extremes[Math.floor(random() * extremes.length)]!
        }
      }
    }
    const limits = random() < 0.2 ? { maxDepth: 3, maxElements: 40, maxBytes: 4000 } : undefined
    try {
      const value = decodePlist(input, limits)
      outcomes.decoded++
      try {
        decodePlist(encodePlist(value))
      } catch (error) {
        if (!(error instanceof PlistError)) throw error
      }
    } catch (error) {
      if (error instanceof PlistError) {
        if (error.code === 'plist_malformed') outcomes.malformed++
        else if (error.code === 'plist_limit_exceeded') outcomes.limit++
        else outcomes.unsupported++
        if (!/ at (byte \d+|\$)/.test(error.message) && error.code !== 'plist_limit_exceeded') {
          unexpected++
          t.fail(`message without a location: ${error.message}`)
        }
      } else {
        unexpected++
        t.fail(`iteration ${i}: ${String(error)}\n${(error as Error).stack}\ninput: ${input.toString('base64')}`)
      }
    }
  }
  t.equal(unexpected, 0, `${iterations} mutated inputs: ${JSON.stringify(outcomes)}`)
  t.ok(outcomes.decoded > 0 && outcomes.malformed > 0, 'the mutations reach both outcomes')
})

t.test('non-Buffer input', async (t) => {
  t.equal(decodePlist(new Uint8Array(Buffer.from(doc('<true/>'))) as Buffer), true, 'a plain Uint8Array is accepted')
  t.throws(() => decodePlist('<plist/>' as unknown as Buffer), TypeError, 'a string is a programming error, not a bad plist')
})

t.test('isPlistDict', async (t) => {
  t.ok(isPlistDict({}))
  t.ok(isPlistDict({ a: 1 }))
  t.ok(isPlistDict(Object.create(null)))
  t.ok(isPlistDict(decodeText(doc('<dict/>'))))
  for (const value of [null, undefined, 1, 'x', true, 1n, [], new Date(), Buffer.alloc(1), new Uint8Array(1), new Map(), new (class X {})()]) {
    t.notOk(isPlistDict(value), `${Object.prototype.toString.call(value)}`)
  }
})
