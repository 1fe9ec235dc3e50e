import t from 'tap'
import { startPeriodicTask } from '../../src/ops/periodic-task.js'
import { testLogger } from '../helpers/app.js'

// The task's timers are unref'd (they must not keep a server process alive), so each test
// holds the event loop open itself until it is done.
function keepAlive(t: { teardown(fn: () => void): void }) {
  const handle = setInterval(() => {}, 60_000)
  t.teardown(() => clearInterval(handle))
}

t.test('runs again and again, never twice at once, and stop() waits for the run in progress', async (t) => {
  keepAlive(t)
  let runs = 0
  let concurrent = 0
  let maxConcurrent = 0
  let thirdStarted!: () => void
  const third = new Promise<void>((resolve) => (thirdStarted = resolve))
  let releaseThird!: () => void
  const thirdMayEnd = new Promise<void>((resolve) => (releaseThird = resolve))
  const task = startPeriodicTask(
    'test',
    1,
    async () => {
      runs++
      concurrent++
      maxConcurrent = Math.max(maxConcurrent, concurrent)
      if (runs === 3) {
        thirdStarted()
        await thirdMayEnd
      }
      concurrent--
    },
    testLogger(),
  )
  await third
  let stopped = false
  const stopping = task.stop().then(() => (stopped = true))
  await Promise.resolve()
  t.equal(stopped, false, 'stop waits for the run in progress')
  releaseThird()
  await stopping
  t.equal(runs, 3, 'no run after stop')
  t.equal(maxConcurrent, 1)
})

t.test('a failing run is logged and the task goes on', async (t) => {
  keepAlive(t)
  let runs = 0
  let secondRun!: () => void
  const second = new Promise<void>((resolve) => (secondRun = resolve))
  const task = startPeriodicTask(
    'failing',
    1,
    async () => {
      runs++
      if (runs === 1) throw new Error('boom')
      secondRun()
    },
    testLogger(),
  )
  await second
  await task.stop()
  t.ok(runs >= 2)
})
