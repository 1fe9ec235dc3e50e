// Destructive commands to a filter or to several devices take two steps (issue 17, item 4):
// a dry run answers the exact targets and a confirmation token bound to them, the caller and
// the command; the real call needs that token and is refused when the targets changed. Above
// ORCHARD_DESTRUCTIVE_OWNER_LIMIT devices only owners send them.
import t from 'tap'
import { encodePlist } from '../../src/mdm/plist.js'
import { createConfirmationTokens } from '../../src/queue/destructive-guard.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

async function storedCommands(mdm: Awaited<ReturnType<typeof setupMdm>>) {
  return (await mdm.database.db.selectFrom('commands').select('request_type').execute()).map((row) => row.request_type)
}

t.test('an erase by filter: refused without a dry run, sent with its token, refused again when the targets changed', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const devices = [await mdm.enrolledDevice(), await mdm.enrolledDevice(), await mdm.enrolledDevice()]
  const erase = { filter: { model: 'iPad13,1' }, command: { request_type: 'EraseDevice' }, push: false }

  const blind = await api('POST', '/api/v1/commands', { body: erase })
  t.equal(blind.statusCode, 428, "the issue's erase by model: not at once")
  t.equal(blind.json.code, 'confirmation_required')
  t.match(blind.json.detail, /EraseDevice erases the device.*3 device\(s\).*dry_run/)
  t.same(await storedCommands(mdm), [], 'nothing queued')

  const dry = await api('POST', '/api/v1/commands', { body: { ...erase, dry_run: true } })
  t.equal(dry.statusCode, 200)
  t.match(dry.json, {
    dry_run: true,
    request_type: 'EraseDevice',
    count: 3,
    not_applicable: 0,
    unknown: 0,
    destructive: /erases/,
    confirmation_required: true,
    owner_required: false,
    confirmation_token: String,
    expires_at: String,
  })
  t.same(dry.json.targets.map((target: { enrollment_id: string }) => target.enrollment_id).sort(), devices.map((d) => d.udid).sort(), 'the exact targets')
  t.same(
    dry.json.targets.map((target: { serial_number: string }) => target.serial_number).sort(),
    devices.map((d) => d.serialNumber).sort(),
    'with their serial numbers',
  )
  t.same(await storedCommands(mdm), [], 'a dry run queues nothing')
  const dryAudit = (await api('GET', '/api/v1/audit-events?action=enqueueCommand')).json.items[0]
  t.match(dryAudit, { outcome: 'success', details: { dry_run: true, request_type: 'EraseDevice', targets: 3 } }, 'the dry run is audited')

  const otherCommand = await api('POST', '/api/v1/commands', {
    body: { filter: erase.filter, command: { request_type: 'EraseDevice', PIN: '123456' }, push: false, confirmation_token: dry.json.confirmation_token },
  })
  t.equal(otherCommand.statusCode, 409, 'the token is bound to the command')
  t.match(otherCommand.json, { code: 'confirmation_invalid', problem: 'other_command' })
  t.equal((await api('POST', '/api/v1/commands', { body: { ...erase, confirmation_token: 'garbage' } })).json.code, 'confirmation_invalid')

  // One more device matches the filter meanwhile: the confirmed set is not this one.
  const late = await mdm.enrolledDevice()
  const changed = await api('POST', '/api/v1/commands', { body: { ...erase, confirmation_token: dry.json.confirmation_token } })
  t.equal(changed.statusCode, 409)
  t.match(changed.json, { code: 'confirmation_invalid', problem: 'targets_changed', detail: /3 then, 4 now/ })
  t.same(await storedCommands(mdm), [], 'still nothing queued')

  const again = await api('POST', '/api/v1/commands', { body: { ...erase, dry_run: true } })
  t.equal(again.json.count, 4)
  const sent = await api('POST', '/api/v1/commands', { body: { ...erase, confirmation_token: again.json.confirmation_token } })
  t.equal(sent.statusCode, 201)
  t.same(
    sent.json.targets.map((target: { result: string }) => target.result),
    ['queued', 'queued', 'queued', 'queued'],
  )
  t.ok(sent.json.targets.some((target: { enrollment_id: string }) => target.enrollment_id === late.udid))
})

