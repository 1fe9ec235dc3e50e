// The leavers action (POST /api/v1/offboarding) over more devices than ORCHARD_JOB_THRESHOLD:
// the dry run and the confirmation as before, then 202 with an offboarding job that starts
// each device's offboarding once, counted by outcome, with the devices not found as errors.
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { followJob } from '../helpers/jobs.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

t.test('offboarding many devices: confirmation first, then 202 with a job that offboards each once', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_JOB_THRESHOLD: '2' })
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const fleet = [await mdm.enrolledDevice(), await mdm.enrolledDevice(), await mdm.enrolledDevice()]
  const body = { device_ids: [...fleet.map((d) => d.udid), 'no-such-device'], reason: 'closing the office' }

  const blind = await api('POST', '/api/v1/offboarding', { body })
  t.equal(blind.statusCode, 428, 'never without a dry run, job or not')
  t.same(await db.selectFrom('jobs').select('id').execute(), [])
  const dryRun = await api('POST', '/api/v1/offboarding', { body: { ...body, dry_run: true } })
  t.equal(dryRun.statusCode, 200, dryRun.body)
  t.equal(dryRun.json.count, 3)
  const wrong = await api('POST', '/api/v1/offboarding', { body: { ...body, reason: 'other', confirmation_token: dryRun.json.confirmation_token } })
  t.equal(wrong.statusCode, 409, 'the token is bound to the options')

  const accepted = await api('POST', '/api/v1/offboarding', { body: { ...body, confirmation_token: dryRun.json.confirmation_token } })
  t.equal(accepted.statusCode, 202, accepted.body)
  t.match(accepted.json, { type: 'offboarding', state: 'queued', total: 4, done: 1, outcomes: { not_found: 1 }, cancellable: true })
  const job = await followJob(api, accepted)
  t.match(job, { state: 'succeeded', done: 4, total: 4, outcomes: { started: 3, not_found: 1 } })
  t.match((await api('GET', `/api/v1/jobs/${job.id}/errors`)).json.items, [{ target: 'no-such-device', code: 'not_found' }])

  const actions = await db.selectFrom('lifecycle_actions').select(['device_id', 'status']).where('action', '=', 'offboard').execute()
  t.same(actions.map((a) => a.device_id).sort(), fleet.map((d) => d.udid).sort(), 'one offboarding per device')
  const audited = await db.selectFrom('audit_events').select(['action', 'target_type']).where('action', '=', 'offboardLeaver').execute()
  t.ok(
    audited.some((row) => row.target_type === 'job'),
    'the call is audited with its job',
  )
  t.ok(audited.filter((row) => row.target_type !== 'job').length >= 3, "each device's offboarding is audited as the caller's")
  for (const device of fleet) t.equal(commandIn(await device.idle())?.requestType, 'EraseDevice', `${device.udid} is erased`)

  // At the threshold: offboarded at once, as before.
  const two = await mdm.enrolledDevice()
  const small = { device_ids: [two.udid] }
  const smallDry = await api('POST', '/api/v1/offboarding', { body: { ...small, dry_run: true } })
  const done = await api('POST', '/api/v1/offboarding', { body: { ...small, confirmation_token: smallDry.json.confirmation_token } })
  t.equal(done.statusCode, 201, done.body)
  t.match(done.json.devices, [{ device_id: two.udid, outcome: 'started' }])
})
