// Account-driven enrollment: the domain-to-tenant mapping, sign-ins in progress, the
// single-use access tokens handed to devices (hashes only), the person behind each
// profile's SCEP challenge, and the person recorded on an enrolled device.
import { sql, type Kysely, type Selectable } from 'kysely'
import { inScope } from '../db/scope-sql.js'
import { isReferenceViolation } from '../db/pg-errors.js'
import type { Database } from '../db/schema.js'
import type { AccountEnrollmentDomainsTable, AccountEnrollmentVersion } from '../db/schema-account-enrollment.js'
import type { AccessScope } from '../model/access.js'
import type { DeviceKind } from '../model/devices.js'
import { closeTenancy, recordAdminWrite } from '../tenancy/audit-store.js'

export type AccountDomainRow = Selectable<AccountEnrollmentDomainsTable>

export interface AccountPerson {
  tenantId: string | null
  subject: string
  email: string
}

export interface LoginState {
  version: AccountEnrollmentVersion
  codeVerifier: string
  nonce: string
  userIdentifier: string | null
  deviceId: string | null
  expiresAt: Date
}

export interface ClaimedAccessToken extends AccountPerson {
  version: AccountEnrollmentVersion
  deviceId: string | null
}

export interface AccountChallengeOrigin extends AccountPerson {
  version: AccountEnrollmentVersion
  deviceKind: DeviceKind
}

export interface AccountEnrollmentRow {
  device_id: string
  tenant_id: string | null
  serial_number: string | null
  kind: DeviceKind
  lifecycle_state: string
  account_enrollment: 'user' | 'device'
  account_subject: string | null
  user_email: string | null
  account_authenticated_at: Date | null
  account_reauth_required_at: Date | null
}

export interface AccountDeviceGate {
  accountEnrollment: 'user' | 'device'
  tenantId: string | null
  subject: string | null
  email: string | null
  authenticatedAt: Date | null
  reauthRequiredAt: Date | null
  lifecycleState: string
  identitySha256: string | null
}

export interface AccountEnrollmentStore {
  listDomains(scope: AccessScope): Promise<AccountDomainRow[]>
  /** undefined: the domain is mapped to a tenant outside the scope, or the tenant does not exist. */
  putDomain(
    scope: AccessScope,
    row: { domain: string; tenantId: string | null; requiredGroup: string | null; deviceKind: DeviceKind },
  ): Promise<AccountDomainRow | undefined>
  deleteDomain(scope: AccessScope, domain: string): Promise<boolean>
  domain(domain: string): Promise<AccountDomainRow | undefined>

  createLoginState(stateSha256: Buffer, state: LoginState): Promise<void>
  /** Marks the state used and returns it; undefined when unknown, used or expired at `now`. */
  claimLoginState(stateSha256: Buffer, now: Date): Promise<LoginState | undefined>

  createAccessToken(tokenSha256: Buffer, token: ClaimedAccessToken & { expiresAt: Date }): Promise<void>
  /** Marks the token used and returns it; undefined when unknown, used or expired at `now`. */
  claimAccessToken(tokenSha256: Buffer, now: Date): Promise<ClaimedAccessToken | undefined>

  recordChallenge(challengeSha256: Buffer, origin: AccountChallengeOrigin): Promise<void>
  /** The person behind the challenge a certificate was issued with. */
  challengeOriginOfCertificate(certificateSha256: string): Promise<AccountChallengeOrigin | undefined>
  /** Puts the person on the device (a new device also takes the tenant and kind). */
  recordPersonOnDevice(deviceId: string, origin: AccountChallengeOrigin, options: { newDevice: boolean; now: Date }): Promise<void>

  deviceGate(deviceId: string): Promise<AccountDeviceGate | undefined>
  /** A new sign-in of the device's person: clears the re-authentication due. */
  markAuthenticated(deviceId: string, now: Date): Promise<void>
  /** Asks the device's person to sign in again (audited); false: no such account-driven device in scope. */
  requireReauthentication(scope: AccessScope, deviceId: string, now: Date): Promise<boolean>
  /** Account-driven devices of this person (subject) whose sign-in is due, still active. */
  dueDevicesOf(subject: string): Promise<Array<{ deviceId: string; tenantId: string | null }>>
  listEnrollments(scope: AccessScope, filter: { email?: string; tenantId?: string | null }): Promise<AccountEnrollmentRow[]>
  enrollment(scope: AccessScope, deviceId: string): Promise<AccountEnrollmentRow | undefined>
  /** Deletes expired login states and tokens. */
  prune(before: Date): Promise<number>
}

