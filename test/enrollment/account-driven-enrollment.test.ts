// Account-driven enrollment end to end, with a fake identity provider on loopback (discovery,
// JWKS, authorization and token endpoints, PKCE checked) and a simulated device running the
// whole flow over the real HTTP surface: service discovery -> 401 challenge -> sign-in through
// the provider's redirect -> access token from the custom-scheme redirect -> retry with the
// bearer -> profile -> SCEP -> Authenticate/TokenUpdate with EnrollmentID -> commands ->
// ongoing authentication through a 401 -> revocation ending in a selective wipe. Then the
// refusals, and the never-401 rule for every other enrollment.
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { decodePlist, type PlistDict } from '../../src/mdm/plist.js'
import { validateProfile } from '../../src/mdm/profile-validation.js'
import { createAccountEnrollmentStore } from '../../src/enrollment/account-enrollment-store.js'
import { profileParts, publicUrl, setupEnrollment, type EnrollmentFixture } from '../helpers/enrollment-fixture.js'
import { scepEnroll } from '../helpers/scep-client.js'
import { commandIn, injectTransport, plistText, SimulatedDevice, type Transport } from '../helpers/simulated-device.js'
import { startTestOidcIssuer, type TestOidcIssuer } from '../helpers/test-oidc-issuer.js'

const clientId = 'orchard-enrollment'
const clientSecret = 'enrollment-client-secret'
const ann = { sub: 'ann-0001', email: 'ann@physics.example.test', groups: ['physics-staff'] }
const carl = { sub: 'carl-0002', email: 'carl@chemistry.example.test', groups: ['chemistry-staff'] }

interface World extends EnrollmentFixture {
  idp: TestOidcIssuer
}

async function setup(t: Parameters<typeof setupEnrollment>[0], env: Record<string, string> = {}): Promise<World> {
  const idp = await startTestOidcIssuer({ client: { clientId, clientSecret, redirectUri: `${publicUrl}/enroll/account/callback` } })
  t.teardown(() => idp.close())
  const world = await setupEnrollment(t, {
    ORCHARD_OIDC_ISSUER: idp.url,
    ORCHARD_OIDC_AUDIENCE: 'orchard-admin',
    ORCHARD_OIDC_GROUP_ROLES: 'mdm-central=owner',
    ORCHARD_ACCOUNT_ENROLLMENT_CLIENT_ID: clientId,
    ORCHARD_ACCOUNT_ENROLLMENT_CLIENT_SECRET: clientSecret,
    ...env,
  })
  for (const [id, name] of [
    ['physics', 'Physics'],
    ['chemistry', 'Chemistry'],
  ]) {
    const created = await world.api('POST', '/api/v1/tenants', { id, name })
    if (created.statusCode !== 201) throw new Error(`tenant ${id}: ${JSON.stringify(created.json)}`)
  }
  const physics = await world.api('PUT', '/api/v1/account-enrollment/domains/physics.example.test', { tenant_id: 'physics', required_group: 'physics-staff' })
  if (physics.statusCode !== 200) throw new Error(`domain: ${JSON.stringify(physics.json)}`)
  const chemistry = await world.api('PUT', '/api/v1/account-enrollment/domains/chemistry.example.test', {
    tenant_id: 'chemistry',
    required_group: 'chemistry-staff',
    device_kind: 'function',
  })
  if (chemistry.statusCode !== 200) throw new Error(`domain: ${JSON.stringify(chemistry.json)}`)
  return { ...world, idp }
}

const pathOf = (url: string) => {
  const parsed = new URL(url)
  return `${parsed.pathname}${parsed.search}`
}

/** The device's enrollment request (POST BaseURL), with a bearer token or none. */
async function enrollRequest(world: World, baseUrl: string, token?: string) {
  return world.app.inject({
    method: 'POST',
    url: pathOf(baseUrl),
    headers: { 'content-type': 'application/pkcs7-signature', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    payload: Buffer.from('device details'),
  })
}

const challengePattern = /^Bearer method="apple-as-web" url="([^"]+)"$/

/**
 * What the device's web view does with the challenge's url=: Orchard's login redirects to the
 * provider, the provider (signed in at once) back to Orchard's callback, which redirects to
 * the custom scheme. Returns the callback's answer; `beforeCallback` may tamper with the world.
 */
