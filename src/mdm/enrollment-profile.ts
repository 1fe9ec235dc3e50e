// The enrollment profile (.mobileconfig) a device installs to enroll: CA certificates, a SCEP
// payload for the device identity, and the MDM payload that points at the server
// (apple-protocol.md §4). Pure: builds the plist, no I/O; signing is crypto/profile-signing.ts.
// https://developer.apple.com/documentation/devicemanagement/mdm
import { randomUUID } from 'node:crypto'
import { encodePlist, type PlistDict } from './plist.js'

export interface TrustCertificate {
  der: Buffer
  name: string
  /** A self-signed root goes in com.apple.security.root, an intermediate in com.apple.security.pkcs1. */
  selfSigned: boolean
}

export interface EnrollmentProfileOptions {
  /** Top-level PayloadIdentifier; the same on every download and on identity renewal, so a re-install replaces the profile. */
  identifier: string
  organization: string
  /** Default `${organization} device management` (user-enrollment: `${organization} User Enrollment`). */
  displayName?: string
  description?: string
  variant: 'device' | 'user-enrollment'
  /** CA certificate payloads, e.g. the SCEP CA and the TLS chain of a private server certificate. */
  trust: TrustCertificate[]
  scep: {
    url: string
    challenge: string
    /** One RDN per pair, e.g. [['CN', 'Orchard device 1234'], ['O', 'Org']]. */
    subject: Array<[string, string]>
    /** Default 2048 (Apple's default, 1024, is too weak). */
    keySize?: 1024 | 2048 | 4096
    /** The SCEP CA's name, sent by the device as `message` in GetCACert (default 'Orchard'). */
    name?: string
  }
  mdm: {
    serverUrl: string
    checkInUrl: string
    /** The push certificate's topic (its UID); starts `com.apple.mgmt.`. */
    topic: string
    /** Default 8191 (all rights); ignored under User Enrollment and left out there. */
    accessRights?: number
    /** Profile-based User Enrollment (iOS 13.1-17, macOS 10.15-14; removed in iOS 18/macOS 15). */
    managedAppleId?: string
    /**
     * Account-driven enrollment: the person's Managed Apple Account (AssignedManagedAppleID,
     * required there; never ManagedAppleID, which is profile-based User Enrollment's) and the
     * EnrollmentMode: BYOD (User Enrollment) or ADDE (Device Enrollment). The device refuses a
     * profile whose AssignedManagedAppleID is not the account it signed in with.
     * https://developer.apple.com/documentation/devicemanagement/mdm
     */
    accountDriven?: { assignedManagedAppleId: string; enrollmentMode: 'BYOD' | 'ADDE' }
    /** Default for 'device': per-user-connections and bootstraptoken; none for 'user-enrollment'. */
    serverCapabilities?: string[]
  }
  /** PayloadUUID source; default randomUUID().toUpperCase(). */
  uuid?: () => string
}

const defaultServerCapabilities = ['com.apple.mdm.per-user-connections', 'com.apple.mdm.bootstraptoken']
const allAccessRights = 8191
/** Key Usage bits of the SCEP payload: 1 signing + 4 encryption. */
const signAndEncrypt = 5

