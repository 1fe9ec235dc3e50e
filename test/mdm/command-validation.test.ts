import t from 'tap'
import { buildCommand } from '../../src/mdm/command.js'
import {
  commandApplicability,
  isKnownRequestType,
  platformFromProduct,
  requestTypes,
  validateTypedCommand,
  type FieldError,
} from '../../src/mdm/command-validation.js'
import { decodePlist } from '../../src/mdm/plist.js'

const errorsOf = (input: unknown): FieldError[] => {
  const result = validateTypedCommand(input)
  return result.ok ? [] : result.errors
}

t.test('the catalogue holds all 66 request types', async (t) => {
  t.equal(requestTypes.length, 66)
  t.equal(new Set(requestTypes).size, 66)
  for (const name of requestTypes) t.ok(isKnownRequestType(name), name)
  t.ok(requestTypes.includes('DeviceLock'))
  t.ok(requestTypes.includes('VerifyRecoveryLock'))
  t.notOk(isKnownRequestType('Lock'))
  t.notOk(isKnownRequestType('toString'), 'Object.prototype names are not request types')
  t.notOk(isKnownRequestType('devicelock'), 'names are case-sensitive')
})

t.test('a valid DeviceLock builds a plist that decodes back', async (t) => {
  const result = validateTypedCommand({ request_type: 'DeviceLock', Message: 'Lost iPad', PhoneNumber: '+1 555 0100' })
  t.strictSame(result, { ok: true, requestType: 'DeviceLock', keys: { Message: 'Lost iPad', PhoneNumber: '+1 555 0100' } })
  if (!result.ok) return
  const command = buildCommand(result.requestType, result.keys, 'uuid-1')
  t.strictSame(decodePlist(command.payload), {
    CommandUUID: 'uuid-1',
    Command: { RequestType: 'DeviceLock', Message: 'Lost iPad', PhoneNumber: '+1 555 0100' },
  })
  t.strictSame(validateTypedCommand({ request_type: 'DeviceLock' }), { ok: true, requestType: 'DeviceLock', keys: {} }, 'every DeviceLock key is optional')
})

t.test('conversions: data, integers, nested dictionaries and free-form values', async (t) => {
  const profile = Buffer.from('<plist>profile</plist>')
  const install = validateTypedCommand({ request_type: 'InstallProfile', Payload: profile.toString('base64') })
  t.ok(install.ok)
  if (install.ok) t.strictSame(install.keys, { Payload: profile })

  const app = validateTypedCommand({
    request_type: 'InstallApplication',
    iTunesStoreID: 361309726,
    ManagementFlags: 1,
    Options: { PurchaseMethod: 1 },
    Configuration: { ServerURL: 'https://example.com', Retries: 3, Ratio: 0.5, Enabled: true, Tags: ['a', 'b'], Nested: { Deep: 1 } },
  })
  t.strictSame(app, {
    ok: true,
    requestType: 'InstallApplication',
    keys: {
      iTunesStoreID: 361309726,
      ManagementFlags: 1,
      Options: { PurchaseMethod: 1 },
      Configuration: { ServerURL: 'https://example.com', Retries: 3, Ratio: 0.5, Enabled: true, Tags: ['a', 'b'], Nested: { Deep: 1 } },
    },
  })
  if (app.ok) {
    const xml = buildCommand(app.requestType, app.keys).payload.toString('utf8')
    t.match(xml, '<key>Retries</key>\n\t\t\t<integer>3</integer>')
    t.match(xml, '<key>Ratio</key>\n\t\t\t<real>0.5</real>')
  }

  const settings = validateTypedCommand({
    request_type: 'Settings',
    Settings: [
      { Item: 'DeviceName', DeviceName: 'Front desk' },
      { Item: 'Wallpaper', Image: 'AAEC', Where: 3 },
      { Item: 'SharedDeviceConfiguration', PasscodePolicy: { PasscodeLockGracePeriod: 300 }, ManagedAppleIDDefaultDomains: ['school.example'] },
    ],
  })
  t.strictSame(settings, {
    ok: true,
    requestType: 'Settings',
    keys: {
      Settings: [
        { Item: 'DeviceName', DeviceName: 'Front desk' },
        { Item: 'Wallpaper', Image: Buffer.from([0, 1, 2]), Where: 3 },
        { Item: 'SharedDeviceConfiguration', PasscodePolicy: { PasscodeLockGracePeriod: 300 }, ManagedAppleIDDefaultDomains: ['school.example'] },
      ],
    },
  })

  const queries = validateTypedCommand({ request_type: 'DeviceInformation', Queries: ['UDID', 'SomeFutureQuery'] })
  t.strictSame(queries, { ok: true, requestType: 'DeviceInformation', keys: { Queries: ['UDID', 'SomeFutureQuery'] } }, 'query names are not restricted')

  const configuration = validateTypedCommand({ request_type: 'InstallApplication', Configuration: JSON.parse('{"__proto__": {"x": 1}}') as unknown })
  t.ok(configuration.ok)
  if (configuration.ok) {
    const converted = configuration.keys['Configuration']
    t.strictSame(Object.keys(converted as object), ['__proto__'], '__proto__ stays an ordinary key')
    t.equal(Object.getPrototypeOf(converted), Object.prototype)
  }
})