async function signIn(world: World, loginUrl: string, options: { userIdentifier?: string; beforeCallback?: () => Promise<void> } = {}) {
  const login = new URL(loginUrl)
  if (options.userIdentifier) login.searchParams.set('user-identifier', options.userIdentifier)
  const started = await world.app.inject({ method: 'GET', url: pathOf(login.toString()) })
  if (started.statusCode !== 302) throw new Error(`login: ${started.statusCode} ${started.body}`)
  const authorize = String(started.headers['location'])
  if (!authorize.startsWith(`${world.idp.url}/authorize?`)) throw new Error(`login redirected to ${authorize}`)
  const atProvider = await fetch(authorize, { redirect: 'manual' })
  if (atProvider.status !== 302) throw new Error(`provider: ${atProvider.status} ${await atProvider.text()}`)
  const callback = atProvider.headers.get('location')!
  if (!callback.startsWith(`${publicUrl}/enroll/account/callback?`)) throw new Error(`provider redirected to ${callback}`)
  await options.beforeCallback?.()
  return world.app.inject({ method: 'GET', url: pathOf(callback) })
}

/** The access token of the custom-scheme redirect. */
function accessTokenOf(response: { statusCode: number; headers: Record<string, unknown>; body: string }): string {
  if (response.statusCode !== 302) throw new Error(`callback: ${response.statusCode} ${response.body}`)
  const location = new URL(String(response.headers['location']))
  if (`${location.protocol}//${location.host}` !== 'apple-remotemanagement-user-login://authentication-results')
    throw new Error(`callback redirected to ${location.toString()}`)
  return location.searchParams.get('access-token')!
}

/** A transport that adds the Authorization header the device sends after a re-authentication. */
function bearerTransport(world: World): { transport: Transport; setToken(token: string | undefined): void } {
  const inner = injectTransport(world.app)
  let token: string | undefined
  return {
    transport: (path, body, headers) => inner(path, body, token ? { ...headers, authorization: `Bearer ${token}` } : headers),
    setToken: (value) => {
      token = value
    },
  }
}

async function discover(world: World, email: string) {
  const response = await world.app.inject({
    method: 'GET',
    url: `/.well-known/com.apple.remotemanagement?user-identifier=${encodeURIComponent(email)}&model-family=iPhone`,
  })
  return { statusCode: response.statusCode, json: response.json<{ Servers: Array<{ Version: string; BaseURL: string }> }>() }
}

/** The whole enrollment of a person's device through one version; returns the device and its profile. */
async function accountEnroll(world: World, person: typeof ann, version: 'mdm-byod' | 'mdm-adde') {
  world.idp.setUser(person)
  const baseUrl = (await discover(world, person.email)).json.Servers.find((server) => server.Version === version)!.BaseURL
  const first = await enrollRequest(world, baseUrl)
  const loginUrl = challengePattern.exec(String(first.headers['www-authenticate']))![1]!
  const token = accessTokenOf(await signIn(world, loginUrl, { userIdentifier: person.email }))
  const answer = await enrollRequest(world, baseUrl, token)
  if (answer.statusCode !== 200) throw new Error(`profile: ${answer.statusCode} ${answer.body}`)
  const profile = decodePlist(answer.rawPayload) as PlistDict
  const scep = await scepEnroll(world.scepHttp, { challenge: profileParts(profile).challenge, subject: { commonName: 'account device' } })
  if (scep.certRep.pkiStatus !== 'SUCCESS') throw new Error(`SCEP failed: ${scep.certRep.failInfo}`)
  const bearer = bearerTransport(world)
  const device = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, bearer.transport, {
    userEnrollment: version === 'mdm-byod',
  })
  await device.enroll()
  return { device, profile, bearer, baseUrl, certificateDer: scep.certificateDer! }
}

