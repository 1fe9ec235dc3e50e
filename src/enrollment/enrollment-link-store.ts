// Enrollment links, one-time SCEP challenges and the record of every certificate issued.
import { sql, type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database, EnrollmentLinksTable, IssuedCertificatesTable } from '../db/schema.js'
import type { DeviceKind } from '../model/devices.js'
import { isReferenceViolation } from '../db/pg-errors.js'

export type EnrollmentLinkRow = Selectable<EnrollmentLinksTable>
export type NewEnrollmentLink = Omit<EnrollmentLinkRow, 'uses' | 'revoked_at' | 'created_at'>
export type IssuanceRow = Omit<Selectable<IssuedCertificatesTable>, 'created_at'>

export interface NewChallenge {
  sha256: Buffer
  purpose: 'enrollment' | 'renewal'
  enrollmentLinkId: string | null
  deviceId: string | null
  expiresAt: Date
  /** ADE enrollments: the PreStage and the serial the profile was made for. */
  ade?: { depProfileId: string; serialNumber: string }
}

export interface ClaimedChallenge {
  purpose: 'enrollment' | 'renewal'
  enrollmentLinkId: string | null
  deviceId: string | null
  depProfileId: string | null
  adeSerialNumber: string | null
}

export type ChallengeRefusal = 'unknown' | 'used' | 'expired' | 'link_revoked' | 'link_expired' | 'link_exhausted'

export type ClaimOutcome = { ok: true; issuance: IssuanceRow } | { ok: false; reason: ChallengeRefusal; usedAt?: Date }

/** Where an identity certificate came from, as Authenticate needs it. */
export interface IdentityOrigin {
  authorizedBy: IssuanceRow['authorized_by']
  /** Renewals: the device the new certificate is for. */
  deviceId: string | null
  enrollmentLinkId: string | null
  groupName: string | null
  deviceKind: DeviceKind | null
  /** ADE: the PreStage whose enrollment issued the certificate, and the serial it was for. */
  depProfileId: string | null
  adeSerialNumber: string | null
  /** The tenant of the link or the PreStage's token; null for open enrollment (the device keeps its tenant). */
  tenantId: string | null
}

export interface EnrollmentLinkStore {
  /** undefined: the tenant does not exist. */
  createLink(scope: AccessScope, link: NewEnrollmentLink): Promise<EnrollmentLinkRow | undefined>
  listLinks(scope: AccessScope, options: { includeRevoked: boolean }): Promise<EnrollmentLinkRow[]>
  getLink(scope: AccessScope, id: string): Promise<EnrollmentLinkRow | undefined>
  linkByToken(token: string): Promise<EnrollmentLinkRow | undefined>
  revokeLink(scope: AccessScope, id: string, now: Date): Promise<'revoked' | 'already_revoked' | 'not_found'>
  createChallenge(challenge: NewChallenge): Promise<void>
  /**
   * One transaction: the challenge must exist, be unused and unexpired, and its link usable
   * (not revoked or expired, uses left); then `issue` builds the certificate, the challenge
   * is marked used, the link's use counted and the issuance recorded. Nothing is written
   * when any step refuses or throws.
   */
  issueWithChallenge(sha256: Buffer, now: Date, issue: (challenge: ClaimedChallenge) => IssuanceRow): Promise<ClaimOutcome>
  recordIssuance(issuance: IssuanceRow): Promise<void>
  /** The certificate issued earlier for this challenge, transaction and key: a client retrying after a lost answer. */
  previousIssuance(challengeSha256: Buffer, transactionId: string, publicKeySha256: string): Promise<IssuanceRow | undefined>
  identityOrigin(certificateSha256: string): Promise<IdentityOrigin | undefined>
  /** A certificate may sign a renewal when Orchard issued it or a device is bound to it; the device, if any. */
  renewalSubject(certificateSha256: string): Promise<{ deviceId: string | null } | undefined>
  /** Deletes challenges that expired before `before` (used ones included: issuances keep their hash). */
  pruneChallenges(before: Date): Promise<number>
}

