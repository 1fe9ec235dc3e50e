// Devices, their enrollment channels and the certificate each device is bound to.
import { sql, type Kysely } from 'kysely'
import type { Database } from './schema.js'

export interface DeviceFacts {
  deviceId: string
  udid?: string
  userEnrollmentId?: string
  serialNumber?: string
  imei?: string
  meid?: string
  model?: string
  modelName?: string
  productName?: string
  deviceName?: string
  osVersion?: string
  buildVersion?: string
  topic: string
  raw: Buffer
}

export interface BoundIdentity {
  certificateSha256: string
  notAfter: Date | null
}

export type AuthenticateOutcome = { ok: true; newDevice: boolean } | { ok: false; boundToDeviceId: string }

export interface ChannelFacts {
  enrollmentId: string
  deviceId: string
  channel: 'device' | 'user'
  userId?: string
  userShortName?: string
  userLongName?: string
}

export interface TokenFacts extends ChannelFacts {
  topic: string
  token: Buffer
  pushMagic: string
  unlockToken?: Buffer
  awaitingConfiguration: boolean
}

export type TokenUpdateOutcome = { ok: true; tokenUpdateCount: number } | { ok: false; reason: 'unknown_device' }

/** What a command report needs to know about its channel, read in the same query that touches it. */
export type ReportGate =
  | { ok: true; notNowThisSession: boolean }
  | { ok: false; reason: 'unknown_enrollment' | 'enrollment_disabled' | 'identity_mismatch' }

export interface EnrollmentStore {
  /** Records the device, binds the certificate, disables its channels and cancels what was queued. */
  authenticate(facts: DeviceFacts, identity: BoundIdentity): Promise<AuthenticateOutcome>
  /** Stores push facts and enables the channel; counts token updates since the last Authenticate. */
  updateToken(facts: TokenFacts): Promise<TokenUpdateOutcome>
  /** Disables the device and its user channels, cancels their queues; history is kept. */
  checkOut(deviceId: string): Promise<boolean>
  /** The certificate hash bound to a device (undefined = no such device). */
  boundIdentity(deviceId: string): Promise<string | null | undefined>
  /**
   * For a command report: checks the channel is enabled and its device bound to this
   * certificate, records last_seen_at and the NotNow session flag, all in one query.
   */
  gateReport(enrollmentId: string, deviceId: string, certificateSha256: string, status: string): Promise<ReportGate>
  isEnabled(enrollmentId: string): Promise<boolean>
  setBootstrapToken(deviceId: string, token: Buffer | undefined): Promise<void>
  getBootstrapToken(deviceId: string): Promise<Buffer | undefined>
}