t.test('discovery -> 401 -> sign-in -> profile -> SCEP -> EnrollmentID -> commands -> ongoing auth 401 -> revoked: selective wipe', async (t) => {
  const world = await setup(t)

  const discovery = await discover(world, ann.email)
  t.equal(discovery.statusCode, 200)
  t.same(discovery.json, {
    Servers: [
      { Version: 'mdm-byod', BaseURL: `${publicUrl}/enroll/account/mdm-byod` },
      { Version: 'mdm-adde', BaseURL: `${publicUrl}/enroll/account/mdm-adde` },
    ],
  })

  const first = await enrollRequest(world, discovery.json.Servers[0]!.BaseURL)
  t.equal(first.statusCode, 401, 'no bearer: the challenge')
  t.equal(first.headers['www-authenticate'], `Bearer method="apple-as-web" url="${publicUrl}/enroll/account/login?version=mdm-byod"`, "exactly Apple's header")

  world.idp.setUser(ann)
  const { device, profile, bearer } = await accountEnroll(world, ann, 'mdm-byod')
  t.same(validateProfile(profile), [], 'the profile is schema-valid')
  const mdm = profileParts(profile).mdm
  t.equal(mdm['AssignedManagedAppleID'], ann.email, 'AssignedManagedAppleID is the person')
  t.equal(mdm['EnrollmentMode'], 'BYOD')
  t.notOk('ManagedAppleID' in mdm, 'never the profile-based key')
  t.notOk('AccessRights' in mdm, 'no rights User Enrollment does not allow')
  t.ok(
    world.idp.tokenRequests().every((request) => request.status === 200),
    'the provider accepted the PKCE verifier',
  )

  const row = await world.database.db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(row, { tenant_id: 'physics', kind: 'personal', user_email: ann.email, account_subject: ann.sub, account_enrollment: 'user', serial_number: null })
  t.ok(row.user_enrollment, 'identified by EnrollmentID')

  const listed = await world.api('GET', `/api/v1/account-enrollments?email=${encodeURIComponent('ANN@physics.example.test')}`)
  t.equal(listed.statusCode, 200)
  t.match(listed.json.items, [{ device_id: device.udid, tenant_id: 'physics', enrollment_type: 'user', subject: ann.sub, email: ann.email, kind: 'personal' }])
  t.same((await world.api('GET', '/api/v1/account-enrollments?tenant_id=chemistry')).json.items, [], 'filtered by tenant')

  // Commands flow as for any device.
  const queued = await world.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })
  const command = commandIn(await device.idle())!
  t.equal(command.uuid, queued.uuid)
  t.equal((await device.answer(command.uuid, 'Acknowledged', { ProfileList: [] })).status, 200)

  // Ongoing authentication, asked for by an admin: the next request is challenged.
  const asked = await world.api('POST', `/api/v1/account-enrollments/${encodeURIComponent(device.udid)}/reauthenticate`)
  t.equal(asked.statusCode, 200)
  t.ok(asked.json.reauthentication_required_at)
  const challenged = await device.idle()
  t.equal(challenged.status, 401, 'an account-driven enrollment may get the 401')
  // The simulated transport keeps no headers: the challenge, read from the same request made directly.
  const direct = await world.app.inject({
    method: 'PUT',
    url: '/mdm/connect',
    payload: encodeIdle(device),
    headers: { 'content-type': 'application/x-apple-aspen-mdm', 'mdm-signature': device.sign(encodeIdle(device)) },
  })
  t.equal(direct.statusCode, 401)
  const loginUrl = challengePattern.exec(String(direct.headers['www-authenticate']))![1]!
  t.equal(loginUrl, `${publicUrl}/enroll/account/login?version=mdm-byod`)
  bearer.setToken(accessTokenOf(await signIn(world, loginUrl)))
  t.equal((await device.idle()).status, 200, 'the retry with the new token goes through')
  bearer.setToken(undefined)
  t.equal((await device.idle()).status, 200, 'and later requests need none')
  t.match((await world.api('GET', `/api/v1/account-enrollments?email=${encodeURIComponent(ann.email)}`)).json.items, [{ reauthentication_required_at: null }])

  // The interval: a sign-in older than ORCHARD_ACCOUNT_ENROLLMENT_REAUTH_DAYS (30) is challenged too.
  await world.database.db
    .updateTable('devices')
    .set({ account_authenticated_at: new Date(Date.now() - 31 * 86_400_000) })
    .where('id', '=', device.udid)
    .execute()
  t.equal((await device.idle()).status, 401, 'the interval passed')
  bearer.setToken(accessTokenOf(await signIn(world, loginUrl)))
  t.equal((await device.idle()).status, 200)
  bearer.setToken(undefined)

  // Revocation by an admin: the selective wipe, the enrollment profile last, then retired.
  const revoked = await world.api('POST', `/api/v1/account-enrollments/${encodeURIComponent(device.udid)}/revoke`, { reason: 'left Physics' })
  t.equal(revoked.statusCode, 201, JSON.stringify(revoked.json))
  t.match(revoked.json, { action: 'offboard', details: { method: 'selective_wipe' } })
  const removal = commandIn(await device.idle())!
  t.equal(removal.requestType, 'RemoveProfile')
  t.equal(plistText(removal.command['Identifier']), profile['PayloadIdentifier'], 'the enrollment profile')
  t.equal((await device.answer(removal.uuid, 'Acknowledged')).status, 200)
  t.match(await world.database.db.selectFrom('devices').select(['lifecycle_state']).where('id', '=', device.udid).executeTakeFirstOrThrow(), {
    lifecycle_state: 'retired',
  })
})

