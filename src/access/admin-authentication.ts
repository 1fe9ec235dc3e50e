// Who is calling the admin API: an API key, or a person with an OIDC bearer token from the
// organisation's identity provider. A token's groups (ORCHARD_OIDC_GROUPS_CLAIM) map to
// grants (a role in a tenant or in central IT) by configuration (ORCHARD_OIDC_GROUP_ROLES);
// a person holds the grants of all their groups, and none of them means no access.
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { Grant, Role } from '../model/access.js'
import type { Principal } from './access-control.js'
import type { ApiKeyService } from './api-key-service.js'
import { TokenRejected, type OidcVerifier } from './oidc-verifier.js'

export interface OidcPrincipalRules {
  /** Claim holding the person's groups (an array of strings, or one string). */
  groupsClaim: string
  /** Group name -> the grant it gives. */
  groupRoles: ReadonlyMap<string, { role: Role; tenantId: string | null }>
}

/** The grants the token's groups give (each distinct grant once). */
export function grantsFromClaims(claims: Record<string, unknown>, rules: OidcPrincipalRules): Grant[] {
  const value = claims[rules.groupsClaim]
  // Keycloak and Entra ID can send one group as a plain string: that one group, never split.
  const groups = typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((g): g is string => typeof g === 'string') : []
  const grants: Grant[] = []
  for (const group of groups) {
    const grant = rules.groupRoles.get(group)
    if (grant && !grants.some((g) => g.role === grant.role && g.tenantId === grant.tenantId)) grants.push({ role: grant.role, tenantId: grant.tenantId })
  }
  return grants
}

export function createAdminAuthenticator(deps: {
  apiKeys: ApiKeyService
  oidc: { verifier: OidcVerifier; rules: OidcPrincipalRules } | null
  logger: Logger
}): (token: string) => Promise<Principal | undefined> {
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
    const grants = grantsFromClaims(verified.claims, oidc.rules)
    if (grants.length === 0) {
      log.info({ subject: verified.subject }, 'OIDC token valid, but none of its groups grants a role')
      throw new OrchardError(
        'forbidden',
        `${verified.subject} is in none of the groups that give access to Orchard (claim ${oidc.rules.groupsClaim}; ORCHARD_OIDC_GROUP_ROLES)`,
      )
    }
    const name = typeof verified.claims['preferred_username'] === 'string' ? verified.claims['preferred_username'] : verified.subject
    return { id: `oidc:${verified.subject}`, name, grants, source: 'oidc' }
  }
}
