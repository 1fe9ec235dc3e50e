// A property test over the whole admin API: every authenticated operation of openapi.yaml
// (loadOperations(), so a new route is covered as soon as it is documented), called by
// principals of two tenants (alpha, beta) in each role and by the central owner.
//
//  - Cross-tenant: a principal of one tenant, addressing another tenant's rows (or central
//    IT's) by path or by body, never succeeds and never reads them (404, not 403); its lists
//    never show them; nothing of the other tenant changes (rows compared before and after).
//  - Roles: each role gets 403 `forbidden` exactly for the operations openapi.yaml does not
//    grant it, and no 401/403/5xx for those it does; the owner is never refused.
//
// A new operation needs a value for each of its path parameters (`paramValues`) and a sample
// request when it takes a body or required query parameters (`samples`); the first test fails
// and names what is missing.
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import t from 'tap'
import { loadOperations, type ApiOperation } from '../../src/http/openapi.js'
import { encodePlist } from '../../src/mdm/plist.js'
import type { Role } from '../../src/model/access.js'
import { apiClient, type ApiCallOptions, type ApiResponse } from '../helpers/api.js'
import { sealServerToken, serverTokenMessage, setupDep, type DepFixture } from '../helpers/dep-fixture.js'
import { createTestCa, mintPushCertificate, startFakeApns, type PushIdentity } from '../helpers/fake-apns.js'
import { startFakeVpp } from '../helpers/fake-vpp.js'
import { testApiKey } from '../helpers/mdm-fixture.js'
import { testTopic } from '../helpers/simulated-device.js'

type TenantName = 'alpha' | 'beta' | 'central'
type TenantRole = Exclude<Role, 'owner'>
const tenantRoles: readonly TenantRole[] = ['auditor', 'helpdesk', 'admin']
/** central: rows of central IT (tenant_id null), which no tenant principal may reach either. */
const tenantIdOf: Record<TenantName, string | null> = { alpha: 'alpha', beta: 'beta', central: null }

/** Everything one tenant holds that the API addresses by id. */
interface Resources {
  tenant: TenantName
  tenantId: string | null
  deviceId: string
  deviceSerial: string
  commandUuid: string
  linkId: string
  linkToken: string
  topic: string
  pushSha256: string
  /** A newer certificate for `topic` (renewal). */
  pushRenewal: PushIdentity
  tokenId: string
  /** A server token (.p7m) sealed to this tenant's ABM token certificate. */
  serverToken: Buffer
  profileId: string
  depSerial: string
  libraryProfileId: string
  libraryIdentifier: string
  blueprintId: string
  /** A declaration its blueprint carries. */
  declarationId: string
  updatePolicyId: string
  /** A static device group holding the tenant's device. */
  groupId: string
  /** A lifecycle action (the device reported lost). */
  actionId: string
  /** A key of this tenant that the API may revoke (not one of the principals'). */
  targetKeyId: string
  principalKeyIds: string[]
  vppTokenId: string
  /** The .vpptoken of the tenant's location (a renewal sends it again). */
  vppContentToken: string
  /** An email domain mapped to the tenant (account-driven enrollment). */
  accountDomain: string
  /** The job of the tenant's content token sync (finished). */
  jobId: string
}

/** Installation-wide rows (owner's): the same for every tenant. */
interface Shared {
  webhookId: string
  deliveryId: string
  caId: string
  spareCaPem: string
  sparePush: PushIdentity
  /** The .vpptoken of a location no token holds yet. */
  newVppToken(): string
}

interface Values {
  r: Resources
  s: Shared
}

// Path parameter name -> its value in a tenant (null: the tenant has none, e.g. central IT
// is not a tenant). Bodies and queries use these names too, through `v(name)`.
const paramValues: Record<string, (x: Values) => string | null> = {
  device_id: ({ r }) => r.deviceId,
  enrollment_id: ({ r }) => r.deviceId,
  ids: ({ r }) => r.deviceId,
  identifier: () => 'com.example.orchard.property-test',
  // A Shared iPad user's name (the devices here are not Shared iPads: their admins get 422).
  user_name: () => 'pupil@property.example',
  command_uuid: ({ r }) => r.commandUuid,
  topic: ({ r }) => r.topic,
  key_id: ({ r }) => r.targetKeyId,
  link_id: ({ r }) => r.linkId,
  token_id: ({ r }) => r.tokenId,
  profile_id: ({ r }) => r.profileId,
  // /api/v1/profiles/{profile_id} is the configuration profile library, not PreStages.
  library_profile_id: ({ r }) => r.libraryProfileId,
  blueprint_id: ({ r }) => r.blueprintId,
  declaration_id: ({ r }) => r.declarationId,
  update_policy_id: ({ r }) => r.updatePolicyId,
  group_id: ({ r }) => r.groupId,
  policy_id: ({ r }) => r.updatePolicyId,
  action_id: ({ r }) => r.actionId,
  serial_number: ({ r }) => r.depSerial,
  tenant_id: ({ r }) => r.tenantId,
  webhook_id: ({ s }) => s.webhookId,
  delivery_id: ({ s }) => s.deliveryId,
  ca_id: ({ s }) => s.caId,
  vpp_token_id: ({ r }) => r.vppTokenId,
  // An app every tenant's content token holds (an App Store id, not a tenant's row).
  adam_id: () => '361309726',
  domain: ({ r }) => r.accountDomain,
  job_id: ({ r }) => r.jobId,
}

// Values only bodies and queries use (they use paramValues' too).
const bodyValues: Record<string, (x: Values) => unknown> = {
  device_serial: ({ r }) => r.deviceSerial,
  dep_serial: ({ r }) => r.depSerial,
  server_token: ({ r }) => r.serverToken,
  library_identifier: ({ r }) => r.libraryIdentifier,
  vpp_content_token: ({ r }) => r.vppContentToken,
  push_renewal: ({ r }) => ({ certificate_pem: r.pushRenewal.certificatePem, private_key_pem: r.pushRenewal.privateKeyPem }),
}

interface Ctx {
  /** A value of the tenant the body and query are about (another tenant's in the cross-tenant phase). */
  v(name: string): any
  /** A value of the tenant the path is about. */
  p(name: string): any
  /** A value of the caller's own tenant. */
  own(name: string): any
  s: Shared
}

