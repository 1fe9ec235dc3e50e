// PostgreSQL's view of a bench phase: the statements that took its time (pg_stat_statements,
// when the server preloads it: shared_preload_libraries = 'pg_stat_statements') and the WAL it
// wrote. Without the extension the statements are left out and said so; WAL is always there.
import type pg from 'pg'

export interface StatementRow {
  calls: number
  totalMs: number
  meanMs: number
  rows: number
  query: string
}

export interface PhaseStatements {
  /** Why there are no statement figures, or null when there are. */
  unavailable: string | null
  /** Starts a phase: statement counters reset, WAL position kept. */
  start(): Promise<() => Promise<{ walBytes: number; calls: number; top: StatementRow[] }>>
}

export async function phaseStatements(client: pg.Client): Promise<PhaseStatements> {
  let unavailable: string | null = null
  try {
    await client.query('create extension if not exists pg_stat_statements')
    await client.query('select 1 from pg_stat_statements limit 1')
  } catch (error) {
    unavailable = `pg_stat_statements unavailable (${(error as Error).message.split('\n')[0]})`
  }
  const lsn = async () => (await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn
  return {
    unavailable,
    async start() {
      if (!unavailable) await client.query('select pg_stat_statements_reset()')
      const from = await lsn()
      return async () => {
        const to = await lsn()
        const { rows: wal } = await client.query<{ bytes: string }>('select pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint::text as bytes', [to, from])
        let top: StatementRow[] = []
        let calls = 0
        if (!unavailable) {
          const { rows: sum } = await client.query<{ calls: string }>(
            `select coalesce(sum(calls), 0)::text as calls from pg_stat_statements
             where dbid = (select oid from pg_database where datname = current_database()) and query not like 'select pg_current_wal_lsn()%'`,
          )
          calls = Number(sum[0]!.calls)
          const { rows } = await client.query<{ calls: string; total: number; mean: number; rows: string; query: string }>(
            // Statements planned and not (yet) run have no calls; planning counts only with track_planning on.
            `select calls::text, total_exec_time + total_plan_time as total, (total_exec_time + total_plan_time) / greatest(calls, 1) as mean, rows::text, query
             from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
             order by total_exec_time + total_plan_time desc limit ${Number(process.env['BENCH_STATEMENTS_TOP'] ?? 10)}`,
          )
          top = rows.map((row) => ({
            calls: Number(row.calls),
            totalMs: row.total,
            meanMs: row.mean,
            rows: Number(row.rows),
            query: row.query.replace(/\s+/g, ' ').slice(0, 140),
          }))
        }
        return { walBytes: Number(wal[0]!.bytes), calls, top }
      }
    },
  }
}

/** The phase's statements as bench lines, and WAL per unit. */
export function statementLines(label: string, result: { walBytes: number; calls: number; top: StatementRow[] }, units: number, unit: string): string[] {
  const statements = result.calls > 0 ? `, ${(result.calls / units).toFixed(1)} statements per ${unit} (begin and commit included)` : ''
  const lines = [`${label}: WAL ${(result.walBytes / units / 1024).toFixed(1)} KiB per ${unit}${statements}`]
  for (const row of result.top)
    lines.push(
      `  ${row.totalMs.toFixed(0).padStart(7)} ms  ${String(row.calls).padStart(6)} calls  ${row.meanMs.toFixed(3).padStart(7)} ms/call  ${(row.rows / Math.max(1, row.calls)).toFixed(1).padStart(6)} rows/call  ${row.query}`,
    )
  return lines
}
