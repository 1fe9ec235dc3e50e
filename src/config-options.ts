// Every configuration option, declared once: its variable and flag, its default, how its text is
// parsed and checked, and its documentation (--help and the README table, `npm run docs`).
// The order is the order of --help and the README. config.ts builds the Config from this table.
import {
  anyUrl,
  apiKeys,
  apnsUrl,
  boolean,
  currencyCode,
  fileList,
  groupRoles,
  headerName,
  hostName,
  httpBaseUrl,
  httpUrlText,
  integer,
  list,
  oneOf,
  option,
  optional,
  path,
  postgresUrl,
  readableFile,
  reverseDnsIdentifier,
  scepChallenge,
  secretKeys,
  text,
} from './config-parsers.js'
import { defaultPgliteSharedBuffersMb } from './db/pglite-memory.js'

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof logLevels)[number]

export const options = {
  host: option({
    env: 'ORCHARD_HOST',
    flag: '--host',
    default: '127.0.0.1',
    parse: hostName,
    description: 'Address to listen on (0.0.0.0 for all interfaces; the Docker image sets it).',
  }),
  port: option({
    env: 'ORCHARD_PORT',
    flag: '--port',
    default: '8080',
    parse: integer(0, 65535),
    description: 'TCP port to listen on (0 picks a free port).',
  }),
  publicUrl: option({
    env: 'ORCHARD_PUBLIC_URL',
    flag: '--public-url',
    defaultText: 'http(s)://localhost:<port>',
    parse: optional(httpBaseUrl('must be an absolute http:// or https:// URL', true)),
    description: 'Base URL devices and API clients use to reach Orchard (https in production: devices require it).',
  }),
  databaseUrl: option({
    env: 'DATABASE_URL',
    flag: '--database-url',
    defaultText: '(unset: embedded PGlite)',
    secret: true,
    parse: optional(postgresUrl),
    description: 'postgres:// URL of a PostgreSQL database. Unset = embedded PGlite stored in the data directory.',
  }),
  databasePoolMax: option({
    env: 'DATABASE_POOL_MAX',
    flag: '--database-pool-max',
    default: '10',
    parse: integer(1, 1000),
    description: 'Maximum PostgreSQL connections in the pool (1-1000). Ignored for PGlite, which has one.',
  }),
  pgliteSharedBuffersMb: option({
    env: 'ORCHARD_PGLITE_SHARED_BUFFERS_MB',
    flag: '--pglite-shared-buffers-mb',
    default: String(defaultPgliteSharedBuffersMb),
    parse: integer(8, 4096),
    description:
      "The embedded database's page cache (PostgreSQL shared_buffers) in MB, 8-4096; part of the server's memory. Pages beyond it are read from the files (the system's file cache keeps them). Ignored with DATABASE_URL.",
  }),
  dataDir: option({
    env: 'ORCHARD_DATA_DIR',
    flag: '--data-dir',
    default: './data',
    parse: path,
    description: 'Directory for local state: the embedded database lives in <data-dir>/pglite.',
  }),
  logLevel: option({
    env: 'ORCHARD_LOG_LEVEL',
    flag: '--log-level',
    default: 'info',
    parse: oneOf(logLevels, `must be one of ${logLevels.join(', ')}`),
    description: `Log level: ${logLevels.join(', ')}.`,
  }),
  apiKeys: option({
    env: 'ORCHARD_API_KEYS',
    flag: '--api-keys',
    defaultText: '(none: admin API refuses every request)',
    secret: true,
    parse: apiKeys,
    description: 'Comma-separated bearer keys for the admin API, each at least 24 characters (e.g. `openssl rand -hex 32`).',
  }),
  bootstrapOwnerKey: option({
    env: 'ORCHARD_BOOTSTRAP_OWNER_KEY',
    flag: '--bootstrap-owner-key',
    default: 'true',
    parse: boolean,
    description:
      'On the first start of an installation (no ORCHARD_API_KEYS, no API key ever created in the database) create one owner ' +
      'API key and print it once in the log, so a fresh server can be used at once. Never again afterwards, even when every key ' +
      'is revoked. Replace it with named keys and revoke it.',
  }),
  apnsUrl: option({
    env: 'ORCHARD_APNS_URL',
    flag: '--apns-url',
    default: 'production',
    parse: apnsUrl,
    description: 'APNs endpoint: `production`, `development`, or an https:// URL (e.g. a test server).',
  }),
  apnsCaFile: option({
    env: 'ORCHARD_APNS_CA_FILE',
    flag: '--apns-ca-file',
    defaultText: '(unset: system CAs)',
    parse: optional(readableFile),
    description: 'PEM file of an extra CA to trust for the APNs endpoint (a test APNs server). Not needed for Apple.',
  }),
  secretKeys: option({
    env: 'ORCHARD_SECRET_KEYS',
    flag: '--secret-keys',
    defaultText: '(unset: <data-dir>/secret.key with the embedded database; none on PostgreSQL)',
    secret: true,
    parse: secretKeys,
    description:
      'Comma-separated master keys (64 hex characters or base64 of 32 bytes, e.g. ' +
      '`openssl rand -hex 32`) that encrypt private keys at rest (device CA, push certificates, webhook secrets). ' +
      'The first encrypts; all decrypt (rotation: put the new key first). Every instance on one PostgreSQL database ' +
      'needs the same keys.',
  }),
  secretKeyFile: option({
    env: 'ORCHARD_SECRET_KEY_FILE',
    flag: '--secret-key-file',
    defaultText: '(unset: <data-dir>/secret.key with the embedded database; none on PostgreSQL)',
    parse: optional(path),
    description:
      'When ORCHARD_SECRET_KEYS is unset: a file holding the master key (64 hex characters), created (mode 0600) with a new ' +
      'random key if missing. On PostgreSQL every instance must read the same file (a shared volume) or the same ORCHARD_SECRET_KEYS.',
  }),
  repushAfter: option({
    env: 'ORCHARD_REPUSH_AFTER_SECONDS',
    flag: '--repush-after-seconds',
    default: '300',
    parse: integer(10, 30 * 86_400),
    description: 'A device with pending commands that has not connected for this long is pushed again, with exponential backoff.',
  }),
  repushMaxInterval: option({
    env: 'ORCHARD_REPUSH_MAX_INTERVAL_SECONDS',
    flag: '--repush-max-interval-seconds',
    default: '21600',
    parse: integer(10, 30 * 86_400),
    description: 'Ceiling of the re-push backoff.',
  }),
  repushGiveUpAfter: option({
    env: 'ORCHARD_REPUSH_GIVE_UP_AFTER_SECONDS',
    flag: '--repush-give-up-after-seconds',
    default: '2592000',
    parse: integer(60, 365 * 86_400),
    description: 'Devices silent for longer than this (default 30 days) are not re-pushed any more.',
  }),
  repushLoopInterval: option({
    env: 'ORCHARD_REPUSH_LOOP_SECONDS',
    flag: '--repush-loop-seconds',
    default: '30',
    parse: integer(0, 86_400),
    description: 'How often this process looks for devices to re-push (0 = never; several replicas share the work safely).',
  }),
  tlsCertFile: option({
    env: 'ORCHARD_TLS_CERT_FILE',
    flag: '--tls-cert-file',
    defaultText: '(unset: plain HTTP)',
    requires: 'tlsKeyFile',
    parse: optional(readableFile),
    description: 'PEM certificate (chain) to serve HTTPS directly. Needs ORCHARD_TLS_KEY_FILE.',
  }),
  tlsKeyFile: option({
    env: 'ORCHARD_TLS_KEY_FILE',
    flag: '--tls-key-file',
    defaultText: '(unset)',
    requires: 'tlsCertFile',
    parse: optional(readableFile),
    description: 'PEM private key for ORCHARD_TLS_CERT_FILE.',
  }),
  deviceCaFiles: option({
    env: 'ORCHARD_DEVICE_CA_FILES',
    flag: '--device-ca-files',
    defaultText: '(none)',
    parse: fileList,
    description:
      'Comma-separated PEM files with extra CA certificates whose device identities are trusted (e.g. ' +
      "another MDM's SCEP CA after a migration). Orchard's own device CA is always trusted.",
  }),
  organization: option({
    env: 'ORCHARD_ORGANIZATION',
    flag: '--organization',
    default: 'Orchard',
    parse: text((name) => name !== '' && name.length <= 100, 'must have 1 to 100 characters'),
    description: 'Organization name shown in enrollment profiles and in the generated device CA.',
  }),
  caCertFile: option({
    env: 'ORCHARD_CA_CERT_FILE',
    flag: '--ca-cert-file',
    defaultText: '(unset: generated on first start, kept in the database)',
    requires: 'caKeyFile',
    parse: optional(readableFile),
    description:
      'PEM certificate of the CA that issues device identities over SCEP. Needs ORCHARD_CA_KEY_FILE. ' +
      'Unset: Orchard creates its device CA on first start and seals its key with ORCHARD_SECRET_KEYS.',
  }),
  caKeyFile: option({
    env: 'ORCHARD_CA_KEY_FILE',
    flag: '--ca-key-file',
    defaultText: '(unset)',
    requires: 'caCertFile',
    parse: optional(readableFile),
    description: 'PEM private key (RSA, or EC P-256/P-384 with a generated RSA RA) of ORCHARD_CA_CERT_FILE.',
  }),
  scepChallenge: option({
    env: 'ORCHARD_SCEP_CHALLENGE',
    flag: '--scep-challenge',
    defaultText: '(unset: one-time challenges only)',
    secret: true,
    parse: optional(scepChallenge),
    description: 'A static SCEP challenge for profiles made by hand (at least 16 characters). ' + "Orchard's own profiles always carry one-time challenges.",
  }),
  identityValidityDays: option({
    env: 'ORCHARD_IDENTITY_VALIDITY_DAYS',
    flag: '--identity-validity-days',
    default: '365',
    parse: integer(1, 3650),
    description: 'Validity of issued device identity certificates, in days.',
  }),
  identityRenewalDays: option({
    env: 'ORCHARD_IDENTITY_RENEWAL_DAYS',
    flag: '--identity-renewal-days',
    default: '60',
    parse: integer(0, 3650),
    description: 'Queue a fresh enrollment profile (InstallProfile) this many days before a device identity expires; 0 = never.',
  }),
  enrollmentChallengeHours: option({
    env: 'ORCHARD_ENROLLMENT_CHALLENGE_HOURS',
    flag: '--enrollment-challenge-hours',
    default: '72',
    parse: integer(1, 24 * 365),
    description: 'How long the one-time SCEP challenge in a downloaded enrollment profile stays valid.',
  }),
  openEnrollment: option({
    env: 'ORCHARD_OPEN_ENROLLMENT',
    flag: '--open-enrollment',
    default: 'true',
    parse: boolean,
    description: '`true`: anyone reaching GET /enroll gets an enrollment profile. `false`: ' + 'only enrollment links (GET /enroll/<token>) hand out profiles.',
  }),
  profileSigningCertFile: option({
    env: 'ORCHARD_PROFILE_SIGNING_CERT_FILE',
    flag: '--profile-signing-cert-file',
    defaultText: '(unset: profiles unsigned)',
    requires: 'profileSigningKeyFile',
    parse: optional(readableFile),
    description: 'PEM certificate (then its chain) that signs enrollment profiles. Needs ORCHARD_PROFILE_SIGNING_KEY_FILE.',
  }),
  profileSigningKeyFile: option({
    env: 'ORCHARD_PROFILE_SIGNING_KEY_FILE',
    flag: '--profile-signing-key-file',
    defaultText: '(unset)',
    requires: 'profileSigningCertFile',
    parse: optional(readableFile),
    description: 'PEM private key of ORCHARD_PROFILE_SIGNING_CERT_FILE.',
  }),
  enrollmentProfileIdentifier: option({
    env: 'ORCHARD_ENROLLMENT_PROFILE_IDENTIFIER',
    flag: '--enrollment-profile-identifier',
    default: 'orchard.enrollment',
    parse: reverseDnsIdentifier,
    description:
      'PayloadIdentifier of enrollment profiles. Identity renewal re-installs the profile with it: ' + 'do not change it while devices are enrolled.',
  }),
  abmUrl: option({
    env: 'ORCHARD_ABM_URL',
    flag: '--abm-url',
    default: 'https://mdmenrollment.apple.com',
    parse: httpBaseUrl('must be an http:// or https:// URL'),
    description: "Apple's device assignment (ADE/DEP) API of Apple Business/School Manager; " + 'an http(s):// URL of a test server otherwise.',
  }),
  depSyncSeconds: option({
    env: 'ORCHARD_DEP_SYNC_SECONDS',
    flag: '--dep-sync-seconds',
    default: '900',
    parse: integer(0, 7 * 86_400),
    description: 'How often this process syncs the devices of every ABM/ASM token (one instance at a time per token, by lease); ' + '0 = not in this process.',
  }),
  vppUrl: option({
    env: 'ORCHARD_VPP_URL',
    flag: '--vpp-url',
    default: 'https://vpp.itunes.apple.com/mdm/v2',
    parse: httpBaseUrl('must be an http:// or https:// URL'),
    description: "Apple's Apps and Books for Organizations API (version 2, up to /mdm/v2); an http(s):// URL of a test server otherwise.",
  }),
  vppSyncSeconds: option({
    env: 'ORCHARD_VPP_SYNC_SECONDS',
    flag: '--vpp-sync-seconds',
    default: '3600',
    parse: integer(0, 7 * 86_400),
    description:
      'How often this process syncs the assets and licences of every content token (one instance at a time per token, by lease); 0 = not in this process.',
  }),
  vppNotificationUrl: option({
    env: 'ORCHARD_VPP_NOTIFICATION_URL',
    flag: '--vpp-notification-url',
    defaultText: 'ORCHARD_PUBLIC_URL when it is https',
    parse: optional((value, fail) =>
      value.trim().toLowerCase() === 'off' ? 'off' : httpBaseUrl('must be off or an https:// URL (http:// only for a test server)', true)(value, fail),
    ),
    description:
      "Base URL Apple's Apps and Books service posts notifications to (`<url>/vpp/notifications/<token id>`; Apple requires https), " +
      "set in each location's client config; `off` = none. Without it, licence events are polled every licence round.",
  }),
  osCatalogueUrl: option({
    env: 'ORCHARD_OS_CATALOGUE_URL',
    flag: '--os-catalogue-url',
    default: 'https://gdmf.apple.com/v2/pmv',
    parse: (value, fail) =>
      value.trim().toLowerCase() === 'off' ? 'off' : httpBaseUrl('must be off or an http(s):// URL of the software lookup document', true)(value, fail),
    description:
      "Apple's software lookup document (OS releases and the models each supports), or a mirror of it; `off` = imports only " +
      "(POST /api/v1/os-releases/import). gdmf.apple.com's certificate chains to Apple's own root CA: if Node does not trust it, " +
      'set NODE_EXTRA_CA_CERTS to a PEM file with Apple Root CA (apple.com/certificateauthority).',
  }),
  osCatalogueSeconds: option({
    env: 'ORCHARD_OS_CATALOGUE_SECONDS',
    flag: '--os-catalogue-seconds',
    default: '86400',
    parse: integer(0, 30 * 86_400),
    description:
      'How old the OS release catalogue may get before this process fetches it again (checked every 15 minutes, or this often when shorter); ' +
      '0 = only on POST /api/v1/os-releases/refresh.',
  }),
  blueprintCheckHours: option({
    env: 'ORCHARD_BLUEPRINT_CHECK_HOURS',
    flag: '--blueprint-check-hours',
    default: '24',
    parse: integer(0, 24 * 90),
    description:
      'How often every device with blueprints is asked for its profile and app lists, so drift is repaired; ' + '0 = only on enrollment, changes and sync.',
  }),
  inventoryAtEnrollment: option({
    env: 'ORCHARD_INVENTORY_AT_ENROLLMENT',
    flag: '--inventory-at-enrollment',
    default: 'true',
    parse: boolean,
    description:
      'A newly enrolled device is asked for its inventory (DeviceInformation with every query, SecurityInfo, InstalledApplicationList, ' +
      'ProfileList, CertificateList) after what blueprints and ADE queue for it.',
  }),
  inventoryRefreshHours: option({
    env: 'ORCHARD_INVENTORY_REFRESH_HOURS',
    flag: '--inventory-refresh-hours',
    default: '24',
    parse: integer(0, 24 * 90),
    description:
      'Enrolled, active devices whose inventory (DeviceInformation) is older than this are asked for it again (checked hourly, ' +
      'up to 10,000 devices a run); 0 = only at enrollment and on POST /api/v1/devices/{id}/refresh-inventory.',
  }),
  inventoryResultRetentionDays: option({
    env: 'ORCHARD_INVENTORY_RESULT_RETENTION_DAYS',
    flag: '--inventory-result-retention-days',
    default: '3',
    parse: integer(0, 3650),
    description:
      'The raw answers of the inventory queries Orchard sends by itself (at enrollment and in the scheduled refresh, whose content ' +
      'is the device inventory) are deleted this many days after they came, with the daily pruning; 0 = kept as long as other ' +
      'command results (command_retention_days). Commands an admin, a blueprint or a job queued keep command_retention_days.',
  }),
  adeVerifyMachineInfo: option({
    env: 'ORCHARD_ADE_VERIFY_MACHINE_INFO',
    flag: '--ade-verify-machine-info',
    default: 'true',
    parse: boolean,
    description:
      "`true`: an ADE device's MachineInfo must be signed by a certificate chaining to " +
      'ORCHARD_ADE_MACHINE_INFO_CA_FILES (ADE enrollment answers 503 until they are set); ' +
      '`false`: the signature is checked, its chain is not.',
  }),
  adeMachineInfoCaFiles: option({
    env: 'ORCHARD_ADE_MACHINE_INFO_CA_FILES',
    flag: '--ade-machine-info-ca-files',
    defaultText: '(none)',
    parse: fileList,
    description:
      "Comma-separated PEM files with the CAs that issue devices' own identities, for ADE MachineInfo: " +
      'Apple Root CA and Apple iPhone Device CA (apple.com/certificateauthority; ' +
      'macOS sends no intermediate, so list both). Each is a trust anchor.',
  }),
  adeActivationLock: option({
    env: 'ORCHARD_ADE_ACTIVATION_LOCK',
    flag: '--ade-activation-lock',
    default: 'false',
    parse: boolean,
    description:
      'Organization-linked Activation Lock for ADE devices: once a supervised ADE device has given its bypass code, ' +
      'Orchard creates a second code, keeps it sealed and sends its escrow key through ABM/ASM (POST /device/activationlock). ' +
      'Apple then keeps the device locked to the organization, also after an erase, until Orchard (activation-lock/clear) ' +
      'or an ABM/ASM administrator turns the lock off. Needs ORCHARD_SECRET_KEYS.',
  }),
  activationLockUnlockUrl: option({
    env: 'ORCHARD_ACTIVATION_LOCK_UNLOCK_URL',
    flag: '--activation-lock-unlock-url',
    default: 'https://deviceservices-external.apple.com/deviceservicesworkers/escrowKeyUnlock',
    parse: (value, fail) => {
      const url = httpBaseUrl('must be an https:// URL')(value, fail)
      if (!url.startsWith('https://')) fail('must be an https:// URL (the push certificate authenticates Orchard over TLS)')
      return url
    },
    description: "Apple's escrowKeyUnlock service, which turns Activation Lock off with a held bypass code; an https:// URL of a test server otherwise.",
  }),
  activationLockUnlockCaFile: option({
    env: 'ORCHARD_ACTIVATION_LOCK_UNLOCK_CA_FILE',
    flag: '--activation-lock-unlock-ca-file',
    defaultText: '(unset: system CAs)',
    parse: optional(readableFile),
    description: 'PEM file of an extra CA to trust for ORCHARD_ACTIVATION_LOCK_UNLOCK_URL (a test server). Not needed for Apple.',
  }),
  oidcIssuer: option({
    env: 'ORCHARD_OIDC_ISSUER',
    flag: '--oidc-issuer',
    defaultText: '(unset: API keys only)',
    parse: optional(httpUrlText),
    description:
      "Issuer URL of the organisation's OpenID Connect provider: the admin API then also takes its JWTs as bearer " +
      "tokens (signature from the issuer's JWKS, audience and expiry checked).",
  }),
  oidcAudience: option({
    env: 'ORCHARD_OIDC_AUDIENCE',
    flag: '--oidc-audience',
    defaultText: '(required with ORCHARD_OIDC_ISSUER)',
    requires: 'oidcIssuer',
    parse: list,
    description: 'Comma-separated `aud` values a token must carry one of (the client ID registered for Orchard).',
  }),
  oidcJwksUrl: option({
    env: 'ORCHARD_OIDC_JWKS_URL',
    flag: '--oidc-jwks-url',
    defaultText: '(discovered from the issuer)',
    requires: 'oidcIssuer',
    parse: optional(anyUrl),
    description: 'JWKS URL, when the issuer has no /.well-known/openid-configuration.',
  }),
  oidcGroupsClaim: option({
    env: 'ORCHARD_OIDC_GROUPS_CLAIM',
    flag: '--oidc-groups-claim',
    default: 'groups',
    parse: (value) => value.trim(),
    description: "Token claim with the person's groups: an array of names, or a single name as a string (taken whole, " + 'never split).',
  }),
  oidcGroupRoles: option({
    env: 'ORCHARD_OIDC_GROUP_ROLES',
    flag: '--oidc-group-roles',
    defaultText: '(required with ORCHARD_OIDC_ISSUER)',
    requires: 'oidcIssuer',
    parse: groupRoles,
    description:
      'Comma-separated `group=role` (central IT) or `group=role@tenant` pairs; ' +
      'roles owner (central only), admin, helpdesk, auditor. E.g. ' +
      '`mdm-central=owner,physics-it=admin@physics,physics-desk=helpdesk@physics`. ' +
      'A person holds the grants of all their listed groups; none without one.',
  }),
  accountEnrollmentClientId: option({
    env: 'ORCHARD_ACCOUNT_ENROLLMENT_CLIENT_ID',
    flag: '--account-enrollment-client-id',
    defaultText: '(unset: no account-driven enrollment)',
    requires: 'oidcIssuer',
    parse: optional(text((value) => value !== '', 'must not be empty')),
    description:
      'Client ID registered at ORCHARD_OIDC_ISSUER for account-driven enrollment (employees enrolling their phone by ' +
      'signing in with their work account): its redirect URI is `<ORCHARD_PUBLIC_URL>/enroll/account/callback`.',
  }),
  accountEnrollmentClientSecret: option({
    env: 'ORCHARD_ACCOUNT_ENROLLMENT_CLIENT_SECRET',
    flag: '--account-enrollment-client-secret',
    defaultText: '(unset: a public client, PKCE only)',
    secret: true,
    requires: 'accountEnrollmentClientId',
    parse: optional(text((value) => value !== '', 'must not be empty')),
    description: "The client's secret, when the identity provider registered it as a confidential client.",
  }),
  accountEnrollmentRequiredGroup: option({
    env: 'ORCHARD_ACCOUNT_ENROLLMENT_REQUIRED_GROUP',
    flag: '--account-enrollment-required-group',
    defaultText: '(unset: any person of a mapped domain)',
    requires: 'accountEnrollmentClientId',
    parse: optional(text((value) => value !== '', 'must not be empty')),
    description:
      'Group (in ORCHARD_OIDC_GROUPS_CLAIM) a person needs to enroll, unless their domain names its own ' +
      '(PUT /api/v1/account-enrollment/domains/{domain}).',
  }),
  accountEnrollmentReauthDays: option({
    env: 'ORCHARD_ACCOUNT_ENROLLMENT_REAUTH_DAYS',
    flag: '--account-enrollment-reauth-days',
    default: '30',
    parse: integer(0, 3650),
    description:
      'Days after a sign-in when the next check-in of an account-driven enrollment asks the person to sign in ' +
      'again (0: only when an admin asks). A person no longer allowed in has their device selectively wiped and retired.',
  }),
  clientCertHeader: option({
    env: 'ORCHARD_CLIENT_CERT_HEADER',
    flag: '--client-cert-header',
    defaultText: '(unset: not trusted)',
    parse: optional(headerName),
    description:
      'Header in which a TLS-terminating proxy forwards the device client certificate (RFC 9440 `Client-Cert`, ' +
      'or URL-escaped PEM as nginx sends it). Set it only behind such a proxy.',
  }),
  mdmBodyLimit: option({
    env: 'ORCHARD_MDM_BODY_LIMIT',
    flag: '--mdm-body-limit',
    default: '1048576',
    parse: integer(1024, 100 * 1024 * 1024),
    description: 'Largest request body a device may send, in bytes (larger: 413).',
  }),
  userAuthenticate: option({
    env: 'ORCHARD_USER_AUTHENTICATE',
    flag: '--user-authenticate',
    default: 'allow',
    parse: oneOf(['allow', 'decline']),
    description: 'macOS user channels (UserAuthenticate): `allow` (no AuthToken needed) or `decline` (410: no user channels).',
  }),
  apiResponseValidation: option({
    env: 'ORCHARD_API_RESPONSE_VALIDATION',
    flag: '--api-response-validation',
    default: 'log',
    parse: oneOf(['strict', 'log', 'off']),
    description: 'Check admin API responses against openapi.yaml: `log` logs a mismatch, `strict` answers 500 instead (tests), ' + '`off` skips the check.',
  }),
  webhookWorker: option({
    env: 'ORCHARD_WEBHOOK_WORKER',
    flag: '--webhook-worker',
    default: 'true',
    parse: boolean,
    description:
      'Deliver webhook events from this process. `false`: events are still recorded in the outbox, ' + 'and another instance (or a later start) delivers them.',
  }),
  destructiveOwnerLimit: option({
    env: 'ORCHARD_DESTRUCTIVE_OWNER_LIMIT',
    flag: '--destructive-owner-limit',
    default: '10',
    parse: integer(0, 1_000_000),
    description:
      'Destructive commands (EraseDevice, DeleteUser, RemoveProfile of the enrollment profile) sent to more devices ' +
      "than this in one call need the owner role for every target's tenant. Any such command to a filter or to several " +
      'devices also takes two steps: a dry run, then the call with its confirmation token.',
  }),
  jobThreshold: option({
    env: 'ORCHARD_JOB_THRESHOLD',
    flag: '--job-threshold',
    default: '1000',
    parse: integer(0, 1_000_000),
    description:
      'A command (POST /api/v1/commands) to more targets than this, or the leavers action (POST /api/v1/offboarding) over ' +
      'more devices, runs as a job: the call answers 202 with the job (GET /api/v1/jobs/{id}) instead of 201 with every target.',
  }),
  jobWorker: option({
    env: 'ORCHARD_JOB_WORKER',
    flag: '--job-worker',
    default: 'true',
    parse: boolean,
    description:
      'Run jobs (bulk commands, offboarding, syncs asked for through the API, long reports) in this process. `false`: jobs are still created here, ' +
      'and another instance runs them (each takes over the jobs of an instance that stopped).',
  }),
  jobRetentionDays: option({
    env: 'ORCHARD_JOB_RETENTION_DAYS',
    flag: '--job-retention-days',
    default: '30',
    parse: integer(0, 36_500),
    description:
      'Finished jobs (succeeded, failed or cancelled) are deleted this many days after they finished, with their errors ' +
      "and output (a report job's report); checked daily. `0`: keep them forever.",
  }),
  reportJobDays: option({
    env: 'ORCHARD_REPORT_JOB_DAYS',
    flag: '--report-job-days',
    default: '366',
    parse: integer(0, 1_000_000),
    description:
      'A device-days report (GET /api/v1/reports/device-days) over a period of more days than this runs as a report job: ' +
      'the call answers 202 with the job, whose result is then fetched from GET /api/v1/jobs/{id}/result. ' +
      "The default keeps a year's report synchronous; `0`: every report is a job. `Prefer: respond-async` asks for a job anyway.",
  }),
  notNowAlertAfter: option({
    env: 'ORCHARD_NOT_NOW_ALERT_AFTER',
    flag: '--not-now-alert-after',
    default: '5',
    parse: integer(1, 1_000_000),
    description:
      'Log a warning when a device has answered NotNow to the same command this many times (the command stays queued; ' + 'its NotNow count is kept).',
  }),
  billingCurrency: option({
    env: 'ORCHARD_BILLING_CURRENCY',
    flag: '--billing-currency',
    default: 'EUR',
    parse: currencyCode,
    description:
      'The ISO 4217 code (three letters) of the currency tenant prices are in; one for the whole installation. ' +
      'Amounts are rounded to its minor unit (EUR: cents). Changing it relabels the prices, it converts nothing.',
  }),
  shutdownTimeoutMs: option({
    env: 'ORCHARD_SHUTDOWN_TIMEOUT_MS',
    flag: '--shutdown-timeout-ms',
    default: '10000',
    parse: integer(100, 600_000),
    description: 'On SIGTERM/SIGINT, how long in-flight requests may take before the process exits anyway (exit code 1).',
  }),
  httpHeadersTimeoutMs: option({
    env: 'ORCHARD_HTTP_HEADERS_TIMEOUT_MS',
    flag: '--http-headers-timeout-ms',
    default: '15000',
    parse: integer(100, 600_000),
    description:
      'Time a client has to send its request line and headers, from connecting (on a kept-alive connection, ' +
      'from its next first byte); then 408 and the connection is closed. Stops slow-header clients and connections that ' +
      'send nothing. With TLS, the handshake gets the same time before it. Checked every min(1 s, a quarter of this), ' +
      'so a client may get up to that much longer.',
  }),
  httpRequestTimeoutMs: option({
    env: 'ORCHARD_HTTP_REQUEST_TIMEOUT_MS',
    flag: '--http-request-timeout-ms',
    default: '60000',
    parse: integer(100, 3_600_000),
    description:
      'Time a client has to send a whole request, headers and body, from its first byte; ' +
      'then 408 and the connection is closed. Stops slow-body clients; the handler and the response are not limited. ' +
      '60 s lets a 1 MiB device report through at about 150 kbit/s and a 16 MiB admin upload at about 2.3 Mbit/s. ' +
      'At least ORCHARD_HTTP_HEADERS_TIMEOUT_MS.',
  }),
  httpKeepAliveTimeoutMs: option({
    env: 'ORCHARD_HTTP_KEEP_ALIVE_TIMEOUT_MS',
    flag: '--http-keep-alive-timeout-ms',
    default: '5000',
    parse: integer(100, 3_600_000),
    description:
      'How long an idle connection stays open after a response for the next request (advertised in `Keep-Alive: ' +
      'timeout=`; Node waits 1 s more). Short by default: devices check in now and then, ' +
      'and idle connections count toward ORCHARD_HTTP_MAX_CONNECTIONS. Behind a load balancer or proxy that reuses ' +
      'connections, set it above that idle timeout (AWS ALB, nginx: 60 s, so 65000), ' +
      'or it may reuse one Orchard is closing (a 502).',
  }),
  httpMaxConnections: option({
    env: 'ORCHARD_HTTP_MAX_CONNECTIONS',
    flag: '--http-max-connections',
    default: '10000',
    parse: integer(0, 1_000_000),
    description:
      'Most TCP connections (HTTP or TLS, idle ones included) open at once; further ones are closed on arrival, ' +
      'with a warning in the log, while open ones carry on. 0 = no cap. Keep it below the open-file limit of the ' +
      'process (`ulimit -n`).',
  }),
}

export type OptionKey = keyof typeof options
/** Each option's parsed value, before config.ts groups some of them. */
export type OptionValues = { readonly [K in OptionKey]: ReturnType<(typeof options)[K]['read']> }
