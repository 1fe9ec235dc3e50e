// The write gatherer (group commit in the application): a write goes at once when a slot is free;
// writes that queue while a batch runs go together in the next one; one key is never twice in a
// batch nor in two running batches; a failed batch is written again entry by entry, so only the
// bad entry fails. Driven by hand-released writes: no timers, no clock.
import t from 'tap'
import { gatherWrites } from '../../src/db/write-gatherer.js'

interface Entry {
  key: string
  value: number
  bad?: boolean
}

/** A writer whose writes finish when the test releases them; it records every batch. */
function heldWriter() {
  const batches: Entry[][] = []
  const waiting: Array<{ batch: Entry[]; release(): void }> = []
  const write = (batch: readonly Entry[]) =>
    new Promise<void>((resolve, reject) => {
      batches.push([...batch])
      waiting.push({ batch: [...batch], release: () => (batch.some((entry) => entry.bad) ? reject(new Error('bad entry in batch')) : resolve()) })
    })
  /** Lets the oldest running write finish, then lets the gatherer start what it starts next. */
  const releaseOldest = async () => {
    waiting.shift()!.release()
    for (let i = 0; i < 5; i++) await Promise.resolve()
  }
  return { batches, waiting, write, releaseOldest }
}

const settled = (promise: Promise<void>) =>
  promise.then(
    () => 'written',
    (error: Error) => `failed: ${error.message}`,
  )

t.test('a lone write goes at once; writes that queue meanwhile share the next batch', async (t) => {
  const writer = heldWriter()
  const write = gatherWrites<Entry>({ write: writer.write, key: (entry) => entry.key, inFlight: 1, maxBatch: 10 })
  const first = settled(write({ key: 'a', value: 1 }))
  t.same(writer.batches, [[{ key: 'a', value: 1 }]], 'written at once, alone')
  const rest = ['b', 'c', 'd'].map((key, i) => settled(write({ key, value: i + 2 })))
  t.equal(writer.batches.length, 1, 'nothing more starts while the slot is taken')
  await writer.releaseOldest()
  t.equal(await first, 'written')
  t.same(
    writer.batches[1]!.map((entry) => entry.key),
    ['b', 'c', 'd'],
    'the three that queued go in one batch, in arrival order',
  )
  await writer.releaseOldest()
  t.same(await Promise.all(rest), ['written', 'written', 'written'])
  t.equal(writer.waiting.length, 0)
})

t.test('one key is never twice in a batch, and its writes keep their order', async (t) => {
  const writer = heldWriter()
  const write = gatherWrites<Entry>({ write: writer.write, key: (entry) => entry.key, inFlight: 1, maxBatch: 10 })
  const all = [settled(write({ key: 'a', value: 1 }))]
  all.push(
    ...[
      { key: 'a', value: 2 },
      { key: 'b', value: 3 },
      { key: 'a', value: 4 },
      { key: 'c', value: 5 },
    ].map((entry) => settled(write(entry))),
  )
  await writer.releaseOldest()
  t.same(writer.batches[1], [
    { key: 'a', value: 2 },
    { key: 'b', value: 3 },
    { key: 'c', value: 5 },
  ])
  await writer.releaseOldest()
  t.same(writer.batches[2], [{ key: 'a', value: 4 }], "the key's later write waits for the next batch")
  await writer.releaseOldest()
  t.same(await Promise.all(all), ['written', 'written', 'written', 'written', 'written'])
})

t.test("a key's write never runs beside the same key's earlier one, even with a slot free", async (t) => {
  const writer = heldWriter()
  const write = gatherWrites<Entry>({ write: writer.write, key: (entry) => entry.key, inFlight: 2, maxBatch: 10 })
  const all = [settled(write({ key: 'a', value: 1 })), settled(write({ key: 'a', value: 2 }))]
  t.same(writer.batches, [[{ key: 'a', value: 1 }]], 'the second write of a waits: its key is being written')
  all.push(settled(write({ key: 'b', value: 3 })))
  t.same(writer.batches[1], [{ key: 'b', value: 3 }], 'another key takes the free slot')
  await writer.releaseOldest()
  t.same(writer.batches[2], [{ key: 'a', value: 2 }], 'once the first is written, the second goes')
  while (writer.waiting.length > 0) await writer.releaseOldest()
  t.same(await Promise.all(all), ['written', 'written', 'written'])
})

t.test('a batch holds at most maxBatch entries', async (t) => {
  const writer = heldWriter()
  const write = gatherWrites<Entry>({ write: writer.write, key: (entry) => entry.key, inFlight: 1, maxBatch: 3 })
  const all = Array.from({ length: 8 }, (_, i) => settled(write({ key: `k${i}`, value: i })))
  while (writer.waiting.length > 0) await writer.releaseOldest()
  t.same(
    writer.batches.map((batch) => batch.length),
    [1, 3, 3, 1],
  )
  t.equal((await Promise.all(all)).filter((outcome) => outcome === 'written').length, 8)
})

t.test('a failed batch is written again entry by entry: only the bad entry fails', async (t) => {
  const writer = heldWriter()
  const write = gatherWrites<Entry>({ write: writer.write, key: (entry) => entry.key, inFlight: 1, maxBatch: 10 })
  const first = settled(write({ key: 'a', value: 1 }))
  const good1 = settled(write({ key: 'b', value: 2 }))
  const bad = settled(write({ key: 'c', value: 3, bad: true }))
  const good2 = settled(write({ key: 'd', value: 4 }))
  await writer.releaseOldest() // a
  await writer.releaseOldest() // b, c, d together: fails
  await writer.releaseOldest() // b alone
  await writer.releaseOldest() // c alone: fails
  await writer.releaseOldest() // d alone
  t.same(
    writer.batches.map((batch) => batch.map((entry) => entry.key).join('')),
    ['a', 'bcd', 'b', 'c', 'd'],
  )
  t.same(await Promise.all([first, good1, bad, good2]), ['written', 'written', 'failed: bad entry in batch', 'written'])
  t.equal(writer.waiting.length, 0)
})

t.test('a second batch starts beside a running one only when parallelFrom entries wait', async (t) => {
  const writer = heldWriter()
  const write = gatherWrites<Entry>({ write: writer.write, key: (entry) => entry.key, inFlight: 2, maxBatch: 10, parallelFrom: 3 })
  const all = [settled(write({ key: 'a', value: 1 }))]
  all.push(settled(write({ key: 'b', value: 2 })), settled(write({ key: 'c', value: 3 })))
  t.equal(writer.batches.length, 1, 'two waiting: they wait for the running batch')
  all.push(settled(write({ key: 'd', value: 4 })))
  t.same(
    writer.batches.map((batch) => batch.map((entry) => entry.key).join('')),
    ['a', 'bcd'],
    'three waiting: a second batch runs beside the first',
  )
  all.push(settled(write({ key: 'e', value: 5 })))
  t.equal(writer.batches.length, 2, 'no third slot')
  await writer.releaseOldest()
  t.equal(writer.batches.length, 2, 'a slot is free but one batch still runs: the lone entry waits for it')
  await writer.releaseOldest()
  t.same(writer.batches[2], [{ key: 'e', value: 5 }], 'nothing runs: the lone entry goes')
  while (writer.waiting.length > 0) await writer.releaseOldest()
  t.equal((await Promise.all(all)).filter((outcome) => outcome === 'written').length, 5)
})
