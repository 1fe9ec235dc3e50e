// An Apps and Books sync asked for through the admin API runs as a vpp_sync job: one step,
// the sync itself (the token's own lease keeps two instances from syncing it at once), its
// report the job's result. The background loop goes on syncing every token without jobs.
import { singleStepKind, type JobKind } from '../jobs/job-kind.js'
import { vppSyncJson } from './vpp-json.js'
import type { VppSync } from './vpp-sync.js'

export function vppSyncJobKind(sync: Pick<VppSync, 'syncToken'>): JobKind {
  return singleStepKind('vpp_sync', async (params) => {
    const report = vppSyncJson(await sync.syncToken(String(params['vpp_token_id'])))
    return { outcome: report.outcome, failed: report.outcome === 'failed', report }
  })
}