t.test('request_type must name a known command', async (t) => {
  t.strictSame(errorsOf({ Message: 'x' }), [{ pointer: '/request_type', detail: 'is required' }])
  t.strictSame(errorsOf({ request_type: 'FormatDisk' }), [{ pointer: '/request_type', detail: '"FormatDisk" is not a known RequestType' }])
  t.strictSame(errorsOf({ request_type: 42 }), [{ pointer: '/request_type', detail: '42 is not a known RequestType' }])
  t.strictSame(errorsOf(['DeviceLock']), [{ pointer: '', detail: 'must be a JSON object' }])
  t.strictSame(errorsOf(null), [{ pointer: '', detail: 'must be a JSON object' }])
})

t.test('field errors point at the offending value', async (t) => {
  t.strictSame(errorsOf({ request_type: 'InstallProfile' }), [{ pointer: '/Payload', detail: 'is required' }])
  t.strictSame(errorsOf({ request_type: 'DeviceLock', Message: 42 }), [{ pointer: '/Message', detail: 'must be a string' }])
  t.strictSame(errorsOf({ request_type: 'DeviceLock', Mesage: 'typo' }), [{ pointer: '/Mesage', detail: 'is not a key of DeviceLock' }])
  t.strictSame(
    errorsOf({ request_type: 'DeviceLock', 'a/b~c': 1 }),
    [{ pointer: '/a~1b~0c', detail: 'is not a key of DeviceLock' }],
    'pointer tokens are escaped',
  )
  t.strictSame(errorsOf({ request_type: 'DeviceLock', RequestType: 'EraseDevice' }), [
    { pointer: '/RequestType', detail: 'must not be given: request_type names the command' },
  ])
  t.strictSame(errorsOf({ request_type: 'InstallApplication', iTunesStoreID: 1.5 }), [{ pointer: '/iTunesStoreID', detail: 'must be an integer' }])
  t.strictSame(errorsOf({ request_type: 'InstallApplication', iTunesStoreID: '361309726' }), [{ pointer: '/iTunesStoreID', detail: 'must be an integer' }])
  t.strictSame(errorsOf({ request_type: 'CertificateList', ManagedOnly: 'yes' }), [{ pointer: '/ManagedOnly', detail: 'must be true or false' }])
  t.strictSame(errorsOf({ request_type: 'DeviceInformation', Queries: 'UDID' }), [{ pointer: '/Queries', detail: 'must be an array' }])
  t.strictSame(errorsOf({ request_type: 'DeviceInformation', Queries: ['UDID', 7] }), [{ pointer: '/Queries/1', detail: 'must be a string' }])
  t.strictSame(errorsOf({ request_type: 'RotateFileVaultKey', KeyType: 'personal', FileVaultUnlock: 'pw' }), [
    { pointer: '/FileVaultUnlock', detail: 'must be an object' },
  ])
  t.strictSame(errorsOf({ request_type: 'InstallApplication', Configuration: { A: null } }), [
    { pointer: '/Configuration/A', detail: 'null has no property-list form' },
  ])
})

