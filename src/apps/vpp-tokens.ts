// Apps and Books content tokens per tenant: upload (the .vpptoken file, checked with Apple
// and sealed), renewal for the same location, this installation's claim on the location,
// and the expiry an admin must act on. A location another MDM holds is not taken over unless
// an admin says so: two MDMs on one location make Apple's asset allocation unpredictable.
// https://developer.apple.com/documentation/devicemanagement/client-config-4szk1
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { scopeIncludes, tenantForNewRow, type AccessScope } from '../model/access.js'
import type { VppAccess } from './vpp-access.js'
import type { VppAssetFilter, VppAssetStore, VppAssetView } from './vpp-asset-store.js'
import { VppError, type VppClientConfig } from './vpp-client.js'
import { readVppTokenFile } from './vpp-token-file.js'
import type { VppTokenRow, VppTokenStore } from './vpp-token-store.js'

/** A token expiring within this many days is flagged in the API and logged daily. */
export const vppTokenWarningDays = 30

export interface VppTokenView extends VppTokenRow {
  daysLeft: number | null
  expiresSoon: boolean
  assetCount: number
}

export interface VppTokenUpload {
  name: string
  contentToken: string
  tenantId?: string | null
  servesSubTenants?: boolean
  /** Take the location over from another MDM. */
  force?: boolean
}

export interface VppTokens {
  uploadToken(scope: AccessScope, upload: VppTokenUpload): Promise<VppTokenView>
  renewToken(scope: AccessScope, id: string, contentToken: string): Promise<VppTokenView>
  /** Claims the token's location for this installation, taking it from another MDM. */
  claimLocation(scope: AccessScope, id: string): Promise<VppTokenView>
  listTokens(scope: AccessScope): Promise<VppTokenView[]>
  getToken(scope: AccessScope, id: string): Promise<VppTokenView>
  updateToken(scope: AccessScope, id: string, settings: { name?: string; servesSubTenants?: boolean }): Promise<VppTokenView>
  deleteToken(scope: AccessScope, id: string): Promise<void>
  expiringTokens(withinDays: number): Promise<VppTokenView[]>
  /** The assets of the tokens in scope, with their licence counts as of the last sync. */
  listAssets(scope: AccessScope, filter: VppAssetFilter): Promise<VppAssetView[]>
  /** Each asset with its counts and the serials holding its licences (device_id null: not a device Orchard knows). */
  licenceReport(
    scope: AccessScope,
    filter: VppAssetFilter,
  ): Promise<Array<VppAssetView & { holders: Array<{ serialNumber: string; deviceId: string | null }> }>>
}

export interface VppTokensDeps {
  store: VppTokenStore
  assets: Pick<VppAssetStore, 'listAssets' | 'licenceHolders'>
  access: VppAccess
  log: Logger
  now: () => Date
}

const invalidToken = (detail: string) =>
  new OrchardError('validation_failed', `content_token: ${detail}`, { details: { errors: [{ pointer: '/content_token', detail }] } })

/** Apple's refusal of an uploaded token is about the token (422-style); an outage is upstream. */
function uploadRefusal(error: unknown): unknown {
  if (!(error instanceof VppError)) return error
  if (error.code === 'token_expired' || error.code === 'token_revoked' || error.code === 'token_rejected') return invalidToken(error.message)
  if (error.code === 'throttled') return new OrchardError('not_ready', error.message, { cause: error })
  return new OrchardError('upstream_failed', error.message, { cause: error })
}

