// The CLI against the real jobs feature: a bulk command over more targets than
// ORCHARD_JOB_THRESHOLD answers 202, and `orchard commands send` follows the job to its end
// (each wait between polls lets the app's job runner finish what it started: no sleeping).
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
