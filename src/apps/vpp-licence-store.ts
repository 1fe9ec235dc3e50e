// Device licences of Apps and Books assets: Orchard's state per device and asset, the content
// tokens a device may draw licences from (its tenant's, or its organisation's when that token
// serves its departments), and the open associate/disassociate events.
import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely'
import type { Database } from '../db/schema.js'
import type { VppLicencesTable } from '../db/schema-apps.js'

export type VppLicenceRow = Selectable<VppLicencesTable>

export interface LicenceKey {
  deviceId: string
  adamId: string
}

export interface WantedLicence extends LicenceKey {
  serialNumber: string
  tenantId: string | null
}

export interface LicenceSource {
  tokenId: string
  tokenName: string
  /** The token's own tenant (null: central IT): the device's own comes first. */
  tenantId: string | null
  status: string
  retryAfter: Date | null
  pricingParam: string
  totalCount: number
  availableCount: number
}

export interface VppLicenceStore {
  licence(deviceId: string, adamId: string): Promise<VppLicenceRow | undefined>
  deviceFacts(deviceId: string): Promise<{ serialNumber: string | null; tenantId: string | null } | undefined>
  /** A licence Apple already holds for the serial, from a token the device may use (as synced). */
  syncedAssignment(serialNumber: string, adamId: string, tenantId: string | null): Promise<{ tokenId: string; pricingParam: string } | undefined>
  want(key: LicenceKey, serialNumber: string, now: Date): Promise<void>
  markAssigned(key: LicenceKey, serialNumber: string, tokenId: string, pricingParam: string, now: Date): Promise<void>
  /** Wanted licences, oldest first, with the device's tenant. */
  wanted(limit: number): Promise<WantedLicence[]>
  /**
   * Assigned licences the device no longer needs become releasing: its management ended, it was
   * wiped or retired, or it moved to a tenant that may not use the token. Returns how many.
   */
  releaseUnneeded(now: Date): Promise<number>
  /** The device's licences of assets other than these are released (assigned) or dropped (wanted, failed). */
  keepOnly(deviceId: string, adamIds: readonly string[], now: Date): Promise<void>
  /** Licences to disassociate, with their token and asset. */
  releasing(limit: number): Promise<Array<LicenceKey & { serialNumber: string; tokenId: string; pricingParam: string }>>
  markRevoking(adamId: string, deviceIds: readonly string[], eventId: string, now: Date): Promise<void>
  /** The event's rows still revoking (of these devices only, when given) are gone at Apple: deleted; returns how many. */
  completeRevoking(tokenId: string, eventId: string, deviceIds?: readonly string[]): Promise<number>
  /** Tokens the tenant's devices may use that hold the asset: the tenant's own first, then the most available. */
  sourcesFor(tenantId: string | null, adamId: string): Promise<LicenceSource[]>
  markAssigning(adamId: string, deviceIds: readonly string[], tokenId: string, pricingParam: string, eventId: string, now: Date): Promise<void>
  markFailed(adamId: string, deviceIds: readonly string[], detail: string, now: Date): Promise<void>
  /** The event's rows still assigning (of these devices only, when given) become assigned; returns their devices. */
  completeAssigning(tokenId: string, eventId: string, now: Date, deviceIds?: readonly string[]): Promise<string[]>
  /** These devices' rows still in the event (assigning or revoking) failed; returns their devices. */
  failInEvent(tokenId: string, eventId: string, deviceIds: readonly string[], detail: string, now: Date): Promise<string[]>
  /** Events with rows still assigning or revoking, and when the oldest of them was sent. */
  openEvents(): Promise<Array<{ tokenId: string; eventId: string; since: Date }>>
  eventRows(tokenId: string, eventId: string): Promise<VppLicenceRow[]>
  /** Apple's licence counts move with a finished event until the next sync reads them again. */
  countAssigned(tokenId: string, adamId: string, pricingParam: string, delta: number): Promise<void>
}

/** Tokens a device of `tenantId` may draw from: its tenant's, or its organisation's serving departments. */
/**
 * Token `t` may license a device of `tenant` (a value, or a column such as d.tenant_id): its own
 * tenant's (central IT's for central IT), or its organisation's when that token serves departments.
 */
const usableBy = (tenant: RawBuilder<unknown>) =>
  sql<boolean>`(t.tenant_id is not distinct from ${tenant} or (t.serves_sub_tenants and t.tenant_id = (select p.parent_id from tenants p where p.id = ${tenant})))`