t.test('which calls are guarded: several named devices, raw plists, the enrollment profile; one device and other commands are not', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const [a, b] = [await mdm.enrolledDevice(), await mdm.enrolledDevice()]

  t.equal(
    (await api('POST', '/api/v1/commands', { body: { enrollment_ids: [a.udid], command: { request_type: 'EraseDevice' }, push: false } })).statusCode,
    201,
    'one named device: one step (as /erase)',
  )
  t.equal(
    (
      await api('POST', '/api/v1/commands', {
        body: { enrollment_ids: [a.udid, b.udid], command: { request_type: 'DeleteUser', UserName: 'pupil1' }, push: false },
      })
    ).statusCode,
    428,
    'DeleteUser to two devices',
  )
  t.equal(
    (
      await api('POST', '/api/v1/commands', {
        body: { enrollment_ids: [a.udid, b.udid], command: { request_type: 'RemoveProfile', Identifier: 'orchard.enrollment' }, push: false },
      })
    ).statusCode,
    428,
    'removing the enrollment profile ends management',
  )
  t.equal(
    (
      await api('POST', '/api/v1/commands', {
        body: { enrollment_ids: [a.udid, b.udid], command: { request_type: 'RemoveProfile', Identifier: 'council.wifi' }, push: false },
      })
    ).statusCode,
    201,
    'another profile: one step',
  )
  t.equal(
    (await api('POST', '/api/v1/commands', { body: { filter: {}, command: { request_type: 'DeviceLock' }, push: false } })).statusCode,
    201,
    'a lock by filter: one step',
  )

  const plist = encodePlist({ CommandUUID: 'raw-erase-1', Command: { RequestType: 'EraseDevice' } })
  const raw = (query: string) =>
    mdm.app.inject({
      method: 'POST',
      url: `/api/v1/enqueue/${a.udid},${b.udid}${query}`,
      headers: { authorization: 'Bearer test-api-key-0123456789abcdef', 'content-type': 'application/x-apple-plist' },
      payload: plist,
    })
  t.equal((await raw('?push=false')).statusCode, 428, 'a raw plist to two enrollments')
  const dry = await raw('?dry_run=true')
  t.equal(dry.statusCode, 200)
  t.match(dry.json(), { dry_run: true, count: 2, confirmation_required: true })
  const sent = await raw(`?push=false&confirmation_token=${encodeURIComponent(dry.json().confirmation_token)}`)
  t.equal(sent.statusCode, 200)
  t.match(sent.json(), { command_uuid: 'raw-erase-1', stored: true })
})

t.test('above the limit only owners send destructive commands, with their own dry run', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_DESTRUCTIVE_OWNER_LIMIT: '2' })
  const api = apiClient(mdm.app)
  for (let i = 0; i < 3; i++) await mdm.enrolledDevice()
  const admin = (await api('POST', '/api/v1/api-keys', { body: { name: 'central admin', role: 'admin' } })).json.key as string
  const erase = { filter: {}, command: { request_type: 'EraseDevice' }, push: false }

  const dry = await api('POST', '/api/v1/commands', { key: admin, body: { ...erase, dry_run: true } })
  t.match(dry.json, { count: 3, owner_required: true }, 'the dry run says so')
  const refused = await api('POST', '/api/v1/commands', { key: admin, body: { ...erase, confirmation_token: dry.json.confirmation_token } })
  t.equal(refused.statusCode, 403)
  t.match(refused.json.detail, /more than 2, ORCHARD_DESTRUCTIVE_OWNER_LIMIT\) needs the owner role/)
  t.equal(
    (await api('POST', '/api/v1/commands', { body: { ...erase, confirmation_token: dry.json.confirmation_token } })).statusCode,
    409,
    "the admin's token is not the owner's",
  )
  const ownerDry = await api('POST', '/api/v1/commands', { body: { ...erase, dry_run: true } })
  t.equal((await api('POST', '/api/v1/commands', { body: { ...erase, confirmation_token: ownerDry.json.confirmation_token } })).statusCode, 201)
  t.same(await storedCommands(mdm), ['EraseDevice'])
})

t.test('confirmation tokens expire', async (t) => {
  let now = new Date('2026-12-06T10:00:00Z')
  const tokens = createConfirmationTokens({ ttlSeconds: 600, now: () => now })
  const binding = { principalId: 'p', requestType: 'EraseDevice', commandDigest: 'd', targetIds: ['b', 'a'] }
  const { token, expiresAt } = tokens.issue(binding)
  t.same(expiresAt, new Date('2026-12-06T10:10:00Z'))
  t.same(tokens.check(token, { ...binding, targetIds: ['a', 'b'] }), { ok: true }, 'the order of the targets does not matter')
  t.match(tokens.check(token, { ...binding, principalId: 'q' }), { ok: false, problem: 'other_command' })
  now = new Date('2026-12-06T10:10:00Z')
  t.match(tokens.check(token, binding), { ok: false, problem: 'expired' })
  t.match(createConfirmationTokens().check(token, binding), { ok: false, problem: 'other_command' }, 'another key does not accept it')
})
