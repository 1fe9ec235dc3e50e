// The leavers action over more devices than ORCHARD_JOB_THRESHOLD runs as an offboarding
// job: the request checks the plans, the owner role and the confirmation, then answers 202;
// the job offboards the devices a chunk at a time in the caller's scope, each audited as the
// caller's write (as the synchronous call does). Devices skipped, refused or not found at
// the check are counted at once and listed as the job's errors. A device is never offboarded
// twice: a chunk done again after a replica died finds its devices' wipe pending and counts
// them refused (`busy`), which the job's errors then name.
import type { Job } from '../http/generated/operations.js'
import { countBy, type JobKind } from '../jobs/job-kind.js'
import type { JobErrorInput, JobStarter } from '../jobs/job-service.js'
import { defaultTenantOf, scopeOfTenantIds, scopeTenantIds, type AccessScope, type AuditActor } from '../model/access.js'
import type { BulkOutcome, BulkTarget, OffboardingBulk, PreparedOffboarding } from './offboarding-bulk.js'
import type { OffboardOptions } from './offboarding-plan.js'

/** Devices offboarded per step. */
export const offboardingChunkSize = 25

interface OffboardingJobParams {
  person: string | null
  options: OffboardOptions
  /** The caller's scope when the job was created (tenant ids; null: all). */
  scope_tenant_ids: string[] | null
  /** Who each device's audit row names. */
  actor: Omit<AuditActor, 'recorded'> | null
  /** The devices to offboard, as checked. */
  targets: BulkTarget[]
  /** Devices settled at the check (counted in done). */
  settled: number
}

const withoutRecorded = ({ recorded: _recorded, ...actor }: AuditActor): Omit<AuditActor, 'recorded'> => actor
const settledAtCheck = (target: BulkTarget) => target.plan === 'skip' || target.plan === 'refused' || target.plan === 'not_found'
const outcomeOf = (target: BulkTarget) => (target.plan === 'skip' ? 'skipped' : target.plan)

function errorOf(target: BulkTarget | BulkOutcome): JobErrorInput {
  const code = 'outcome' in target ? target.outcome : outcomeOf(target)
  return { target: target.deviceId, code, message: target.reason ? `${target.reason}: ${target.detail}` : target.detail }
}

export interface OffboardingJobs {
  /** A job for a checked call over more devices than the threshold; null below it. */
  startIfLarge(scope: AccessScope, prepared: PreparedOffboarding): Promise<Job | null>
}

export function createOffboardingJobs(deps: { jobs: JobStarter; threshold: number }): OffboardingJobs {
  return {
    async startIfLarge(scope, prepared) {
      const { targets, input } = prepared
      if (targets.length <= deps.threshold) return null
      const settled = targets.filter(settledAtCheck)
      const actor = scope.actor ? withoutRecorded(scope.actor) : null
      const params: OffboardingJobParams = {
        person: input.person ?? null,
        options: input.options,
        scope_tenant_ids: scopeTenantIds(scope),
        actor,
        targets: targets.filter((target) => !settledAtCheck(target)),
        settled: settled.length,
      }
      const tenants = new Set(targets.filter((target) => target.plan !== 'not_found').map((target) => target.tenantId))
      return deps.jobs.start(scope, {
        type: 'offboarding',
        tenantId: tenants.size === 1 ? [...tenants][0]! : defaultTenantOf(scope),
        params: { ...params },
        total: targets.length,
        done: settled.length,
        outcomes: countBy(settled, outcomeOf),
        errors: settled.filter((target) => target.plan !== 'skip').map(errorOf),
        details: { person: input.person ?? null, devices: targets.length },
      })
    },
  }
}

export function offboardingJobKind(deps: { leavers: Pick<OffboardingBulk, 'offboardTarget'>; chunkSize?: number }): JobKind {
  const size = deps.chunkSize ?? offboardingChunkSize
  return {
    type: 'offboarding',
    stoppable: true,
    async step(job) {
      const params = job.params as unknown as OffboardingJobParams
      const actor = params.actor ? { ...params.actor, recorded: false } : undefined
      const scope = scopeOfTenantIds(params.scope_tenant_ids, actor)
      const from = typeof job.checkpoint === 'number' ? job.checkpoint : 0
      const chunk = params.targets.slice(from, from + size)
      const outcomes: BulkOutcome[] = []
      for (const target of chunk) outcomes.push(await deps.leavers.offboardTarget(scope, params.options, target))
      const next = from + chunk.length
      return {
        done: params.settled + next,
        outcomes: countBy(outcomes, (outcome) => outcome.outcome),
        checkpoint: next,
        errors: outcomes.filter((outcome) => outcome.outcome === 'refused' || outcome.outcome === 'not_found').map(errorOf),
        ...(next >= params.targets.length ? { finished: { state: 'succeeded' as const } } : {}),
      }
    },
  }
}
