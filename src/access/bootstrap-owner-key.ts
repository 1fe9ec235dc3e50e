// The first start of an installation: one owner API key, printed once in the log, so a fresh
// server (docker compose up, npm start) can be driven at once without a shell on its database.
import type { Logger } from 'pino'
import { fullAccess } from '../model/access.js'
import type { ApiKeyService } from './api-key-service.js'
import type { ApiKeyStore } from './api-key-store.js'

export interface BootstrapOwnerKeyDeps {
  enabled: boolean
  /** ORCHARD_API_KEYS: an installation configured with keys has its way in. */
  configKeys: readonly string[]
  store: Pick<ApiKeyStore, 'claimFirstStart'>
  apiKeys: Pick<ApiKeyService, 'createKey'>
  logger: Logger
}

/** The key when this start created it, else null (not the first start, configured keys, or turned off). */
export async function issueBootstrapOwnerKey(deps: BootstrapOwnerKeyDeps): Promise<string | null> {
  if (!deps.enabled || deps.configKeys.length > 0) return null
  if (!(await deps.store.claimFirstStart())) return null
  const { key, view } = await deps.apiKeys.createKey(fullAccess, { name: 'first owner key (created at first start)', role: 'owner', tenantId: null })
  // In the message, not a field: the logger redacts fields named like keys, and this one line is the only copy.
  deps.logger.warn(
    { key_id: view.id },
    `first start: created the owner API key ${key} . It is shown only this once: use it to create named keys (POST /api/v1/api-keys), then revoke it`,
  )
  return key
}
