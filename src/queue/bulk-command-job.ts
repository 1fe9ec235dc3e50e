// A command to more targets than ORCHARD_JOB_THRESHOLD is queued by a job: the request
// resolves and checks the targets (the guard on destructive commands included) and answers
// 202; the job queues the command chunk by chunk, pushes each chunk's targets, and counts
// each target's outcome. Targets skipped at once (unknown, not applicable) are the job's
// first errors. A running job stops between chunks when cancelled; what it queued stays.
import { OrchardError } from '../errors.js'
import type { Job } from '../http/generated/operations.js'
import { countBy, type JobKind } from '../jobs/job-kind.js'
import type { JobErrorInput, JobStarter } from '../jobs/job-service.js'
import { defaultTenantOf, type AccessScope } from '../model/access.js'
import type { CommandChunkStore } from './command-chunk-store.js'
import type { PreparedDispatch, TargetResult } from './dispatch.js'

/** Targets queued per step. */
export const bulkCommandChunkSize = 500

interface BulkCommandParams {
  command_uuid: string
  request_type: string
  payload_base64: string
  priority: number
  expires_at: string | null
  /** The command's tenant (null: central IT or several). */
  command_tenant_id: string | null
  push: boolean
  /** Targets skipped at creation (counted in done). */
  skipped: number
  candidates: string[]
}

export interface BulkCommandJobs {
  /** A job for a dispatch over more targets than the threshold; null below it (queue it now). */
  startIfLarge(scope: AccessScope, prepared: PreparedDispatch): Promise<Job | null>
}

function skippedError(result: TargetResult): JobErrorInput {
  if (result.result === 'not_applicable') return { target: result.enrollmentId, code: 'not_applicable', message: `${result.reason}: ${result.detail}` }
  return { target: result.enrollmentId, code: result.result, message: result.result === 'unknown_enrollment' ? 'no such enrollment' : 'not enrolled' }
}

export function createBulkCommandJobs(deps: { jobs: JobStarter; chunks: Pick<CommandChunkStore, 'commandExists'>; threshold: number }): BulkCommandJobs {
  return {
    async startIfLarge(scope, prepared) {
      if (prepared.order.length <= deps.threshold) return null
      const { command, request } = prepared
      if (await deps.chunks.commandExists(command.uuid)) throw new OrchardError('conflict', `a command with CommandUUID ${command.uuid} already exists`)
      const params: BulkCommandParams = {
        command_uuid: command.uuid,
        request_type: command.requestType,
        payload_base64: command.payload.toString('base64'),
        priority: request.priority ?? 0,
        expires_at: request.expiresAt ? request.expiresAt.toISOString() : null,
        command_tenant_id: prepared.tenantId,
        push: request.push !== false,
        skipped: prepared.skipped.length,
        candidates: prepared.candidates,
      }
      return deps.jobs.start(scope, {
        type: 'bulk_command',
        // The caller's own tenant when no target can take it (the caller must see its job).
        tenantId: prepared.candidates.length > 0 ? prepared.tenantId : defaultTenantOf(scope),
        params: { ...params },
        total: prepared.order.length,
        done: prepared.skipped.length,
        outcomes: countBy(prepared.skipped, (result) => result.result),
        result: { command_uuid: command.uuid, request_type: command.requestType },
        errors: prepared.skipped.map(skippedError),
        details: { command_uuid: command.uuid, request_type: command.requestType, targets: prepared.order.length },
      })
    },
  }
}

export function bulkCommandJobKind(deps: {
  chunks: Pick<CommandChunkStore, 'enqueueChunk'>
  /** Pushes the chunk's targets; never throws (a failed push is retried by the re-push loop). */
  push(enrollmentIds: readonly string[]): Promise<unknown>
  chunkSize?: number
}): JobKind {
  const size = deps.chunkSize ?? bulkCommandChunkSize
  return {
    type: 'bulk_command',
    stoppable: true,
    async step(job) {
      const params = job.params as unknown as BulkCommandParams
      const from = typeof job.checkpoint === 'number' ? job.checkpoint : 0
      const chunk = params.candidates.slice(from, from + size)
      const outcomes = chunk.length
        ? await deps.chunks.enqueueChunk(
            {
              uuid: params.command_uuid,
              requestType: params.request_type,
              payload: Buffer.from(params.payload_base64, 'base64'),
              priority: params.priority,
              expiresAt: params.expires_at === null ? null : new Date(params.expires_at),
              tenantId: params.command_tenant_id,
            },
            chunk,
          )
        : []
      const queued = outcomes.filter((target) => target.outcome === 'queued').map((target) => target.enrollmentId)
      if (params.push && queued.length > 0) await deps.push(queued)
      const next = from + chunk.length
      const last = next >= params.candidates.length
      return {
        done: params.skipped + next,
        outcomes: countBy(outcomes, (target) => target.outcome),
        checkpoint: next,
        errors: outcomes
          .filter((target) => target.outcome !== 'queued')
          .map((target) => ({
            target: target.enrollmentId,
            code: target.outcome,
            message: target.outcome === 'unknown_enrollment' ? 'no such enrollment' : 'not enrolled',
          })),
        ...(last ? { finished: { state: 'succeeded' as const, result: { command_uuid: params.command_uuid, request_type: params.request_type } } } : {}),
      }
    },
  }
}