t.test('data must be canonical base64', async (t) => {
  const bad = [{ pointer: '/Payload', detail: 'must be base64' }]
  t.strictSame(errorsOf({ request_type: 'InstallProfile', Payload: 'not base64!' }), bad)
  t.strictSame(errorsOf({ request_type: 'InstallProfile', Payload: 'AAE' }), bad, 'missing padding')
  t.strictSame(errorsOf({ request_type: 'InstallProfile', Payload: 'AA-_' }), bad, 'base64url alphabet')
  t.strictSame(errorsOf({ request_type: 'InstallProfile', Payload: 'AA E=' }), bad, 'whitespace')
  t.strictSame(errorsOf({ request_type: 'InstallProfile', Payload: 'QR==' }), bad, 'non-zero padding bits')
  t.strictSame(errorsOf({ request_type: 'InstallProfile', Payload: 12 }), bad)
  t.ok(validateTypedCommand({ request_type: 'InstallProfile', Payload: 'QQ==' }).ok)
})

t.test('allowed values', async (t) => {
  t.strictSame(errorsOf({ request_type: 'EraseDevice', ObliterationBehavior: 'Sometimes' }), [
    { pointer: '/ObliterationBehavior', detail: 'must be one of "Default", "DoNotObliterate", "ObliterateWithWarning", "Always"' },
  ])
  t.ok(validateTypedCommand({ request_type: 'EraseDevice', ObliterationBehavior: 'DoNotObliterate' }).ok)
  t.strictSame(errorsOf({ request_type: 'InstallApplication', ManagementFlags: 2 }), [{ pointer: '/ManagementFlags', detail: 'must be one of 1, 4, 5' }])
  t.strictSame(errorsOf({ request_type: 'RotateFileVaultKey', KeyType: 'master', FileVaultUnlock: {} }), [
    { pointer: '/KeyType', detail: 'must be one of "personal", "institutional"' },
  ])
})

t.test('array elements and Settings alternatives', async (t) => {
  t.strictSame(
    errorsOf({
      request_type: 'Settings',
      Settings: [
        { Item: 'DeviceName', DeviceName: 'x' },
        { Item: 'Teleport', Enabled: true },
      ],
    }),
    [
      {
        pointer: '/Settings/1/Item',
        detail: `must be one of ${['Wallpaper', 'DataRoaming', 'VoiceRoaming', 'PersonalHotspot', 'Bluetooth', 'ApplicationConfiguration', 'ApplicationAttributes', 'DeviceName', 'HostName', 'OrganizationInfo', 'MDMOptions', 'MaximumResidentUsers', 'SharedDeviceConfiguration', 'DiagnosticSubmission', 'AppAnalytics', 'PasscodeLockGracePeriod', 'TimeZone', 'SoftwareUpdateSettings', 'AccessibilitySettings'].map((name) => `"${name}"`).join(', ')}`,
      },
    ],
  )
  t.strictSame(errorsOf({ request_type: 'Settings', Settings: [{ Enabled: true }] }), [{ pointer: '/Settings/0/Item', detail: 'is required' }])
  t.strictSame(errorsOf({ request_type: 'Settings', Settings: ['Bluetooth'] }), [{ pointer: '/Settings/0', detail: 'must be an object' }])
  t.strictSame(errorsOf({ request_type: 'Settings', Settings: [{ Item: 'Bluetooth' }] }), [{ pointer: '/Settings/0/Enabled', detail: 'is required' }])
  t.strictSame(errorsOf({ request_type: 'Settings', Settings: [{ Item: 'Bluetooth', Enabled: 'on', Extra: 1 }] }), [
    { pointer: '/Settings/0/Enabled', detail: 'must be true or false' },
    { pointer: '/Settings/0/Extra', detail: 'is not a key of Bluetooth' },
  ])
  t.strictSame(errorsOf({ request_type: 'Settings', Settings: [{ Item: 'Wallpaper', Image: 'AAEC', Where: 4 }] }), [
    { pointer: '/Settings/0/Where', detail: 'must be one of 1, 2, 3' },
  ])
  t.strictSame(errorsOf({ request_type: 'Settings', Settings: [{ Item: 'SharedDeviceConfiguration', PasscodePolicy: { PasscodeLockGracePeriod: 30 } }] }), [
    { pointer: '/Settings/0/PasscodePolicy/PasscodeLockGracePeriod', detail: 'must be one of 0, 60, 300, 900, 3600, 14400' },
  ])
  t.strictSame(errorsOf({ request_type: 'LOMDeviceRequest', RequestList: [{ DeviceRequestType: 'PowerON' }] }), [
    { pointer: '/RequestList/0/DeviceRequestUUID', detail: 'is required' },
    { pointer: '/RequestList/0/DeviceDNSName', detail: 'is required' },
    { pointer: '/RequestList/0/PrimaryIPv6AddressList', detail: 'is required' },
    { pointer: '/RequestList/0/SecondaryIPv6AddressList', detail: 'is required' },
    { pointer: '/RequestList/0/LOMProtocolVersion', detail: 'is required' },
  ])
})