export function createEnrollmentLinkStore(db: Kysely<Database>): EnrollmentLinkStore {
  const insertIssuance = (trx: Kysely<Database>, issuance: IssuanceRow) => trx.insertInto('issued_certificates').values(issuance).execute()

  return {
    async createLink(scope, link) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx.insertInto('enrollment_links').values(link).returningAll().executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, {
            type: 'enrollment_link',
            id: row.id,
            tenantId: row.tenant_id,
            details: { name: row.name, enrollment_type: row.enrollment_type },
          })
          return row
        })
      } catch (error) {
        if (isReferenceViolation(error)) return undefined
        throw error
      }
    },

    async listLinks(scope, options) {
      let query = db.selectFrom('enrollment_links').selectAll().where(inScope(scope, 'tenant_id')).orderBy('created_at').orderBy('id')
      if (!options.includeRevoked) query = query.where('revoked_at', 'is', null)
      return query.execute()
    },

    async getLink(scope, id) {
      return db.selectFrom('enrollment_links').selectAll().where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
    },

    async linkByToken(token) {
      // The token comes from the URL of a request without an API key: one with NUL (which no
      // text column holds) was never issued.
      if (token.includes('\u0000')) return undefined
      return db.selectFrom('enrollment_links').selectAll().where('token', '=', token).executeTakeFirst()
    },

    async revokeLink(scope, id, now) {
      return db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('enrollment_links')
          .set({ revoked_at: now })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .where(inScope(scope, 'tenant_id'))
          .returning(['id', 'tenant_id'])
          .executeTakeFirst()
        if (updated) {
          await recordAdminWrite(trx, scope, { type: 'enrollment_link', id, tenantId: updated.tenant_id })
          return 'revoked' as const
        }
        const exists = await trx
          .selectFrom('enrollment_links')
          .select(['id', 'tenant_id'])
          .where('id', '=', id)
          .where(inScope(scope, 'tenant_id'))
          .executeTakeFirst()
        if (!exists) return 'not_found' as const
        // Answered as a success (nothing to do), so audited as one.
        await recordAdminWrite(trx, scope, { type: 'enrollment_link', id, tenantId: exists.tenant_id, details: { already_revoked: true } })
        return 'already_revoked' as const
      })
    },

    async createChallenge(challenge) {
      await db
        .insertInto('scep_challenges')
        .values({
          challenge_sha256: challenge.sha256,
          purpose: challenge.purpose,
          enrollment_link_id: challenge.enrollmentLinkId,
          device_id: challenge.deviceId,
          expires_at: challenge.expiresAt,
          dep_profile_id: challenge.ade?.depProfileId ?? null,
          ade_serial_number: challenge.ade?.serialNumber ?? null,
        })
        .execute()
    },

    async issueWithChallenge(sha256, now, issue) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('scep_challenges as c')
          .leftJoin('enrollment_links as l', 'l.id', 'c.enrollment_link_id')
          .select([
            'c.purpose',
            'c.enrollment_link_id',
            'c.device_id',
            'c.dep_profile_id',
            'c.ade_serial_number',
            'c.expires_at',
            'c.used_at',
            'l.revoked_at',
            'l.expires_at as link_expires_at',
            'l.max_uses',
            'l.uses',
          ])
          .where('c.challenge_sha256', '=', sha256)
          .forUpdate('c')
          .executeTakeFirst()
        if (!row) return { ok: false, reason: 'unknown' } as const
        if (row.used_at) return { ok: false, reason: 'used', usedAt: row.used_at } as const
        if (row.expires_at.getTime() <= now.getTime()) return { ok: false, reason: 'expired' } as const
        if (row.enrollment_link_id) {
          if (row.revoked_at) return { ok: false, reason: 'link_revoked' } as const
          if (row.link_expires_at && row.link_expires_at.getTime() <= now.getTime()) return { ok: false, reason: 'link_expired' } as const
          const counted = await trx
            .updateTable('enrollment_links')
            .set({ uses: sql`uses + 1` })
            .where('id', '=', row.enrollment_link_id)
            .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
            .returning('id')
            .execute()
          if (counted.length === 0) return { ok: false, reason: 'link_exhausted' } as const
        }
        const issuance = issue({
          purpose: row.purpose,
          enrollmentLinkId: row.enrollment_link_id,
          deviceId: row.device_id,
          depProfileId: row.dep_profile_id,
          adeSerialNumber: row.ade_serial_number,
        })
        await trx.updateTable('scep_challenges').set({ used_at: now }).where('challenge_sha256', '=', sha256).execute()
        await insertIssuance(trx, issuance)
        return { ok: true, issuance } as const
      })
    },

    async recordIssuance(issuance) {
      await insertIssuance(db, issuance)
    },

    async previousIssuance(challengeSha256, transactionId, publicKeySha256) {
      return db
        .selectFrom('issued_certificates')
        .select([
          'serial_number',
          'ca_sha256',
          'sha256',
          'subject',
          'public_key_sha256',
          'not_before',
          'not_after',
          'authorized_by',
          'challenge_sha256',
          'renewal_of_sha256',
          'enrollment_link_id',
          'device_id',
          'transaction_id',
          'certificate_der',
          'dep_profile_id',
          'ade_serial_number',
        ])
        .where('challenge_sha256', '=', challengeSha256)
        .where('transaction_id', '=', transactionId)
        .where('public_key_sha256', '=', publicKeySha256)
        .executeTakeFirst()
    },

    async identityOrigin(certificateSha256) {
      const row = await db
        .selectFrom('issued_certificates as i')
        .leftJoin('enrollment_links as l', 'l.id', 'i.enrollment_link_id')
        .leftJoin('dep_profiles as p', 'p.id', 'i.dep_profile_id')
        .leftJoin('dep_tokens as t', 't.id', 'p.token_id')
        .select([
          'i.authorized_by',
          'i.device_id',
          'i.enrollment_link_id',
          'l.group_name',
          'l.device_kind',
          'i.dep_profile_id',
          'i.ade_serial_number',
          'p.device_kind as dep_device_kind',
          'l.tenant_id as link_tenant_id',
          't.tenant_id as token_tenant_id',
        ])
        .where('i.sha256', '=', certificateSha256)
        .executeTakeFirst()
      if (!row) return undefined
      return {
        authorizedBy: row.authorized_by,
        deviceId: row.device_id,
        enrollmentLinkId: row.enrollment_link_id,
        groupName: row.group_name,
        deviceKind: row.device_kind ?? row.dep_device_kind ?? null,
        depProfileId: row.dep_profile_id,
        adeSerialNumber: row.ade_serial_number,
        tenantId: row.enrollment_link_id ? row.link_tenant_id : row.dep_profile_id ? row.token_tenant_id : null,
      }
    },

    async renewalSubject(certificateSha256) {
      const { rows } = await sql<{ bound_device: string | null; issued_for: string | null; issued: boolean }>`
        select (select id from devices where identity_sha256 = ${certificateSha256} limit 1) as bound_device,
               (select device_id from issued_certificates where sha256 = ${certificateSha256}) as issued_for,
               exists (select 1 from issued_certificates where sha256 = ${certificateSha256}) as issued`.execute(db)
      const row = rows[0]!
      if (!row.issued && row.bound_device === null) return undefined
      return { deviceId: row.bound_device ?? row.issued_for }
    },

    async pruneChallenges(before) {
      const deleted = await db.deleteFrom('scep_challenges').where('expires_at', '<', before).returning('challenge_sha256').execute()
      return deleted.length
    },
  }
}
