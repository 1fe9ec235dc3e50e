// What the MDM benches share: latency percentiles, CPU of the server and PostgreSQL processes
// from /proc, a worker pool, and the two databases a bench runs the server on.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PerformanceObserver } from 'node:perf_hooks'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'

export const postgresAdminUrl = process.env['TEST_DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres'

/**
 * The background loops off, for a bench that runs Orchard in its own process: the figures are
 * then its requests' (re-push, webhooks, blueprint checks, the OS catalogue, the inventory refresh).
 */
export const quietServerEnv = {
  ORCHARD_REPUSH_LOOP_SECONDS: '0',
  ORCHARD_WEBHOOK_WORKER: 'false',
  ORCHARD_BLUEPRINT_CHECK_HOURS: '0',
  ORCHARD_OS_CATALOGUE_SECONDS: '0',
  ORCHARD_INVENTORY_REFRESH_HOURS: '0',
}

/** The V8 flags `npm start` and the Docker image run the server with (package.json, Dockerfile). */
export const serverNodeFlags = ['--max-old-space-size=1024', '--max-semi-space-size=32']

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export function latencySummary(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b)
  return `p50 ${percentile(sorted, 50).toFixed(2)} ms, p95 ${percentile(sorted, 95).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms`
}

/** CPU seconds (user + system) used so far by the given processes, from /proc. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      // the process ended
    }
  }
  return ticks / 100
}

export function postgresPids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres'
      } catch {
        return false
      }
    })
    .map(Number)
}

export async function runPool<T>(items: T[], workers: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(workers, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!)
    }),
  )
}

/**
 * Starts counting this process's garbage collection pauses; stopping gives a summary. A latency
 * tail of requests served in the bench's own process is often a GC pause, not the request.
 */
export function gcPauses(): () => string {
  const pauses: number[] = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration)
  })
  observer.observe({ entryTypes: ['gc'] })
  return () => {
    observer.disconnect()
    const longest = pauses.length > 0 ? Math.max(...pauses) : 0
    return `${pauses.length} GC pauses in this process, ${pauses.filter((ms) => ms >= 2).length} of them 2 ms or longer, the longest ${longest.toFixed(1)} ms`
  }
}

export async function timed<T>(samples: number[], request: () => Promise<T>): Promise<T> {
  const start = performance.now()
  const result = await request()
  samples.push(performance.now() - start)
  return result
}

export interface Backend {
  name: 'postgres' | 'pglite'
  env: Record<string, string>
  /** Runs SQL against the database while the server is stopped (PGlite has one owner). */
  withDatabase(fn: (query: (text: string) => Promise<void>) => Promise<void>): Promise<void>
  databasePids(): number[]
}

/** A fresh database of this name on the test PostgreSQL server (dropped first if it exists). */
export async function postgresBackend(name = 'orchard_bench'): Promise<Backend> {
  const admin = new pg.Client({ connectionString: postgresAdminUrl })
  await admin.connect()
  await admin.query(`drop database if exists ${name} with (force)`)
  await admin.query(`create database ${name}`)
  await admin.end()
  const url = new URL(postgresAdminUrl)
  url.pathname = `/${name}`
  return {
    name: 'postgres',
    env: { DATABASE_URL: url.toString(), DATABASE_POOL_MAX: process.env['BENCH_POOL_MAX'] ?? '10' },
    async withDatabase(fn) {
      const client = new pg.Client({ connectionString: url.toString() })
      await client.connect()
      await fn(async (text) => void (await client.query(text)))
      await client.end()
    },
    databasePids: postgresPids,
  }
}

export function pgliteBackend(): Backend {
  const dataDir = mkdtempSync(join(tmpdir(), 'orchard-bench-'))
  return {
    name: 'pglite',
    env: { ORCHARD_DATA_DIR: dataDir },
    async withDatabase(fn) {
      const db = await PGlite.create(join(dataDir, 'pglite'))
      await fn(async (text) => void (await db.exec(text)))
      await db.close()
    },
    databasePids: () => [], // PGlite runs inside the server process: its CPU is the server's
  }
}