export function createEnrollmentStore(db: Kysely<Database>): EnrollmentStore {
  return {
    async authenticate(facts, identity) {
      return db.transaction().execute(async (trx) => {
        const holder = await trx
          .selectFrom('devices')
          .select('id')
          .where('identity_sha256', '=', identity.certificateSha256)
          .where('id', '<>', facts.deviceId)
          .executeTakeFirst()
        if (holder) return { ok: false as const, boundToDeviceId: holder.id }

        // Facts a device did not send this time (a Mac's DeviceName, say) keep their stored value.
        const upsert = await sql<{ inserted: boolean }>`
          insert into devices (id, udid, enrollment_id, user_enrollment, serial_number, imei, meid, model, model_name,
            product_name, device_name, os_version, build_version, topic, identity_sha256, identity_not_after,
            authenticate_raw, authenticated_at)
          values (${facts.deviceId}, ${facts.udid ?? null}, ${facts.userEnrollmentId ?? null},
            ${facts.udid === undefined && facts.userEnrollmentId !== undefined}, ${facts.serialNumber ?? null},
            ${facts.imei ?? null}, ${facts.meid ?? null}, ${facts.model ?? null}, ${facts.modelName ?? null},
            ${facts.productName ?? null}, ${facts.deviceName ?? null}, ${facts.osVersion ?? null},
            ${facts.buildVersion ?? null}, ${facts.topic}, ${identity.certificateSha256}, ${identity.notAfter},
            ${facts.raw}, now())
          on conflict (id) do update set
            udid = coalesce(excluded.udid, devices.udid),
            enrollment_id = coalesce(excluded.enrollment_id, devices.enrollment_id),
            user_enrollment = excluded.user_enrollment,
            serial_number = coalesce(excluded.serial_number, devices.serial_number),
            imei = coalesce(excluded.imei, devices.imei),
            meid = coalesce(excluded.meid, devices.meid),
            model = coalesce(excluded.model, devices.model),
            model_name = coalesce(excluded.model_name, devices.model_name),
            product_name = coalesce(excluded.product_name, devices.product_name),
            device_name = coalesce(excluded.device_name, devices.device_name),
            os_version = coalesce(excluded.os_version, devices.os_version),
            build_version = coalesce(excluded.build_version, devices.build_version),
            topic = excluded.topic,
            identity_sha256 = excluded.identity_sha256,
            identity_not_after = excluded.identity_not_after,
            authenticate_raw = excluded.authenticate_raw,
            authenticated_at = now(),
            updated_at = now()
          returning (xmax = 0) as inserted`.execute(trx)
        const newDevice = upsert.rows[0]?.inserted === true

        // A (re-)enrollment starts clean: nothing queued before it is delivered, and the
        // channels stay disabled until TokenUpdate.
        await trx
          .updateTable('command_targets')
          .set({ status: 'Cancelled', cancel_reason: 're-authenticated', updated_at: sql`now()` })
          .where('enrollment_id', 'in', trx.selectFrom('enrollments').select('id').where('device_id', '=', facts.deviceId))
          .where('status', 'in', ['Pending', 'NotNow'])
          .execute()
        await trx
          .updateTable('enrollments')
          .set({ enabled: false, token_update_count: 0, not_now_this_session: false, updated_at: sql`now()` })
          .where('device_id', '=', facts.deviceId)
          .execute()
        return { ok: true as const, newDevice }
      })
    },

    async updateToken(facts) {
      return db.transaction().execute(async (trx) => {
        const device = await trx.selectFrom('devices').select('id').where('id', '=', facts.deviceId).executeTakeFirst()
        if (!device) return { ok: false as const, reason: 'unknown_device' as const }
        const values = {
          topic: facts.topic,
          push_token: facts.token,
          push_magic: facts.pushMagic,
          awaiting_configuration: facts.awaitingConfiguration,
          enabled: true,
          token_updated_at: sql<Date>`now()`,
          last_seen_at: sql<Date>`now()`,
          checked_out_at: null,
          updated_at: sql<Date>`now()`,
          ...(facts.unlockToken ? { unlock_token: facts.unlockToken } : {}),
          ...(facts.userShortName !== undefined ? { user_short_name: facts.userShortName } : {}),
          ...(facts.userLongName !== undefined ? { user_long_name: facts.userLongName } : {}),
        }
        const row = await trx
          .insertInto('enrollments')
          .values({
            id: facts.enrollmentId,
            device_id: facts.deviceId,
            channel: facts.channel,
            user_id: facts.userId ?? null,
            token_update_count: 1,
            ...values,
          })
          .onConflict((oc) =>
            oc.column('id').doUpdateSet({ ...values, token_update_count: sql`enrollments.token_update_count + 1` }),
          )
          .returning('token_update_count')
          .executeTakeFirstOrThrow()
        return { ok: true as const, tokenUpdateCount: row.token_update_count }
      })
    },

    async checkOut(deviceId) {
      return db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('enrollments')
          .set({ enabled: false, checked_out_at: sql`now()`, updated_at: sql`now()` })
          .where('device_id', '=', deviceId)
          .executeTakeFirst()
        await trx
          .updateTable('command_targets')
          .set({ status: 'Cancelled', cancel_reason: 'checked out', updated_at: sql`now()` })
          .where('enrollment_id', 'in', trx.selectFrom('enrollments').select('id').where('device_id', '=', deviceId))
          .where('status', 'in', ['Pending', 'NotNow'])
          .execute()
        return Number(result.numUpdatedRows) > 0
      })
    },

    async boundIdentity(deviceId) {
      const row = await db.selectFrom('devices').select('identity_sha256').where('id', '=', deviceId).executeTakeFirst()
      return row ? row.identity_sha256 : undefined
    },

    async gateReport(enrollmentId, deviceId, certificateSha256, status) {
      const touched = await sql<{ not_now_this_session: boolean }>`
        update enrollments e
        set last_seen_at = now(),
            not_now_this_session = case ${status}::text when 'Idle' then false when 'NotNow' then true else e.not_now_this_session end
        from devices d
        where e.id = ${enrollmentId} and e.device_id = ${deviceId} and e.enabled
          and d.id = e.device_id and d.identity_sha256 = ${certificateSha256}
        returning e.not_now_this_session`.execute(db)
      const row = touched.rows[0]
      if (row) return { ok: true, notNowThisSession: row.not_now_this_session }
      // The rare failure path explains itself with a second look.
      const why = await db
        .selectFrom('enrollments as e')
        .innerJoin('devices as d', 'd.id', 'e.device_id')
        .select(['e.enabled', 'e.device_id', 'd.identity_sha256'])
        .where('e.id', '=', enrollmentId)
        .executeTakeFirst()
      if (!why || why.device_id !== deviceId) return { ok: false, reason: 'unknown_enrollment' }
      if (why.identity_sha256 !== certificateSha256) return { ok: false, reason: 'identity_mismatch' }
      return { ok: false, reason: 'enrollment_disabled' }
    },

    async isEnabled(enrollmentId) {
      const row = await db.selectFrom('enrollments').select('enabled').where('id', '=', enrollmentId).executeTakeFirst()
      return row?.enabled === true
    },

    async setBootstrapToken(deviceId, token) {
      if (!token || token.length === 0) {
        await db.deleteFrom('bootstrap_tokens').where('device_id', '=', deviceId).execute()
        return
      }
      await db
        .insertInto('bootstrap_tokens')
        .values({ device_id: deviceId, token })
        .onConflict((oc) => oc.column('device_id').doUpdateSet({ token, updated_at: sql`now()` }))
        .execute()
    },

    async getBootstrapToken(deviceId) {
      const row = await db.selectFrom('bootstrap_tokens').select('token').where('device_id', '=', deviceId).executeTakeFirst()
      return row?.token
    },
  }
}
