// Who is calling the admin API: an API key, or a person with an OIDC bearer token from the
// organisation's identity provider. A token's groups (ORCHARD_OIDC_GROUPS_CLAIM) map to
// scopes by configuration (ORCHARD_OIDC_GROUP_SCOPES); a person gets the highest scope any
// of their groups grants, and none of them means no access.
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { ApiKeyScope } from '../storage/schema.js'
import { scopeRank, type ApiKeyPrincipal, type ApiKeyService } from './api-key-service.js'
import { TokenRejected, type OidcVerifier } from './oidc-verifier.js'

export interface OidcPrincipalRules {
  /** Claim holding the person's groups (an array of strings, or one string). */
  groupsClaim: string
  /** Group name -> scope it grants. */
  groupScopes: ReadonlyMap<string, ApiKeyScope>
}

/** The highest scope the token's groups grant, or null. */
export function scopeFromClaims(claims: Record<string, unknown>, rules: OidcPrincipalRules): ApiKeyScope | null {
  const value = claims[rules.groupsClaim]
  const groups = Array.isArray(value) ? value.filter((g): g is string => typeof g === 'string') : typeof value === 'string' ? [value] : []
  let best: ApiKeyScope | null = null
  for (const group of groups) {
    const scope = rules.groupScopes.get(group)
    if (scope && (!best || scopeRank[scope] > scopeRank[best])) best = scope
  }
  return best
}

export function createAdminAuthenticator(deps: { apiKeys: ApiKeyService; oidc: { verifier: OidcVerifier; rules: OidcPrincipalRules } | null; logger: Logger }): (token: string) => Promise<ApiKeyPrincipal | undefined> {
  const log = deps.logger.child({ service: 'admin-authentication' })
  const oidc = deps.oidc
  return async (token) => {
    if (!oidc || !oidc.verifier.looksLikeJwt(token)) return deps.apiKeys.authenticate(token)
    let verified
    try {
      verified = await oidc.verifier.verify(token)
    } catch (error) {
      if (!(error instanceof TokenRejected)) throw error
      if (error.reason === 'jwks_unavailable') {
        log.error({ err: error }, 'OIDC token not checked: the identity provider keys are unavailable')
        throw new OrchardError('not_ready', 'the identity provider cannot be reached to check the token; try again shortly (API keys still work)')
      }
      log.info({ reason: error.reason }, `OIDC token refused: ${error.message}`)
      throw new OrchardError('unauthorized', `the bearer token was refused (${error.reason}): ${error.message}`)
    }
    const scope = scopeFromClaims(verified.claims, oidc.rules)
    if (!scope) {
      log.info({ subject: verified.subject }, 'OIDC token valid, but none of its groups grants a scope')
      throw new OrchardError('forbidden', `${verified.subject} is in none of the groups that give access to Orchard (claim ${oidc.rules.groupsClaim}; ORCHARD_OIDC_GROUP_SCOPES)`)
    }
    const name = typeof verified.claims['preferred_username'] === 'string' ? verified.claims['preferred_username'] : verified.subject
    return { keyId: `oidc:${verified.subject}`, name, scopes: [scope], source: 'oidc' }
  }
}
