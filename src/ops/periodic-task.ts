// A background task run every `intervalMs` (first run after one interval), never twice
// at once; stop() waits for a run in progress. Timers do not keep the process alive.
import type { Logger } from 'pino'

export interface PeriodicTask {
  stop(): Promise<void>
}

export function startPeriodicTask(name: string, intervalMs: number, task: () => Promise<void>, logger: Logger): PeriodicTask {
  let stopped = false
  let running: Promise<void> | null = null
  let timer: NodeJS.Timeout | null = null
  const schedule = () => {
    if (stopped) return
    timer = setTimeout(() => {
      running = task()
        .catch((error: unknown) => logger.error({ err: error, task: name }, `${name} failed`))
        .finally(() => {
          running = null
          schedule()
        })
    }, intervalMs)
    timer.unref()
  }
  schedule()
  return {
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      if (running) await running
    },
  }
}
