// Group commit in the application: writes that arrive while earlier ones are being written are
// gathered and written together, one statement and one commit for many. A write never waits for
// a timer: when a slot is free it goes at once, alone, so a quiet server answers as fast as
// before; under load each statement carries what queued meanwhile. A busy fleet's DDM status
// reports spent more on the statement's fixed cost (protocol, executor start, commit) than on
// their rows.

export interface WriteGathererOptions<T> {
  /** Writes a batch (entries of distinct keys) in one statement; all or nothing. */
  write(batch: readonly T[]): Promise<void>
  /**
   * Entries of one key never share a batch (an upsert cannot touch a row twice in a statement)
   * nor run beside each other: a key's entries are written in arrival order, one after another.
   */
  key(entry: T): string
  /** Batches written at the same time at most (each takes a pooled connection). */
  inFlight: number
  /** Entries per batch at most. */
  maxBatch: number
  /**
   * Entries waiting before a second (third...) batch starts beside a running one: a lone entry
   * waits for the running batch to finish and goes with the others that queue meanwhile, as the
   * fixed cost of a statement is shared by the batch (default 1).
   */
  parallelFrom?: number
}

interface Pending<T> {
  entry: T
  resolve(): void
  reject(error: unknown): void
}

/**
 * A function that writes one entry and resolves once it is committed (or rejects with its own
 * error). When a batch fails, its entries are written again one by one, so one bad entry (a
 * device deleted meanwhile) fails only its own request.
 */
export function gatherWrites<T>(options: WriteGathererOptions<T>): (entry: T) => Promise<void> {
  const queue: Pending<T>[] = []
  /** Keys of the entries being written. */
  const writing = new Set<string>()
  let running = 0

  /** Writes a batch; gives each entry's outcome (an error, or undefined when written). */
  async function writeBatch(batch: readonly Pending<T>[]): Promise<unknown[]> {
    try {
      await options.write(batch.map((pending) => pending.entry))
      return batch.map(() => undefined)
    } catch (error) {
      if (batch.length === 1) return [error ?? new Error('write failed')]
    }
    const outcomes: unknown[] = []
    for (const pending of batch) outcomes.push(...(await writeBatch([pending])))
    return outcomes
  }

  function takeBatch(): Pending<T>[] {
    const batch: Pending<T>[] = []
    for (let i = 0; i < queue.length && batch.length < options.maxBatch;) {
      const key = options.key(queue[i]!.entry)
      if (writing.has(key)) {
        i++
        continue
      }
      writing.add(key)
      batch.push(queue.splice(i, 1)[0]!)
    }
    return batch
  }

  function pump(): void {
    while (running < options.inFlight && queue.length >= (running === 0 ? 1 : (options.parallelFrom ?? 1))) {
      const batch = takeBatch()
      if (batch.length === 0) return // what waits is of keys being written
      running++
      void writeBatch(batch).then((outcomes) => {
        // The slot is free before anyone hears back: a write made right after this one's answer
        // must not find it still taken.
        running--
        for (const pending of batch) writing.delete(options.key(pending.entry))
        pump()
        batch.forEach((pending, i) => (outcomes[i] === undefined ? pending.resolve() : pending.reject(outcomes[i])))
      })
    }
  }

  return (entry) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ entry, resolve, reject })
      pump()
    })
}
