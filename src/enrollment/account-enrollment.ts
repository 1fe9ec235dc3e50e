// Account-driven enrollment: a person signs in with their Managed Apple Account in Settings,
// the device finds Orchard by service discovery, the person authenticates in a web view
// against the organisation's identity provider, and the device gets an enrollment profile
// made for them. https://developer.apple.com/documentation/devicemanagement/onboarding-users-with-account-driven-enrollment
//
// Protocol traps (Apple's "Implementing the simple authentication account-driven enrollment flow",
// https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow):
// - Discovery is a GET of https://<domain>/.well-known/com.apple.remotemanagement, JSON
//   `{"Servers":[{"Version":"mdm-byod","BaseURL":...},{"Version":"mdm-adde","BaseURL":...}]}`
//   (https://developer.apple.com/documentation/devicemanagement/wellknown). mdm-byod is User
//   Enrollment, mdm-adde account-driven Device Enrollment; the device picks by what the person chose.
// - The first request to BaseURL carries no credentials: answer 401 with exactly
//   `WWW-Authenticate: Bearer method="apple-as-web" url="<login URL>"`. The device opens the URL
//   in a web view and waits for a redirect to
//   `apple-remotemanagement-user-login://authentication-results?access-token=<token>`, then
//   retries with `Authorization: Bearer <token>`. The token is Orchard's own, opaque, short-lived
//   and single use; never the identity provider's tokens.
// - The profile's MDM payload names the person with AssignedManagedAppleID (it must be the
//   account the device signed in with) and EnrollmentMode BYOD or ADDE.
// - Ongoing authentication: for account-driven enrollments only, a check-in or command request
//   may be answered 401 with the same header; the device runs the web sign-in again and retries
//   with the new bearer token. Any other enrollment that gets a 401 removes itself (routes.ts).
import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccountEnrollmentVersion } from '../db/schema-account-enrollment.js'
import type { DeviceKind } from '../model/devices.js'
import type { IdentityOrigins } from '../device/checkin-service.js'
import type { AccountLogin } from './account-login.js'
import type { AccountEnrollmentStore, AccountChallengeOrigin } from './account-enrollment-store.js'
import type { EnrollmentProfile, EnrollmentService } from './enrollment-service.js'

export const accountVersions: readonly AccountEnrollmentVersion[] = ['mdm-byod', 'mdm-adde']
export const isAccountVersion = (value: string): value is AccountEnrollmentVersion => (accountVersions as readonly string[]).includes(value)

export const accessTokenScheme = 'apple-remotemanagement-user-login://authentication-results'

export interface AccountEnrollmentDeps {
  store: AccountEnrollmentStore
  login: AccountLogin
  profiles: Pick<EnrollmentService, 'accountProfile'>
  publicUrl: string
  groupsClaim: string
  /** The group every person needs, unless their domain names one; null: none. */
  requiredGroup: string | null
  /** Days after a sign-in when the next check-in asks for a new one; 0: only on an admin's request. */
  reauthDays: number
  /** Offboards a device whose person is no longer allowed in (selective wipe, then retire). */
  offboard: (deviceId: string, reason: string) => Promise<void>
  logger: Logger
  now?: () => Date
}

/** What the routes answer for a finished sign-in: a redirect to the device, or a refusal page. */
export type LoginOutcome = { kind: 'redirect'; location: string } | { kind: 'refused'; reason: string }

export interface AccountEnrollment {
  /** The service discovery document (both versions). */
  discovery(): { Servers: Array<{ Version: AccountEnrollmentVersion; BaseURL: string }> }
  /** The WWW-Authenticate value of a 401 for this version. */
  challenge(version: AccountEnrollmentVersion): string
  startLogin(version: AccountEnrollmentVersion, userIdentifier: string | undefined): Promise<string>
  finishLogin(query: { code?: string; state?: string; error?: string }): Promise<LoginOutcome>
  /** The profile for a bearer token; throws account_authentication_required without a good one. */
  enroll(version: AccountEnrollmentVersion, authorization: string | undefined): Promise<EnrollmentProfile>
  /**
   * Ongoing authentication, before an MDM request of the device is handled: throws
   * account_authentication_required when the device is an account-driven enrollment whose
   * person must sign in again and the request carries no fresh token of that person. Any other
   * device passes, always.
   */
  gate(deviceId: string, certificateSha256: string, authorization: string | undefined): Promise<void>
  /** The check-in service's IdentityOrigins, recording the person of an account-driven enrollment. */
  identityOrigins(inner: IdentityOrigins): IdentityOrigins
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest()
const loginStateTtlMs = 15 * 60_000
const accessTokenTtlMs = 10 * 60_000

export function bearerOf(authorization: string | undefined): string | undefined {
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization?.trim() ?? '')
  return match?.[1]
}

