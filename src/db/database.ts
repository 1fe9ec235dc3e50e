// Opens the database: a pg Pool when DATABASE_URL is set, else PGlite persisted in the
// data directory. Both give the same Kysely<Database>, the same SQL and the same
// migrations; values come back in the same JavaScript types (see the type parsers).
import { openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite'
import { Kysely, PostgresDialect, sql, type PostgresPool, type PostgresPoolClient } from 'kysely'
import pg from 'pg'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { PgliteDialect } from './pglite-dialect.js'
import { initdbInChild, needsInitdb } from './pglite-initdb.js'
import { defaultPgliteSharedBuffersMb } from './pglite-memory.js'
import { makePrivateDirectory, PrivateNodeFS, privateFileMode, repairPrivateEntries } from './private-files.js'
import type { Database } from './schema.js'
import { preparedLifetimeSeconds, StatementNamer } from './statement-names.js'

export type DatabaseKind = 'postgres' | 'pglite'

export interface PoolStats {
  /** Open connections (PGlite: its one session). */
  total: number
  idle: number
  /** Queries waiting for a connection. */
  waiting: number
}

export interface DatabaseHandle {
  readonly kind: DatabaseKind
  readonly db: Kysely<Database>
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>
  poolStats(): PoolStats
  close(): Promise<void>
}

const INT8_OID = 20
const BYTEA_OID = 17

// Values are returned alike on both backends: int8 as number (counts and ids stay far
// below 2^53), bytea as Buffer, timestamptz as Date, json/jsonb parsed.
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (oid === INT8_OID && format !== 'binary') return (value: string) => Number(value)
    return pg.types.getTypeParser(oid, format) as (value: string) => unknown
  },
}

export interface PostgresOptions {
  connectionString: string
  poolMax: number
  applicationName?: string
}

export function openPostgresDatabase(options: PostgresOptions): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolMax,
    application_name: options.applicationName ?? 'orchard',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // A connection lives at most an hour: its prepared statements are planned again on the next
    // one, with the tables' sizes of then (see preparingPool).
    maxLifetimeSeconds: preparedLifetimeSeconds,
    types: pgTypes,
  })
  // An idle client losing its connection (database restart) must not crash the process;
  // the next query gets a fresh connection or a clear error.
  pool.on('error', () => {})
  // A connection that dies while checked out (a server restart, pg_terminate_backend) emits
  // 'error' on its client, which the pool listens to only while the client is idle: unheard,
  // it would end the process. Every client gets a listener from its first moment; the
  // statement in flight, or the next one, fails with the error, and the pool drops the client.
  pool.on('connect', (client) => {
    client.on('error', () => {})
    // No JIT: Orchard's statements touch a few rows each, but the smart-group and targeting
    // predicates give plans estimated costs above jit_above_cost, and compiling them took
    // ~140 ms of PostgreSQL CPU for a 1-row declaration-set read (a TokenUpdate: p50 4 s at 50
    // enrolling devices). A SET rather than a startup option, which PgBouncer refuses; pg
    // queues it before the connection's first query. A server without JIT refuses it: ignored.
    client.query('set jit = off').catch(() => {})
  })
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) })
  let closed = false
  return {
    kind: 'postgres',
    db,
    async ping() {
      await sql`select 1`.execute(db)
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async close() {
      if (closed) return
      closed = true
      await db.destroy() // ends the pool
    },
  }
}

function preparingPool(pool: pg.Pool): PostgresPool {
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>()
  return {
    async connect() {
      const client = await pool.connect()
      let wrapper = wrappers.get(client)
      if (!wrapper) {
        const namer = new StatementNamer()
        const query = (text: string, values: unknown[]) => {
          const name = namer.nameFor(text, values.length)
          if (name === undefined) return client.query(text, values)
          return client.query({ name, text, values })
        }
        wrapper = {
          query: query as unknown as PostgresPoolClient['query'],
          release: () => client.release(),
        }
        wrappers.set(client, wrapper)
      }
      return wrapper
    },
    end: () => pool.end(),
  }
}

/** PGlite parsers/serializers that make it return what pg returns. */
export const pgliteTypeOptions = {
  parsers: {
    [BYTEA_OID]: (value: string) => Buffer.from(value.slice(2), 'hex'),
  },
  serializers: {
    // Like pg: a string is sent as is (storage code passes JSON text), anything else is stringified.
    [pgliteTypes.JSON]: (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value)),
    [pgliteTypes.JSONB]: (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value)),
  },
}

