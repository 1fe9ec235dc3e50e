// `npx tsx scripts/bench-push.ts [--count 100000] [--concurrency 1000]`
// Push benchmark: N enrollments (distinct tokens and PushMagics) pushed with the production
// APNs sender (src/push/apns-client.ts) to the fake APNs (test/helpers/fake-apns.ts) running
// in a child process on loopback, so that the figures are the sender's alone: pushes/s, CPU
// and peak RSS of this process. Target: >= 10,000 pushes/s, < 300 MB RSS.
// Peak RSS is mostly V8 heap sizing: with the default heap limit (from the machine's RAM) V8
// lets old space grow to ~4x the live heap before a full GC; a limit under 2 GB lowers that
// factor: `NODE_OPTIONS=--max-old-space-size=1024 npx tsx scripts/bench-push.ts`.
// Not part of `npm test`: figures depend on the machine.
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { cpus } from 'node:os'
import { getHeapSpaceStatistics } from 'node:v8'
import { fileURLToPath } from 'node:url'
import { createApnsSender, type PushTarget } from '../src/push/apns-client.js'
import { createTestCa, mintPushCertificate, startFakeApns, type FakeApns } from '../test/helpers/fake-apns.js'

interface ServeRequest {
  topic: string
  clientCaPem: string
}
interface ServerReplies {
  ready: { url: string; caPem: string }
  usage: { cpuSeconds: number; received: number; maxInFlight: number }
}

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i]!
  if (!arg.startsWith('--')) continue
  const next = process.argv[i + 1]
  if (next === undefined || next.startsWith('--')) args.set(arg.slice(2), '')
  else args.set(arg.slice(2), process.argv[++i]!)
}

if (args.has('serve')) await serve()
else await bench()

/** Child process: the fake APNs, answering 200 to every valid push, reporting its CPU on request. */
async function serve(): Promise<void> {
  let fake: FakeApns | undefined
  // A listener's returned promise would be dropped by the emitter: handle each message as its own task.
  const onMessage = async (message: ServeRequest | 'usage' | 'stop') => {
    if (message === 'usage') {
      const cpu = process.cpuUsage()
      const usage: ServerReplies['usage'] = {
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        received: fake?.stats.received ?? 0,
        maxInFlight: fake?.stats.maxInFlight ?? 0,
      }
      process.send!({ usage })
    } else if (message === 'stop') {
      await fake?.close()
      process.exit(0)
    } else {
      fake = await startFakeApns({ topic: message.topic, clientCaPem: message.clientCaPem, record: false })
      const ready: ServerReplies['ready'] = { url: fake.url, caPem: fake.caPem }
      process.send!({ ready })
    }
  }
  process.on('message', (message: ServeRequest | 'usage' | 'stop') => void onMessage(message))
  process.on('disconnect', () => process.exit(0))
}

/** Sends a message to the fake APNs process and resolves with its reply of that kind. */
function ask<K extends keyof ServerReplies>(child: ChildProcess, message: ServeRequest | 'usage', key: K): Promise<ServerReplies[K]> {
  return new Promise((resolve, reject) => {
    const onMessage = (reply: Partial<ServerReplies>) => {
      const value = reply[key]
      if (value === undefined) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(value)
    }
    const onExit = (code: number | null) => reject(new Error(`fake APNs exited (${code})`))
    child.on('message', onMessage)
    child.once('exit', onExit)
    child.send(message)
  })
}

async function bench(): Promise<void> {
  const count = Number(args.get('count') || 100_000)
  const concurrency = args.get('concurrency') ? Number(args.get('concurrency')) : undefined
  const mb = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MB`

  // A push certificate as Apple issues it: RSA-2048 client certificate, topic in the subject UID.
  const pushCa = await createTestCa('Bench push CA')
  const identity = await mintPushCertificate(pushCa)
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const server = await ask(child, { topic: identity.topic, clientCaPem: pushCa.pem } satisfies ServeRequest, 'ready')

  // Tokens as slices of one buffer, as a database driver hands them out (pool slices), not
  // one allocation each as randomBytes(32) makes: that alone would add ~40 MB of RSS here.
  const tokenBytes = randomBytes(32 * count)
  const targets: PushTarget[] = Array.from({ length: count }, (_, i) => ({
    enrollmentId: `bench-${i}`,
    token: tokenBytes.subarray(i * 32, i * 32 + 32),
    pushMagic: randomUUID().toUpperCase(),
  }))
  const sender = createApnsSender({
    topic: identity.topic,
    certificatePem: identity.certificatePem,
    privateKeyPem: identity.privateKeyPem,
    endpoint: server.url,
    ca: server.caPem,
    ...(concurrency !== undefined ? { concurrency } : {}),
  })

  console.log(`node ${process.version}, ${cpus().length} cores; fake APNs in child process ${child.pid} on ${server.url}`)
  // Connection set-up (TLS handshake) is not part of the rate.
  const warm = await sender.send([{ enrollmentId: 'warm-up', token: randomBytes(32), pushMagic: randomUUID() }])
  if (!warm[0]!.ok) throw new Error(`warm-up push failed: ${JSON.stringify(warm[0])}`)

  const before = await ask(child, 'usage', 'usage')
  const rssBefore = process.memoryUsage().rss
  let peak = { rss: rssBefore, heap: '' }
  const sampler = setInterval(() => {
    const memory = process.memoryUsage()
    if (memory.rss <= peak.rss) return
    const old = getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')
    peak = { rss: memory.rss, heap: `V8 heap ${mb(memory.heapTotal)} (old space ${mb(old?.space_used_size ?? 0)} used of ${mb(old?.space_size ?? 0)})` }
  }, 10)
  const cpuStart = process.cpuUsage()
  const start = performance.now()
  const outcomes = await sender.send(targets)
  const seconds = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuStart)
  clearInterval(sampler)
  const after = await ask(child, 'usage', 'usage')

  const failed = outcomes.filter((o) => !o.ok)
  const inOrder = outcomes.every((o, i) => o.enrollmentId === targets[i]!.enrollmentId)
  const rate = count / seconds
  const senderCpu = (cpu.user + cpu.system) / 1e6
  const serverCpu = after.cpuSeconds - before.cpuSeconds
  console.log(
    `pushes:  ${count.toLocaleString('en')} in ${seconds.toFixed(2)} s = ${Math.round(rate).toLocaleString('en')} pushes/s (${failed.length} failed, results in order: ${inOrder})`,
  )
  console.log(
    `sender:  cpu ${senderCpu.toFixed(2)} s (${((senderCpu / count) * 1e6).toFixed(0)} µs/push); rss ${mb(rssBefore)} before, peak ${mb(peak.rss)}; at the peak ${peak.heap}`,
  )
  console.log(
    `server:  cpu ${serverCpu.toFixed(2)} s (${((serverCpu / count) * 1e6).toFixed(0)} µs/push); ${after.received - before.received} requests, at most ${after.maxInFlight} in flight`,
  )
  console.log(`target:  >= 10,000 pushes/s ${rate >= 10_000 ? 'met' : 'MISSED'}; peak RSS < 300 MB ${peak.rss < 300 * 1048576 ? 'met' : 'MISSED'}`)
  if (failed.length > 0) console.log(`first failure: ${JSON.stringify(failed[0])}`)

  await sender.close()
  child.send('stop')
  await new Promise((resolve) => child.once('exit', resolve))
}