function encodeIdle(device: SimulatedDevice): Buffer {
  return Buffer.from(
    `<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd"><plist version="1.0"><dict><key>${device.userEnrollment ? 'EnrollmentID' : 'UDID'}</key><string>${device.udid}</string><key>Status</key><string>Idle</string></dict></plist>`,
  )
}

t.test('account-driven Device Enrollment: the domain kind; a person removed from the group is offboarded at the next sign-in', async (t) => {
  const world = await setup(t)
  const { device, profile, bearer } = await accountEnroll(world, carl, 'mdm-adde')
  const mdm = profileParts(profile).mdm
  t.equal(mdm['EnrollmentMode'], 'ADDE')
  t.equal(mdm['AssignedManagedAppleID'], carl.email)
  t.match(await world.database.db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow(), {
    tenant_id: 'chemistry',
    kind: 'function',
    account_enrollment: 'device',
    user_email: carl.email,
  })

  t.equal((await world.api('POST', `/api/v1/account-enrollments/${device.udid}/reauthenticate`)).statusCode, 200)
  t.equal((await device.idle()).status, 401)
  world.idp.setUser({ ...carl, groups: [] })
  const refused = await signIn(world, `${publicUrl}/enroll/account/login?version=mdm-adde`)
  t.equal(refused.statusCode, 403, 'no token for a person without the group')
  t.match(refused.body, /not in the group chemistry-staff/)
  t.notOk(String(refused.headers['location'] ?? '').includes('access-token'))
  const state = await world.database.db.selectFrom('devices').select(['lifecycle_state']).where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.equal(state.lifecycle_state, 'wipe_pending', 'offboarded per policy')
  bearer.setToken(undefined)
  const next = await device.idle()
  t.equal(next.status, 200, 'a device being offboarded is never challenged: it must fetch its commands')
  t.ok(commandIn(next), 'the offboarding command')
})

t.test('refusals: forged and replayed tokens, another tenant, no group, expired login, PKCE mismatch', async (t) => {
  const world = await setup(t)
  const byod = `${publicUrl}/enroll/account/mdm-byod`
  const loginUrl = `${publicUrl}/enroll/account/login?version=mdm-byod`

  const forged = await enrollRequest(world, byod, 'bm90LWEtdG9rZW4tb3JjaGFyZC1pc3N1ZWQ')
  t.equal(forged.statusCode, 401, 'a forged token: the challenge again')
  t.match(forged.headers['www-authenticate'], challengePattern)

  world.idp.setUser(ann)
  const token = accessTokenOf(await signIn(world, loginUrl))
  t.equal((await enrollRequest(world, `${publicUrl}/enroll/account/mdm-adde`, token)).statusCode, 401, 'a token of the other version')
  world.idp.setUser(ann)
  const second = accessTokenOf(await signIn(world, loginUrl))
  t.equal((await enrollRequest(world, byod, second)).statusCode, 200)
  t.equal((await enrollRequest(world, byod, second)).statusCode, 401, 'a replayed token')

  // The device signed in with a Chemistry account, the person is Physics staff.
  const foreign = await signIn(world, loginUrl, { userIdentifier: 'ann@chemistry.example.test' })
  t.equal(foreign.statusCode, 403)
  t.match(foreign.body, /belongs to another organisation/)
  world.idp.setUser({ sub: 'x-1', email: 'x@unmapped.example.test', groups: ['physics-staff'] })
  t.equal((await signIn(world, loginUrl)).statusCode, 403, 'a domain no tenant mapped')

  world.idp.setUser({ ...ann, groups: ['chemistry-staff'] })
  const noGroup = await signIn(world, loginUrl)
  t.equal(noGroup.statusCode, 403)
  t.match(noGroup.body, /not in the group physics-staff/)

  world.idp.setUser(ann)
  const expired = await signIn(world, loginUrl, {
    beforeCallback: async () => {
      await world.database.db
        .updateTable('account_login_states')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('used_at', 'is', null)
        .execute()
    },
  })
  t.equal(expired.statusCode, 403)
  t.match(expired.body, /expired/)

  const before = world.idp.tokenRequests().length
  const mismatch = await signIn(world, loginUrl, {
    beforeCallback: async () => {
      await world.database.db
        .updateTable('account_login_states')
        .set({ code_verifier: 'a-verifier-the-provider-never-saw-0123456789' })
        .where('used_at', 'is', null)
        .execute()
    },
  })
  t.equal(mismatch.statusCode, 403, 'a PKCE mismatch')
  t.same(world.idp.tokenRequests().slice(before), [{ status: 400, error: 'invalid_grant' }], 'the provider refused the verifier')

  const replayedState = await world.app.inject({ method: 'GET', url: '/enroll/account/callback?code=x&state=unknown-state' })
  t.equal(replayedState.statusCode, 403, 'an unknown state')
  t.equal((await world.database.db.selectFrom('account_access_tokens').select('token_sha256').execute()).length, 2, 'only the two good sign-ins minted tokens')
  // Hourly pruning deletes sign-ins and tokens that expired before the given date.
  const store = createAccountEnrollmentStore(world.database.db)
  t.equal(await store.prune(new Date(Date.now() - 86_400_000)), 0, 'nothing expired a day ago')
  t.ok((await store.prune(new Date(Date.now() + 86_400_000))) >= 2 + 5, 'every state and token is gone once expired')
  t.equal((await world.database.db.selectFrom('account_login_states').select('state_sha256').execute()).length, 0)
})

