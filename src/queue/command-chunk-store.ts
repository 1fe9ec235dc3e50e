// Queueing one command for its targets a chunk at a time (a bulk command job). Each chunk is
// idempotent: the command row is stored by the first chunk and kept by the others, and a
// target already queued for it stays as it is (queued once, whatever it answered since), so
// a chunk done again by the replica that took a job over queues nothing twice.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { repushDueBy } from './queue-sql.js'
import type { NewCommand, TargetOutcome } from './command-queue-store.js'

export interface CommandChunkStore {
  /** The command and these targets of it, in one transaction; answers each target's outcome. */
  enqueueChunk(command: NewCommand, targets: readonly string[]): Promise<Array<{ enrollmentId: string; outcome: TargetOutcome }>>
  /** Whether a command with this UUID exists (a job's command must be new). */
  commandExists(uuid: string): Promise<boolean>
}

export function createCommandChunkStore(db: Kysely<Database>, options: { repushAfterSeconds: number }): CommandChunkStore {
  const repush = repushDueBy(options.repushAfterSeconds)
  return {
    async enqueueChunk(command, targets) {
      const unique = [...new Set(targets)]
      return db.transaction().execute(async (trx) => {
        const known = unique.length ? await trx.selectFrom('enrollments').select(['id', 'enabled']).where('id', 'in', unique).execute() : []
        const enabled = new Map(known.map((row) => [row.id, row.enabled]))
        const queued = unique.filter((id) => enabled.get(id) === true)
        const outcomeOf = (enrollmentId: string): TargetOutcome =>
          !enabled.has(enrollmentId) ? 'unknown_enrollment' : enabled.get(enrollmentId) ? 'queued' : 'enrollment_disabled'
        const outcomes = unique.map((enrollmentId) => ({ enrollmentId, outcome: outcomeOf(enrollmentId) }))
        if (queued.length === 0) return outcomes
        await trx
          .insertInto('commands')
          .values({
            uuid: command.uuid,
            request_type: command.requestType,
            payload: command.payload,
            priority: command.priority,
            expires_at: command.expiresAt,
            tenant_id: command.tenantId ?? null,
          })
          .onConflict((oc) => oc.column('uuid').doNothing())
          .execute()
        await trx.updateTable('enrollments').set({ next_repush_at: repush.next }).where('id', 'in', queued).where(repush.isLater).execute()
        await trx
          .insertInto('command_targets')
          .values(
            queued.map((enrollmentId) => ({
              enrollment_id: enrollmentId,
              command_uuid: command.uuid,
              priority: command.priority,
              expires_at: command.expiresAt,
            })),
          )
          .onConflict((oc) => oc.columns(['enrollment_id', 'command_uuid']).doNothing())
          .execute()
        return outcomes
      })
    },

    async commandExists(uuid) {
      return (await db.selectFrom('commands').select('uuid').where('uuid', '=', uuid).executeTakeFirst()) !== undefined
    },
  }
}