export function createAccountEnrollmentStore(db: Kysely<Database>): AccountEnrollmentStore {
  const enrollmentColumns = [
    'd.id as device_id',
    'd.tenant_id',
    'd.serial_number',
    'd.kind',
    'd.lifecycle_state',
    'd.account_enrollment',
    'd.account_subject',
    'd.user_email',
    'd.account_authenticated_at',
    'd.account_reauth_required_at',
  ] as const
  const toRow = (row: Record<string, unknown>) => row as unknown as AccountEnrollmentRow

  return {
    async listDomains(scope) {
      return db.selectFrom('account_enrollment_domains').selectAll().where(inScope(scope, 'tenant_id')).orderBy('domain').execute()
    },

    async putDomain(scope, row) {
      try {
        return await db.transaction().execute(async (trx) => {
          const existing = await trx
            .selectFrom('account_enrollment_domains')
            .select('tenant_id')
            .where('domain', '=', row.domain)
            .forUpdate()
            .executeTakeFirst()
          // A domain mapped to another tenant is not the caller's to take over.
          if (existing && scope.kind !== 'all' && (existing.tenant_id === null || !scope.ids.includes(existing.tenant_id))) return undefined
          const values = { domain: row.domain, tenant_id: row.tenantId, required_group: row.requiredGroup, device_kind: row.deviceKind, updated_at: new Date() }
          const saved = await trx
            .insertInto('account_enrollment_domains')
            .values(values)
            .onConflict((oc) =>
              oc
                .column('domain')
                .doUpdateSet({ tenant_id: row.tenantId, required_group: row.requiredGroup, device_kind: row.deviceKind, updated_at: new Date() }),
            )
            .returningAll()
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, {
            type: 'account_enrollment_domain',
            id: row.domain,
            tenantId: row.tenantId,
            details: {
              tenant_id: row.tenantId,
              required_group: row.requiredGroup,
              device_kind: row.deviceKind,
              previous_tenant_id: existing?.tenant_id ?? null,
            },
          })
          return saved
        })
      } catch (error) {
        if (isReferenceViolation(error)) return undefined
        throw error
      }
    },

    async deleteDomain(scope, domain) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .deleteFrom('account_enrollment_domains')
          .where('domain', '=', domain)
          .where(inScope(scope, 'tenant_id'))
          .returning('tenant_id')
          .executeTakeFirst()
        if (!row) return false
        await recordAdminWrite(trx, scope, { type: 'account_enrollment_domain', id: domain, tenantId: row.tenant_id })
        return true
      })
    },

    async domain(domain) {
      return db.selectFrom('account_enrollment_domains').selectAll().where('domain', '=', domain).executeTakeFirst()
    },

    async createLoginState(stateSha256, state) {
      await db
        .insertInto('account_login_states')
        .values({
          state_sha256: stateSha256,
          version: state.version,
          code_verifier: state.codeVerifier,
          nonce: state.nonce,
          user_identifier: state.userIdentifier,
          device_id: state.deviceId,
          expires_at: state.expiresAt,
        })
        .execute()
    },

    async claimLoginState(stateSha256, now) {
      const row = await db
        .updateTable('account_login_states')
        .set({ used_at: now })
        .where('state_sha256', '=', stateSha256)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .returning(['version', 'code_verifier', 'nonce', 'user_identifier', 'device_id', 'expires_at'])
        .executeTakeFirst()
      if (!row) return undefined
      return {
        version: row.version,
        codeVerifier: row.code_verifier,
        nonce: row.nonce,
        userIdentifier: row.user_identifier,
        deviceId: row.device_id,
        expiresAt: row.expires_at,
      }
    },

    async createAccessToken(tokenSha256, token) {
      await db
        .insertInto('account_access_tokens')
        .values({
          token_sha256: tokenSha256,
          version: token.version,
          tenant_id: token.tenantId,
          subject: token.subject,
          email: token.email,
          device_id: token.deviceId,
          expires_at: token.expiresAt,
        })
        .execute()
    },

    async claimAccessToken(tokenSha256, now) {
      const row = await db
        .updateTable('account_access_tokens')
        .set({ used_at: now })
        .where('token_sha256', '=', tokenSha256)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .returning(['version', 'tenant_id', 'subject', 'email', 'device_id'])
        .executeTakeFirst()
      if (!row) return undefined
      return { version: row.version, tenantId: row.tenant_id, subject: row.subject, email: row.email, deviceId: row.device_id }
    },

    async recordChallenge(challengeSha256, origin) {
      await db
        .insertInto('account_enrollment_challenges')
        .values({
          challenge_sha256: challengeSha256,
          version: origin.version,
          tenant_id: origin.tenantId,
          subject: origin.subject,
          email: origin.email,
          device_kind: origin.deviceKind,
        })
        .execute()
    },

    async challengeOriginOfCertificate(certificateSha256) {
      const row = await db
        .selectFrom('issued_certificates as i')
        .innerJoin('account_enrollment_challenges as c', 'c.challenge_sha256', 'i.challenge_sha256')
        .select(['c.version', 'c.tenant_id', 'c.subject', 'c.email', 'c.device_kind'])
        .where('i.sha256', '=', certificateSha256)
        .executeTakeFirst()
      if (!row) return undefined
      return { version: row.version, tenantId: row.tenant_id, subject: row.subject, email: row.email, deviceKind: row.device_kind }
    },

    async recordPersonOnDevice(deviceId, origin, options) {
      await db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('devices').select('tenant_id').where('id', '=', deviceId).forUpdate().executeTakeFirst()
        if (!current) return
        const person = {
          account_subject: origin.subject,
          account_enrollment: origin.version === 'mdm-byod' ? ('user' as const) : ('device' as const),
          user_email: origin.email,
          account_authenticated_at: options.now,
          account_reauth_required_at: null,
        }
        if (options.newDevice) {
          // Billing: a period left open in another tenant ends.
          if (current.tenant_id !== origin.tenantId) await closeTenancy(trx, [deviceId], options.now)
          await trx
            .updateTable('devices')
            .set({ ...person, tenant_id: origin.tenantId, kind: origin.deviceKind })
            .where('id', '=', deviceId)
            .execute()
        } else if (current.tenant_id === origin.tenantId) {
          // An existing device keeps its tenant and kind (only POST /devices/move changes them).
          await trx.updateTable('devices').set(person).where('id', '=', deviceId).execute()
        }
      })
    },

    async deviceGate(deviceId) {
      const row = await db
        .selectFrom('devices')
        .select([
          'account_enrollment',
          'tenant_id',
          'account_subject',
          'user_email',
          'account_authenticated_at',
          'account_reauth_required_at',
          'lifecycle_state',
          'identity_sha256',
        ])
        .where('id', '=', deviceId)
        .executeTakeFirst()
      if (!row || row.account_enrollment === null) return undefined
      return {
        accountEnrollment: row.account_enrollment,
        tenantId: row.tenant_id,
        subject: row.account_subject,
        email: row.user_email,
        authenticatedAt: row.account_authenticated_at,
        reauthRequiredAt: row.account_reauth_required_at,
        lifecycleState: row.lifecycle_state,
        identitySha256: row.identity_sha256,
      }
    },

    async markAuthenticated(deviceId, now) {
      await db.updateTable('devices').set({ account_authenticated_at: now, account_reauth_required_at: null }).where('id', '=', deviceId).execute()
    },

    async requireReauthentication(scope, deviceId, now) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('devices')
          .set({ account_reauth_required_at: sql`coalesce(account_reauth_required_at, ${now})` })
          .where('id', '=', deviceId)
          .where('account_enrollment', 'is not', null)
          .where(inScope(scope, 'tenant_id'))
          .returning(['tenant_id', 'user_email'])
          .executeTakeFirst()
        if (!row) return false
        await recordAdminWrite(trx, scope, { type: 'device', id: deviceId, tenantId: row.tenant_id, deviceId, details: { reauthentication_required: true } })
        return true
      })
    },

    async dueDevicesOf(subject) {
      const rows = await db
        .selectFrom('devices')
        .select(['id', 'tenant_id'])
        .where('account_subject', '=', subject)
        .where('account_reauth_required_at', 'is not', null)
        .where('lifecycle_state', 'not in', ['wipe_pending', 'wiped', 'retired'])
        .orderBy('id')
        .execute()
      return rows.map((row) => ({ deviceId: row.id, tenantId: row.tenant_id }))
    },

    async listEnrollments(scope, filter) {
      let query = db.selectFrom('devices as d').select(enrollmentColumns).where('d.account_enrollment', 'is not', null).where(inScope(scope, 'd.tenant_id'))
      if (filter.email !== undefined) query = query.where(sql`lower(d.user_email)`, '=', filter.email.toLowerCase())
      if (filter.tenantId !== undefined) query = query.where('d.tenant_id', filter.tenantId === null ? 'is' : '=', filter.tenantId)
      return (await query.orderBy('d.user_email').orderBy('d.id').limit(1000).execute()).map(toRow)
    },

    async enrollment(scope, deviceId) {
      const row = await db
        .selectFrom('devices as d')
        .select(enrollmentColumns)
        .where('d.id', '=', deviceId)
        .where('d.account_enrollment', 'is not', null)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      return row ? toRow(row) : undefined
    },

    async prune(before) {
      const states = await db.deleteFrom('account_login_states').where('expires_at', '<', before).executeTakeFirst()
      const tokens = await db.deleteFrom('account_access_tokens').where('expires_at', '<', before).executeTakeFirst()
      return Number(states.numDeletedRows) + Number(tokens.numDeletedRows)
    },
  }
}
