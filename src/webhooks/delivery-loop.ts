// The webhook worker's loop: delivery rounds on a timer, woken early when events are written.
import type { Logger } from 'pino'

export interface DeliveryLoop {
  start(intervalMs: number): void
  stop(): Promise<void>
  /** Wakes the loop without waiting for it: at once when idle, right after the current round otherwise. */
  kick(): void
}

interface LoopState {
  stopped: boolean
  timer: NodeJS.Timeout | null
  running: Promise<void> | null
  /** Run another round as soon as this one ends (kicked, or the batch was full). */
  again: boolean
  intervalMs: number
}

/**
 * Runs `deliverDue` every `intervalMs` once started, at once again after a round that handled
 * a whole batch (`batchSize`), and whenever kicked; never two rounds at a time.
 */
export function createDeliveryLoop(deliverDue: () => Promise<{ attempted: number }>, batchSize: number, log: Logger): DeliveryLoop {
  let loop: LoopState | null = null

  function schedule(state: LoopState, delayMs: number): void {
    if (state.stopped) return
    if (state.timer) clearTimeout(state.timer)
    state.timer = setTimeout(() => runRounds(state), delayMs)
    state.timer.unref() // the loop must not keep a stopping process alive
  }

  function runRounds(state: LoopState): void {
    state.timer = null
    if (state.stopped || state.running) return
    state.running = (async () => {
      do {
        state.again = false
        const round = await deliverDue()
        if (round.attempted >= batchSize) state.again = true
      } while (state.again && !state.stopped)
    })()
      .catch((error: unknown) => log.error({ err: error }, 'webhook delivery round failed'))
      .finally(() => {
        state.running = null
        schedule(state, state.again ? 0 : state.intervalMs)
      })
  }

  return {
    start(intervalMs) {
      if (loop && !loop.stopped) return
      loop = { stopped: false, timer: null, running: null, again: false, intervalMs }
      schedule(loop, intervalMs)
    },

    async stop() {
      const state = loop
      if (!state) return
      state.stopped = true
      if (state.timer) clearTimeout(state.timer)
      state.timer = null
      if (state.running) await state.running
    },

    kick() {
      if (!loop || loop.stopped) return
      if (loop.running) loop.again = true
      else schedule(loop, 0)
    },
  }
}