export const domainOf = (email: string): string => email.slice(email.lastIndexOf('@') + 1).toLowerCase()

export function groupsOf(claims: Record<string, unknown>, claim: string): string[] {
  const value = claims[claim]
  if (typeof value === 'string') return [value]
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []
}

export function createAccountEnrollment(deps: AccountEnrollmentDeps): AccountEnrollment {
  const log = deps.logger.child({ service: 'account_enrollment' })
  const now = deps.now ?? (() => new Date())
  const base = deps.publicUrl.replace(/\/$/, '')

  const challenge = (version: AccountEnrollmentVersion) => `Bearer method="apple-as-web" url="${base}/enroll/account/login?version=${version}"`
  const authenticationRequired = (version: AccountEnrollmentVersion, why: string) =>
    new OrchardError('account_authentication_required', why, { details: { www_authenticate: challenge(version) } })

  async function refuse(reason: string, subject?: string): Promise<LoginOutcome> {
    log.warn({ reason, subject: subject ?? null }, 'account-driven sign-in refused')
    return { kind: 'refused', reason }
  }

  return {
    discovery() {
      return { Servers: accountVersions.map((version) => ({ Version: version, BaseURL: `${base}/enroll/account/${version}` })) }
    },

    challenge,

    async startLogin(version, userIdentifier) {
      const started = await deps.login.start(userIdentifier ? { loginHint: userIdentifier } : {})
      await deps.store.createLoginState(sha256(started.state), {
        version,
        codeVerifier: started.codeVerifier,
        nonce: started.nonce,
        userIdentifier: userIdentifier ?? null,
        deviceId: null,
        expiresAt: new Date(now().getTime() + loginStateTtlMs),
      })
      return started.url
    },

    async finishLogin(query) {
      if (!query.state) return refuse('the sign-in came back without its state')
      // Single use: a state is spent whether or not the rest succeeds.
      const state = await deps.store.claimLoginState(sha256(query.state), now())
      if (!state) return refuse('this sign-in is unknown, was used already or expired: start again from Settings')
      if (query.error || !query.code) return refuse(`the identity provider refused the sign-in (${query.error ?? 'no code'})`)
      let person
      try {
        person = await deps.login.finish(query.code, state)
      } catch (error) {
        if (error instanceof OrchardError && error.code === 'forbidden') return refuse(error.message)
        throw error
      }
      const email = person.claims['email']
      if (typeof email !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(email))
        return refuse('the identity provider sent no email address for this person', person.subject)
      const mapping = await deps.store.domain(domainOf(email))
      if (!mapping) return refuse(`the domain ${domainOf(email)} is not set up for enrollment`, person.subject)
      if (state.userIdentifier) {
        // The device's Managed Apple Account and the person who signed in must belong to the same tenant.
        const deviceMapping = await deps.store.domain(domainOf(state.userIdentifier))
        if (!deviceMapping || deviceMapping.tenant_id !== mapping.tenant_id)
          return refuse(`the account ${state.userIdentifier} belongs to another organisation than ${email}`, person.subject)
      }
      const required = mapping.required_group ?? deps.requiredGroup
      if (required !== null && !groupsOf(person.claims, deps.groupsClaim).includes(required)) {
        // No longer allowed in: the devices awaiting this person's sign-in leave management.
        for (const device of await deps.store.dueDevicesOf(person.subject)) {
          log.warn({ device_id: device.deviceId, subject: person.subject }, 'account-driven enrollment: person no longer allowed in, offboarding the device')
          try {
            await deps.offboard(device.deviceId, `account-driven enrollment: ${email} is no longer in group ${required}`)
          } catch (error) {
            // The refusal stands; an admin sees the device still due (GET /api/v1/account-enrollments).
            log.error({ err: error, device_id: device.deviceId }, 'account-driven enrollment: offboarding failed')
          }
        }
        return refuse(`${email} is not in the group ${required} needed to enroll`, person.subject)
      }
      const token = randomBytes(32).toString('base64url')
      await deps.store.createAccessToken(sha256(token), {
        version: state.version,
        tenantId: mapping.tenant_id,
        subject: person.subject,
        email,
        deviceId: state.deviceId,
        expiresAt: new Date(now().getTime() + accessTokenTtlMs),
      })
      log.info({ subject: person.subject, tenant_id: mapping.tenant_id, version: state.version }, 'account-driven sign-in accepted')
      return { kind: 'redirect', location: `${accessTokenScheme}?access-token=${encodeURIComponent(token)}` }
    },

    async enroll(version, authorization) {
      const token = bearerOf(authorization)
      if (!token) throw authenticationRequired(version, 'sign in first')
      const claimed = await deps.store.claimAccessToken(sha256(token), now())
      // Forged, replayed and expired tokens alike: the device signs in again.
      if (!claimed) throw authenticationRequired(version, 'the access token is unknown, used or expired')
      if (claimed.version !== version) throw authenticationRequired(version, `the access token was issued for ${claimed.version}`)
      const mapping = await deps.store.domain(domainOf(claimed.email))
      if (!mapping || mapping.tenant_id !== claimed.tenantId) throw authenticationRequired(version, 'the domain of this person moved: sign in again')
      const deviceKind: DeviceKind = version === 'mdm-byod' ? 'personal' : mapping.device_kind
      const origin: AccountChallengeOrigin = { version, tenantId: claimed.tenantId, subject: claimed.subject, email: claimed.email, deviceKind }
      return deps.profiles.accountProfile({
        variant: version === 'mdm-byod' ? 'user-enrollment' : 'device',
        managedAppleId: claimed.email,
        record: (challengeSha256) => deps.store.recordChallenge(challengeSha256, origin),
      })
    },

    async gate(deviceId, certificateSha256, authorization) {
      const device = await deps.store.deviceGate(deviceId)
      // Not an account-driven enrollment: never a 401 (routes.ts).
      if (!device) return
      // Only the device's own identity is challenged (the check-in service refuses others), and
      // never while it is being wiped or retired: it must still fetch its RemoveProfile commands.
      if (device.identitySha256 !== certificateSha256) return
      if (device.lifecycleState !== 'active' && device.lifecycleState !== 'lost') return
      const at = now()
      const expired = deps.reauthDays > 0 && device.authenticatedAt !== null && at.getTime() - device.authenticatedAt.getTime() >= deps.reauthDays * 86_400_000
      if (device.reauthRequiredAt === null && !expired) return
      const version: AccountEnrollmentVersion = device.accountEnrollment === 'user' ? 'mdm-byod' : 'mdm-adde'
      const token = bearerOf(authorization)
      if (token) {
        const claimed = await deps.store.claimAccessToken(sha256(token), at)
        if (claimed && claimed.subject === device.subject && claimed.tenantId === device.tenantId) {
          await deps.store.markAuthenticated(deviceId, at)
          log.info({ device_id: deviceId, subject: claimed.subject }, 'account-driven enrollment: person signed in again')
          return
        }
        log.warn({ device_id: deviceId }, 'account-driven enrollment: the bearer token is not a fresh one of this device person')
      }
      if (device.reauthRequiredAt === null) await deps.store.requireReauthentication({ kind: 'all' }, deviceId, at)
      throw authenticationRequired(version, 'the person of this enrollment must sign in again')
    },

    identityOrigins(inner) {
      // The person behind each origin looked up (the check-in service hands the same object to apply).
      const people = new WeakMap<object, AccountChallengeOrigin>()
      return {
        async lookup(certificateSha256) {
          const origin = await inner.lookup(certificateSha256)
          if (origin && origin.authorizedBy === 'challenge') {
            const person = await deps.store.challengeOriginOfCertificate(certificateSha256)
            if (person) people.set(origin, person)
          }
          return origin
        },
        async apply(deviceId, origin, options) {
          const outcome = await inner.apply(deviceId, origin, options)
          const person = people.get(origin)
          if (person) await deps.store.recordPersonOnDevice(deviceId, person, { newDevice: options.newDevice, now: now() })
          return outcome
        },
      }
    },
  }
}
