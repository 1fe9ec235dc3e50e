// Device identity certificates over time: which expire soon, which renewals are queued,
// and where a new enrollment came from (link, group, kind).
import { sql, type Kysely } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { closeTenancy, recordAdminWrite } from '../tenancy/audit-store.js'
import type { IdentityOrigin } from './enrollment-link-store.js'
import { afterCursor, decodeCursor, pageOf, type Page } from '../db/pagination.js'
import type { Database } from '../db/schema.js'

export interface RenewalCandidate {
  deviceId: string
  userEnrollment: boolean
  topic: string | null
  identityNotAfter: Date
  /** The Managed Apple ID of the User Enrollment link the device came through, if any. */
  managedAppleId: string | null
}

export interface ExpiringIdentity {
  device_id: string
  serial_number: string | null
  user_enrollment: boolean
  identity_sha256: string | null
  identity_not_after: Date
  /** Issued by Orchard's CA: only those can be renewed with a fresh enrollment profile. */
  renewable: boolean
  renewal_queued_at: Date | null
  renewal_command_uuid: string | null
  renewal_command_status: string | null
}

export interface IdentityStore {
  /**
   * Enrolled devices whose Orchard-issued identity expires before `cutoff` (and has not yet
   * expired at `now`), with no renewal queued since `retryBefore`; soonest first.
   */
  dueForRenewal(now: Date, cutoff: Date, retryBefore: Date, limit: number): Promise<RenewalCandidate[]>
  renewalCandidate(scope: AccessScope, deviceId: string): Promise<(RenewalCandidate & { renewable: boolean }) | undefined>
  markRenewalQueued(deviceId: string, commandUuid: string, at: Date): Promise<void>
  /**
   * Takes a device's renewal for this sweep (false: another instance did, or one is queued
   * since `retryBefore`), so replicas sweeping at once never queue two renewals.
   */
  claimRenewal(deviceId: string, at: Date, retryBefore: Date): Promise<boolean>
  /** Gives a claim back when its renewal could not be queued. */
  releaseRenewal(deviceId: string, at: Date): Promise<void>
  listExpiring(scope: AccessScope, before: Date, page: { limit: number; cursor?: string }): Promise<Page<ExpiringIdentity>>
  /**
   * Records an enrollment's origin on its device. A new device (`newDevice`: also one that
   * never completed an enrollment) takes the origin's tenant, link, group and kind (a User Enrollment without a link is personal); an existing one
   * keeps its tenant and kind, and records link and group only from a path of its own tenant.
   */
  applyOrigin(deviceId: string, origin: IdentityOrigin, options: { newDevice: boolean }): Promise<'applied' | 'foreign_path'>
  /** Sets until when a new identity may take over the device (audited with `reason`); false: no such device in scope. */
  allowReenrollment(scope: AccessScope, deviceId: string, until: Date, reason: string): Promise<boolean>
}

const sortName = 'identity_not_after'

