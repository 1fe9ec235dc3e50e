// Which statements a database session prepares (names), and under which name. One policy for
// both backends: a pg connection and PGlite's single session each keep a StatementNamer.
import { createHash } from 'node:crypto'

/**
 * Statements that run on every device request start with this comment: they are prepared
 * once per session (named statements) from their first use, so the server parses and plans
 * them once instead of on every request. Other statements with parameters are prepared from
 * their second use in a session, up to preparedPerConnection of them.
 */
export const preparedStatement = '/* prepared */'

/**
 * Statements with parameters a session prepares by itself at most (the marked ones come on
 * top). Past it, a new text runs unnamed, parsed and planned each time; the session's
 * lifetime (an hour) starts the count again. pgx, NanoMDM's driver, caches 512 the same way.
 */
export const preparedPerConnection = 128

/** Texts a session counts uses of at most (texts that vary, e.g. long IN lists, come and go). */
const trackedPerConnection = 4_096

/** How long a session keeps its prepared statements: they are planned again on the next one. */
export const preparedLifetimeSeconds = 3_600

/**
 * Uses of a statement in one session after which it is prepared again, under a new name.
 * PostgreSQL keeps a prepared statement's generic plan until a table it reads is analysed; a
 * plan made while a table was nearly empty (a new installation, the first devices reporting)
 * scans the table sequentially, and without autovacuum it kept doing so as the table grew:
 * DDM status reports slowed from 1.9 to 3.8 ms of PostgreSQL CPU each between 3,000 and 10,000
 * devices (a sequential scan of device_declaration_status per report). At most four names per
 * statement and session; the session's lifetime bounds the rest.
 */
export const replanAfterUses = [100, 1_000, 10_000] as const

const statementNames = new Map<string, string>()

function statementName(text: string): string {
  let name = statementNames.get(text)
  if (!name) {
    name = `orchard_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`
    if (statementNames.size >= 10_000) statementNames.clear()
    statementNames.set(text, name)
  }
  return name
}

/** The name a statement is prepared under at its `uses`-th use in a session. */
export function preparedStatementName(text: string, uses: number): string {
  const generation = replanAfterUses.filter((limit) => uses > limit).length
  return generation === 0 ? statementName(text) : `${statementName(text)}_${generation}`
}

/**
 * One session's choice of names. Planning was most of the PostgreSQL CPU of an enrollment's
 * twenty statements (0.2-3 ms each, the targeting ones the most), and of every admin call. A
 * statement used once (a one-off text) stays unnamed; one without parameters (begin, commit,
 * set) is never named.
 */
export class StatementNamer {
  readonly #uses = new Map<string, number>()
  readonly #names = new Set<string>()
  #unmarkedNames = 0

  /** The name to run `text` under in this session, or undefined to run it unnamed. */
  nameFor(text: string, parameterCount: number): string | undefined {
    const marked = text.startsWith(preparedStatement)
    if (!marked && parameterCount === 0) return undefined
    const seen = this.#uses.get(text)
    if (seen === undefined && this.#uses.size >= trackedPerConnection) return undefined
    const count = (seen ?? 0) + 1
    this.#uses.set(text, count)
    if (!marked && count < 2) return undefined
    const name = preparedStatementName(text, count)
    if (!this.#names.has(name)) {
      if (!marked && this.#unmarkedNames >= preparedPerConnection) return undefined
      this.#names.add(name)
      if (!marked) this.#unmarkedNames++
    }
    return name
  }
}
