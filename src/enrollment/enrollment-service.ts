// Enrollment: links that departments hand out, and the enrollment profiles behind them and
// behind the open /enroll URL. Every profile carries a fresh one-time SCEP challenge, so a
// leaked profile enrolls at most one device. Renewal profiles keep the PayloadIdentifier,
// Topic and URLs (a re-install replaces the profile) with a challenge bound to the device.
import { randomBytes, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { readCertificateFields } from '../crypto/der.js'
import { signProfile, type ProfileSigner } from '../crypto/profile-signing.js'
import { OrchardError } from '../errors.js'
import { encodeEnrollmentProfile } from '../mdm/enrollment-profile.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { EnrollmentLinkRow, EnrollmentLinkStore } from './enrollment-link-store.js'
import type { DeviceKind } from '../model/devices.js'
import type { CertificateAuthorityService } from './certificate-authority.js'
import { challengeHash } from './scep-service.js'

export interface EnrollmentLinkInput {
  name: string
  enrollmentType: 'device' | 'user_enrollment'
  deviceKind?: DeviceKind
  group?: string | null
  managedAppleId?: string | null
  pushTopic?: string | null
  expiresAt?: Date | null
  maxUses?: number | null
  /** undefined: the caller's own tenant. */
  tenantId?: string | null
}

export interface EnrollmentLinkView extends EnrollmentLinkRow {
  url: string
  /** Usable now: not revoked, not expired, uses left. */
  usable: boolean
}

export interface EnrollmentProfile {
  body: Buffer
  signed: boolean
  variant: 'device' | 'user-enrollment'
}

export interface EnrollmentService {
  createLink(scope: AccessScope, input: EnrollmentLinkInput): Promise<EnrollmentLinkView>
  listLinks(scope: AccessScope, includeRevoked: boolean): Promise<EnrollmentLinkView[]>
  getLink(scope: AccessScope, id: string): Promise<EnrollmentLinkView>
  revokeLink(scope: AccessScope, id: string): Promise<void>
  /** A profile for the open /enroll URL (token undefined) or an enrollment link's token. */
  enrollmentProfile(request: { token?: string; signed?: boolean; managedAppleId?: string }): Promise<EnrollmentProfile>
  /**
   * The profile an ADE device gets for its MachineInfo: the device enrollment profile with a
   * one-time challenge bound to the PreStage and serial (Authenticate reads them back).
   */
  adeProfile(ade: { depProfileId: string; serialNumber: string; pushTopic?: string | null }): Promise<EnrollmentProfile>
  /**
   * The MDM profile an erase with Return to Service carries (EraseDevice MDMProfileData): a
   * device enrollment profile whose one-time challenge lasts as long as a renewal's (the
   * device may fetch the erase days later). The device uses it wiped, so its new identity is
   * accepted as a wiped device's and it keeps its tenant and kind.
   */
  returnToServiceProfile(device: { topic: string | null }): Promise<EnrollmentProfile>
  /** A renewal profile for an enrolled device (InstallProfile payload). */
  renewalProfile(device: { id: string; userEnrollment: boolean; topic: string | null; managedAppleId?: string | null }): Promise<EnrollmentProfile>
  /**
   * The profile of an account-driven enrollment, for the person a sign-in authenticated:
   * `record` is given the hash of its one-time challenge before the profile is handed out.
   */
  accountProfile(request: {
    variant: 'device' | 'user-enrollment'
    managedAppleId: string
    record: (challengeSha256: Buffer) => Promise<void>
  }): Promise<EnrollmentProfile>
  /** Deletes challenges that expired more than a day ago. */
  pruneChallenges(): Promise<number>
}

export interface EnrollmentServiceDeps {
  store: EnrollmentLinkStore
  authority: CertificateAuthorityService
  /** Topics of the stored push certificates, newest first. */
  pushTopics: () => Promise<string[]>
  signer: ProfileSigner | null
  publicUrl: string
  organization: string
  profileIdentifier: string
  openEnrollment: boolean
  challengeTtlHours: number
  renewalChallengeDays: number
  logger: Logger
  now?: () => Date
}

export function createEnrollmentService(deps: EnrollmentServiceDeps): EnrollmentService {
  const log = deps.logger.child({ service: 'enrollment' })
  const now = deps.now ?? (() => new Date())

  const linkUrl = (token: string) => `${deps.publicUrl}/enroll/${token}`

  function usableReason(link: EnrollmentLinkRow): string | null {
    if (link.revoked_at) return `enrollment link "${link.name}" was revoked`
    if (link.expires_at && link.expires_at.getTime() <= now().getTime()) return `enrollment link "${link.name}" expired on ${link.expires_at.toISOString()}`
    if (link.max_uses !== null && link.uses >= link.max_uses) return `enrollment link "${link.name}" has been used ${link.uses} of ${link.max_uses} times`
    return null
  }

  const toView = (link: EnrollmentLinkRow): EnrollmentLinkView => ({ ...link, url: linkUrl(link.token), usable: usableReason(link) === null })

  async function topicFor(preferred: string | null): Promise<string> {
    const topics = await deps.pushTopics()
    if (preferred) {
      if (!topics.includes(preferred))
        throw new OrchardError('conflict', `no push certificate for topic ${preferred}: upload it first (POST /api/v1/push-certificates)`)
      return preferred
    }
    const topic = topics[0]
    if (!topic) throw new OrchardError('conflict', 'no push certificate: devices cannot enroll until one is uploaded (POST /api/v1/push-certificates)')
    return topic
  }

  async function build(options: {
    variant: 'device' | 'user-enrollment'
    topic: string
    challenge: string
    managedAppleId?: string
    accountDriven?: { assignedManagedAppleId: string; enrollmentMode: 'BYOD' | 'ADDE' }
    signed: boolean
  }): Promise<EnrollmentProfile> {
    if (!deps.publicUrl.startsWith('https://')) {
      throw new OrchardError('conflict', `ORCHARD_PUBLIC_URL is ${deps.publicUrl}: devices only enroll with an https:// server URL`)
    }
    const authority = deps.authority.issuing()
    const caFields = readCertificateFields(authority.certificateDer)
    const body = encodeEnrollmentProfile({
      identifier: deps.profileIdentifier,
      organization: deps.organization,
      variant: options.variant,
      trust: [{ der: authority.certificateDer, name: `${deps.organization} device CA`, selfSigned: caFields.issuer.equals(caFields.subject) }],
      scep: {
        url: `${deps.publicUrl}/scep`,
        challenge: options.challenge,
        // A value unique to this download, so every device's identity has its own subject.
        subject: [
          ['O', deps.organization],
          ['CN', `${deps.organization} device ${randomUUID()}`],
        ],
        keySize: 2048,
        name: deps.organization,
      },
      mdm: {
        serverUrl: `${deps.publicUrl}/mdm/connect`,
        checkInUrl: `${deps.publicUrl}/mdm/checkin`,
        topic: options.topic,
        ...(options.managedAppleId ? { managedAppleId: options.managedAppleId } : {}),
        ...(options.accountDriven ? { accountDriven: options.accountDriven } : {}),
      },
    })
    if (!options.signed) return { body, signed: false, variant: options.variant }
    return { body: signProfile(body, deps.signer!, now()), signed: true, variant: options.variant }
  }

  async function mintChallenge(
    purpose: 'enrollment' | 'renewal',
    link: string | null,
    deviceId: string | null,
    ttlMs: number,
    ade?: { depProfileId: string; serialNumber: string },
  ): Promise<string> {
    const challenge = randomBytes(32).toString('base64url')
    await deps.store.createChallenge({
      sha256: challengeHash(challenge),
      purpose,
      enrollmentLinkId: link,
      deviceId,
      expiresAt: new Date(now().getTime() + ttlMs),
      ...(ade ? { ade } : {}),
    })
    return challenge
  }

  function wantSigned(requested: boolean | undefined): boolean {
    if (requested === true && !deps.signer)
      throw new OrchardError(
        'conflict',
        'signed=true, but no profile signing identity is configured (ORCHARD_PROFILE_SIGNING_CERT_FILE and ORCHARD_PROFILE_SIGNING_KEY_FILE)',
      )
    return requested ?? deps.signer !== null
  }

  return {
    async createLink(scope, input) {
      const tenantId = tenantForNewRow(scope, input.tenantId)
      const deviceKind = input.enrollmentType === 'user_enrollment' ? 'personal' : (input.deviceKind ?? 'work')
      if (input.enrollmentType === 'user_enrollment' && input.deviceKind && input.deviceKind !== 'personal') {
        throw new OrchardError('validation_failed', 'a User Enrollment link enrolls personal devices', {
          details: { errors: [{ pointer: '/device_kind', detail: 'must be personal (or left out) for enrollment_type user_enrollment' }] },
        })
      }
      if (input.enrollmentType === 'device' && input.managedAppleId) {
        throw new OrchardError('validation_failed', 'managed_apple_id applies to User Enrollment links only', {
          details: { errors: [{ pointer: '/managed_apple_id', detail: 'only for enrollment_type user_enrollment' }] },
        })
      }
      if (input.expiresAt && input.expiresAt.getTime() <= now().getTime()) {
        throw new OrchardError('validation_failed', 'expires_at is in the past', {
          details: { errors: [{ pointer: '/expires_at', detail: 'must be in the future' }] },
        })
      }
      if (input.pushTopic) await topicFor(input.pushTopic)
      const link = await deps.store.createLink(scope, {
        id: randomUUID(),
        tenant_id: tenantId,
        token: randomBytes(24).toString('base64url'),
        name: input.name,
        enrollment_type: input.enrollmentType,
        device_kind: deviceKind,
        group_name: input.group ?? null,
        managed_apple_id: input.managedAppleId ?? null,
        push_topic: input.pushTopic ?? null,
        expires_at: input.expiresAt ?? null,
        max_uses: input.maxUses ?? null,
      })
      if (!link)
        throw new OrchardError('validation_failed', `tenant_id: no tenant ${tenantId}`, {
          details: { errors: [{ pointer: '/tenant_id', detail: 'no such tenant' }] },
        })
      log.info(
        {
          link_id: link.id,
          name: link.name,
          enrollment_type: link.enrollment_type,
          group: link.group_name,
          max_uses: link.max_uses,
          expires_at: link.expires_at,
        },
        'enrollment link created',
      )
      return toView(link)
    },

    async listLinks(scope, includeRevoked) {
      return (await deps.store.listLinks(scope, { includeRevoked })).map(toView)
    },

    async getLink(scope, id) {
      const link = await deps.store.getLink(scope, id)
      if (!link) throw new OrchardError('not_found', `no enrollment link ${id}`)
      return toView(link)
    },

    async revokeLink(scope, id) {
      const outcome = await deps.store.revokeLink(scope, id, now())
      if (outcome === 'not_found') throw new OrchardError('not_found', `no enrollment link ${id}`)
      if (outcome === 'revoked') log.info({ link_id: id }, 'enrollment link revoked')
    },

    async enrollmentProfile(request) {
      const signed = wantSigned(request.signed)
      let link: EnrollmentLinkRow | undefined
      if (request.token !== undefined) {
        link = await deps.store.linkByToken(request.token)
        if (!link) throw new OrchardError('not_found', 'no such enrollment link')
        const reason = usableReason(link)
        if (reason) throw new OrchardError('gone', reason)
      } else if (!deps.openEnrollment) {
        throw new OrchardError('not_found', 'open enrollment is off (ORCHARD_OPEN_ENROLLMENT=false): use an enrollment link')
      }
      const variant = link?.enrollment_type === 'user_enrollment' ? 'user-enrollment' : 'device'
      const managedAppleId = link?.managed_apple_id ?? request.managedAppleId
      if (variant === 'device' && request.managedAppleId) {
        throw new OrchardError('validation_failed', 'managed_apple_id applies to User Enrollment links only', {
          details: { errors: [{ parameter: 'managed_apple_id', detail: 'only for User Enrollment links' }] },
        })
      }
      if (variant === 'user-enrollment' && !managedAppleId) {
        throw new OrchardError('validation_failed', 'a User Enrollment profile needs the Managed Apple ID of the user', {
          details: { errors: [{ parameter: 'managed_apple_id', detail: 'required: the link has none' }] },
        })
      }
      deps.authority.issuing() // a clear 503 before a challenge is minted
      const topic = await topicFor(link?.push_topic ?? null)
      const challenge = await mintChallenge('enrollment', link?.id ?? null, null, deps.challengeTtlHours * 3_600_000)
      const profile = await build({ variant, topic, challenge, ...(managedAppleId ? { managedAppleId } : {}), signed })
      log.info({ link_id: link?.id ?? null, variant, signed: profile.signed }, 'enrollment profile handed out')
      return profile
    },

    async adeProfile(ade) {
      deps.authority.issuing()
      const topic = await topicFor(ade.pushTopic ?? null)
      // Setup Assistant runs SCEP right after downloading: a short-lived challenge is enough.
      const challenge = await mintChallenge('enrollment', null, null, deps.challengeTtlHours * 3_600_000, {
        depProfileId: ade.depProfileId,
        serialNumber: ade.serialNumber,
      })
      const profile = await build({ variant: 'device', topic, challenge, signed: deps.signer !== null })
      log.info({ dep_profile_id: ade.depProfileId, serial_number: ade.serialNumber, signed: profile.signed }, 'ADE enrollment profile handed out')
      return profile
    },

    async returnToServiceProfile(device) {
      deps.authority.issuing()
      const topic = await topicFor(device.topic)
      // Not bound to the device: a challenge bound to it would make the identity a renewal,
      // which keeps the old enrollment instead of starting a new one.
      const challenge = await mintChallenge('enrollment', null, null, deps.renewalChallengeDays * 86_400_000)
      return build({ variant: 'device', topic, challenge, signed: deps.signer !== null })
    },

    async renewalProfile(device) {
      const topic = await topicFor(device.topic)
      const challenge = await mintChallenge('renewal', null, device.id, deps.renewalChallengeDays * 86_400_000)
      // The InstallProfile payload is delivered over the authenticated MDM channel; signed when we can.
      const managedAppleId = device.userEnrollment ? device.managedAppleId : null
      return build({
        variant: device.userEnrollment ? 'user-enrollment' : 'device',
        topic,
        challenge,
        ...(managedAppleId ? { managedAppleId } : {}),
        signed: deps.signer !== null,
      })
    },

    async accountProfile(request) {
      deps.authority.issuing()
      const topic = await topicFor(null)
      // The device runs SCEP right after the profile arrives: a short-lived challenge is enough.
      const challenge = await mintChallenge('enrollment', null, null, deps.challengeTtlHours * 3_600_000)
      await request.record(challengeHash(challenge))
      const enrollmentMode = request.variant === 'user-enrollment' ? 'BYOD' : 'ADDE'
      const profile = await build({
        variant: request.variant,
        topic,
        challenge,
        accountDriven: { assignedManagedAppleId: request.managedAppleId, enrollmentMode },
        signed: deps.signer !== null,
      })
      log.info({ variant: request.variant, enrollment_mode: enrollmentMode, signed: profile.signed }, 'account-driven enrollment profile handed out')
      return profile
    },

    async pruneChallenges() {
      return deps.store.pruneChallenges(new Date(now().getTime() - 86_400_000))
    },
  }
}