export function createIdentityStore(db: Kysely<Database>): IdentityStore {
  const issuedByUs = sql<boolean>`exists (select 1 from issued_certificates i where i.sha256 = d.identity_sha256)`

  return {
    async dueForRenewal(now, cutoff, retryBefore, limit) {
      const rows = await db
        .selectFrom('devices as d')
        .leftJoin('enrollment_links as l', 'l.id', 'd.enrollment_link_id')
        .select(['d.id', 'd.user_enrollment', 'd.topic', 'd.identity_not_after', 'l.managed_apple_id'])
        .where('d.identity_not_after', 'is not', null)
        .where('d.identity_not_after', '<', cutoff)
        .where('d.identity_not_after', '>', now)
        .where((eb) => eb.or([eb('d.identity_renewal_queued_at', 'is', null), eb('d.identity_renewal_queued_at', '<', retryBefore)]))
        .where(({ exists, selectFrom }) =>
          exists(
            selectFrom('enrollments as e').select('e.id').whereRef('e.device_id', '=', 'd.id').where('e.channel', '=', 'device').where('e.enabled', '=', true),
          ),
        )
        .where(issuedByUs)
        .orderBy('d.identity_not_after')
        .orderBy('d.id')
        .limit(limit)
        .execute()
      return rows.map((row) => ({
        deviceId: row.id,
        userEnrollment: row.user_enrollment,
        topic: row.topic,
        identityNotAfter: row.identity_not_after!,
        managedAppleId: row.managed_apple_id,
      }))
    },

    async renewalCandidate(scope, deviceId) {
      const row = await db
        .selectFrom('devices as d')
        .leftJoin('enrollment_links as l', 'l.id', 'd.enrollment_link_id')
        .select(['d.id', 'd.user_enrollment', 'd.topic', 'd.identity_not_after', 'l.managed_apple_id', issuedByUs.as('renewable')])
        .where('d.id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      if (!row || !row.identity_not_after) return undefined
      return {
        deviceId: row.id,
        userEnrollment: row.user_enrollment,
        topic: row.topic,
        identityNotAfter: row.identity_not_after,
        managedAppleId: row.managed_apple_id,
        renewable: row.renewable,
      }
    },

    async markRenewalQueued(deviceId, commandUuid, at) {
      await db.updateTable('devices').set({ identity_renewal_queued_at: at, identity_renewal_command_uuid: commandUuid }).where('id', '=', deviceId).execute()
    },

    async claimRenewal(deviceId, at, retryBefore) {
      const claimed = await db
        .updateTable('devices')
        .set({ identity_renewal_queued_at: at })
        .where('id', '=', deviceId)
        .where((eb) => eb.or([eb('identity_renewal_queued_at', 'is', null), eb('identity_renewal_queued_at', '<', retryBefore)]))
        .returning('id')
        .execute()
      return claimed.length > 0
    },

    async releaseRenewal(deviceId, at) {
      await db
        .updateTable('devices')
        .set({ identity_renewal_queued_at: null })
        .where('id', '=', deviceId)
        .where('identity_renewal_queued_at', '=', at)
        .execute()
    },

    async listExpiring(scope, before, page) {
      let query = db
        .selectFrom('devices as d')
        .leftJoin('command_targets as t', (join) => join.onRef('t.command_uuid', '=', 'd.identity_renewal_command_uuid').onRef('t.enrollment_id', '=', 'd.id'))
        .select([
          'd.id as device_id',
          'd.serial_number',
          'd.user_enrollment',
          'd.identity_sha256',
          'd.identity_not_after',
          issuedByUs.as('renewable'),
          'd.identity_renewal_queued_at as renewal_queued_at',
          'd.identity_renewal_command_uuid as renewal_command_uuid',
          't.status as renewal_command_status',
          sql<string>`d.identity_not_after::text`.as('sort_key'),
        ])
        .where('d.identity_not_after', 'is not', null)
        .where('d.identity_not_after', '<', before)
        .where(inScope(scope, 'd.tenant_id'))
      if (page.cursor)
        query = query.where(
          afterCursor('d.identity_not_after', 'd.id', 'asc', decodeCursor(page.cursor, sortName, { value: 'timestamptz', id: 'text' }), 'timestamptz'),
        )
      const rows = await query
        .orderBy('d.identity_not_after')
        .orderBy('d.id')
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sortName,
        (row) => ({ value: row.sort_key, id: row.device_id }),
        ({ sort_key: _key, ...row }) => ({ ...row, identity_not_after: row.identity_not_after! }),
      )
    },

    async applyOrigin(deviceId, origin, options) {
      return db.transaction().execute(async (trx) => {
        // A link or a PreStage puts a new device in its tenant; open enrollment in central IT.
        const placed = origin.enrollmentLinkId !== null || origin.depProfileId !== null
        const current = await trx.selectFrom('devices').select('tenant_id').where('id', '=', deviceId).forUpdate().executeTakeFirst()
        if (!current) return 'applied' as const
        if (!options.newDevice) {
          // An existing device keeps its tenant and its kind (only POST /devices/move and
          // PATCH /devices/{id} change those); a path of its own tenant records link and group.
          if (!placed) return 'applied' as const
          if (origin.tenantId !== current.tenant_id) return 'foreign_path' as const
          await trx
            .updateTable('devices')
            .set({ enrollment_link_id: origin.enrollmentLinkId, enrollment_group: origin.groupName, dep_profile_id: origin.depProfileId })
            .where('id', '=', deviceId)
            .execute()
        } else {
          // Billing: a period left open in another tenant ends (a device moved before it enrolled).
          if (placed && current.tenant_id !== origin.tenantId) await closeTenancy(trx, [deviceId], new Date())
          await trx
            .updateTable('devices')
            .set({
              ...(placed ? { tenant_id: origin.tenantId } : {}),
              enrollment_link_id: origin.enrollmentLinkId,
              enrollment_group: origin.groupName,
              // A User Enrollment link made for one person names them.
              user_email: sql`coalesce(user_email, (select l.managed_apple_id from enrollment_links l where l.id = ${origin.enrollmentLinkId}))`,
              kind: sql`coalesce(${origin.deviceKind}::text, case when user_enrollment then 'personal' end, kind)`,
              dep_profile_id: origin.depProfileId,
            })
            .where('id', '=', deviceId)
            .execute()
        }
        // An ADE enrollment links the serial's DEP record to the enrolled device.
        if (origin.adeSerialNumber) {
          await trx
            .updateTable('dep_devices')
            .set({ device_id: deviceId, updated_at: new Date() })
            .where('serial_number', '=', origin.adeSerialNumber)
            .execute()
        }
        return 'applied' as const
      })
    },

    async allowReenrollment(scope, deviceId, until, reason) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('devices')
          .set({ reenrollment_allowed_until: until })
          .where('id', '=', deviceId)
          .where(inScope(scope, 'tenant_id'))
          .returning(['tenant_id', 'identity_sha256'])
          .executeTakeFirst()
        if (!row) return false
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: deviceId,
          tenantId: row.tenant_id,
          deviceId,
          details: { reenrollment_allowed_until: until.toISOString(), reason, bound_identity_sha256: row.identity_sha256 },
        })
        return true
      })
    },
  }
}
