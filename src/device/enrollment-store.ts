// Devices, their enrollment channels and the certificate each device is bound to.
import { sql, type Kysely } from 'kysely'
import { preparedStatement } from '../db/statement-names.js'
import type { Database } from '../db/schema.js'
import type { LifecycleState } from '../model/devices.js'
import { isUniqueViolation } from '../db/pg-errors.js'
import { isOpen, ofDevice } from '../queue/queue-sql.js'

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

export type AuthenticateOutcome =
  | { ok: true; newDevice: boolean }
  | { ok: false; reason: 'bound_elsewhere'; boundToDeviceId: string }
  /** The device's binding changed since it was read (`expectedIdentity`): judge again. */
  | { ok: false; reason: 'binding_changed' }

/** What an Authenticate is judged against: the device as it is bound now. */
export interface DeviceBinding {
  identitySha256: string | null
  tenantId: string | null
  serialNumber: string | null
  lifecycleState: LifecycleState
  /** The device channel is enabled: the enrollment is active. */
  active: boolean
  /** The device channel exists: a TokenUpdate completed an enrollment once. */
  everEnrolled: boolean
  checkedOut: boolean
  reenrollmentAllowedUntil: Date | null
}

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
  /** Sealed by the caller (SecretBox, associated data `unlock-token:<enrollment id>`). */
  unlockTokenSealed?: Buffer
  awaitingConfiguration: boolean
}

export type TokenUpdateOutcome = { ok: true; tokenUpdateCount: number } | { ok: false; reason: 'unknown_device' | 'identity_mismatch' }

export interface EnrollmentStore {
  /** The device's current binding and state; undefined: no such device. */
  bindingOf(deviceId: string): Promise<DeviceBinding | undefined>
  /**
   * Records the device, binds the certificate, disables its channels and cancels what was
   * queued. An identity renewal (`renewal`: the certificate was issued for this device) only
   * moves the binding: the channels stay enabled and the queue stays. Only when the device
   * is still bound to `expectedIdentity` (null: not bound, or no such device), as read by
   * bindingOf. Never changes the device's tenant, nor a serial number it already has.
   */
  authenticate(facts: DeviceFacts, identity: BoundIdentity, options: { renewal?: boolean; expectedIdentity: string | null }): Promise<AuthenticateOutcome>
  /**
   * Stores push facts and enables the channel, if its device is bound to this certificate;
   * counts token updates since the last Authenticate.
   */
  updateToken(facts: TokenFacts, certificateSha256: string): Promise<TokenUpdateOutcome>
  /** Disables the device and its user channels, cancels their queues; history is kept. */
  checkOut(deviceId: string): Promise<boolean>
  /** The certificate hash bound to a device (undefined = no such device). */
  boundIdentity(deviceId: string): Promise<string | null | undefined>
}

/**
 * Cancels what is queued for a device's channels (Pending or NotNow): on check-out, or when
 * an erase or retirement ends management without the device saying so. Without `at`, the
 * database's clock.
 */
export async function cancelQueuedForDevice(trx: Kysely<Database>, deviceId: string, reason: string, at?: Date): Promise<void> {
  await trx
    .updateTable('command_targets')
    .set({ status: 'Cancelled', cancel_reason: reason, updated_at: at ?? sql<Date>`now()` })
    .where(ofDevice(deviceId))
    .where(isOpen())
    .execute()
}

