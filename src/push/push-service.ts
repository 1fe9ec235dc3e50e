// Waking devices: APNs pushes for enrollments, one reused sender per topic, results
// recorded per enrollment, dead tokens retired, and the re-push loop's work.
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
import type { Logger } from 'pino'
import type { ApnsSender, PushOutcome, PushTarget } from './apns-client.js'
import type { Metrics } from '../ops/metrics.js'
import type { PushCertificateRow, PushOutcomeRow, PushStore, RepushSchedule } from './push-store.js'

export interface PushResult {
  enrollmentId: string
  /** sent: APNs accepted it. failed: APNs or the connection refused it. skipped: nothing to push to. */
  status: 'sent' | 'failed' | 'skipped'
  apnsId?: string
  reason?: string
}

export interface PushReport {
  results: PushResult[]
  /** One entry per topic whose certificate could not be used (one error, not one per device). */
  topicErrors: Array<{ topic: string; reason: string }>
}

/** Makes a sender for a topic's current certificate (the private key is unsealed by the caller). */
export type SenderFactory = (certificate: PushCertificateRow) => ApnsSender

export interface PushService {
  pushEnrollments(enrollmentIds: readonly string[]): Promise<PushReport>
  /** One round of the re-push loop: claims due enrollments and pushes them. Returns how many were pushed. */
  repushDue(limit?: number): Promise<number>
  close(): Promise<void>
}

export interface PushServiceDeps {
  store: PushStore
  createSender: SenderFactory
  schedule: RepushSchedule
  metrics: Metrics
  logger: Logger
}

export function createPushService(deps: PushServiceDeps): PushService {
  const log = deps.logger.child({ service: 'push' })
  // One sender per topic, rebuilt when the topic's certificate changes (renewal on any replica).
  const senders = new Map<string, { sha256: string; sender: ApnsSender }>()

  async function senderFor(topic: string): Promise<ApnsSender | string> {
    const version = await deps.store.certificateVersion(topic)
    if (!version) return `no push certificate for topic ${topic}`
    const cached = senders.get(topic)
    if (cached && cached.sha256 === version) return cached.sender
    const certificate = await deps.store.getCertificate(topic)
    if (!certificate) return `no push certificate for topic ${topic}`
    try {
      const sender = deps.createSender(certificate)
      senders.set(topic, { sha256: certificate.sha256, sender })
      if (cached) {
        log.info({ topic, serial_number: certificate.serialNumber }, 'push certificate changed: new APNs connection')
        void cached.sender.close()
      }
      return sender
    } catch (error) {
      return `push certificate for topic ${topic} cannot be used: ${(error as Error).message}`
    }
  }

  async function pushEnrollments(enrollmentIds: readonly string[]): Promise<PushReport> {
    const ids = [...new Set(enrollmentIds)]
    const rows = await deps.store.pushTargets(ids)
    const byId = new Map(rows.map((row) => [row.enrollmentId, row]))
    const results = new Map<string, PushResult>()
    const byTopic = new Map<string, PushTarget[]>()
    for (const id of ids) {
      const row = byId.get(id)
      const skip = (reason: string) => results.set(id, { enrollmentId: id, status: 'skipped', reason })
      if (!row) skip('unknown enrollment')
      else if (!row.enabled) skip('enrollment not enabled')
      else if (row.pushInvalidReason) skip(`push token invalid (${row.pushInvalidReason}) until the next TokenUpdate`)
      else if (!row.token || !row.pushMagic || !row.topic) skip('no push token yet')
      else {
        const list = byTopic.get(row.topic) ?? []
        list.push({ enrollmentId: id, token: row.token, pushMagic: row.pushMagic })
        byTopic.set(row.topic, list)
      }
    }

    const topicErrors: PushReport['topicErrors'] = []
    const recorded: PushOutcomeRow[] = []
    for (const [topic, targets] of byTopic) {
      const sender = await senderFor(topic)
      if (typeof sender === 'string') {
        topicErrors.push({ topic, reason: sender })
        log.error({ topic, targets: targets.length }, sender)
        for (const target of targets) results.set(target.enrollmentId, { enrollmentId: target.enrollmentId, status: 'failed', reason: sender })
        continue
      }
      const outcomes: PushOutcome[] = await sender.send(targets)
      let certificateProblem: string | undefined
      for (const outcome of outcomes) {
        if (outcome.ok) {
          results.set(outcome.enrollmentId, { enrollmentId: outcome.enrollmentId, status: 'sent', apnsId: outcome.apnsId })
          recorded.push({ enrollmentId: outcome.enrollmentId, result: 'sent', apnsId: outcome.apnsId })
          deps.metrics.apnsPushes.inc({ result: 'sent' })
          continue
        }
        results.set(outcome.enrollmentId, { enrollmentId: outcome.enrollmentId, status: 'failed', reason: outcome.reason })
        deps.metrics.apnsPushes.inc({ result: outcome.reason })
        if (outcome.certificateProblem) {
          // The certificate, not the device: one error for the topic; tokens stay valid.
          certificateProblem ??= outcome.reason
          continue
        }
        recorded.push({ enrollmentId: outcome.enrollmentId, result: outcome.reason, tokenInvalid: outcome.tokenInvalid })
      }
      if (certificateProblem) {
        const reason = `APNs refused the push certificate for topic ${topic}: ${certificateProblem}`
        topicErrors.push({ topic, reason })
        log.error({ topic, reason: certificateProblem }, reason)
      }
      const invalid = outcomes.filter((o) => !o.ok && o.tokenInvalid).length
      if (invalid > 0) log.info({ topic, invalid }, 'push tokens retired until their next TokenUpdate')
    }
    await deps.store.recordPushOutcomes(recorded)
    return { results: ids.map((id) => results.get(id)!), topicErrors }
  }

  return {
    pushEnrollments,

    async repushDue(limit = 1000) {
      const due = await deps.store.claimRepushes(deps.schedule, limit)
      if (due.length === 0) return 0
      const report = await pushEnrollments(due)
      const sent = report.results.filter((r) => r.status === 'sent').length
      log.info({ due: due.length, sent }, 're-pushed devices with pending commands')
      return due.length
    },

    async close() {
      const all = [...senders.values()]
      senders.clear()
      await Promise.all(all.map((entry) => entry.sender.close()))
    },
  }
}
