// Push reports in the admin API's JSON (POST /push, and the push part of queued commands).
import type { PushReport as PushReportJson } from '../http/generated/operations.js'
import type { PushReport } from './push-service.js'

export function pushReportJson(report: PushReport): PushReportJson {
  return {
    results: report.results.map((r) => ({
      enrollment_id: r.enrollmentId,
      status: r.status,
      ...(r.apnsId ? { apns_id: r.apnsId } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
    })),
    topic_errors: report.topicErrors,
  }
}
