// Automated Device Enrollment against Apple Business/School Manager: server tokens (key
// pair, .p7m upload, sealed OAuth credentials, expiry), the device sync loop per token
// (full fetch with a cursor, then deltas; a full fetch again when Apple drops the cursor),
// PreStage profiles defined at Apple, and their assignment to devices, explicit or by the
// token's default profile as sync sees new devices. Everything Apple answers that an admin
// must act on becomes the token's stored status, readable through the API.
import { createPrivateKey, randomUUID, X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import { generateTokenExchangeIdentity, openServerToken } from '../crypto/dep-token.js'
import type { SecretBox } from '../crypto/secret-box.js'
import { AbmError, createAbmClient, type AbmClient } from './abm-client.js'
import { OrchardError } from '../errors.js'
import { validateTypedCommand } from '../mdm/command-validation.js'
import { setupSkipKeys } from '../mdm/generated/setup-skip-keys.js'
import { fullAccess, tenantForNewRow, type AccessScope } from '../model/access.js'
import type { AssignOutcome, DepDeviceFilter, DepDeviceRow, DepProfileRow, DepStore, DepTokenRow } from './dep-store.js'
import type { Page } from '../db/pagination.js'
import type { DepAssignStatus, DepTokenStatus } from '../db/schema.js'
import { isUniqueViolation } from '../db/pg-errors.js'

/** Apple takes at most 1000 serials per assign/remove/disown call and 1000 devices per page. */
const batchSize = 1000
const leaseMs = 10 * 60_000

export interface DepTokenView extends DepTokenRow {
  certificatePem: string
  deviceCount: number
  daysLeft: number | null
}

export interface DepProfileInput {
  tokenId: string
  name: string
  deviceKind?: 'work' | 'function'
  minimumOsVersion?: string | null
  enrollmentCommands?: unknown[]
  /** Apple's DEP profile keys (profile_name, url, is_supervised, skip_setup_items, ...). */
  settings: Record<string, unknown>
  isDefault?: boolean
}

export interface SyncReport {
  tokenId: string
  outcome: 'synced' | 'busy' | 'skipped' | 'failed'
  pages: number
  devices: number
  added: number
  restartedFetch: boolean
  status: DepTokenStatus
  detail: string | null
}

export interface AssignReport {
  profileUuid: string | null
  results: AssignOutcome[]
}

export interface DepService {
  /** In `tenantId` (default: the caller's own tenant). */
  createToken(scope: AccessScope, name: string, tenantId?: string | null): Promise<DepTokenView>
  listTokens(scope: AccessScope): Promise<DepTokenView[]>
  getToken(scope: AccessScope, id: string): Promise<DepTokenView>
  deleteToken(scope: AccessScope, id: string): Promise<void>
  /** Decrypts and stores the .p7m Apple gave for this token's certificate, then reads the account. */
  uploadServerToken(scope: AccessScope, id: string, file: Buffer): Promise<DepTokenView>
  setDefaultProfile(scope: AccessScope, tokenId: string, profileId: string | null): Promise<DepTokenView>
  syncToken(id: string): Promise<SyncReport>
  /** Every token due; what the background loop runs. */
  syncAll(): Promise<SyncReport[]>
  /** Throttled assignments whose retry_after has passed. */
  retryThrottled(): Promise<number>
  expiringTokens(withinDays: number): Promise<DepTokenView[]>

  createProfile(scope: AccessScope, input: DepProfileInput): Promise<DepProfileRow>
  updateProfile(scope: AccessScope, id: string, input: Partial<Omit<DepProfileInput, 'tokenId'>>): Promise<DepProfileRow>
  listProfiles(scope: AccessScope, tokenId?: string): Promise<DepProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<DepProfileRow>
  deleteProfile(scope: AccessScope, id: string): Promise<void>
  /** Defines the profile at Apple (again); the new UUID replaces the old one. */
  defineProfile(scope: AccessScope, id: string): Promise<DepProfileRow>
  assignProfile(scope: AccessScope, profileId: string, serials: readonly string[]): Promise<AssignReport>
  removeProfile(scope: AccessScope, tokenId: string, serials: readonly string[]): Promise<AssignReport>
  disownDevices(scope: AccessScope, tokenId: string, serials: readonly string[]): Promise<Record<string, string>>

  listDevices(scope: AccessScope, filter: DepDeviceFilter, page: { limit: number; cursor?: string }): Promise<Page<DepDeviceRow>>
  getDevice(scope: AccessScope, serialNumber: string): Promise<DepDeviceRow>
}

export interface DepServiceDeps {
  store: DepStore
  secretBox: SecretBox | null
  abmUrl: string
  publicUrl: string
  organization: string
  /** Devices per fetch/sync page (Apple: at most 1000). */
  pageSize?: number
  /** Identifies this process for the sync lease. */
  instanceId?: string
  logger: Logger
  now?: () => Date
}

const pem = (der: Buffer) => new X509Certificate(der).toString()

/** Dotted numeric versions, compared numerically ("17.10" > "17.9"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((part) => Number.parseInt(part, 10) || 0)
  const pb = b.split('.').map((part) => Number.parseInt(part, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (diff !== 0) return diff
  }
  return 0
}

function validation(pointer: string, detail: string): OrchardError {
  return new OrchardError('validation_failed', `${pointer} ${detail}`, { details: { errors: [{ pointer, detail }] } })
}

const assignStatuses = new Set<string>(['SUCCESS', 'NOT_ACCESSIBLE', 'FAILED', 'THROTTLED'])

export function createDepService(deps: DepServiceDeps): DepService {
  const log = deps.logger.child({ service: 'dep' })
  const now = deps.now ?? (() => new Date())
  const pageSize = Math.min(deps.pageSize ?? batchSize, batchSize)
  const instanceId = deps.instanceId ?? randomUUID()
  const clients = new Map<string, { sealed: Buffer; client: AbmClient }>()
  const defaultUrl = `${deps.publicUrl}/enroll/ade`

  function box(): SecretBox {
    if (!deps.secretBox) throw new OrchardError('not_ready', 'no master key (ORCHARD_SECRET_KEYS): ABM/ASM token keys and credentials cannot be sealed')
    return deps.secretBox
  }

  const keyAad = (id: string) => `dep-token-key:${id}`
  const credentialsAad = (id: string) => `dep-token-credentials:${id}`

  async function views(scope: AccessScope, rows: DepTokenRow[]): Promise<DepTokenView[]> {
    const counts = await deps.store.deviceCounts(scope, rows.length === 1 ? rows[0]!.id : undefined)
    return rows.map((row) => ({
      ...row,
      certificatePem: pem(row.exchange_certificate_der),
      deviceCount: counts.get(row.id) ?? 0,
      daysLeft: row.access_token_expiry ? Math.floor((row.access_token_expiry.getTime() - now().getTime()) / 86_400_000) : null,
    }))
  }

  async function tokenRow(scope: AccessScope, id: string): Promise<DepTokenRow> {
    const row = await deps.store.getToken(scope, id)
    if (!row) throw new OrchardError('not_found', `no ABM/ASM token ${id}`)
    return row
  }

  async function profileRow(scope: AccessScope, id: string): Promise<DepProfileRow> {
    const row = await deps.store.getProfile(scope, id)
    if (!row) throw new OrchardError('not_found', `no PreStage profile ${id}`)
    return row
  }

  function clientFor(token: DepTokenRow): AbmClient {
    if (!token.credentials_sealed) throw new OrchardError('conflict', `ABM/ASM token "${token.name}" has no server token yet: upload the .p7m from Apple first`)
    const cached = clients.get(token.id)
    if (cached && cached.sealed.equals(token.credentials_sealed)) return cached.client
    const sealed = token.credentials_sealed
    const client = createAbmClient({
      baseUrl: deps.abmUrl,
      credentials: async () => JSON.parse(box().open(sealed, credentialsAad(token.id)).toString('utf8')) as { consumerKey: string; consumerSecret: string; accessToken: string; accessSecret: string },
      now,
    })
    clients.set(token.id, { sealed, client })
    return client
  }

  /** Stores what an Apple failure means for the token; returns the status. */
  async function recordFailure(token: DepTokenRow, error: unknown): Promise<{ status: DepTokenStatus; detail: string }> {
    const at = now()
    if (error instanceof AbmError) {
      const status: DepTokenStatus =
        error.code === 'terms_not_signed' ? 'terms_not_signed' : error.code === 'token_rejected' ? 'token_rejected' : error.code === 'token_expired' ? 'token_expired' : error.code === 'throttled' ? 'throttled' : 'error'
      const retryAfter = status === 'throttled' ? new Date(at.getTime() + (error.details.retryAfterSeconds ?? 60) * 1000) : null
      await deps.store.setStatus(token.id, status, error.message, at, retryAfter)
      log.warn({ dep_token_id: token.id, status, apple_code: error.details.appleCode, http_status: error.details.status, retry_after: retryAfter }, `ABM/ASM token "${token.name}": ${error.message}`)
      return { status, detail: error.message }
    }
    const detail = `internal error: ${(error as Error).message}`
    await deps.store.setStatus(token.id, 'error', detail, at)
    log.error({ err: error, dep_token_id: token.id }, `ABM/ASM token "${token.name}": sync failed`)
    return { status: 'error', detail }
  }

  /** Apple's answer per serial, as stored outcomes. */
  function outcomesOf(answer: Record<string, string>, serials: readonly string[], retryAfterSeconds: number | null): AssignOutcome[] {
    const retryAt = new Date(now().getTime() + (retryAfterSeconds ?? 60) * 1000)
    return serials.map((serialNumber) => {
      const given = answer[serialNumber]
      const status = (given && assignStatuses.has(given) ? given : 'FAILED') as DepAssignStatus
      return { serialNumber, status, detail: given && !assignStatuses.has(given) ? `Apple answered ${given.slice(0, 200)}` : given ? null : 'Apple did not answer for this serial', retryAt: status === 'THROTTLED' ? retryAt : null }
    })
  }

  /**
   * The serials to send to Apple for `token`, and the others answered here: serials Orchard
   * knows under another ABM/ASM token (another tenant's, maybe) never leave for Apple in this
   * token's name; with 'unless_own', neither do serials not synced for this token.
   */
  async function splitSerials(token: DepTokenRow, serials: readonly string[], rule: 'known_elsewhere' | 'unless_own'): Promise<{ send: string[]; withheld: AssignOutcome[] }> {
    const tokens = await deps.store.tokensOfSerials(serials)
    const send: string[] = []
    const withheld: AssignOutcome[] = []
    for (const serialNumber of serials) {
      const owner = tokens.get(serialNumber)
      const own = owner === token.id || (owner === undefined && rule === 'known_elsewhere')
      if (own) send.push(serialNumber)
      else withheld.push({ serialNumber, status: 'NOT_ACCESSIBLE', detail: owner === undefined ? 'not a device of this ABM/ASM token (sync first)' : 'not a device of this ABM/ASM token', retryAt: null })
    }
    return { send, withheld }
  }

  async function assignBatches(token: DepTokenRow, profile: DepProfileRow, serials: readonly string[], scope: AccessScope = fullAccess): Promise<AssignReport> {
    if (!profile.profile_uuid) throw new OrchardError('conflict', `PreStage profile "${profile.name}" is not defined at Apple yet${profile.define_error ? ` (last attempt: ${profile.define_error})` : ''}: POST /api/v1/dep/profiles/${profile.id}/define`)
    const client = clientFor(token)
    const results: AssignOutcome[] = []
    for (let i = 0; i < serials.length; i += batchSize) {
      const batch = serials.slice(i, i + batchSize)
      const answer = await client.assignProfile(profile.profile_uuid, batch)
      const outcomes = outcomesOf(answer.devices, batch, answer.retryAfterSeconds)
      await deps.store.recordAssignments(profile.id, outcomes, now(), profile.profile_uuid, scope, token.id)
      results.push(...outcomes)
    }
    const counts = results.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {})
    log.info({ dep_token_id: token.id, dep_profile_id: profile.id, profile_uuid: profile.profile_uuid, ...counts }, `PreStage "${profile.name}" assigned to ${serials.length} device(s)`)
    return { profileUuid: profile.profile_uuid, results }
  }

  function appleProfile(name: string, settings: Record<string, unknown>): Record<string, unknown> {
    const skip = settings['skip_setup_items']
    if (skip !== undefined) {
      if (!Array.isArray(skip)) throw validation('/settings/skip_setup_items', 'must be an array of Setup Assistant pane names')
      skip.forEach((item, index) => {
        if (typeof item !== 'string' || !(item in setupSkipKeys)) {
          throw validation(`/settings/skip_setup_items/${index}`, `${JSON.stringify(item)} is not a Setup Assistant skip key (known: ${Object.keys(setupSkipKeys).join(', ')})`)
        }
      })
    }
    for (const key of ['anchor_certs', 'supervising_host_certs'] as const) {
      const list = settings[key]
      if (list === undefined) continue
      ;(list as unknown[]).forEach((item, index) => {
        try {
          new X509Certificate(Buffer.from(String(item), 'base64'))
        } catch {
          throw validation(`/settings/${key}/${index}`, 'is not a base64 DER certificate')
        }
      })
    }
    if (settings['is_mdm_removable'] === false && settings['is_supervised'] === false) {
      throw validation('/settings/is_mdm_removable', 'false needs a supervised device (is_supervised must not be false)')
    }
    // Supervised unless told otherwise (iOS 13+ ignores it and always supervises ADE devices).
    return { profile_name: name, url: defaultUrl, is_supervised: true, ...settings }
  }

  function checkCommands(commands: unknown[] | undefined): void {
    commands?.forEach((command, index) => {
      const checked = validateTypedCommand(command)
      if (!checked.ok) {
        const error = checked.errors[0]!
        throw validation(`/enrollment_commands/${index}${error.pointer}`, error.detail)
      }
    })
  }

  async function define(profile: DepProfileRow, scope: AccessScope = fullAccess): Promise<DepProfileRow> {
    const token = await tokenRow({ kind: 'all' }, profile.token_id)
    try {
      const defined = await clientFor(token).defineProfile(profile.profile)
      await deps.store.recordDefinition(profile.id, { profileUuid: defined.profileUuid, at: now() }, scope)
      log.info({ dep_profile_id: profile.id, profile_uuid: defined.profileUuid, previous_uuid: profile.profile_uuid }, `PreStage "${profile.name}" defined at Apple`)
    } catch (error) {
      if (!(error instanceof AbmError)) throw error
      await deps.store.recordDefinition(profile.id, { error: error.message }, scope)
      await recordFailure(token, error)
    }
    return (await deps.store.getProfile({ kind: 'all' }, profile.id))!
  }

  async function syncPages(token: DepTokenRow, report: SyncReport): Promise<string[]> {
    const client = clientFor(token)
    let phase: 'fetch' | 'sync' = token.sync_phase === 'sync' && token.cursor ? 'sync' : 'fetch'
    let cursor = token.cursor
    const added: string[] = []
    for (;;) {
      let page
      try {
        page = phase === 'fetch' ? await client.fetchDevices(cursor, pageSize) : await client.syncDevices(cursor!, pageSize)
      } catch (error) {
        if (error instanceof AbmError && error.code === 'exhausted_cursor' && phase === 'fetch' && cursor) {
          phase = 'sync'
          await deps.store.saveCursor(token.id, instanceId, { phase, cursor, fetchCompletedAt: now() })
          continue
        }
        if (error instanceof AbmError && (error.code === 'expired_cursor' || error.code === 'invalid_cursor') && !report.restartedFetch) {
          // Apple forgot where we were: the only way back is a full fetch.
          log.warn({ dep_token_id: token.id, apple_code: error.details.appleCode }, `ABM/ASM token "${token.name}": ${error.message}; starting a full fetch`)
          report.restartedFetch = true
          phase = 'fetch'
          cursor = null
          await deps.store.saveCursor(token.id, instanceId, { phase, cursor })
          continue
        }
        throw error
      }
      report.pages++
      report.devices += page.devices.length
      added.push(...(await deps.store.applyDevices(token.id, page.devices, now())))
      cursor = page.cursor
      const fetchDone = phase === 'fetch' && !page.moreToFollow
      if (fetchDone) phase = 'sync'
      const kept = await deps.store.saveCursor(token.id, instanceId, { phase, cursor, ...(fetchDone ? { fetchCompletedAt: now() } : {}), ...(!page.moreToFollow ? { syncedAt: now() } : {}) })
      if (!kept) throw new Error('the sync lease was lost to another instance')
      if (!page.moreToFollow) break
      await deps.store.claimSyncLease(token.id, instanceId, now(), new Date(now().getTime() + leaseMs))
    }
    report.added = added.length
    return added
  }

  async function autoAssign(token: DepTokenRow, added: string[]): Promise<void> {
    if (!token.default_profile_id || added.length === 0) return
    const profile = await deps.store.getProfile({ kind: 'all' }, token.default_profile_id)
    if (!profile?.profile_uuid) {
      log.warn({ dep_token_id: token.id, dep_profile_id: token.default_profile_id }, `the default PreStage of "${token.name}" is not defined at Apple: ${added.length} new device(s) left unassigned`)
      return
    }
    const serials = await deps.store.withoutProfile(token.id, added)
    if (serials.length > 0) await assignBatches(token, profile, serials)
  }

  async function retryDue(tokenId?: string): Promise<number> {
    const due = (await deps.store.dueAssignRetries(now(), 10_000)).filter((row) => !tokenId || row.tokenId === tokenId)
    const groups = new Map<string, { tokenId: string; serials: string[] }>()
    for (const row of due) {
      const group = groups.get(row.profileId) ?? { tokenId: row.tokenId, serials: [] }
      group.serials.push(row.serialNumber)
      groups.set(row.profileId, group)
    }
    let retried = 0
    for (const [profileId, group] of groups) {
      const token = await deps.store.getToken({ kind: 'all' }, group.tokenId)
      const profile = await deps.store.getProfile({ kind: 'all' }, profileId)
      if (!token || !profile) continue
      try {
        await assignBatches(token, profile, group.serials)
        retried += group.serials.length
      } catch (error) {
        await recordFailure(token, error)
      }
    }
    return retried
  }

  async function syncToken(id: string): Promise<SyncReport> {
    const report: SyncReport = { tokenId: id, outcome: 'skipped', pages: 0, devices: 0, added: 0, restartedFetch: false, status: 'awaiting_token', detail: null }
    const at = now()
    const token = await deps.store.claimSyncLease(id, instanceId, at, new Date(at.getTime() + leaseMs))
    if (!token) {
      const current = await deps.store.getToken({ kind: 'all' }, id)
      if (!current) throw new OrchardError('not_found', `no ABM/ASM token ${id}`)
      return { ...report, outcome: 'busy', status: current.status, detail: `another instance (${current.sync_lease_owner}) is syncing this token` }
    }
    try {
      if (!token.credentials_sealed) return { ...report, status: token.status, detail: 'no server token uploaded yet' }
      if (token.access_token_expiry && token.access_token_expiry.getTime() <= at.getTime()) {
        const detail = `the server token expired on ${token.access_token_expiry.toISOString()}: download a new one from Apple Business/School Manager and upload it`
        await deps.store.setStatus(id, 'token_expired', detail, at)
        return { ...report, outcome: 'failed', status: 'token_expired', detail }
      }
      try {
        if (!token.server_uuid) await readAccount(token)
        const added = await syncPages(token, report)
        const fresh = (await deps.store.getToken({ kind: 'all' }, id))!
        await autoAssign(fresh, added)
        await retryDue(id)
        const detail = `synced ${report.devices} device record(s) in ${report.pages} page(s)${report.restartedFetch ? ' (the cursor had expired: full fetch)' : ''}`
        await deps.store.setStatus(id, 'ok', detail, now())
        log.info({ dep_token_id: id, pages: report.pages, devices: report.devices, added: report.added, restarted_fetch: report.restartedFetch }, `ABM/ASM token "${token.name}" synced`)
        return { ...report, outcome: 'synced', status: 'ok', detail }
      } catch (error) {
        const failure = await recordFailure(token, error)
        return { ...report, outcome: 'failed', ...failure }
      }
    } finally {
      await deps.store.releaseSyncLease(id, instanceId)
    }
  }

  async function readAccount(token: DepTokenRow): Promise<void> {
    const account = await clientFor(token).account()
    await deps.store.storeAccount(token.id, {
      serverName: typeof account.server_name === 'string' ? account.server_name : null,
      serverUuid: typeof account.server_uuid === 'string' ? account.server_uuid : null,
      orgName: typeof account.org_name === 'string' ? account.org_name : null,
      raw: account,
    })
  }

  return {
    async createToken(scope, name, requestedTenant) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const secretBox = box()
      const id = randomUUID()
      const identity = generateTokenExchangeIdentity({ name, organization: deps.organization, now: now() })
      const sealedKey = secretBox.seal(identity.privateKey.export({ type: 'pkcs8', format: 'der' }), keyAad(id))
      try {
        const created = await deps.store.createToken(scope, { id, name, tenantId, exchangeCertificateDer: identity.certificateDer, exchangePrivateKeySealed: sealedKey })
        if (!created) throw validation('/tenant_id', `no tenant ${tenantId}`)
      } catch (error) {
        if (isUniqueViolation(error)) throw new OrchardError('conflict', `an ABM/ASM token named "${name}" exists already`)
        throw error
      }
      log.info({ dep_token_id: id, name }, 'ABM/ASM token created: upload its certificate to Apple Business/School Manager')
      return (await views(scope, [await tokenRow(scope, id)]))[0]!
    },

    async listTokens(scope) {
      return views(scope, await deps.store.listTokens(scope))
    },

    async getToken(scope, id) {
      return (await views(scope, [await tokenRow(scope, id)]))[0]!
    },

    async deleteToken(scope, id) {
      if (!(await deps.store.deleteToken(scope, id))) throw new OrchardError('not_found', `no ABM/ASM token ${id}`)
      clients.delete(id)
      log.info({ dep_token_id: id }, 'ABM/ASM token deleted')
    },

    async uploadServerToken(scope, id, file) {
      const token = await tokenRow(scope, id)
      const secretBox = box()
      const privateKey = createPrivateKey({ key: secretBox.open(token.exchange_private_key_sealed, keyAad(id)), format: 'der', type: 'pkcs8' })
      const credentials = openServerToken(file, { certificateDer: token.exchange_certificate_der, privateKey })
      const sealed = secretBox.seal(Buffer.from(JSON.stringify({ consumerKey: credentials.consumerKey, consumerSecret: credentials.consumerSecret, accessToken: credentials.accessToken, accessSecret: credentials.accessSecret })), credentialsAad(id))
      await deps.store.storeServerToken(id, sealed, credentials.accessTokenExpiry, now(), scope)
      log.info({ dep_token_id: id, access_token_expiry: credentials.accessTokenExpiry }, `server token uploaded for "${token.name}"`)
      const stored = await tokenRow(scope, id)
      try {
        await readAccount(stored)
      } catch (error) {
        // The token is stored either way; its status says what Apple thinks of it.
        await recordFailure(stored, error)
      }
      return (await views(scope, [await tokenRow(scope, id)]))[0]!
    },

    async setDefaultProfile(scope, tokenId, profileId) {
      await tokenRow(scope, tokenId)
      if (profileId !== null) {
        const profile = await profileRow(scope, profileId)
        if (profile.token_id !== tokenId) throw validation('/default_profile_id', `PreStage ${profileId} belongs to another token`)
      }
      await deps.store.setDefaultProfile(tokenId, profileId, scope)
      return (await views(scope, [await tokenRow(scope, tokenId)]))[0]!
    },

    syncToken,

    async syncAll() {
      const reports: SyncReport[] = []
      for (const token of await deps.store.tokensToSync(now())) reports.push(await syncToken(token.id))
      return reports
    },

    retryThrottled: () => retryDue(),

    async expiringTokens(withinDays) {
      const all = await views({ kind: 'all' }, await deps.store.listTokens({ kind: 'all' }))
      return all.filter((token) => token.daysLeft !== null && token.daysLeft <= withinDays)
    },

    async createProfile(scope, input) {
      const token = await tokenRow(scope, input.tokenId)
      checkCommands(input.enrollmentCommands)
      const profile = appleProfile(input.name, input.settings)
      const id = randomUUID()
      try {
        await deps.store.createProfile(
          {
          id,
          tokenId: token.id,
          name: input.name,
          profile,
          deviceKind: input.deviceKind ?? 'work',
          minimumOsVersion: input.minimumOsVersion ?? null,
          enrollmentCommands: input.enrollmentCommands ?? [],
          },
          scope,
        )
      } catch (error) {
        if (isUniqueViolation(error)) throw new OrchardError('conflict', `token "${token.name}" has a PreStage named "${input.name}" already`)
        throw error
      }
      if (input.isDefault) await deps.store.setDefaultProfile(token.id, id, scope)
      const row = await profileRow(scope, id)
      return token.credentials_sealed ? define(row, scope) : row
    },

    async updateProfile(scope, id, input) {
      const current = await profileRow(scope, id)
      checkCommands(input.enrollmentCommands)
      const name = input.name ?? current.name
      const profile = input.settings !== undefined || input.name !== undefined ? appleProfile(name, input.settings ?? stripDefaults(current.profile)) : undefined
      await deps.store.updateProfile(id, {
        ...(input.name !== undefined ? { name } : {}),
        ...(profile ? { profile } : {}),
        ...(input.deviceKind !== undefined ? { deviceKind: input.deviceKind } : {}),
        ...(input.minimumOsVersion !== undefined ? { minimumOsVersion: input.minimumOsVersion } : {}),
        ...(input.enrollmentCommands !== undefined ? { enrollmentCommands: input.enrollmentCommands } : {}),
      }, scope)
      if (input.isDefault === true) await deps.store.setDefaultProfile(current.token_id, id, scope)
      const updated = await profileRow(scope, id)
      if (!profile) return updated
      // Apple profiles cannot be edited: define a new one and move the devices over to it.
      const token = await tokenRow(scope, current.token_id)
      if (!token.credentials_sealed) return updated
      const defined = await define(updated, scope)
      if (defined.profile_uuid && defined.profile_uuid !== current.profile_uuid) {
        const assigned: string[] = []
        for (let cursor: string | undefined; ; ) {
          const page = await deps.store.listDevices(scope, { profileId: id, includeRemoved: false }, { limit: 500, ...(cursor ? { cursor } : {}) })
          assigned.push(...page.items.filter((device) => device.assign_status === 'SUCCESS' || device.assign_status === 'THROTTLED').map((device) => device.serial_number))
          if (!page.nextCursor) break
          cursor = page.nextCursor
        }
        if (assigned.length > 0) {
          try {
            await assignBatches(token, defined, assigned, scope)
          } catch (error) {
            await recordFailure(token, error)
          }
        }
      }
      return profileRow(scope, id)
    },

    async listProfiles(scope, tokenId) {
      return deps.store.listProfiles(scope, tokenId)
    },

    getProfile: profileRow,

    async deleteProfile(scope, id) {
      if (!(await deps.store.deleteProfile(scope, id))) throw new OrchardError('not_found', `no PreStage profile ${id}`)
    },

    async defineProfile(scope, id) {
      const row = await profileRow(scope, id)
      const token = await tokenRow(scope, row.token_id)
      if (!token.credentials_sealed) throw new OrchardError('conflict', `ABM/ASM token "${token.name}" has no server token yet: upload the .p7m from Apple first`)
      return define(row, scope)
    },

    async assignProfile(scope, profileId, serials) {
      const profile = await profileRow(scope, profileId)
      const token = await tokenRow(scope, profile.token_id)
      try {
        const { send, withheld } = await splitSerials(token, [...new Set(serials)], 'known_elsewhere')
        const report = send.length > 0 ? await assignBatches(token, profile, send, scope) : { profileUuid: profile.profile_uuid, results: [] }
        // Withheld serials are not this token's: nothing of them is updated, but a request that
        // sent nothing to Apple still leaves its audit row.
        await deps.store.recordAssignments(profile.id, withheld, now(), profile.profile_uuid, scope, token.id)
        return { ...report, results: [...report.results, ...withheld] }
      } catch (error) {
        if (error instanceof AbmError) await recordFailure(token, error)
        throw asApiError(error)
      }
    },

    async removeProfile(scope, tokenId, serials) {
      const token = await tokenRow(scope, tokenId)
      try {
        const { send: unique, withheld } = await splitSerials(token, [...new Set(serials)], 'known_elsewhere')
        const results: AssignOutcome[] = []
        for (let i = 0; i < unique.length; i += batchSize) {
          const batch = unique.slice(i, i + batchSize)
          const outcomes = outcomesOf(await clientFor(token).removeProfile(batch), batch, null)
          await deps.store.recordAssignments(null, outcomes, now(), null, scope, token.id)
          results.push(...outcomes)
        }
        // As in assignProfile: the audit row of a request that sent nothing to Apple.
        await deps.store.recordAssignments(null, withheld, now(), null, scope, token.id)
        return { profileUuid: null, results: [...results, ...withheld] }
      } catch (error) {
        if (error instanceof AbmError) await recordFailure(token, error)
        throw asApiError(error)
      }
    },

    async disownDevices(scope, tokenId, serials) {
      const token = await tokenRow(scope, tokenId)
      // Disowning is permanent: only serials Apple listed for this very token are sent.
      const { send: unique, withheld } = await splitSerials(token, [...new Set(serials)], 'unless_own')
      const answer: Record<string, string> = Object.fromEntries(withheld.map((outcome) => [outcome.serialNumber, outcome.status]))
      try {
        for (let i = 0; i < unique.length; i += batchSize) Object.assign(answer, await clientFor(token).disownDevices(unique.slice(i, i + batchSize)))
      } catch (error) {
        if (error instanceof AbmError) await recordFailure(token, error)
        throw asApiError(error)
      }
      const disowned = unique.filter((serial) => answer[serial] === 'SUCCESS')
      await deps.store.markRemoved(disowned, now(), scope, token.id)
      log.warn({ dep_token_id: tokenId, disowned: disowned.length, serials: disowned.slice(0, 20) }, `devices disowned from "${token.name}" (permanent: they leave the organization in Apple Business/School Manager)`)
      return answer
    },

    listDevices: (scope, filter, page) => deps.store.listDevices(scope, filter, page),

    async getDevice(scope, serialNumber) {
      const row = await deps.store.getDevice(scope, serialNumber)
      if (!row) throw new OrchardError('not_found', `no ADE device with serial number ${serialNumber}`)
      return row
    },
  }
}

/** What the stored profile holds beyond the admin's settings (so an edit keeps only theirs). */
function stripDefaults(profile: Record<string, unknown>): Record<string, unknown> {
  const { profile_name: _name, ...rest } = profile
  return rest
}

/** Apple refusing an admin's request is a 502 with Apple's reason, never an opaque 500. */
function asApiError(error: unknown): unknown {
  if (!(error instanceof AbmError)) return error
  if (error.code === 'throttled') return new OrchardError('not_ready', error.message, { cause: error, details: { apple_code: error.details.appleCode ?? null } })
  return new OrchardError('upstream_failed', error.message, { cause: error, details: { apple_code: error.details.appleCode ?? null } })
}
