// The CLI against the real jobs feature: a bulk command over more targets than
// ORCHARD_JOB_THRESHOLD answers 202, and `orchard commands send` follows the job to its end
// (each wait between polls lets the app's job runner finish what it started: no sleeping);
// a device-days report answered with a job is followed, then its result fetched.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { settleJobs } from '../helpers/jobs.js'
import { liveOrchard } from '../helpers/orchard-cli.js'

t.test('commands send above the job threshold: followed through GET /api/v1/jobs/{id} to its end', async (t) => {
  const live = await liveOrchard(t, { ORCHARD_JOB_THRESHOLD: '2' })
  const devices = [await live.fixture.enrolledDevice(), await live.fixture.enrolledDevice(), await live.fixture.enrolledDevice()]
  const run = await live.cli(['commands', 'send', 'ProfileList', ...devices.flatMap((device) => ['--enrollment', device.udid]), '--no-push'], {
    waitBetweenPolls: () => settleJobs(live.fixture.app),
  })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stderr, /^job [0-9a-f-]{36} queued: 0\/3\njob [0-9a-f-]{36} succeeded: 3\/3 \(queued 3\)\n$/, 'plain progress lines to the end')
  t.same(run.sleeps, [1000], 'one wait between polls, at the default interval')
  t.match(run.stdout, /^ProfileList [0-9a-f-]{36} queued; its targets: orchard commands status /, 'then the result, as a synchronous answer would show it')
  for (const device of devices) {
    const next = await device.idle()
    t.match(next.body.toString(), /<string>ProfileList<\/string>/, `${device.udid} got the command`)
  }

  const json = await live.cli(['--json', 'jobs', 'ls'])
  t.equal(json.code, 0, json.stderr)
  const listed = JSON.parse(json.stdout) as { items: Array<{ type: string; state: string; done: number; total: number }> }
  t.match(listed.items, [{ type: 'bulk_command', state: 'succeeded', done: 3, total: 3 }])
})

t.test('reports device-days through a report job: a long period, or --async, followed, then its result written as the report would be', async (t) => {
  const live = await liveOrchard(t, { ORCHARD_REPORT_JOB_DAYS: '31' })
  const db = live.fixture.database.db
  await db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null }).execute()
  // A history in the past: the report does not change with the day the test runs.
  await db
    .insertInto('device_tenancy')
    .values([
      { device_id: 'device-a', tenant_id: 'physics', started_at: new Date('2024-01-10T12:00:00Z'), ended_at: new Date('2024-03-20T00:00:00Z') },
      { device_id: 'device-b', tenant_id: null, started_at: new Date('2024-02-01T00:00:00Z'), ended_at: new Date('2024-02-15T00:00:00Z') },
    ])
    .execute()
  const waitBetweenPolls = () => settleJobs(live.fixture.app)
  const february = ['reports', 'device-days', '--from', '2024-02-01', '--to', '2024-02-29']

  const direct = await live.cli(february)
  t.equal(direct.code, 0, direct.stderr)
  t.equal(direct.stderr, '', 'answered at once: no job')
  t.match(direct.stdout, /^tenant_id,tenant_name,/)
  const async = await live.cli([...february, '--async'], { waitBetweenPolls })
  t.equal(async.code, 0, async.stderr)
  t.match(async.stderr, /^job [0-9a-f-]{36} queued: 0\/1\njob [0-9a-f-]{36} succeeded: 1\/1 \(generated 1\)\n$/, 'the job followed to its end')
  t.equal(async.stdout, direct.stdout, 'then the same CSV')
  const devices = await live.cli([...february, '--async', '--rows', 'devices'], { waitBetweenPolls })
  t.equal(devices.stdout, (await live.cli([...february, '--rows', 'devices'])).stdout, 'in the form asked for')

  // Over ORCHARD_REPORT_JOB_DAYS: a job without asking; JSON into a file.
  const dir = t.testdir({})
  const file = `${dir}/days.json`
  const year = await live.cli(['reports', 'device-days', '--from', '2024-01-01', '--to', '2024-12-31', '--per-device', '--output', file], { waitBetweenPolls })
  t.equal(year.code, 0, year.stderr)
  t.match(year.stderr, /succeeded: 1\/1 \(generated 1\)\nwrote \S+days\.json \(\d+ bytes\)\n$/)
  const report = JSON.parse(readFileSync(file, 'utf8'))
  t.match(report, { from: '2024-01-01', to: '2024-12-31', total_device_days: 70 + 14 })
  t.same(
    report.devices.map((row: { device_id: string; device_days: number }) => [row.device_id, row.device_days]),
    [
      ['device-b', 14],
      ['device-a', 70],
    ],
  )

  // --no-wait: the job, and how to fetch its report later.
  const later = await live.cli([...february, '--async', '--no-wait'])
  t.equal(later.code, 0, later.stderr)
  const id = /orchard jobs result ([0-9a-f-]{36})/.exec(later.stdout)?.[1]
  t.ok(id, later.stdout)
  await settleJobs(live.fixture.app)
  const fetched = await live.cli(['jobs', 'result', id!])
  t.equal(fetched.code, 0, fetched.stderr)
  t.equal(fetched.stdout, direct.stdout, 'orchard jobs result: the same report')
})
