// Access as main.ts composes it: API keys (database and bootstrap keys), OIDC bearer tokens
// when configured, and the authenticator the admin API plugin asks.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DatabaseHandle } from '../db/database.js'
import { createAdminAuthenticator } from './admin-authentication.js'
import { createApiKeyService } from './api-key-service.js'
import { createApiKeyStore } from './api-key-store.js'
import { issueBootstrapOwnerKey } from './bootstrap-owner-key.js'
import { createOidcVerifier } from './oidc-verifier.js'

export { createTenantTree } from './access-control.js'
export { apiKeyHandlers } from './api.js'

export function createAccessFeature(deps: { config: Config; db: DatabaseHandle['db']; logger: Logger }) {
  const { config, logger } = deps
  const store = createApiKeyStore(deps.db)
  const apiKeys = createApiKeyService({ store, configKeys: config.apiKeys, logger })
  const oidc = config.oidc && {
    verifier: createOidcVerifier({
      issuer: config.oidc.issuer,
      audience: config.oidc.audiences,
      ...(config.oidc.jwksUrl ? { jwksUrl: config.oidc.jwksUrl } : {}),
    }),
    rules: { groupsClaim: config.oidc.groupsClaim, groupRoles: config.oidc.groupRoles },
  }
  const bootstrapOwnerKey = () => issueBootstrapOwnerKey({ enabled: config.bootstrapOwnerKey, configKeys: config.apiKeys, store, apiKeys, logger })
  return { apiKeys, authenticate: createAdminAuthenticator({ apiKeys, oidc: oidc || null, logger }), bootstrapOwnerKey }
}