export function createVppLicenceStore(db: Kysely<Database>): VppLicenceStore {
  return {
    async licence(deviceId, adamId) {
      return db.selectFrom('vpp_licences').selectAll().where('device_id', '=', deviceId).where('adam_id', '=', adamId).executeTakeFirst()
    },

    async deviceFacts(deviceId) {
      const row = await db.selectFrom('devices').select(['serial_number', 'tenant_id']).where('id', '=', deviceId).executeTakeFirst()
      return row && { serialNumber: row.serial_number, tenantId: row.tenant_id }
    },

    async syncedAssignment(serialNumber, adamId, tenantId) {
      const row = await db
        .selectFrom('vpp_assignments as a')
        .innerJoin('vpp_tokens as t', 't.id', 'a.token_id')
        .select(['a.token_id', 'a.pricing_param'])
        .where('a.serial_number', '=', serialNumber)
        .where('a.adam_id', '=', adamId)
        .where(usableBy(sql`${tenantId}`))
        .orderBy('a.token_id')
        .executeTakeFirst()
      return row && { tokenId: row.token_id, pricingParam: row.pricing_param }
    },

    async want(key, serialNumber, now) {
      await db
        .insertInto('vpp_licences')
        .values({ device_id: key.deviceId, adam_id: key.adamId, serial_number: serialNumber, state: 'wanted', updated_at: now })
        .onConflict((oc) =>
          oc
            .columns(['device_id', 'adam_id'])
            .doUpdateSet({ serial_number: serialNumber, state: 'wanted', token_id: null, event_id: null, detail: null, updated_at: now }),
        )
        .execute()
    },

    async markAssigned(key, serialNumber, tokenId, pricingParam, now) {
      await db
        .insertInto('vpp_licences')
        .values({
          device_id: key.deviceId,
          adam_id: key.adamId,
          serial_number: serialNumber,
          token_id: tokenId,
          pricing_param: pricingParam,
          state: 'assigned',
          updated_at: now,
        })
        .onConflict((oc) =>
          oc.columns(['device_id', 'adam_id']).doUpdateSet({
            serial_number: serialNumber,
            token_id: tokenId,
            pricing_param: pricingParam,
            state: 'assigned',
            event_id: null,
            detail: null,
            updated_at: now,
          }),
        )
        .execute()
    },

    async wanted(limit) {
      const rows = await db
        .selectFrom('vpp_licences as l')
        .innerJoin('devices as d', 'd.id', 'l.device_id')
        .select(['l.device_id', 'l.adam_id', 'l.serial_number', 'd.tenant_id'])
        .where('l.state', '=', 'wanted')
        .orderBy('l.updated_at')
        .orderBy('l.device_id')
        .limit(limit)
        .execute()
      return rows.map((row) => ({ deviceId: row.device_id, adamId: row.adam_id, serialNumber: row.serial_number, tenantId: row.tenant_id }))
    },

    async releaseUnneeded(now) {
      const released = await db
        .updateTable('vpp_licences as l')
        .set({ state: 'releasing', detail: null, updated_at: now })
        .where('l.state', '=', 'assigned')
        .where('l.token_id', 'is not', null)
        .where((eb) =>
          eb.or([
            eb.not(eb.exists(eb.selectFrom('enrollments as e').select('e.id').whereRef('e.id', '=', 'l.device_id').where('e.enabled', '=', true))),
            eb.exists(eb.selectFrom('devices as d').select('d.id').whereRef('d.id', '=', 'l.device_id').where('d.lifecycle_state', 'in', ['wiped', 'retired'])),
            eb.not(
              eb.exists(
                eb
                  .selectFrom('devices as d')
                  .innerJoin('vpp_tokens as t', 't.id', 'l.token_id')
                  .select('d.id')
                  .whereRef('d.id', '=', 'l.device_id')
                  .where(usableBy(sql.ref('d.tenant_id'))),
              ),
            ),
          ]),
        )
        .executeTakeFirst()
      return Number(released.numUpdatedRows)
    },

    async keepOnly(deviceId, adamIds, now) {
      // One statement: it runs on every app list a device with blueprint apps reports.
      const kept = sql`array[${sql.join(adamIds.length > 0 ? adamIds.map((id) => sql`${id}`) : [sql`''`])}]::text[]`
      await sql`
        with released as (
          update vpp_licences set state = 'releasing', detail = null, updated_at = ${now}
          where device_id = ${deviceId} and state = 'assigned' and token_id is not null and not (adam_id = any(${kept}))
          returning 1)
        delete from vpp_licences where device_id = ${deviceId} and state in ('wanted', 'failed') and not (adam_id = any(${kept}))`.execute(db)
    },

    async releasing(limit) {
      const rows = await db
        .selectFrom('vpp_licences')
        .select(['device_id', 'adam_id', 'serial_number', 'token_id', 'pricing_param'])
        .where('state', '=', 'releasing')
        .where('token_id', 'is not', null)
        .orderBy('updated_at')
        .orderBy('device_id')
        .limit(limit)
        .execute()
      return rows.map((row) => ({
        deviceId: row.device_id,
        adamId: row.adam_id,
        serialNumber: row.serial_number,
        tokenId: row.token_id!,
        pricingParam: row.pricing_param ?? 'STDQ',
      }))
    },

    async markRevoking(adamId, deviceIds, eventId, now) {
      if (deviceIds.length === 0) return
      await db
        .updateTable('vpp_licences')
        .set({ state: 'revoking', event_id: eventId, detail: null, updated_at: now })
        .where('adam_id', '=', adamId)
        .where('device_id', 'in', deviceIds)
        .where('state', '=', 'releasing')
        .execute()
    },

    async completeRevoking(tokenId, eventId, deviceIds) {
      if (deviceIds?.length === 0) return 0
      const deleted = await db
        .deleteFrom('vpp_licences')
        .where('token_id', '=', tokenId)
        .where('event_id', '=', eventId)
        .where('state', '=', 'revoking')
        .$if(deviceIds !== undefined, (qb) => qb.where('device_id', 'in', deviceIds!))
        .executeTakeFirst()
      return Number(deleted.numDeletedRows)
    },

    async sourcesFor(tenantId, adamId) {
      const rows = await db
        .selectFrom('vpp_assets as a')
        .innerJoin('vpp_tokens as t', 't.id', 'a.token_id')
        .select(['t.id', 't.name', 't.tenant_id', 't.status', 't.retry_after', 'a.pricing_param', 'a.total_count', 'a.available_count'])
        .where('a.adam_id', '=', adamId)
        .where('a.device_assignable', '=', true)
        .where(usableBy(sql`${tenantId}`))
        .orderBy(sql`t.tenant_id is not distinct from ${tenantId}`, 'desc')
        .orderBy('a.available_count', 'desc')
        .orderBy('t.id')
        .execute()
      return rows.map((row) => ({
        tokenId: row.id,
        tokenName: row.name,
        tenantId: row.tenant_id,
        status: row.status,
        retryAfter: row.retry_after,
        pricingParam: row.pricing_param,
        totalCount: row.total_count,
        availableCount: row.available_count,
      }))
    },

    async markAssigning(adamId, deviceIds, tokenId, pricingParam, eventId, now) {
      if (deviceIds.length === 0) return
      await db
        .updateTable('vpp_licences')
        .set({ state: 'assigning', token_id: tokenId, pricing_param: pricingParam, event_id: eventId, detail: null, updated_at: now })
        .where('adam_id', '=', adamId)
        .where('device_id', 'in', deviceIds)
        .execute()
    },

    async markFailed(adamId, deviceIds, detail, now) {
      if (deviceIds.length === 0) return
      await db
        .updateTable('vpp_licences')
        .set({ state: 'failed', event_id: null, detail: detail.slice(0, 2000), updated_at: now })
        .where('adam_id', '=', adamId)
        .where('device_id', 'in', deviceIds)
        .execute()
    },

    async completeAssigning(tokenId, eventId, now, deviceIds) {
      if (deviceIds?.length === 0) return []
      const rows = await db
        .updateTable('vpp_licences')
        .set({ state: 'assigned', event_id: null, detail: null, updated_at: now })
        .where('token_id', '=', tokenId)
        .where('event_id', '=', eventId)
        .where('state', '=', 'assigning')
        .$if(deviceIds !== undefined, (qb) => qb.where('device_id', 'in', deviceIds!))
        .returning('device_id')
        .execute()
      return rows.map((row) => row.device_id)
    },

    async failInEvent(tokenId, eventId, deviceIds, detail, now) {
      if (deviceIds.length === 0) return []
      const rows = await db
        .updateTable('vpp_licences')
        .set({ state: 'failed', event_id: null, detail: detail.slice(0, 2000), updated_at: now })
        .where('token_id', '=', tokenId)
        .where('event_id', '=', eventId)
        .where('state', 'in', ['assigning', 'revoking'])
        .where('device_id', 'in', deviceIds)
        .returning('device_id')
        .execute()
      return rows.map((row) => row.device_id)
    },

    async openEvents() {
      const rows = await db
        .selectFrom('vpp_licences')
        .select((eb) => ['token_id', 'event_id', eb.fn.min('updated_at').as('since')])
        .where('state', 'in', ['assigning', 'revoking'])
        .where('event_id', 'is not', null)
        .groupBy(['token_id', 'event_id'])
        .execute()
      return rows.map((row) => ({ tokenId: row.token_id!, eventId: row.event_id!, since: new Date(row.since as Date | string) }))
    },

    async eventRows(tokenId, eventId) {
      return db.selectFrom('vpp_licences').selectAll().where('token_id', '=', tokenId).where('event_id', '=', eventId).execute()
    },

    async countAssigned(tokenId, adamId, pricingParam, delta) {
      await db
        .updateTable('vpp_assets')
        .set({
          assigned_count: sql`greatest(0, assigned_count + ${delta})`,
          available_count: sql`greatest(0, available_count - ${delta})`,
        })
        .where('token_id', '=', tokenId)
        .where('adam_id', '=', adamId)
        .where('pricing_param', '=', pricingParam)
        .execute()
    },
  }
}