t.test('all errors are collected, at most 50', async (t) => {
  t.strictSame(errorsOf({ request_type: 'DeviceLock', Message: 1, PIN: 2, Other: 3 }), [
    { pointer: '/Message', detail: 'must be a string' },
    { pointer: '/PIN', detail: 'must be a string' },
    { pointer: '/Other', detail: 'is not a key of DeviceLock' },
  ])
  const errors = errorsOf({ request_type: 'DeviceInformation', Queries: Array.from({ length: 200 }, (_, index) => index) })
  t.equal(errors.length, 50)
  t.strictSame(errors[49], { pointer: '/Queries/49', detail: 'must be a string' })
})

t.test('free-form values nested too deeply are refused, not a stack overflow', async (t) => {
  let deep: unknown = 'leaf'
  for (let level = 0; level < 10_000; level++) deep = { a: deep }
  const errors = errorsOf({ request_type: 'InstallApplication', Configuration: deep })
  t.equal(errors.length, 1)
  t.match(errors[0]?.detail, /nested more than 64 levels deep/)
})

t.test('commandApplicability', async (t) => {
  t.strictSame(commandApplicability('EnableLostMode', { platform: 'iOS', supervised: false, channel: 'device' }), {
    ok: false,
    reason: 'requires_supervision',
    detail: 'EnableLostMode needs a supervised device on iOS',
  })
  t.strictSame(commandApplicability('EnableLostMode', { platform: 'iOS', supervised: true, channel: 'device' }), { ok: true })
  t.strictSame(
    commandApplicability('EnableLostMode', { platform: 'iOS', supervised: null, channel: 'device' }),
    { ok: true },
    'unknown supervision never refuses',
  )
  t.strictSame(commandApplicability('SetFirmwarePassword', { platform: 'iOS', channel: 'device' }), {
    ok: false,
    reason: 'unsupported_platform',
    detail: 'SetFirmwarePassword is not available on iOS (only macOS)',
  })
  t.strictSame(commandApplicability('EraseDevice', { platform: 'iOS', userEnrollment: true, channel: 'device' }), {
    ok: false,
    reason: 'not_for_user_enrollment',
    detail: 'EraseDevice is not available under User Enrollment on iOS',
  })
  t.strictSame(
    commandApplicability('DeviceLock', { platform: 'iOS', userEnrollment: true, channel: 'device' }),
    { ok: true },
    'DeviceLock is allowed under iOS User Enrollment',
  )
  t.strictSame(commandApplicability('DeviceLock', { platform: 'macOS', userEnrollment: true, channel: 'device' }), {
    ok: false,
    reason: 'not_for_user_enrollment',
    detail: 'DeviceLock is not available under User Enrollment on macOS',
  })
  t.strictSame(commandApplicability('UserConfigured', { platform: 'iOS', osVersion: '16.7.2', channel: 'device' }), {
    ok: false,
    reason: 'os_too_old',
    detail: 'UserConfigured needs iOS 17.0 or later; the device runs 16.7.2',
  })
  t.strictSame(commandApplicability('UserConfigured', { platform: 'iOS', osVersion: '17', channel: 'device' }), { ok: true }, '17 equals 17.0')
  t.strictSame(commandApplicability('ContentCachingInformation', { platform: 'macOS', osVersion: '10.15.3', channel: 'device' }).ok, false)
  t.strictSame(
    commandApplicability('ContentCachingInformation', { platform: 'macOS', osVersion: '10.15.10', channel: 'device' }),
    { ok: true },
    'versions compare numerically, not as text',
  )
  t.strictSame(commandApplicability('DeviceInformation', { platform: 'iOS', osVersion: 'unknown', channel: 'device' }), { ok: true })

  t.strictSame(commandApplicability('EraseDevice', { channel: 'device' }), { ok: true }, 'unknown platform skips every check')
  t.strictSame(commandApplicability('EraseDevice', { channel: 'user', supervised: false, userEnrollment: true }), { ok: true })
  t.strictSame(
    commandApplicability('SomeFutureCommand', { platform: 'iOS', channel: 'device' }),
    { ok: true },
    'raw commands outside the catalogue are not refused',
  )

  t.strictSame(commandApplicability('ProfileList', { platform: 'iOS', channel: 'user' }), { ok: true }, "iOS user channel via 'iOS-SharedIPad'")
  t.strictSame(commandApplicability('EraseDevice', { platform: 'iOS', channel: 'user' }), {
    ok: false,
    reason: 'not_for_user_channel',
    detail: 'EraseDevice cannot be sent on the user channel on iOS',
  })
  t.strictSame(commandApplicability('InstallMedia', { platform: 'macOS', channel: 'user' }), { ok: true })
  t.strictSame(commandApplicability('InstallMedia', { platform: 'macOS', channel: 'device' }), {
    ok: false,
    reason: 'not_for_device_channel',
    detail: 'InstallMedia cannot be sent on the device channel on macOS',
  })
  t.strictSame(commandApplicability('ActiveNSExtensions', { platform: 'macOS', channel: 'device' }).ok, false)
})