export function createVppTokens(deps: VppTokensDeps): VppTokens {
  const { store, access, log, now } = deps

  async function views(scope: AccessScope, rows: VppTokenRow[]): Promise<VppTokenView[]> {
    const assets = rows.length === 0 ? [] : await deps.assets.listAssets(scope, rows.length === 1 ? { tokenId: rows[0]!.id } : {})
    const counts = new Map<string, number>()
    for (const asset of assets) counts.set(asset.tokenId, (counts.get(asset.tokenId) ?? 0) + 1)
    return rows.map((row) => {
      const daysLeft = row.expires_at ? Math.floor((row.expires_at.getTime() - now().getTime()) / 86_400_000) : null
      return { ...row, daysLeft, expiresSoon: daysLeft !== null && daysLeft <= vppTokenWarningDays, assetCount: counts.get(row.id) ?? 0 }
    })
  }

  async function requireToken(scope: AccessScope, id: string): Promise<VppTokenRow> {
    const row = await store.getToken(scope, id)
    if (!row) throw new OrchardError('not_found', `no content token ${id}`)
    return row
  }

  const view = async (scope: AccessScope, id: string) => (await views(scope, [await requireToken(scope, id)]))[0]!

  /** Reads the file and asks Apple which location it belongs to. */
  async function checkWithApple(contentToken: string) {
    const file = readVppTokenFile(contentToken)
    if (file.expiresAt && file.expiresAt.getTime() <= now().getTime())
      throw invalidToken(`the token expired on ${file.expiresAt.toISOString()}: download a new one`)
    let config: VppClientConfig
    try {
      config = await access.clientFor(file.sToken).clientConfig()
    } catch (error) {
      throw uploadRefusal(error)
    }
    if (!config.uId) throw new OrchardError('upstream_failed', 'Apple answered the client configuration without the location (uId)')
    return { file, config }
  }

  /** Claims the location unless another MDM holds it and the admin did not force it. */
  async function settleClaim(token: VppTokenRow, config: VppClientConfig, force: boolean): Promise<void> {
    const other = access.otherManager(config)
    if (other && !force) {
      const detail =
        `the location "${config.locationName ?? config.uId}" is managed by ${other}: Orchard does not take it over ` +
        `(two MDMs on one location make Apple's licence allocation unpredictable); move it there, or claim it with POST /api/v1/vpp/tokens/${token.id}/claim`
      await store.setStatus(token.id, 'claimed_elsewhere', detail, now())
      log.warn({ vpp_token_id: token.id, location: config.locationName }, `content token "${token.name}": ${detail}`)
      return
    }
    if (access.claimCurrent(token.id, config)) {
      access.noteConfig(token.id, config)
      await store.setStatus(token.id, 'ok', 'the location is managed by this installation; the next sync is pending', now())
      return
    }
    try {
      await access.claim(token, access.client(token))
      await store.setStatus(token.id, 'ok', `claimed the location${other ? ` from ${other}` : ''}; the first sync is pending`, now())
      log.info({ vpp_token_id: token.id, location: config.locationName, taken_from: other }, `content token "${token.name}": location claimed`)
    } catch (error) {
      await access.recordFailure(token, error)
    }
  }

  function conflictFor(scope: AccessScope, holder: VppTokenRow, locationName: string | null): OrchardError {
    const where = `the location "${locationName ?? holder.location_uid}"`
    if (scopeIncludes(scope, holder.tenant_id))
      return new OrchardError(
        'conflict',
        `${where} is content token "${holder.name}" (${holder.id}) already: renew it with PUT /api/v1/vpp/tokens/${holder.id}/content-token`,
      )
    return new OrchardError('conflict', `${where} is a content token of another tenant already`)
  }

  return {
    async uploadToken(scope, upload) {
      const tenantId = tenantForNewRow(scope, upload.tenantId)
      const { file, config } = await checkWithApple(upload.contentToken)
      const holder = await store.tokenOfLocation(config.uId!)
      if (holder) throw conflictFor(scope, holder, config.locationName)
      const id = randomUUID()
      const outcome = await store.createToken(scope, {
        id,
        tenantId,
        name: upload.name,
        tokenSealed: access.sealToken(id, file.sToken),
        orgName: file.orgName,
        expiresAt: config.tokenExpirationDate ?? file.expiresAt,
        servesSubTenants: upload.servesSubTenants ?? false,
      })
      if ('error' in outcome) {
        if (outcome.error === 'no_tenant')
          throw new OrchardError('validation_failed', `tenant_id: no tenant ${tenantId}`, {
            details: { errors: [{ pointer: '/tenant_id', detail: `no tenant ${tenantId}` }] },
          })
        throw new OrchardError('conflict', `a content token named "${upload.name}" exists already in this tenant`)
      }
      const stored = await store.storeLocation(
        id,
        { uid: config.uId!, name: config.locationName, countryCode: config.countryCode, clientContext: config.clientContext },
        now(),
      )
      if (!stored) {
        // Another upload of the same location won the race.
        await store.deleteToken(scope, id)
        throw new OrchardError('conflict', `the location "${config.locationName ?? config.uId}" was uploaded by someone else at the same time`)
      }
      log.info({ vpp_token_id: id, location: config.locationName, tenant_id: tenantId }, `content token "${upload.name}" uploaded`)
      await settleClaim((await store.getToken(scope, id))!, config, upload.force === true)
      return view(scope, id)
    },

    async renewToken(scope, id, contentToken) {
      const token = await requireToken(scope, id)
      const { file, config } = await checkWithApple(contentToken)
      if (token.location_uid !== null && config.uId !== token.location_uid) {
        const detail = `this token is for the location "${config.locationName ?? config.uId}", not "${token.location_name ?? token.location_uid}"; upload it as a new token`
        throw invalidToken(detail)
      }
      await store.replaceToken(scope, id, access.sealToken(id, file.sToken), config.tokenExpirationDate ?? file.expiresAt, file.orgName, now())
      await store.storeLocation(
        id,
        { uid: config.uId!, name: config.locationName, countryCode: config.countryCode, clientContext: config.clientContext },
        now(),
      )
      log.info({ vpp_token_id: id, expires_at: config.tokenExpirationDate ?? file.expiresAt }, `content token "${token.name}" renewed`)
      await settleClaim(await requireToken(scope, id), config, false)
      return view(scope, id)
    },

    async claimLocation(scope, id) {
      const token = await requireToken(scope, id)
      let config: VppClientConfig
      try {
        config = await access.client(token).clientConfig()
      } catch (error) {
        await access.recordFailure(token, error)
        throw uploadRefusal(error)
      }
      await settleClaim(token, config, true)
      return view(scope, id)
    },

    async listTokens(scope) {
      return views(scope, await store.listTokens(scope))
    },

    getToken: view,

    async updateToken(scope, id, settings) {
      const outcome = await store.updateSettings(scope, id, settings)
      if (outcome === 'not_found') throw new OrchardError('not_found', `no content token ${id}`)
      if (outcome === 'name_taken') throw new OrchardError('conflict', `a content token named "${settings.name}" exists already in this tenant`)
      return view(scope, id)
    },

    async deleteToken(scope, id) {
      if (!(await store.deleteToken(scope, id))) throw new OrchardError('not_found', `no content token ${id}`)
      // Apple keeps our claim on the location; another MDM can claim it from there.
      log.info({ vpp_token_id: id }, 'content token deleted')
    },

    listAssets: (scope, filter) => deps.assets.listAssets(scope, filter),

    async licenceReport(scope, filter) {
      const [assets, holders] = await Promise.all([deps.assets.listAssets(scope, filter), deps.assets.licenceHolders(scope, filter)])
      const byAsset = new Map<string, Array<{ serialNumber: string; deviceId: string | null }>>()
      for (const holder of holders) {
        const key = `${holder.tokenId}:${holder.adamId}:${holder.pricingParam}`
        const entry = { serialNumber: holder.serialNumber, deviceId: holder.deviceId }
        const list = byAsset.get(key)
        if (list) list.push(entry)
        else byAsset.set(key, [entry])
      }
      return assets.map((asset) => ({ ...asset, holders: byAsset.get(`${asset.tokenId}:${asset.adamId}:${asset.pricingParam}`) ?? [] }))
    },

    async expiringTokens(withinDays) {
      const all = await views({ kind: 'all' }, await store.listTokens({ kind: 'all' }))
      return all.filter((token) => token.daysLeft !== null && token.daysLeft <= withinDays)
    },
  }
}
