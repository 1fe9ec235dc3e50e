import t from 'tap'
import { resolveChannel, sharedIPadUserId } from '../../src/mdm/identity.js'
import { parseCheckinMessage } from '../../src/mdm/checkin.js'
import { parseCommandReport } from '../../src/mdm/report.js'

t.test('enrollment IDs for every kind of channel', async (t) => {
  t.match(resolveChannel({ UDID: 'U1' }), { kind: 'device', deviceId: 'U1', enrollmentId: 'U1', udid: 'U1' })
  t.match(resolveChannel({ EnrollmentID: 'E1' }), { kind: 'device', deviceId: 'E1', enrollmentId: 'E1', userEnrollmentId: 'E1' })
  t.match(resolveChannel({ UDID: 'U1', UserID: 'G1', UserShortName: 'jdoe', UserLongName: 'Jane Doe' }), {
    kind: 'user',
    deviceId: 'U1',
    enrollmentId: 'U1:G1',
    userShortName: 'jdoe',
    userLongName: 'Jane Doe',
  })
  t.match(resolveChannel({ UDID: 'U1', UserID: sharedIPadUserId, UserShortName: 'pupil@school' }), { kind: 'user', enrollmentId: 'U1:pupil@school' })
  t.match(
    resolveChannel({ UDID: 'U1', UserID: sharedIPadUserId.toLowerCase(), UserShortName: 'pupil@school' }),
    { enrollmentId: 'U1:pupil@school' },
    'any case of the Shared iPad UserID',
  )
  t.match(resolveChannel({ EnrollmentID: 'E1', EnrollmentUserID: 'EU1' }), { kind: 'user', deviceId: 'E1', enrollmentId: 'EU1' })
  t.throws(() => resolveChannel({}), { code: 'malformed_message', message: /neither UDID nor EnrollmentID/ })
  t.throws(() => resolveChannel({ UDID: '' }), { code: 'malformed_message', message: /UDID must be a non-empty string/ })
  t.throws(() => resolveChannel({ UDID: 'x'.repeat(201) }), { code: 'malformed_message' })
  t.throws(() => resolveChannel({ UDID: 42 }), { code: 'malformed_message' })
})

t.test('check-in messages: what each must carry', async (t) => {
  const base = { UDID: 'U1', Topic: 'com.apple.mgmt.External.x' }
  t.match(parseCheckinMessage({ ...base, MessageType: 'Authenticate', SerialNumber: 'S' }), { type: 'Authenticate', serialNumber: 'S', topic: base.Topic })
  t.throws(() => parseCheckinMessage({ UDID: 'U1', MessageType: 'Authenticate' }), { message: 'Authenticate: Topic is required' })
  t.throws(() => parseCheckinMessage({ ...base, MessageType: 'Authenticate', UserID: 'G' }), { message: /only sent on the device channel/ })
  t.throws(() => parseCheckinMessage({ ...base, MessageType: 'TokenUpdate', PushMagic: 'm' }), { message: 'TokenUpdate: Token is required' })
  t.throws(() => parseCheckinMessage({ ...base, MessageType: 'TokenUpdate', Token: Buffer.alloc(0), PushMagic: 'm' }), {
    message: 'TokenUpdate: Token is required',
  })
  t.match(parseCheckinMessage({ ...base, MessageType: 'TokenUpdate', Token: Buffer.alloc(32), PushMagic: 'm', AwaitingConfiguration: true }), {
    awaitingConfiguration: true,
  })
  t.throws(() => parseCheckinMessage({ ...base, MessageType: 'UserAuthenticate' }), { message: /needs UserID/ })
  t.throws(() => parseCheckinMessage({ ...base, MessageType: 'DeclarativeManagement' }), { message: 'DeclarativeManagement: Endpoint is required' })
  t.throws(() => parseCheckinMessage({ ...base, MessageType: 'GetToken' }), { message: 'GetToken: TokenServiceType is required' })
  t.throws(() => parseCheckinMessage(['not', 'a', 'dict']), { message: /must be a dictionary/ })
  t.match(parseCheckinMessage({ ...base, MessageType: 'CheckOut', Extra: 'kept' }), { type: 'CheckOut', raw: { Extra: 'kept' } }, 'unknown keys are kept')
})

t.test('command reports', async (t) => {
  t.match(parseCommandReport({ UDID: 'U1', Status: 'Idle' }), { status: 'Idle', commandUuid: undefined })
  const report = parseCommandReport({
    UDID: 'U1',
    Status: 'Error',
    CommandUUID: 'C1',
    ErrorChain: [{ ErrorCode: 12021n, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'x', Junk: true }, 'not a dict'],
  })
  t.same(report.errorChain, [{ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'x' }])
  t.throws(() => parseCommandReport({ UDID: 'U1' }), { message: 'Status is missing' })
  t.throws(() => parseCommandReport({ UDID: 'U1', Status: 'NotNow' }), { message: 'Status NotNow needs a CommandUUID' })
})