t.test('a token of another tenant never re-authenticates a device', async (t) => {
  const world = await setup(t)
  const { device, bearer } = await accountEnroll(world, ann, 'mdm-byod')
  t.equal((await world.api('POST', `/api/v1/account-enrollments/${device.udid}/reauthenticate`)).statusCode, 200)
  world.idp.setUser(carl)
  bearer.setToken(accessTokenOf(await signIn(world, `${publicUrl}/enroll/account/login?version=mdm-byod`)))
  t.equal((await device.idle()).status, 401, "Carl's token does not sign in Ann's device")
})

t.test('never a 401 for an enrollment that is not account-driven', async (t) => {
  const world = await setup(t)
  const link = (
    await world.api('POST', '/api/v1/enrollment-links', {
      name: 'Physics phones',
      enrollment_type: 'user_enrollment',
      managed_apple_id: 'bob@physics.example.test',
    })
  ).json
  const downloaded = (await world.download(new URL(link.url).pathname)).profile!
  const scep = await scepEnroll(world.scepHttp, { challenge: profileParts(downloaded).challenge, subject: { commonName: 'link device' } })
  const device = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(world.app), {
    userEnrollment: true,
  })
  await device.enroll()
  t.equal(new X509Certificate(scep.certificateDer!).subject.includes('link device'), true)
  // Even with every account-driven trigger set by hand, the device is never challenged.
  await world.database.db
    .updateTable('devices')
    .set({ account_reauth_required_at: new Date(0), account_authenticated_at: new Date(0), account_subject: 'someone' })
    .where('id', '=', device.udid)
    .execute()
  t.equal((await world.api('POST', `/api/v1/account-enrollments/${device.udid}/reauthenticate`)).statusCode, 404, 'not an account-driven enrollment')
  for (const response of [await device.idle(), await device.tokenUpdate(), await device.authenticate(), await device.idle()]) t.not(response.status, 401)
  const unknown = await SimulatedDevice.create(world.ca, injectTransport(world.app))
  t.not((await unknown.idle()).status, 401, 'nor for an unknown device')
})

t.test('the domain mapping is audited and scoped', async (t) => {
  const world = await setup(t)
  t.match((await world.api('GET', '/api/v1/account-enrollment/domains')).json.items, [
    { domain: 'chemistry.example.test', tenant_id: 'chemistry', device_kind: 'function', required_group: 'chemistry-staff' },
    { domain: 'physics.example.test', tenant_id: 'physics', device_kind: 'work', required_group: 'physics-staff' },
  ])
  const audit = await world.database.db.selectFrom('audit_events').selectAll().where('target_type', '=', 'account_enrollment_domain').execute()
  t.equal(audit.length, 2)
  t.equal((await world.api('PUT', '/api/v1/account-enrollment/domains/physics.example.test', { tenant_id: 'nowhere' })).statusCode, 404)
  t.equal((await world.api('DELETE', '/api/v1/account-enrollment/domains/physics.example.test')).statusCode, 204)
  t.equal((await world.api('DELETE', '/api/v1/account-enrollment/domains/physics.example.test')).statusCode, 404)
})