interface RequestSample {
  query?: Record<string, string | number | boolean>
  body?: unknown
  raw?: { payload: Buffer | string; contentType: string }
}

interface Sample {
  /** A valid-looking request; null when it cannot be made for this tenant (e.g. no tenant id for central IT). */
  request(c: Ctx): RequestSample | null
  /**
   * For operations that answer per target (bulk commands, pushes, ABM assignments): a 2xx
   * naming another tenant's targets is fine when it reports each of them untouched.
   */
  foreignSafe?(json: any, c: Ctx): boolean
}

const noRequest: Sample = { request: () => ({}) }
const allUnknown = (json: any, c: Ctx) =>
  Array.isArray(json?.targets) && json.targets.every((target: any) => target.enrollment_id !== c.v('enrollment_id') || target.result === 'unknown_enrollment')
const noTargets = (json: any) => Array.isArray(json?.targets) && json.targets.length === 0
/** Another tenant's device named to a group: answered as refused, neither added nor removed. */
const refusedMember = (json: any, deviceId: string) =>
  Array.isArray(json?.refused) && json.refused.includes(deviceId) && ![...json.added, ...json.removed, ...json.unchanged].includes(deviceId)
const notAssigned = (json: any, c: Ctx) =>
  Array.isArray(json?.results) && json.results.every((result: any) => result.serial_number !== c.v('dep_serial') || result.status !== 'SUCCESS')

function commandPlist(): Buffer {
  return encodePlist({ CommandUUID: randomUUID(), Command: { RequestType: 'ProfileList' } })
}

/** The last 30 days (UTC), for the billing report. */
function period(): { from: string; to: string } {
  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10)
  return { from: day(-30), to: day(0) }
}

function wifiProfile(identifier: string): Buffer {
  return encodePlist({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: identifier,
    PayloadUUID: randomUUID(),
    PayloadDisplayName: 'Property test Wi-Fi',
    PayloadContent: [
      {
        PayloadType: 'com.apple.wifi.managed',
        PayloadVersion: 1,
        PayloadIdentifier: `${identifier}.wifi`,
        PayloadUUID: randomUUID(),
        SSID_STR: 'property-test',
      },
    ],
  })
}

function mobileconfig(): Buffer {
  return encodePlist({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: 'com.example.orchard.property-test',
    PayloadUUID: randomUUID().toUpperCase(),
    PayloadDisplayName: 'Property test',
    PayloadContent: [],
  })
}