t.test('platformFromProduct', async (t) => {
  t.equal(platformFromProduct('iPhone15,2'), 'iOS')
  t.equal(platformFromProduct('iPad13,1'), 'iOS')
  t.equal(platformFromProduct('iPod9,1'), 'iOS')
  t.equal(platformFromProduct('Mac14,2'), 'macOS')
  t.equal(platformFromProduct('MacBookPro18,1'), 'macOS')
  t.equal(platformFromProduct('MacBookAir10,1'), 'macOS')
  t.equal(platformFromProduct('iMac21,1'), 'macOS')
  t.equal(platformFromProduct('iMacPro1,1'), 'macOS')
  t.equal(platformFromProduct('Macmini9,1'), 'macOS')
  t.equal(platformFromProduct('VirtualMac2,1'), 'macOS')
  t.equal(platformFromProduct('AppleTV11,1'), 'tvOS')
  t.equal(platformFromProduct('Watch6,1'), 'watchOS')
  t.equal(platformFromProduct('RealityDevice14,1'), 'visionOS')
  t.equal(platformFromProduct(null, 'MacBookPro18,1'), 'macOS', 'falls back to Model')
  t.equal(platformFromProduct('Unknown1,1', 'iPad8,6'), 'iOS')
  t.equal(platformFromProduct('MQ3D2LL/A'), undefined)
  t.equal(platformFromProduct(undefined), undefined)
  t.equal(platformFromProduct('', null), undefined)
})