/** The top-level Configuration dict of an enrollment profile. Throws Error on inputs no device would take. */
export function buildEnrollmentProfile(options: EnrollmentProfileOptions): PlistDict {
  const { identifier, organization, variant, scep, mdm } = options
  checkOptions(options)
  const uuid = options.uuid ?? (() => randomUUID().toUpperCase())
  const userEnrollment = variant === 'user-enrollment'

  const payload = (suffix: string, type: string, displayName: string, content: PlistDict): PlistDict => ({
    PayloadIdentifier: `${identifier}.${suffix}`,
    PayloadUUID: uuid(),
    PayloadType: type,
    PayloadVersion: 1,
    PayloadDisplayName: displayName,
    ...content,
  })

  const trust = options.trust.map((certificate, index) =>
    payload(`ca.${index}`, certificate.selfSigned ? 'com.apple.security.root' : 'com.apple.security.pkcs1', certificate.name, {
      PayloadContent: certificate.der,
    }),
  )

  const identity = payload('scep', 'com.apple.security.scep', 'MDM identity certificate', {
    PayloadContent: {
      URL: scep.url,
      Name: scep.name ?? 'Orchard',
      // [[["CN","x"]],[["O","y"]]]: RDNs, each an array of [oid, value] pairs.
      Subject: scep.subject.map(([oid, value]) => [[oid, value]]),
      Challenge: scep.challenge,
      Keysize: scep.keySize ?? 2048,
      'Key Type': 'RSA',
      'Key Usage': signAndEncrypt,
    },
  })

  const management: PlistDict = {
    IdentityCertificateUUID: identity['PayloadUUID']!,
    Topic: mdm.topic,
    ServerURL: mdm.serverUrl,
    CheckInURL: mdm.checkInUrl,
    SignMessage: true,
    CheckOutWhenRemoved: true,
  }
  if (userEnrollment) {
    // AccessRights is ignored under User Enrollment and the device-only capabilities do not apply.
    if (mdm.managedAppleId !== undefined) management['ManagedAppleID'] = mdm.managedAppleId
    if (mdm.serverCapabilities !== undefined) management['ServerCapabilities'] = [...mdm.serverCapabilities]
  } else {
    management['AccessRights'] = mdm.accessRights ?? allAccessRights
    management['ServerCapabilities'] = [...(mdm.serverCapabilities ?? defaultServerCapabilities)]
  }

  if (mdm.accountDriven) {
    management['AssignedManagedAppleID'] = mdm.accountDriven.assignedManagedAppleId
    management['EnrollmentMode'] = mdm.accountDriven.enrollmentMode
  }

  return {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: identifier,
    PayloadUUID: uuid(),
    PayloadDisplayName: options.displayName ?? (userEnrollment ? `${organization} User Enrollment` : `${organization} device management`),
    PayloadOrganization: organization,
    PayloadDescription:
      options.description ??
      (userEnrollment
        ? `Lets ${organization} manage its apps, accounts and data on this device, kept apart from your personal data.`
        : `Enrolls this device in ${organization}'s device management.`),
    // Never PayloadRemovalDisallowed: forbidden under User Enrollment, supervision-only elsewhere.
    PayloadContent: [...trust, identity, payload('mdm', 'com.apple.mdm', 'Mobile device management', management)],
  }
}

/** encodePlist (XML) of buildEnrollmentProfile: the unsigned .mobileconfig bytes. */
export function encodeEnrollmentProfile(options: EnrollmentProfileOptions): Buffer {
  return encodePlist(buildEnrollmentProfile(options))
}

/** Cheap checks of values the server passes in; a mistake here would only show on a device. */
function checkOptions({ identifier, organization, variant, scep, mdm }: EnrollmentProfileOptions): void {
  const fail = (message: string): never => {
    throw new Error(`enrollment profile: ${message}`)
  }
  if (!identifier.trim()) fail('identifier must not be empty')
  if (!organization.trim()) fail('organization must not be empty')
  if (variant !== 'device' && variant !== 'user-enrollment') fail(`unknown variant ${JSON.stringify(variant)}`)
  if (!mdm.topic.startsWith('com.apple.mgmt.')) fail(`topic ${JSON.stringify(mdm.topic)} does not start with com.apple.mgmt.`)
  for (const [name, url] of [
    ['serverUrl', mdm.serverUrl],
    ['checkInUrl', mdm.checkInUrl],
  ] as const) {
    if (!/^https:\/\/[^/]/.test(url)) fail(`${name} ${JSON.stringify(url)} must be an https:// URL`)
  }
  if (!/^https?:\/\/[^/]/.test(scep.url)) fail(`scep url ${JSON.stringify(scep.url)} must be an http(s) URL`)
  if (scep.keySize !== undefined && ![1024, 2048, 4096].includes(scep.keySize)) fail(`scep keySize ${scep.keySize} is not 1024, 2048 or 4096`)
  if (scep.subject.length === 0) fail('scep subject must not be empty')
  if (mdm.accessRights !== undefined && (!Number.isInteger(mdm.accessRights) || mdm.accessRights < 1 || mdm.accessRights > allAccessRights)) {
    fail(`accessRights ${mdm.accessRights} is not between 1 and ${allAccessRights}`)
  }
  if (variant === 'device' && mdm.managedAppleId !== undefined) fail('managedAppleId makes a User Enrollment profile; use variant user-enrollment')
  if (mdm.accountDriven && mdm.managedAppleId !== undefined) fail('an account-driven profile names the person with AssignedManagedAppleID only')
  if (mdm.accountDriven && (mdm.accountDriven.enrollmentMode === 'BYOD') !== (variant === 'user-enrollment'))
    fail('EnrollmentMode BYOD goes with variant user-enrollment, ADDE with device')
}
