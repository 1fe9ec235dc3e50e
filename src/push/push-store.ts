// Push certificates per topic, and each enrollment's push state and re-push schedule.
import { sql, type Kysely, type Selectable } from 'kysely'
import { preparedStatement } from '../db/statement-names.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database, PushCertificatesTable } from '../db/schema.js'
import { isOpen } from '../queue/queue-sql.js'

export interface PushCertificateRow {
  topic: string
  certificatePem: string
  privateKeySealed: Buffer
  serialNumber: string
  subject: string
  sha256: string
  notBefore: Date
  notAfter: Date
  /** null: central IT's (usable by every tenant's enrollment links). */
  tenantId: string | null
  createdAt: Date
  updatedAt: Date
}

export type NewPushCertificate = Omit<PushCertificateRow, 'createdAt' | 'updatedAt'>

export interface PushTargetRow {
  enrollmentId: string
  topic: string | null
  token: Buffer | null
  pushMagic: string | null
  enabled: boolean
  pushInvalidReason: string | null
}

export interface PushOutcomeRow {
  enrollmentId: string
  /** 'sent', or the APNs reason / error that stopped the push. */
  result: string
  apnsId?: string
  /** The token is dead (Unregistered, BadDeviceToken...): stop pushing until TokenUpdate. */
  tokenInvalid?: boolean
}

export interface RepushSchedule {
  afterSeconds: number
  maxIntervalSeconds: number
  giveUpAfterSeconds: number
}

export interface PushStore {
  listCertificates(scope?: AccessScope): Promise<PushCertificateRow[]>
  getCertificate(topic: string, scope?: AccessScope): Promise<PushCertificateRow | undefined>
  /** The SHA-256 of the topic's current certificate: replicas compare it to pick up renewals. */
  certificateVersion(topic: string): Promise<string | undefined>
  /** Stores a certificate for a new topic; false when the topic already has one. */
  insertCertificate(certificate: NewPushCertificate, scope?: AccessScope): Promise<boolean>
  /** Stores `certificate`, and removes `replacedTopic` when it differs (one transaction). */
  replaceCertificate(replacedTopic: string, certificate: NewPushCertificate, scope?: AccessScope): Promise<void>
  /** Enabled channels on a topic: the devices a topic change would orphan. */
  countEnrolledOnTopic(topic: string): Promise<number>
  pushTargets(enrollmentIds: readonly string[]): Promise<PushTargetRow[]>
  recordPushOutcomes(outcomes: readonly PushOutcomeRow[]): Promise<void>
  /**
   * Claims enrollments whose re-push is due (rows locked with SKIP LOCKED, so replicas never
   * claim the same one) and schedules the next one with exponential backoff. Returns those to
   * push now; due rows with nothing pending, or silent for too long, are unscheduled instead.
   */
  claimRepushes(schedule: RepushSchedule, limit: number): Promise<string[]>
}

