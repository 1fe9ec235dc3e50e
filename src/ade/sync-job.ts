// An ABM/ASM sync asked for through the admin API runs as an abm_sync job: one step, the
// sync itself (the token's own lease keeps two instances from syncing it at once), its report
// the job's result. The background loop goes on syncing every token without jobs.
import { singleStepKind, type JobKind } from '../jobs/job-kind.js'
import { syncJson } from './dep-json.js'
import type { DepService } from './dep-service.js'

export function abmSyncJobKind(dep: Pick<DepService, 'syncToken'>): JobKind {
  return singleStepKind('abm_sync', async (params) => {
    const report = syncJson(await dep.syncToken(String(params['token_id'])))
    return { outcome: report.outcome, failed: report.outcome === 'failed', report }
  })
}