// operationId -> a valid-looking request (or several variants). Operations without a body
// and without required query parameters need no entry. v(): values of the tenant addressed.
const samples: Record<string, Sample | Sample[]> = {
  listDevices: [
    noRequest,
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id') } }) },
    { request: (c) => ({ query: { serial_number: c.v('device_serial') } }) },
    { request: (c) => ({ query: { udid: c.v('device_id') } }) },
  ],
  enqueueDeviceCommand: { request: () => ({ query: { push: false }, body: { request_type: 'ProfileList' } }) },
  enqueueEnrollmentCommand: { request: () => ({ query: { push: false }, body: { request_type: 'ProfileList' } }) },
  refreshDeviceUsers: { request: () => ({ query: { push: false } }) },
  logOutDeviceUser: { request: () => ({ query: { push: false } }) },
  deleteDeviceUser: [{ request: () => ({ query: { push: false } }) }, { request: () => ({ query: { force: true, dry_run: true } }) }],
  setSharedDeviceConfiguration: { request: () => ({ query: { push: false }, body: { QuotaSize: 1024, ResidentUsers: 4 } }) },
  lockDevice: { request: () => ({ body: { message: 'property test' } }) },
  allowDeviceReenrollment: { request: () => ({ body: { minutes: 5, reason: 'property test' } }) },
  eraseDevice: { request: () => ({ body: {} }) },
  // The fixture's devices hold no bypass code: 409 before Apple would be called.
  clearActivationLock: [noRequest, { request: () => ({ body: { clear_device_code: true } }) }],
  restartDevice: { request: () => ({ body: {} }) },
  installDeviceProfile: { request: () => ({ raw: { payload: mobileconfig(), contentType: 'application/x-apple-aspen-config' } }) },
  listEnrollmentCommands: { request: () => ({ query: { state: 'all' } }) },
  enqueueCommand: [
    { request: (c) => ({ body: { enrollment_ids: [c.v('enrollment_id')], command: { request_type: 'ProfileList' }, push: false } }), foreignSafe: allUnknown },
    {
      request: (c) =>
        c.v('tenant_id') === null ? null : { body: { filter: { tenant_id: c.v('tenant_id') }, command: { request_type: 'ProfileList' }, push: false } },
      foreignSafe: noTargets,
    },
    {
      request: (c) => ({ body: { filter: { serial_number: c.v('device_serial') }, command: { request_type: 'ProfileList' }, push: false } }),
      foreignSafe: noTargets,
    },
  ],
  cancelCommand: [
    { request: () => ({ body: {} }) },
    { request: (c) => ({ body: { enrollment_ids: [c.v('enrollment_id')] } }), foreignSafe: (json) => json?.cancelled === 0 && json?.in_flight === 0 },
  ],
  enqueueRawCommand: {
    request: () => ({ query: { push: false }, raw: { payload: commandPlist(), contentType: 'application/x-apple-plist' } }),
    foreignSafe: allUnknown,
  },
  addPushCertificate: {
    request: (c) => ({ body: { certificate_pem: c.s.sparePush.certificatePem, private_key_pem: c.s.sparePush.privateKeyPem, tenant_id: c.v('tenant_id') } }),
  },
  renewPushCertificate: { request: (c) => ({ query: { force: true }, body: c.p('push_renewal') }) },
  pushEnrollments: {
    request: (c) => ({ body: { enrollment_ids: [c.v('enrollment_id')] } }),
    foreignSafe: (json, c) =>
      Array.isArray(json?.results) && json.results.every((result: any) => result.enrollment_id !== c.v('enrollment_id') || result.status === 'skipped'),
  },
  updateSettings: { request: () => ({ body: { command_retention_days: 90 } }) },
  listApiKeys: [noRequest, { request: () => ({ query: { include_revoked: true } }) }],
  createApiKey: { request: (c) => ({ body: { name: `property test ${randomUUID()}`, role: 'auditor', tenant_id: c.v('tenant_id') } }) },
  createWebhook: { request: () => ({ body: { url: 'http://127.0.0.1:9/property-test', event_types: ['*'] } }) },
  updateWebhook: { request: () => ({ body: { enabled: false } }) },
  createTenant: { request: () => ({ body: { id: `property-${randomUUID().slice(0, 8)}`, name: `Property test ${randomUUID()}` } }) },
  updateTenant: [
    { request: () => ({ body: { name: `Property test ${randomUUID()}` } }) },
    { request: () => ({ body: { price_per_device_year: '120.00', billed_kinds: ['work', 'function'] } }) },
  ],
  moveDevices: [
    // Another tenant's device into one's own tenant, and one's own device into another tenant.
    {
      request: (c) => ({ body: { device_ids: [c.v('device_id')], tenant_id: c.own('tenant_id') } }),
      foreignSafe: (json, c) => Array.isArray(json?.moved) && Array.isArray(json?.unchanged) && ![...json.moved, ...json.unchanged].includes(c.v('device_id')),
    },
    { request: (c) => ({ body: { device_ids: [c.own('device_id')], tenant_id: c.v('tenant_id') } }) },
  ],
  listAuditEvents: [
    noRequest,
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id') } }) },
    { request: (c) => ({ query: { device_id: c.v('device_id') } }) },
  ],
  getDeviceReport: [
    noRequest,
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id') } }) },
    { request: () => ({ query: { format: 'csv' } }) },
  ],
  getDeviceDaysReport: [
    { request: () => ({ query: { ...period(), per_device: true } }) },
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { ...period(), per_device: true, tenant_id: c.v('tenant_id') } }) },
    { request: () => ({ query: { ...period(), per_device: true, format: 'csv' } }) },
    { request: () => ({ query: { ...period(), format: 'csv', rows: 'organisations' } }) },
  ],
  // The tenant's job is a sync, which keeps no output (409); another tenant's: 404.
  getJobResult: [noRequest, { request: () => ({ query: { format: 'csv', rows: 'devices' } }) }],
  getInvoice: [
    // Central IT is not invoiced: a central caller names a tenant (400 without one).
    { request: () => ({ query: { period: period().from.slice(0, 7) } }) },
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { period: period().from.slice(0, 7), tenant_id: c.v('tenant_id') } }) },
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { period: period().from.slice(0, 4), tenant_id: c.v('tenant_id'), format: 'csv' } }) },
  ],
  listEnrollmentLinks: [noRequest, { request: () => ({ query: { include_revoked: true } }) }],
  createEnrollmentLink: { request: (c) => ({ body: { name: `property test ${randomUUID()}`, tenant_id: c.v('tenant_id') } }) },
  addCertificateAuthority: { request: (c) => ({ body: { certificate_pem: c.s.spareCaPem } }) },
  listExpiringIdentities: { request: () => ({ query: { within_days: 3650 } }) },
  createDepToken: { request: (c) => ({ body: { name: `property test ${randomUUID()}`, tenant_id: c.v('tenant_id') } }) },
  updateDepToken: { request: (c) => ({ body: { default_profile_id: c.v('profile_id') } }) },
  uploadDepServerToken: { request: (c) => ({ raw: { payload: c.v('server_token'), contentType: 'application/pkcs7-mime' } }) },
  unassignDepProfile: { request: (c) => ({ body: { serial_numbers: [c.v('dep_serial')] } }), foreignSafe: notAssigned },
  disownDepDevices: {
    request: (c) => ({ body: { serial_numbers: [c.v('dep_serial')] } }),
    foreignSafe: (json, c) => typeof json?.devices === 'object' && json.devices !== null && json.devices[c.v('dep_serial')] !== 'SUCCESS',
  },
  listDepProfiles: [noRequest, { request: (c) => ({ query: { token_id: c.v('token_id') } }) }],
  createDepProfile: { request: (c) => ({ body: { token_id: c.v('token_id'), name: `property test ${randomUUID()}` } }) },
  updateDepProfile: { request: () => ({ body: { name: `property test ${randomUUID()}` } }) },
  assignDepProfile: { request: (c) => ({ body: { serial_numbers: [c.v('dep_serial')] } }), foreignSafe: notAssigned },
  updateDevice: { request: () => ({ body: { kind: 'work' } }) },
  offboardDevice: { request: () => ({ body: { reason: 'property test' } }) },
  putAccountEnrollmentDomain: { request: (c) => ({ body: { tenant_id: c.v('tenant_id'), required_group: 'property-staff' } }) },
  revokeAccountEnrollment: { request: () => ({ body: { reason: 'property test' } }) },
  offboardLeaver: [
    // Dry runs: another tenant's device is not_found; a real call without the dry run's token is refused.
    {
      request: (c) => ({ body: { device_ids: [c.v('device_id')], dry_run: true } }),
      foreignSafe: (json, c) => Array.isArray(json?.targets) && json.targets.every((t: any) => t.device_id !== c.v('device_id') || t.plan === 'not_found'),
    },
    { request: () => ({ body: { person: 'nobody@example.test', dry_run: true } }) },
    { request: (c) => ({ body: { device_ids: [c.v('device_id')] } }) },
  ],
  setReturnToServiceSetting: { request: (c) => ({ body: { tenant_id: c.v('tenant_id'), wifi_profile_id: c.v('library_profile_id') } }) },
  // A query cannot say "central IT" (null): that variant exists for tenants only.
  uploadProfile: {
    request: (c) =>
      c.v('tenant_id') === null
        ? null
        : {
            query: { tenant_id: c.v('tenant_id') },
            raw: { payload: wifiProfile(`property.${randomUUID()}`), contentType: 'application/x-apple-aspen-config' },
          },
  },
  replaceProfile: { request: (c) => ({ raw: { payload: wifiProfile(c.p('library_identifier')), contentType: 'application/x-apple-aspen-config' } }) },
  createBlueprint: {
    request: (c) => ({ body: { name: `property test ${randomUUID()}`, profile_ids: [c.v('library_profile_id')], tenant_id: c.v('tenant_id') } }),
  },
  updateBlueprint: { request: () => ({ body: { name: `property test ${randomUUID()}`, profile_ids: [] } }) },
  listDeviceGroups: [noRequest, { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id') } }) }],
  createDeviceGroup: [
    { request: (c) => ({ body: { name: `property test ${randomUUID()}`, tenant_id: c.v('tenant_id') } }) },
    { request: (c) => ({ body: { name: `property test ${randomUUID()}`, filter: { kinds: ['work'] }, tenant_id: c.v('tenant_id') } }) },
  ],
  updateDeviceGroup: { request: () => ({ body: { name: `property test ${randomUUID()}` } }) },
  changeDeviceGroupMembers: [
    { request: (c) => ({ body: { add: [c.v('device_id')] } }), foreignSafe: (json, c) => refusedMember(json, c.v('device_id')) },
    { request: (c) => ({ body: { remove: [c.v('device_id')] } }), foreignSafe: (json, c) => refusedMember(json, c.v('device_id')) },
  ],
  uploadVppToken: { request: (c) => ({ body: { name: `property test ${randomUUID()}`, content_token: c.s.newVppToken(), tenant_id: c.v('tenant_id') } }) },
  updateVppToken: { request: () => ({ body: { name: `property test ${randomUUID()}` } }) },
  renewVppToken: { request: (c) => ({ body: { content_token: c.p('vpp_content_token') } }) },
  getLicenceReport: [
    noRequest,
    { request: (c) => ({ query: { vpp_token_id: c.v('vpp_token_id') } }) },
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id') } }) },
    { request: () => ({ query: { format: 'csv' } }) },
  ],
  listUnmanagedLicences: [noRequest, { request: (c) => ({ query: { vpp_token_id: c.v('vpp_token_id') } }) }],
  releaseUnmanagedLicences: { request: (c) => ({ body: { vpp_token_id: c.v('vpp_token_id'), serial_numbers: [c.v('device_serial'), 'NOTMANAGED01'] } }) },
  updateApp: [
    { request: (c) => ({ body: { tenant_id: c.v('tenant_id'), bundle_id: 'com.example.notes', version: '99.0' } }) },
    { request: (c) => ({ body: { blueprint_id: c.v('blueprint_id'), bundle_id: 'com.example.notes', version: '99.0', dry_run: true } }) },
  ],
  createDeclaration: {
    request: (c) => ({
      body: {
        identifier: `property.${randomUUID()}`,
        type: 'com.apple.configuration.passcode.settings',
        payload: { MinimumLength: 4 },
        tenant_id: c.v('tenant_id'),
      },
    }),
  },
  replaceDeclaration: {
    request: () => ({ body: { identifier: `property.${randomUUID()}`, type: 'com.apple.configuration.passcode.settings', payload: { MinimumLength: 5 } } }),
  },
  createUpdatePolicy: {
    request: (c) => ({ body: { name: `property ${randomUUID()}`, mode: 'latest', latest_within_days: 5, tenant_id: c.v('tenant_id') } }),
  },
  replaceUpdatePolicy: { request: () => ({ body: { name: `property ${randomUUID()}`, mode: 'latest', latest_within_days: 6 } }) },
  getOsComplianceReport: [
    noRequest,
    { request: (c) => ({ query: { policy_id: c.v('policy_id') } }) },
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id'), format: 'csv' } }) },
  ],
  listDeclarations: [noRequest, { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id') } }) }],
  listVppAssets: [
    noRequest,
    { request: (c) => ({ query: { vpp_token_id: c.v('vpp_token_id') } }) },
    { request: (c) => (c.v('tenant_id') === null ? null : { query: { tenant_id: c.v('tenant_id') } }) },
  ],
  listOsReleases: [noRequest, { request: () => ({ query: { platform: 'iOS', model: 'iPad13,1' } }) }],
  importOsCatalogue: {
    request: () => ({
      body: { PublicAssetSets: { iOS: [{ ProductVersion: '18.0', Build: '22A3354', PostingDate: '2024-09-16', SupportedDevices: ['iPad13,1'] }] } },
    }),
  },
  listDepDevices: [
    noRequest,
    { request: (c) => ({ query: { token_id: c.v('token_id') } }) },
    { request: (c) => ({ query: { profile_id: c.v('profile_id') } }) },
  ],
}

const operations = [...loadOperations().values()].filter((op) => op.path.startsWith('/api/') && op.allowedRoles !== null)

/** The paramValues entry of a path parameter: one name, two resources (PreStages and library profiles). */
function paramKey(op: ApiOperation, name: string): string {
  return name === 'profile_id' && op.path.startsWith('/api/v1/profiles/') ? 'library_profile_id' : name
}

function pathParams(op: ApiOperation): string[] {
  return [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!)
}

function variantsOf(op: ApiOperation): Sample[] {
  const sample = samples[op.operationId]
  if (sample === undefined) return [noRequest]
  return Array.isArray(sample) ? sample : [sample]
}

function requiredQuery(op: ApiOperation): string[] {
  return ((op.querystring as { required?: string[] }).required ?? []).slice()
}

/** What an operation lacks for this test to call it; empty when covered. */
function missingFor(op: ApiOperation): string[] {
  const missing: string[] = []
  for (const name of pathParams(op)) if (!(paramKey(op, name) in paramValues)) missing.push(`path parameter {${name}} has no entry in paramValues`)
  if (op.bodyRequired && samples[op.operationId] === undefined) missing.push('its request body is required but it has no entry in samples')
  const stub: Ctx = {
    v: () => 'stub',
    p: () => 'stub',
    own: () => 'stub',
    s: {
      webhookId: 'stub',
      deliveryId: '1',
      caId: 'stub',
      spareCaPem: 'stub',
      sparePush: { topic: 'stub', certificatePem: 'stub', privateKeyPem: 'stub' },
      newVppToken: () => 'stub',
    },
  }
  for (const name of requiredQuery(op)) {
    if (!variantsOf(op).every((sample) => sample.request(stub)?.query?.[name] !== undefined))
      missing.push(`required query parameter ${name} is not in its sample`)
  }
  return missing
}

t.test('every authenticated operation of openapi.yaml has what the property test needs to call it', async (t) => {
  t.ok(operations.length >= 60, `${operations.length} authenticated operations`)
  const missing = operations.flatMap((op) => missingFor(op).map((what) => `${op.operationId} (${op.method} ${op.path}): ${what}`))
  t.same(missing, [], `add entries to paramValues / samples in test/access/access-property.test.ts:\n  ${missing.join('\n  ')}`)
  const unknown = Object.keys(samples).filter((id) => !operations.some((op) => op.operationId === id))
  t.same(unknown, [], 'no sample for an operation openapi.yaml no longer has')
  for (const op of operations) t.ok(op.allowedRoles!.includes('owner'), `${op.operationId}: the owner is allowed`)
})

// ---------------------------------------------------------------------------------------
// The world: tenants alpha and beta, and central IT, each with one of everything.

interface Principal {
  label: string
  role: Role
  /** null: central IT. */
  tenant: string | null
  key: string
}

interface World {
  fixture: DepFixture
  api: ReturnType<typeof apiClient>
  resources: Record<TenantName, Resources>
  shared: Shared
  principals: Record<'alpha' | 'beta', Principal[]>
  owner: Principal
}

function ok(response: ApiResponse, status: number, what: string): any {
  if (response.statusCode !== status) throw new Error(`${what}: expected ${status}, got ${response.statusCode} ${response.body}`)
  return response.json
}

async function buildWorld(t: Parameters<typeof setupDep>[0]): Promise<World> {
  // Pushes go to a fake APNs (a closed port makes the APNs client retry for seconds).
  const pushCa = await createTestCa('Property test push CA', 'rsa-2048')
  const apns = await startFakeApns({ topic: testTopic, clientCaPem: pushCa.pem })
  t.teardown(() => apns.close())
  const apnsCaDir = mkdtempSync(join(tmpdir(), 'orchard-apns-ca-'))
  t.teardown(() => rmSync(apnsCaDir, { recursive: true, force: true }))
  const apnsCaFile = join(apnsCaDir, 'ca.pem')
  writeFileSync(apnsCaFile, apns.caPem)
  const vpp = await startFakeVpp({ pollsUntilComplete: 0 })
  t.teardown(() => vpp.close())
  const fixture = await setupDep(t, {
    ORCHARD_WEBHOOK_WORKER: 'false',
    ORCHARD_APNS_URL: apns.url,
    ORCHARD_APNS_CA_FILE: apnsCaFile,
    ORCHARD_VPP_URL: `${vpp.url}/mdm/v2`,
    ORCHARD_VPP_SYNC_SECONDS: '0',
  })
  const api = apiClient(fixture.app)
  const db = fixture.database.db
  await db
    .insertInto('tenants')
    .values([
      { id: 'alpha', name: 'Alpha', parent_id: null },
      { id: 'beta', name: 'Beta', parent_id: null },
    ])
    .execute()

  // Installation-wide: a webhook (so enrollments leave deliveries), a trusted CA.
  const webhook = ok(await api('POST', '/api/v1/webhooks', { body: { url: 'http://127.0.0.1:9/hook', event_types: ['*'] } }), 201, 'webhook')
  const trusted = await createTestCa('Property test trusted CA')
  const ca = ok(await api('POST', '/api/v1/certificate-authorities', { body: { certificate_pem: trusted.pem } }), 201, 'trusted CA')
  const [spareCa, sparePush] = await Promise.all([createTestCa('Property test spare CA'), mintPushCertificate(pushCa)])

  const resources = {} as Record<TenantName, Resources>
  const principals: World['principals'] = { alpha: [], beta: [] }
  for (const tenant of ['alpha', 'beta', 'central'] as const) {
    const tenantId = tenantIdOf[tenant]
    const topic = `com.apple.mgmt.External.${randomUUID()}`
    const [identity, pushRenewal] = await Promise.all([mintPushCertificate(pushCa, topic), mintPushCertificate(pushCa, topic, { validDays: 30 })])
    const push = ok(
      await api('POST', '/api/v1/push-certificates', {
        body: { certificate_pem: identity.certificatePem, private_key_pem: identity.privateKeyPem, tenant_id: tenantId },
      }),
      201,
      `${tenant} push certificate`,
    )

    const device = await fixture.enrolledDevice({ topic })
    await db.updateTable('devices').set({ tenant_id: tenantId }).where('id', '=', device.udid).execute()
    await db.updateTable('device_tenancy').set({ tenant_id: tenantId }).where('device_id', '=', device.udid).execute()
    const command = ok(
      await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { body: { request_type: 'ProfileList' } }),
      201,
      `${tenant} command`,
    )

    const link = ok(await api('POST', '/api/v1/enrollment-links', { body: { name: `${tenant} link`, tenant_id: tenantId } }), 201, `${tenant} link`)

    const token = ok(await api('POST', '/api/v1/dep/tokens', { body: { name: `${tenant} ABM`, tenant_id: tenantId } }), 201, `${tenant} ABM token`)
    const serverToken = sealServerToken(serverTokenMessage(fixture.abm.credentials), token.certificate_pem)
    ok(
      await api('PUT', `/api/v1/dep/tokens/${token.id}/server-token`, { raw: { payload: serverToken, contentType: 'application/pkcs7-mime' } }),
      200,
      `${tenant} server token`,
    )
    const profile = ok(await api('POST', '/api/v1/dep/profiles', { body: { token_id: token.id, name: `${tenant} PreStage` } }), 201, `${tenant} PreStage`)
    // Apple (the fake) does not know this serial: sync never moves it, assignments answer NOT_ACCESSIBLE.
    const depSerial = `DEP${tenant.toUpperCase()}${randomUUID().slice(0, 8).toUpperCase()}`
    await db
      .insertInto('dep_devices')
      .values({ serial_number: depSerial, token_id: token.id, model: 'iPad', raw: JSON.stringify({ serial_number: depSerial }) })
      .execute()

    const location = vpp.addLocation({ locationName: `${tenant} apps` })
    vpp.addAsset(location, { adamId: '361309726' })
    const vppToken = ok(
      await api('POST', '/api/v1/vpp/tokens', { body: { name: `${tenant} apps`, content_token: location.sToken, tenant_id: tenantId } }),
      201,
      `${tenant} content token`,
    )
    const vppSync = ok(await api('POST', `/api/v1/vpp/tokens/${vppToken.id}/sync`), 202, `${tenant} content token sync`)

    const libraryIdentifier = `property.${tenant}.wifi`
    const library = ok(
      await api('POST', `/api/v1/profiles${tenantId === null ? '' : `?tenant_id=${tenantId}`}`, {
        raw: { payload: wifiProfile(libraryIdentifier), contentType: 'application/x-apple-aspen-config' },
      }),
      201,
      `${tenant} library profile`,
    )
    const declaration = ok(
      await api('POST', '/api/v1/declarations', {
        body: {
          identifier: `${tenant}.passcode`,
          type: 'com.apple.configuration.passcode.settings',
          payload: { MinimumLength: 6 },
          tenant_id: tenantId,
        },
      }),
      201,
      `${tenant} declaration`,
    )
    const blueprint = ok(
      await api('POST', '/api/v1/blueprints', {
        body: { name: `${tenant} blueprint`, profile_ids: [library.id], declaration_ids: [declaration.id], tenant_id: tenantId, kinds: ['function'] },
      }),
      201,
      `${tenant} blueprint`,
    )
    const updatePolicy = ok(
      await api('POST', '/api/v1/update-policies', {
        body: { name: `${tenant} updates`, mode: 'specific', target_os_version: '19.0', target_local_datetime: '2099-01-01T18:00:00', tenant_id: tenantId },
      }),
      201,
      `${tenant} update policy`,
    )
    const group = ok(await api('POST', '/api/v1/device-groups', { body: { name: `${tenant} group`, tenant_id: tenantId } }), 201, `${tenant} group`)
    ok(await api('POST', `/api/v1/device-groups/${group.id}/members`, { body: { add: [device.udid] } }), 200, `${tenant} group members`)
    const lost = ok(await api('POST', `/api/v1/devices/${device.udid}/lost`, { body: { message: 'property test' } }), 201, `${tenant} lost`)
    const accountDomain = `${tenant}.property.example`
    ok(await api('PUT', `/api/v1/account-enrollment/domains/${accountDomain}`, { body: { tenant_id: tenantId } }), 200, `${tenant} account domain`)

    const target = ok(
      await api('POST', '/api/v1/api-keys', { body: { name: `${tenant} target key`, role: 'auditor', tenant_id: tenantId } }),
      201,
      `${tenant} target key`,
    )
    const principalKeyIds: string[] = []
    if (tenant !== 'central') {
      for (const role of tenantRoles) {
        const created = ok(
          await api('POST', '/api/v1/api-keys', { body: { name: `${tenant} ${role}`, role, tenant_id: tenantId } }),
          201,
          `${tenant} ${role} key`,
        )
        principals[tenant].push({ label: `${tenant} ${role}`, role, tenant, key: created.key })
        principalKeyIds.push(created.id)
      }
    }
    resources[tenant] = {
      tenant,
      tenantId,
      deviceId: device.udid,
      deviceSerial: device.serialNumber,
      commandUuid: command.command_uuid,
      linkId: link.id,
      linkToken: String(link.url).split('/').pop()!,
      topic,
      pushSha256: push.sha256,
      pushRenewal,
      tokenId: token.id,
      serverToken,
      profileId: profile.id,
      depSerial,
      libraryProfileId: library.id,
      libraryIdentifier,
      blueprintId: blueprint.id,
      declarationId: declaration.id,
      updatePolicyId: updatePolicy.id,
      groupId: group.id,
      actionId: lost.id,
      targetKeyId: target.id,
      principalKeyIds,
      vppTokenId: vppToken.id,
      vppContentToken: location.sToken,
      accountDomain,
      jobId: vppSync.id,
    }
  }
  const delivery = await db.selectFrom('webhook_deliveries').select('id').orderBy('id').executeTakeFirst()
  const shared: Shared = {
    webhookId: webhook.id,
    deliveryId: String(delivery?.id ?? 1),
    caId: ca.id,
    spareCaPem: spareCa.pem,
    sparePush,
    newVppToken: () => vpp.addLocation().sToken,
  }
  return { fixture, api, resources, shared, principals, owner: { label: 'central owner', role: 'owner', tenant: null, key: testApiKey } }
}

/** Strings that must never appear in an answer to another tenant (unless the caller sent them). */
function identifiersOf(r: Resources): string[] {
  const ids = [
    r.deviceId,
    r.deviceSerial,
    r.commandUuid,
    r.linkId,
    r.linkToken,
    r.topic,
    r.pushSha256,
    r.tokenId,
    r.profileId,
    r.depSerial,
    r.libraryProfileId,
    r.libraryIdentifier,
    r.blueprintId,
    r.declarationId,
    r.updatePolicyId,
    r.groupId,
    r.actionId,
    r.targetKeyId,
    r.vppTokenId,
    r.accountDomain,
    r.jobId,
    ...r.principalKeyIds,
  ]
  // The tenant itself, as a row (tenants list) or as the owner of rows.
  if (r.tenantId !== null) ids.push(`"id":"${r.tenantId}"`, `"tenant_id":"${r.tenantId}"`)
  return ids
}

/** The victim's rows, each table as sorted JSON lines. */
async function snapshotTenant(world: World, tenant: TenantName) {
  const db = world.fixture.database.db
  const tenantId = tenantIdOf[tenant]
  const is = (column: string) => (tenantId === null ? sql`${sql.ref(column)} is null` : sql`${sql.ref(column)} = ${tenantId}`)
  const queries: Record<string, ReturnType<typeof sql<Record<string, unknown>>>> = {
    devices: sql`select * from devices where ${is('tenant_id')}`,
    enrollments: sql`select e.* from enrollments e join devices d on d.id = e.device_id where ${is('d.tenant_id')}`,
    commands: sql`select * from commands where ${is('tenant_id')}`,
    command_targets: sql`select ct.* from command_targets ct where ct.command_uuid in (select uuid from commands where ${is('tenant_id')})
      or ct.enrollment_id in (select e.id from enrollments e join devices d on d.id = e.device_id where ${is('d.tenant_id')})`,
    enrollment_links: sql`select * from enrollment_links where ${is('tenant_id')}`,
    dep_tokens: sql`select * from dep_tokens where ${is('tenant_id')}`,
    dep_profiles: sql`select * from dep_profiles where token_id in (select id from dep_tokens where ${is('tenant_id')})`,
    dep_devices: sql`select * from dep_devices where token_id in (select id from dep_tokens where ${is('tenant_id')})`,
    api_keys: sql`select * from api_keys where ${is('tenant_id')}`,
    push_certificates: sql`select * from push_certificates where ${is('tenant_id')}`,
    device_tenancy: sql`select * from device_tenancy where ${is('tenant_id')}`,
    library_profiles: sql`select * from library_profiles where ${is('tenant_id')}`,
    blueprints: sql`select * from blueprints where ${is('tenant_id')}`,
    blueprint_profiles: sql`select bp.* from blueprint_profiles bp join blueprints b on b.id = bp.blueprint_id where ${is('b.tenant_id')}`,
    declarations: sql`select * from declarations where ${is('tenant_id')}`,
    update_policies: sql`select * from update_policies where ${is('tenant_id')}`,
    blueprint_declarations: sql`select bd.* from blueprint_declarations bd join blueprints b on b.id = bd.blueprint_id where ${is('b.tenant_id')}`,
    device_declaration_sets: sql`select s.* from device_declaration_sets s join devices d on d.id = s.device_id where ${is('d.tenant_id')}`,
    device_status_items: sql`select s.* from device_status_items s join devices d on d.id = s.device_id where ${is('d.tenant_id')}`,
    lifecycle_actions: sql`select * from lifecycle_actions where ${is('tenant_id')}`,
    vpp_tokens: sql`select * from vpp_tokens where ${is('tenant_id')}`,
    vpp_assets: sql`select * from vpp_assets where token_id in (select id from vpp_tokens where ${is('tenant_id')})`,
    vpp_assignments: sql`select * from vpp_assignments where token_id in (select id from vpp_tokens where ${is('tenant_id')})`,
    device_locations: sql`select l.* from device_locations l join devices d on d.id = l.device_id where ${is('d.tenant_id')}`,
    activation_lock_bypass_codes: sql`select a.* from activation_lock_bypass_codes a join devices d on d.id = a.device_id where ${is('d.tenant_id')}`,
    return_to_service_settings: sql`select * from return_to_service_settings where ${is('tenant_id')}`,
    device_groups: sql`select * from device_groups where ${is('tenant_id')}`,
    account_enrollment_domains: sql`select * from account_enrollment_domains where ${is('tenant_id')}`,
    jobs: sql`select id, type, state, cancel_requested, finished_at from jobs where ${is('tenant_id')}`,
    device_group_members: sql`select m.group_id, m.device_id from device_group_members m join device_groups g on g.id = m.group_id where ${is('g.tenant_id')}`,
    // The caller's refused attempts are in its own audit log, never in the victim's.
    audit_events: sql`select * from audit_events where ${is('tenant_id')}`,
  }
  const out: Record<string, string[]> = {}
  for (const [table, query] of Object.entries(queries)) out[table] = (await query.execute(db)).rows.map((row) => JSON.stringify(row)).sort()
  return out
}

// ---------------------------------------------------------------------------------------
// Requests

interface Built {
  url: string
  options: ApiCallOptions
  /** The request as text: what the caller itself named may be echoed back. */
  text: string
  /** The path names rows of another tenant than the caller's. */
  pathForeign: boolean
  /** The body or query names rows (or the tenant) of another tenant than the caller's. */
  bodyForeign: boolean
  ctx: Ctx
}

function valueOf(name: string, x: Values): unknown {
  if (name in bodyValues) return bodyValues[name]!(x)
  if (name in paramValues) return paramValues[name]!(x)
  throw new Error(`sample asks for an unknown value ${name}`)
}

function build(world: World, op: ApiOperation, sample: Sample, own: TenantName, pathTenant: TenantName, bodyTenant: TenantName): Built | null {
  const x = (tenant: TenantName): Values => ({ r: world.resources[tenant], s: world.shared })
  let bodyForeign = false
  const ctx: Ctx = {
    v(name) {
      const value = valueOf(name, x(bodyTenant))
      if (JSON.stringify(value) !== JSON.stringify(valueOf(name, x(own)))) bodyForeign = true
      return value
    },
    p: (name) => valueOf(name, x(pathTenant)),
    own: (name) => valueOf(name, x(own)),
    s: world.shared,
  }
  let pathForeign = false
  let url = op.path
  for (const name of pathParams(op)) {
    const key = paramKey(op, name)
    const value = paramValues[key]!(x(pathTenant))
    if (value === null) return null
    if (value !== paramValues[key]!(x(own))) pathForeign = true
    url = url.replace(`{${name}}`, encodeURIComponent(value))
  }
  const request = sample.request(ctx)
  if (request === null) return null
  const query = new URLSearchParams(Object.entries(request.query ?? {}).map(([k, value]): [string, string] => [k, String(value)])).toString()
  if (query) url += `?${query}`
  const options: ApiCallOptions = request.raw ? { raw: request.raw } : request.body !== undefined ? { body: request.body } : {}
  const text = `${decodeURIComponent(url)} ${request.raw ? request.raw.payload.toString('latin1') : JSON.stringify(request.body ?? null)}`
  return { url, options, text, pathForeign, bodyForeign, ctx }
}

const isRead = (op: ApiOperation) => op.method === 'GET'
const is2xx = (status: number) => status >= 200 && status < 300
const excerpt = (response: ApiResponse) => response.body.slice(0, 400)

// ---------------------------------------------------------------------------------------

t.test('the admin API across tenants and roles', async (t) => {
  const started = Date.now()
  const world = await buildWorld(t)
  t.comment(`world built in ${Date.now() - started} ms`)
  const covered = operations.filter((op) => missingFor(op).length === 0)
  // The operation's roles; for an installation-wide operation (settings, webhooks, device
  // CAs), held in central IT.
  const allowed = (op: ApiOperation, principal: Principal) => op.allowedRoles!.includes(principal.role) && (!op.installationWide || principal.tenant === null)

  // Phase 1 (first, while every row still exists): a principal of one tenant against the
  // rows of another tenant and of central IT.
  const pairs: Array<['alpha' | 'beta', TenantName]> = [
    ['alpha', 'beta'],
    ['alpha', 'central'],
    ['beta', 'alpha'],
    ['beta', 'central'],
  ]
  for (const [own, victim] of pairs) {
    await t.test(`${own} principals never reach ${victim}'s rows`, async (t) => {
      const before = await snapshotTenant(world, victim)
      const secrets = identifiersOf(world.resources[victim])
      // Requests that name nothing of the victim (lists) first: later, the caller's own audit
      // log holds its refused attempts, with the victim's ids it sent.
      const attempts: Array<{ where: string; op: ApiOperation; sample: Sample; principal: Principal; request: Built }> = []
      for (const op of covered) {
        for (const principal of world.principals[own].filter((p) => allowed(op, p))) {
          for (const [index, sample] of variantsOf(op).entries()) {
            const label = `${op.operationId}${variantsOf(op).length > 1 ? `#${index + 1}` : ''} as ${principal.label}`
            // Another tenant's path (with its body), and the caller's own path with a body naming the other tenant.
            const foreign = build(world, op, sample, own, victim, victim)
            const mixed = build(world, op, sample, own, own, victim)
            if (foreign && (foreign.pathForeign || foreign.bodyForeign || isRead(op))) {
              const how = foreign.pathForeign
                ? `${victim}'s path${foreign.bodyForeign ? ' and body' : ''}`
                : foreign.bodyForeign
                  ? `${victim}'s body/query`
                  : 'listing'
              attempts.push({ where: `${label}, ${how}`, op, sample, principal, request: foreign })
            }
            if (foreign?.pathForeign && mixed?.bodyForeign)
              attempts.push({ where: `${label}, own path, ${victim}'s body`, op, sample, principal, request: mixed })
          }
        }
      }
      const naming = (a: (typeof attempts)[number]) => Number(a.request.pathForeign || a.request.bodyForeign)
      attempts.sort((a, b) => naming(a) - naming(b))
      // What the callers sent so far: their audit log records their refused attempts with the
      // reason they were given (the problem detail), which may repeat what they sent.
      const sentEarlier = new Set<string>()
      for (const { where, op, sample, principal, request } of attempts) {
        const response = await world.api(op.method, request.url, { ...request.options, key: principal.key })
        const status = response.statusCode
        const diag = { status, url: request.url, body: excerpt(response) }
        t.ok(status !== 401 && status !== 403 && status < 500, `${where}: answered (not 401/403/5xx)`, diag)
        const safe2xx = is2xx(status) && sample.foreignSafe !== undefined && sample.foreignSafe(response.json, request.ctx)
        if (request.pathForeign) {
          t.ok(status === 404 || safe2xx, `${where}: another tenant's row does not exist for it (404)`, diag)
        } else if (request.bodyForeign && !isRead(op)) {
          t.ok(!is2xx(status) || safe2xx, `${where}: a write naming another tenant's rows does not succeed`, diag)
        }
        const echoed = (secret: string) => op.operationId === 'listAuditEvents' && sentEarlier.has(secret)
        const leaked = secrets.filter((secret) => !request.text.includes(secret) && !echoed(secret) && response.body.includes(secret))
        t.same(leaked, [], `${where}: nothing of ${victim} in the answer`, diag)
        for (const secret of secrets) if (request.text.includes(secret)) sentEarlier.add(secret)
      }
      const requests = attempts.length
      t.same(await snapshotTenant(world, victim), before, `nothing of ${victim} changed (${requests} requests)`)
    })
  }

  // Phase 2: roles, with the caller's own ids. Refusals first (they change nothing), then
  // reads, writes, and deletes last so the rows the other requests name still exist.
  const alphaPrincipals = [...world.principals.alpha, world.owner]
  await t.test('each role is refused exactly the operations openapi.yaml does not grant it (403 forbidden)', async (t) => {
    for (const op of covered) {
      for (const principal of alphaPrincipals.filter((p) => !allowed(op, p))) {
        const request = build(world, op, variantsOf(op)[0]!, 'alpha', 'alpha', 'alpha')!
        const response = await world.api(op.method, request.url, { ...request.options, key: principal.key })
        t.ok(response.statusCode === 403 && response.json?.code === 'forbidden', `${op.operationId} as ${principal.label}: 403 forbidden`, {
          status: response.statusCode,
          body: excerpt(response),
        })
      }
    }
  })
  // Deletes of what other rows hang off come last: ABM tokens (PreStages, ADE devices), then
  // devices (queues, profiles), then tenants.
  const foundations = ['token_id', 'device_id', 'tenant_id']
  const stage = (op: ApiOperation) => {
    if (isRead(op)) return 0
    if (op.method !== 'DELETE') return 1
    const params = pathParams(op)
    return params.length === 1 && foundations.includes(params[0]!) ? 3 + foundations.indexOf(params[0]!) : 2
  }
  const ordered = [...covered].sort((a, b) => stage(a) - stage(b))
  await t.test('each role may call every operation openapi.yaml grants it (no 401/403/5xx)', async (t) => {
    const tally = { success: 0, other: 0 }
    for (const op of ordered) {
      for (const principal of alphaPrincipals.filter((p) => allowed(op, p))) {
        for (const [index, sample] of variantsOf(op).entries()) {
          const request = build(world, op, sample, 'alpha', 'alpha', 'alpha')
          if (!request) continue
          const response = await world.api(op.method, request.url, { ...request.options, key: principal.key })
          const status = response.statusCode
          if (is2xx(status)) tally.success++
          else tally.other++
          const label = `${op.operationId}${variantsOf(op).length > 1 ? `#${index + 1}` : ''} as ${principal.label}`
          t.ok(status !== 401 && status !== 403 && status < 500, `${label}: allowed (${status})`, { status, url: request.url, body: excerpt(response) })
        }
      }
    }
    t.comment(`allowed requests: ${tally.success} succeeded, ${tally.other} refused for other reasons (400/404/409: rows gone or states changed)`)
  })
  t.comment(`total ${Date.now() - started} ms`)
})