export function createPushStore(db: Kysely<Database>): PushStore {
  const toRow = (r: Selectable<PushCertificatesTable>): PushCertificateRow => ({
    topic: r.topic,
    certificatePem: r.certificate_pem,
    privateKeySealed: r.private_key_sealed,
    serialNumber: r.serial_number,
    subject: r.subject,
    sha256: r.sha256,
    notBefore: r.not_before,
    notAfter: r.not_after,
    tenantId: r.tenant_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  })
  const values = (c: NewPushCertificate) => ({
    topic: c.topic,
    certificate_pem: c.certificatePem,
    private_key_sealed: c.privateKeySealed,
    serial_number: c.serialNumber,
    subject: c.subject,
    sha256: c.sha256,
    not_before: c.notBefore,
    not_after: c.notAfter,
    tenant_id: c.tenantId,
  })

  return {
    async listCertificates(scope = fullAccess) {
      return (await db.selectFrom('push_certificates').selectAll().where(inScope(scope, 'tenant_id')).orderBy('topic').execute()).map(toRow)
    },

    async getCertificate(topic, scope = fullAccess) {
      const row = await db.selectFrom('push_certificates').selectAll().where('topic', '=', topic).where(inScope(scope, 'tenant_id')).executeTakeFirst()
      return row ? toRow(row) : undefined
    },

    async certificateVersion(topic) {
      const row = await db.selectFrom('push_certificates').select('sha256').where('topic', '=', topic).executeTakeFirst()
      return row?.sha256
    },

    async insertCertificate(certificate, scope = fullAccess) {
      return db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('push_certificates')
          .values(values(certificate))
          .onConflict((oc) => oc.column('topic').doNothing())
          .returning('topic')
          .executeTakeFirst()
        if (inserted)
          await recordAdminWrite(trx, scope, {
            type: 'push_certificate',
            id: certificate.topic,
            tenantId: certificate.tenantId,
            details: { serial_number: certificate.serialNumber },
          })
        return inserted !== undefined
      })
    },

    async replaceCertificate(replacedTopic, certificate, scope = fullAccess) {
      await db.transaction().execute(async (trx) => {
        await recordAdminWrite(trx, scope, {
          type: 'push_certificate',
          id: replacedTopic,
          tenantId: certificate.tenantId,
          details: { serial_number: certificate.serialNumber, topic: certificate.topic },
        })
        if (replacedTopic !== certificate.topic) await trx.deleteFrom('push_certificates').where('topic', '=', replacedTopic).execute()
        const row = values(certificate)
        await trx
          .insertInto('push_certificates')
          .values(row)
          .onConflict((oc) => oc.column('topic').doUpdateSet({ ...row, updated_at: sql`now()` }))
          .execute()
      })
    },

    async countEnrolledOnTopic(topic) {
      const row = await db
        .selectFrom('enrollments')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('topic', '=', topic)
        .where('enabled', '=', true)
        .executeTakeFirstOrThrow()
      return Number(row.n)
    },

    async pushTargets(enrollmentIds) {
      if (enrollmentIds.length === 0) return []
      const rows = await db
        .selectFrom('enrollments')
        .select(['id', 'topic', 'push_token', 'push_magic', 'enabled', 'push_invalid_reason'])
        .where('id', 'in', [...new Set(enrollmentIds)])
        .execute()
      return rows.map((r) => ({
        enrollmentId: r.id,
        topic: r.topic,
        token: r.push_token,
        pushMagic: r.push_magic,
        enabled: r.enabled,
        pushInvalidReason: r.push_invalid_reason,
      }))
    },

    async recordPushOutcomes(outcomes) {
      if (outcomes.length === 0) return
      // One statement for the whole batch.
      await sql`${sql.raw(preparedStatement)}
        update enrollments e
        set last_push_at = now(),
            last_push_result = o.result,
            last_push_apns_id = o.apns_id,
            push_invalid_at = case when o.token_invalid then now() else e.push_invalid_at end,
            push_invalid_reason = case when o.token_invalid then o.result else e.push_invalid_reason end
        from jsonb_to_recordset(${JSON.stringify(
          outcomes.map((o) => ({ id: o.enrollmentId, result: o.result, apns_id: o.apnsId ?? null, token_invalid: o.tokenInvalid === true })),
        )}::text::jsonb) as o(id text, result text, apns_id text, token_invalid boolean)
        where e.id = o.id`.execute(db)
    },

    async claimRepushes(schedule, limit) {
      const { rows } = await sql<{ id: string; push: boolean }>`${sql.raw(preparedStatement)}
        with due as (
          select e.id,
                 exists (select 1 from command_targets t where t.enrollment_id = e.id and ${isOpen('t')}) as has_pending,
                 coalesce(e.last_seen_at, e.token_updated_at, e.created_at) > now() - make_interval(secs => ${schedule.giveUpAfterSeconds}::int) as alive
          from enrollments e
          where e.enabled and e.push_invalid_at is null and e.next_repush_at <= now()
          order by e.next_repush_at
          limit ${limit}::int
          for update of e skip locked
        )
        update enrollments e
        set repush_count = case when due.has_pending and due.alive then e.repush_count + 1 else 0 end,
            next_repush_at = case when due.has_pending and due.alive
              then now() + make_interval(secs => least(${schedule.maxIntervalSeconds}::int, ${schedule.afterSeconds}::int * power(2, least(e.repush_count + 1, 30)))::double precision)
              else null end
        from due
        where e.id = due.id
        returning e.id, due.has_pending and due.alive as push`.execute(db)
      return rows.filter((r) => r.push).map((r) => r.id)
    },
  }
}