/** Wraps an open PGlite instance; `onClose` runs after the instance is closed. */
export function databaseFromPglite(pglite: PGlite, onClose: () => void = () => {}): DatabaseHandle {
  const dialect = new PgliteDialect(pglite)
  const db = new Kysely<Database>({ dialect })
  let closed = false
  return {
    kind: 'pglite',
    db,
    async ping() {
      if (pglite.closed) throw new OrchardError('database_unavailable', 'the embedded database is closed')
      await sql`select 1`.execute(db)
    },
    poolStats: () => ({ total: 1, idle: dialect.driver.busy ? 0 : 1, waiting: dialect.driver.waiting }),
    async close() {
      if (closed) return
      closed = true
      await db.destroy()
      if (!pglite.closed) await pglite.close()
      onClose()
    },
  }
}

/** What Orchard keeps in the data directory; start-up makes these owner-only. */
export const dataDirEntries = ['pglite', 'pglite.lock', 'secret.key'] as const

/**
 * PGlite persisted in `<dataDir>/pglite`. A lock file keeps a second Orchard process
 * from opening the same files (PGlite has no locking of its own and would corrupt them).
 * The data directory is owner-only (directories 0700, files 0600, whatever the umask):
 * start-up repairs what an older version or a copy left group- or world-accessible.
 */
export interface PgliteOptions {
  /** PostgreSQL shared_buffers inside the WASM memory, in MB (default defaultPgliteSharedBuffersMb; PGlite's own is 128). */
  sharedBuffersMb?: number
}

export async function openPgliteDatabase(dataDir: string, logger?: Logger, options: PgliteOptions = {}): Promise<DatabaseHandle> {
  makePrivateDirectory(dataDir)
  const directory = join(dataDir, 'pglite')
  const lockFile = join(dataDir, 'pglite.lock')
  takeLock(lockFile, directory)
  try {
    const repaired = repairPrivateEntries(dataDir, dataDirEntries)
    if (repaired.directories + repaired.files > 0) {
      const fields = { data_dir: dataDir, directories: repaired.directories, files: repaired.files }
      logger?.warn(fields, 'made the data directory owner-only (directories 0700, files 0600)')
    }
    if (needsInitdb(directory)) {
      logger?.info({ data_dir: dataDir }, 'creating the embedded database (initdb, in a child process)')
      await initdbInChild(directory)
    }
    // PGlite's default start parameters, plus the page cache: all of shared_buffers is touched at
    // start, so it is resident memory of the server from the first moment (128 MB by default).
    const startParams = [...PGlite.defaultStartParams, '-c', `shared_buffers=${options.sharedBuffersMb ?? defaultPgliteSharedBuffersMb}MB`]
    const pglite = await PGlite.create({ dataDir: directory, fs: new PrivateNodeFS(directory), startParams, ...pgliteTypeOptions })
    return databaseFromPglite(pglite, () => rmSync(lockFile, { force: true }))
  } catch (error) {
    rmSync(lockFile, { force: true })
    throw new OrchardError('database_unavailable', `cannot open the embedded database in ${directory}: ${(error as Error).message}`, { cause: error })
  }
}

function takeLock(lockFile: string, directory: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx', privateFileMode)
      writeSync(fd, String(process.pid))
      closeSync(fd)
      return
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = Number(readFileSync(lockFile, 'utf8').trim())
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        throw new OrchardError(
          'database_unavailable',
          `the embedded database in ${directory} is in use by process ${owner}; stop it, or use another ORCHARD_DATA_DIR or DATABASE_URL`,
        )
      }
      rmSync(lockFile, { force: true }) // stale: its process is gone
    }
  }
  throw new OrchardError('database_unavailable', `cannot take the lock ${lockFile}`)
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface DatabaseSettings {
  databaseUrl: string | null
  databasePoolMax: number
  dataDir: string
  pgliteSharedBuffersMb: number
}

export async function openDatabase(settings: DatabaseSettings, logger: Logger): Promise<DatabaseHandle> {
  if (settings.databaseUrl) {
    const handle = openPostgresDatabase({ connectionString: settings.databaseUrl, poolMax: settings.databasePoolMax })
    try {
      await handle.ping()
    } catch (error) {
      await handle.close()
      throw new OrchardError('database_unavailable', `cannot reach PostgreSQL at DATABASE_URL: ${(error as Error).message}`, { cause: error })
    }
    logger.info({ database: 'postgres', pool_max: settings.databasePoolMax }, 'database connected')
    return handle
  }
  const handle = await openPgliteDatabase(settings.dataDir, logger, { sharedBuffersMb: settings.pgliteSharedBuffersMb })
  logger.info({ database: 'pglite', data_dir: settings.dataDir }, 'embedded database opened')
  return handle
}
