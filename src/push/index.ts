// The push feature as main.ts composes it: push certificates (keys sealed at rest) and the
// push service that wakes devices through APNs with them.
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DatabaseHandle } from '../db/database.js'
import type { Metrics } from '../ops/metrics.js'
import { createApnsSender } from './apns-client.js'
import { createPushCertificateService } from './push-certificates.js'
import { createPushService } from './push-service.js'
import { createPushStore } from './push-store.js'

export { pushHandlers } from './api.js'

export function createPushFeature(deps: { config: Config; db: DatabaseHandle['db']; secretBox: SecretBox | null; metrics: Metrics; logger: Logger }) {
  const { config, logger } = deps
  const store = createPushStore(deps.db)
  const certificates = createPushCertificateService({ store, secretBox: deps.secretBox, logger })
  const apnsCa = config.apnsCaFile ? readFileSync(config.apnsCaFile, 'utf8') : undefined
  const push = createPushService({
    store,
    createSender: (certificate) =>
      createApnsSender({
        topic: certificate.topic,
        certificatePem: certificate.certificatePem,
        privateKeyPem: certificates.privateKeyPem(certificate),
        endpoint: config.apnsUrl,
        ca: apnsCa,
        logger,
      }),
    schedule: config.repush,
    metrics: deps.metrics,
    logger,
  })
  /** The topics new enrollment profiles can use, the newest certificate first. */
  const topics = async () => (await certificates.list()).sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime()).map((certificate) => certificate.topic)
  /** The push certificate and key of a topic: the MDM's TLS identity toward Apple's services (escrowKeyUnlock). */
  const identity = async (topic: string) => {
    const row = await store.getCertificate(topic)
    return row && { certificatePem: row.certificatePem, privateKeyPem: certificates.privateKeyPem(row) }
  }
  return { certificates, push, topics, identity }
}