export function createEnrollmentStore(db: Kysely<Database>): EnrollmentStore {
  return {
    async bindingOf(deviceId) {
      const row = await db
        .selectFrom('devices as d')
        .leftJoin('enrollments as e', (join) => join.onRef('e.id', '=', 'd.id').on('e.channel', '=', 'device'))
        .select([
          'd.identity_sha256',
          'd.tenant_id',
          'd.serial_number',
          'd.lifecycle_state',
          'd.reenrollment_allowed_until',
          'e.id as enrollment_id',
          'e.enabled',
          'e.checked_out_at',
        ])
        .where('d.id', '=', deviceId)
        .executeTakeFirst()
      if (!row) return undefined
      return {
        identitySha256: row.identity_sha256,
        tenantId: row.tenant_id,
        serialNumber: row.serial_number,
        lifecycleState: row.lifecycle_state,
        active: row.enabled === true,
        everEnrolled: row.enrollment_id !== null,
        checkedOut: row.checked_out_at !== null,
        reenrollmentAllowedUntil: row.reenrollment_allowed_until,
      }
    },

    async authenticate(facts, identity, options) {
      const renewal = options.renewal === true
      // One statement: refuse a certificate bound to another device; otherwise record the
      // device and bind the certificate, and start clean: what was queued is cancelled and
      // the channels stay disabled until TokenUpdate. Facts the device did not send this
      // time (a Mac's DeviceName, say) keep their stored value.
      try {
        const { rows } = await sql<{ holder: string | null; inserted: boolean | null }>`${sql.raw(preparedStatement)}
          with holder as (
            select id from devices where identity_sha256 = ${identity.certificateSha256} and id <> ${facts.deviceId} limit 1
          ),
          upsert as (
            insert into devices (id, udid, enrollment_id, user_enrollment, serial_number, imei, meid, model, model_name,
              product_name, device_name, os_version, build_version, topic, identity_sha256, identity_not_after,
              authenticate_raw, authenticated_at, kind)
            select ${facts.deviceId}::text, ${facts.udid ?? null}::text, ${facts.userEnrollmentId ?? null}::text,
              ${facts.udid === undefined && facts.userEnrollmentId !== undefined}::boolean, ${facts.serialNumber ?? null}::text,
              ${facts.imei ?? null}::text, ${facts.meid ?? null}::text, ${facts.model ?? null}::text, ${facts.modelName ?? null}::text,
              ${facts.productName ?? null}::text, ${facts.deviceName ?? null}::text, ${facts.osVersion ?? null}::text,
              ${facts.buildVersion ?? null}::text, ${facts.topic}::text, ${identity.certificateSha256}::text,
              ${identity.notAfter}::timestamptz, ${facts.raw}::bytea, now(),
              -- A User Enrollment is personal; anything else is work until its origin says otherwise.
              case when ${facts.udid === undefined && facts.userEnrollmentId !== undefined}::boolean then 'personal' else 'work' end
            where not exists (select 1 from holder)
            on conflict (id) do update set
              udid = coalesce(excluded.udid, devices.udid),
              enrollment_id = coalesce(excluded.enrollment_id, devices.enrollment_id),
              user_enrollment = excluded.user_enrollment,
              kind = case when excluded.user_enrollment then 'personal' when devices.user_enrollment then 'work' else devices.kind end,
              -- A device's serial number never changes: the one first stored stays.
              serial_number = coalesce(devices.serial_number, excluded.serial_number),
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
              -- A new certificate ends the renewal of the old one.
              identity_renewal_queued_at = case when devices.identity_sha256 is distinct from excluded.identity_sha256 then null else devices.identity_renewal_queued_at end,
              identity_renewal_command_uuid = case when devices.identity_sha256 is distinct from excluded.identity_sha256 then null else devices.identity_renewal_command_uuid end,
              -- A permission to re-enroll is used up by the identity it let in.
              reenrollment_allowed_until = case when devices.identity_sha256 is distinct from excluded.identity_sha256 then null else devices.reenrollment_allowed_until end,
              updated_at = now()
            where devices.identity_sha256 is not distinct from ${options.expectedIdentity}::text
            returning (xmax = 0) as inserted
          ),
          cancelled as (
            update command_targets set status = 'Cancelled', cancel_reason = 're-authenticated', updated_at = now()
            where exists (select 1 from upsert) and not ${renewal}::boolean and ${isOpen()}
              and ${ofDevice(facts.deviceId)}
          ),
          disabled as (
            update enrollments set enabled = false, token_update_count = 0, not_now_this_session = false, updated_at = now()
            where exists (select 1 from upsert) and not ${renewal}::boolean and device_id = ${facts.deviceId}
          )
          select (select id from holder) as holder, (select inserted from upsert) as inserted`.execute(db)
        const row = rows[0]!
        if (row.holder !== null) return { ok: false, reason: 'bound_elsewhere', boundToDeviceId: row.holder }
        if (row.inserted === null) return { ok: false, reason: 'binding_changed' }
        return { ok: true, newDevice: row.inserted }
      } catch (error) {
        // Another device bound the same certificate at the same moment (unique index).
        if (isUniqueViolation(error)) return { ok: false, reason: 'bound_elsewhere', boundToDeviceId: '(another device, concurrently)' }
        throw error
      }
    },

    async updateToken(facts, certificateSha256) {
      // One statement: the channel row comes from its device row only when that device is
      // bound to this certificate; the first TokenUpdate after Authenticate counts 1.
      const { rows } = await sql<{ token_update_count: number }>`${sql.raw(preparedStatement)}
        insert into enrollments (id, device_id, channel, user_id, user_short_name, user_long_name, topic, push_token,
          push_magic, unlock_token_sealed, awaiting_configuration, enabled, token_update_count, token_updated_at, last_seen_at)
        select ${facts.enrollmentId}, d.id, ${facts.channel}, ${facts.userId ?? null}, ${facts.userShortName ?? null},
          ${facts.userLongName ?? null}, ${facts.topic}, ${facts.token}::bytea, ${facts.pushMagic},
          ${facts.unlockTokenSealed ?? null}::bytea, ${facts.awaitingConfiguration}, true, 1, now(), now()
        from devices d
        where d.id = ${facts.deviceId} and d.identity_sha256 = ${certificateSha256}
        on conflict (id) do update set
          topic = excluded.topic,
          push_token = excluded.push_token,
          push_magic = excluded.push_magic,
          -- A TokenUpdate without UnlockToken does not invalidate the one we have.
          unlock_token_sealed = coalesce(excluded.unlock_token_sealed, enrollments.unlock_token_sealed),
          unlock_token = case when excluded.unlock_token_sealed is null then enrollments.unlock_token end,
          awaiting_configuration = excluded.awaiting_configuration,
          user_short_name = coalesce(excluded.user_short_name, enrollments.user_short_name),
          user_long_name = coalesce(excluded.user_long_name, enrollments.user_long_name),
          enabled = true,
          token_update_count = enrollments.token_update_count + 1,
          token_updated_at = now(),
          last_seen_at = now(),
          checked_out_at = null,
          -- A new token: pushes may go out again.
          push_invalid_at = null,
          push_invalid_reason = null,
          updated_at = now()
        where enrollments.device_id = excluded.device_id
        returning token_update_count`.execute(db)
      const row = rows[0]
      if (row) return { ok: true as const, tokenUpdateCount: row.token_update_count }
      const bound = await db.selectFrom('devices').select('identity_sha256').where('id', '=', facts.deviceId).executeTakeFirst()
      return { ok: false as const, reason: !bound ? ('unknown_device' as const) : ('identity_mismatch' as const) }
    },

    async checkOut(deviceId) {
      return db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('enrollments')
          .set({ enabled: false, checked_out_at: sql`now()`, updated_at: sql`now()` })
          .where('device_id', '=', deviceId)
          .executeTakeFirst()
        await cancelQueuedForDevice(trx, deviceId, 'checked out')
        return Number(result.numUpdatedRows) > 0
      })
    },

    async boundIdentity(deviceId) {
      // Every check-in but Authenticate and TokenUpdate reads it first: prepared, planned once per connection.
      const { rows } = await sql<{ identity_sha256: string | null }>`${sql.raw(preparedStatement)}
        select identity_sha256 from devices where id = ${deviceId}`.execute(db)
      const row = rows[0]
      return row ? row.identity_sha256 : undefined
    },
  }
}
