// ABM/ASM server tokens: the key pair Apple encrypts the server token to, the .p7m upload
// (its OAuth credentials sealed), the account it reads, the default PreStage for new
// devices, and how many days the token has left.
import { createPrivateKey, randomUUID, X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import { generateTokenExchangeIdentity, openServerToken } from '../crypto/dep-token.js'
import { isUniqueViolation } from '../db/pg-errors.js'
import { OrchardError } from '../errors.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { AbmAccess } from './abm-access.js'
import { requireProfile, requireToken, validation } from './dep-common.js'
import type { DeviceStore } from './device-store.js'
import type { ProfileStore } from './profile-store.js'

/** A token expiring within this many days is flagged in the API and logged daily. */
export const depTokenWarningDays = 30
import type { DepTokenRow } from './shared-store.js'
import type { TokenStore } from './token-store.js'

export interface DepTokenView extends DepTokenRow {
  certificatePem: string
  deviceCount: number
  daysLeft: number | null
}

export interface DepTokens {
  /** In `tenantId` (default: the caller's own tenant). */
  createToken(scope: AccessScope, name: string, tenantId?: string | null): Promise<DepTokenView>
  listTokens(scope: AccessScope): Promise<DepTokenView[]>
  getToken(scope: AccessScope, id: string): Promise<DepTokenView>
  deleteToken(scope: AccessScope, id: string): Promise<void>
  /** Decrypts and stores the .p7m Apple gave for this token's certificate, then reads the account. */
  uploadServerToken(scope: AccessScope, id: string, file: Buffer): Promise<DepTokenView>
  setDefaultProfile(scope: AccessScope, tokenId: string, profileId: string | null): Promise<DepTokenView>
  expiringTokens(withinDays: number): Promise<DepTokenView[]>
}

export interface DepTokensDeps {
  store: TokenStore & Pick<ProfileStore, 'getProfile'> & Pick<DeviceStore, 'deviceCounts'>
  abm: AbmAccess
  organization: string
  log: Logger
  now: () => Date
}

const keyAad = (id: string) => `dep-token-key:${id}`

export function createDepTokens(deps: DepTokensDeps): DepTokens {
  const { store, abm, log, now } = deps

  async function views(scope: AccessScope, rows: DepTokenRow[]): Promise<DepTokenView[]> {
    const counts = await store.deviceCounts(scope, rows.length === 1 ? rows[0]!.id : undefined)
    return rows.map((row) => ({
      ...row,
      certificatePem: new X509Certificate(row.exchange_certificate_der).toString(),
      deviceCount: counts.get(row.id) ?? 0,
      daysLeft: row.access_token_expiry ? Math.floor((row.access_token_expiry.getTime() - now().getTime()) / 86_400_000) : null,
    }))
  }

  const view = async (scope: AccessScope, id: string) => (await views(scope, [await requireToken(store, scope, id)]))[0]!

  return {
    async createToken(scope, name, requestedTenant) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const secretBox = abm.secretBox()
      const id = randomUUID()
      const identity = generateTokenExchangeIdentity({ name, organization: deps.organization, now: now() })
      const sealedKey = secretBox.seal(identity.privateKey.export({ type: 'pkcs8', format: 'der' }), keyAad(id))
      try {
        const created = await store.createToken(scope, {
          id,
          name,
          tenantId,
          exchangeCertificateDer: identity.certificateDer,
          exchangePrivateKeySealed: sealedKey,
        })
        if (!created) throw validation('/tenant_id', `no tenant ${tenantId}`)
      } catch (error) {
        if (isUniqueViolation(error)) throw new OrchardError('conflict', `an ABM/ASM token named "${name}" exists already`)
        throw error
      }
      log.info({ dep_token_id: id, name }, 'ABM/ASM token created: upload its certificate to Apple Business/School Manager')
      return view(scope, id)
    },

    async listTokens(scope) {
      return views(scope, await store.listTokens(scope))
    },

    getToken: view,

    async deleteToken(scope, id) {
      if (!(await store.deleteToken(scope, id))) throw new OrchardError('not_found', `no ABM/ASM token ${id}`)
      abm.forget(id)
      log.info({ dep_token_id: id }, 'ABM/ASM token deleted')
    },

    async uploadServerToken(scope, id, file) {
      const token = await requireToken(store, scope, id)
      const privateKey = createPrivateKey({ key: abm.secretBox().open(token.exchange_private_key_sealed, keyAad(id)), format: 'der', type: 'pkcs8' })
      const credentials = openServerToken(file, { certificateDer: token.exchange_certificate_der, privateKey })
      const sealed = abm.sealCredentials(id, credentials)
      await store.storeServerToken(id, sealed, credentials.accessTokenExpiry, now(), scope)
      log.info({ dep_token_id: id, access_token_expiry: credentials.accessTokenExpiry }, `server token uploaded for "${token.name}"`)
      const stored = await requireToken(store, scope, id)
      try {
        await abm.readAccount(stored)
      } catch (error) {
        // The token is stored either way; its status says what Apple thinks of it.
        await abm.recordFailure(stored, error)
      }
      return view(scope, id)
    },

    async setDefaultProfile(scope, tokenId, profileId) {
      await requireToken(store, scope, tokenId)
      if (profileId !== null) {
        const profile = await requireProfile(store, scope, profileId)
        if (profile.token_id !== tokenId) throw validation('/default_profile_id', `PreStage ${profileId} belongs to another token`)
      }
      await store.setDefaultProfile(tokenId, profileId, scope)
      return view(scope, tokenId)
    },

    async expiringTokens(withinDays) {
      const all = await views({ kind: 'all' }, await store.listTokens({ kind: 'all' }))
      return all.filter((token) => token.daysLeft !== null && token.daysLeft <= withinDays)
    },
  }
}
