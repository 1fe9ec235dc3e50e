// A Kysely dialect for PGlite (Postgres compiled to WASM, running in this process).
// PGlite has exactly one session, so "acquiring a connection" takes a mutex: a transaction
// holds it from BEGIN to COMMIT and no other query can slip into it. SQL generation,
// introspection and the migration lock are Postgres's own (PostgresAdapter).
import type { PGlite, Results } from '@electric-sql/pglite'
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { PreparedStatements } from './pglite-prepared.js'

export class PgliteDialect implements Dialect {
  readonly driver: PgliteDriver

  constructor(pglite: PGlite) {
    this.driver = new PgliteDriver(pglite)
  }

  createAdapter(): DialectAdapter {
    return new PostgresAdapter()
  }

  createDriver(): Driver {
    return this.driver
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler()
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's Dialect interface declares it so
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new PostgresIntrospector(db)
  }
}

class PgliteDriver implements Driver {
  readonly #connection: PgliteConnection
  readonly #mutex = new Mutex()

  constructor(pglite: PGlite) {
    this.#connection = new PgliteConnection(pglite)
  }

  /** Callers waiting for the single session: the "pool waiting" gauge. */
  get waiting(): number {
    return this.#mutex.waiting
  }

  get busy(): boolean {
    return this.#mutex.locked
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.#mutex.lock()
    return this.#connection
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let statement = 'begin'
    if (settings.isolationLevel) statement += ` isolation level ${settings.isolationLevel}`
    if (settings.accessMode) statement += ` ${settings.accessMode}`
    await connection.executeQuery(CompiledQuery.raw(statement))
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdentifier(name)}`))
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdentifier(name)}`))
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdentifier(name)}`))
  }

  async releaseConnection(): Promise<void> {
    this.#mutex.unlock()
  }

  async destroy(): Promise<void> {
    // The owner of the PGlite instance closes it (see openPgliteDatabase).
  }
}

class PgliteConnection implements DatabaseConnection {
  readonly #pglite: PGlite
  readonly #statements: PreparedStatements

  constructor(pglite: PGlite) {
    this.#pglite = pglite
    this.#statements = new PreparedStatements(pglite)
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const parameters = [...compiledQuery.parameters]
    const result: Results<R> = await this.#statements.run<R>(compiledQuery.sql, parameters)
    const base = { rows: result.rows }
    if (result.affectedRows !== undefined && isWriteQuery(compiledQuery)) {
      return { ...base, numAffectedRows: BigInt(result.affectedRows) }
    }
    return base
  }

  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries are not supported on PGlite')
  }
}

function isWriteQuery(query: CompiledQuery): boolean {
  const kind = query.query.kind
  return kind === 'InsertQueryNode' || kind === 'UpdateQueryNode' || kind === 'DeleteQueryNode' || kind === 'MergeQueryNode'
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** FIFO mutex; the waiting count feeds the database pool metrics. */
class Mutex {
  #locked = false
  readonly #queue: Array<() => void> = []

  get waiting(): number {
    return this.#queue.length
  }

  get locked(): boolean {
    return this.#locked
  }

  lock(): Promise<void> {
    if (!this.#locked) {
      this.#locked = true
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#queue.push(resolve))
  }

  unlock(): void {
    const next = this.#queue.shift()
    if (next) next()
    else this.#locked = false
  }
}
