// ABM/ASM tokens end to end against the fake ABM server: the token exchange with a real CMS
// envelope, the device sync (fetch across pages, deltas, expired cursor, T&C, throttling,
// sessions), PreStage profiles with their assignment (explicit, default, throttled, edited),
// and disown. The production client talks HTTP to the fake; nothing of ours is mocked.
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { createDepStore } from '../../src/ade/dep-store.js'
import { sealServerToken, serverTokenMessage, setupDep } from '../helpers/dep-fixture.js'

t.test('token exchange: certificate to upload, .p7m from Apple decrypted and sealed, account read', async (t) => {
  const world = await setupDep(t, {}, { serverName: 'Biology MDM', orgName: 'University of Examples' })
  const created = await world.call('POST', '/api/v1/dep/tokens', { body: { name: 'Biology' } })
  t.equal(created.statusCode, 201)
  t.match(created.json, { name: 'Biology', status: 'awaiting_token', server_token_uploaded_at: null, device_count: 0 })
  const certificate = new X509Certificate(created.json.certificate_pem)
  t.equal(certificate.publicKey.asymmetricKeyType, 'rsa', 'an RSA key Apple can encrypt to')
  const pem = await world.call('GET', `/api/v1/dep/tokens/${created.json.id}/certificate`)
  t.equal(pem.statusCode, 200)
  t.match(pem.headers['content-type'], /application\/x-pem-file/)
  t.equal(pem.body, created.json.certificate_pem)
  t.equal((await world.call('POST', '/api/v1/dep/tokens', { body: { name: 'Biology' } })).statusCode, 409, 'names are unique')

  // Refusals change nothing.
  const url = `/api/v1/dep/tokens/${created.json.id}/server-token`
  const other = await world.call('POST', '/api/v1/dep/tokens', { body: { name: 'Chemistry' } })
  const forOther = sealServerToken(serverTokenMessage(world.abm.credentials), other.json.certificate_pem)
  for (const [what, payload] of [
    ['a token for another certificate', forOther],
    ['garbage', Buffer.from('not a token at all')],
    ['a truncated envelope', forOther.subarray(0, 400)],
  ] as const) {
    const refused = await world.call('PUT', url, { raw: { payload, contentType: 'application/pkcs7-mime' } })
    t.equal(refused.statusCode, 400, what)
    t.equal(refused.json.code, 'validation_failed', what)
    t.match(refused.json.detail, /server token/, what)
  }
  const empty = sealServerToken(
    'Content-Type: text/plain\r\n\r\n-----BEGIN MESSAGE-----\n{"consumer_key":"x"}\n-----END MESSAGE-----\n',
    created.json.certificate_pem,
  )
  t.match((await world.call('PUT', url, { raw: { payload: empty, contentType: 'application/pkcs7-mime' } })).json, {
    code: 'validation_failed',
    detail: /consumer_secret/,
  })
  t.match((await world.call('GET', `/api/v1/dep/tokens/${created.json.id}`)).json, { status: 'awaiting_token', server_token_uploaded_at: null })

  // DES3 like older tokens, and AES-256.
  for (const cipher of ['des3', 'aes256'] as const) {
    const p7m = sealServerToken(serverTokenMessage(world.abm.credentials), created.json.certificate_pem, cipher)
    const uploaded = await world.call('PUT', url, { raw: { payload: p7m, contentType: 'application/pkcs7-mime' } })
    t.equal(uploaded.statusCode, 200, cipher)
    t.match(uploaded.json, {
      status: 'ok',
      server_name: 'Biology MDM',
      org_name: 'University of Examples',
      access_token_expiry: new Date(world.abm.credentials.access_token_expiry).toISOString(),
    })
  }
  const row = await world.database.db.selectFrom('dep_tokens').selectAll().where('id', '=', created.json.id).executeTakeFirstOrThrow()
  t.notOk(row.credentials_sealed!.includes(Buffer.from(world.abm.credentials.consumer_secret)), 'the OAuth secrets are sealed at rest')
  t.equal(world.abm.sessionsIssued(), 2, 'an OAuth-signed /session per upload')
})

t.test('a token expiring within 30 days is flagged; an expired one is not used', async (t) => {
  const soon = new Date(Date.now() + 10 * 86_400_000).toISOString()
  const world = await setupDep(t, {}, { credentials: { access_token_expiry: soon } })
  const token = await world.connectToken()
  t.match(token, { expires_soon: true, days_left: 9 })
  t.same(
    (await world.orchard.dep.expiringTokens(30)).map((expiring) => expiring.id),
    [token.id],
  )
  t.same(await world.orchard.dep.expiringTokens(5), [], 'not within 5 days')

  const expired = await setupDep(t, {}, { credentials: { access_token_expiry: new Date(Date.now() - 86_400_000).toISOString() } })
  const old = await expired.connectToken()
  const before = expired.abm.requests.length
  const report = await expired.sync(old.id)
  t.match(report.json, { outcome: 'failed', status: 'token_expired', status_detail: /expired/ })
  t.equal(expired.abm.requests.length, before, 'Apple is not called with an expired token')
})

t.test('fetch of 2,500 devices across pages, then sync deltas; one session throughout', async (t) => {
  const world = await setupDep(t)
  world.abm.addDevices(2500)
  const token = await world.connectToken()
  const first = await world.sync(token.id)
  t.match(first.json, { outcome: 'synced', pages: 3, devices: 2500, added: 2500, restarted_fetch: false, status: 'ok' })
  t.equal(world.abm.requests.filter((r) => r.path === '/server/devices').length, 3, 'three fetch pages of at most 1000')
  const count = await world.database.db
    .selectFrom('dep_devices')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow()
  t.equal(Number(count.n), 2500)
  t.match((await world.call('GET', `/api/v1/dep/tokens/${token.id}`)).json, { device_count: 2500, sync_phase: 'sync', last_fetch_completed_at: String })

  // Deltas: one modified, one removed in ABM, two added.
  world.abm.modifyDevice('FAKE00000001', { color: 'space gray', asset_tag: 'BIO-1' })
  world.abm.removeDevice('FAKE00000002')
  const [a, b] = world.abm.addDevices(2)
  const second = await world.sync(token.id)
  t.match(second.json, { outcome: 'synced', added: 2 })
  t.equal(world.abm.requests.filter((r) => r.path === '/server/devices').length, 3, 'no new full fetch')
  t.ok(
    world.abm.requests.some((r) => r.path === '/devices/sync'),
    'deltas came from /devices/sync',
  )
  t.match((await world.call('GET', '/api/v1/dep/devices/FAKE00000001')).json, {
    color: 'space gray',
    asset_tag: 'BIO-1',
    op_type: 'modified',
    removed_at: null,
  })
  t.match((await world.call('GET', '/api/v1/dep/devices/FAKE00000002')).json, { op_type: 'deleted', removed_at: String })
  t.match((await world.call('GET', `/api/v1/dep/devices/${a!.serial_number}`)).json, { op_type: 'added', token_id: token.id })
  t.ok(b)

  // Paging the device list.
  const page = await world.call('GET', `/api/v1/dep/devices?token_id=${token.id}&limit=500`)
  t.equal(page.json.items.length, 500)
  const next = await world.call('GET', `/api/v1/dep/devices?token_id=${token.id}&limit=500&cursor=${encodeURIComponent(page.json.next_cursor)}`)
  t.ok(next.json.items[0].serial_number > page.json.items[499].serial_number, 'the next page starts after the last serial')
  t.equal((await world.call('GET', '/api/v1/dep/devices?include_removed=true&limit=1&assign_status=SUCCESS')).json.items.length, 0)
  t.equal((await world.call('GET', '/api/v1/dep/devices/NOSUCH')).statusCode, 404)
  t.equal(world.abm.sessionsIssued(), 1, 'the session of the upload is reused for every call')
})

t.test('an expired or invalid cursor restarts the full fetch; an expired session is renewed transparently', async (t) => {
  const world = await setupDep(t)
  world.abm.addDevices(30)
  const token = await world.connectToken()
  await world.sync(token.id)
  world.abm.expireCursors()
  world.abm.addDevices(1)
  const recovered = await world.sync(token.id)
  t.match(recovered.json, { outcome: 'synced', restarted_fetch: true, status: 'ok', status_detail: /full fetch/ })
  t.equal(
    Number(
      (
        await world.database.db
          .selectFrom('dep_devices')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    31,
  )

  await world.database.db.updateTable('dep_tokens').set({ cursor: 'bm90IGEgY3Vyc29y' }).where('id', '=', token.id).execute()
  t.match((await world.sync(token.id)).json, { outcome: 'synced', restarted_fetch: true })

  const sessions = world.abm.sessionsIssued()
  world.abm.expireSessions()
  t.match((await world.sync(token.id)).json, { outcome: 'synced', restarted_fetch: false })
  t.equal(world.abm.sessionsIssued(), sessions + 1, 'one new /session after the 401, then the call succeeded')
})

t.test("Apple's refusals become a stored status an admin can read; a later sync clears it", async (t) => {
  const world = await setupDep(t)
  world.abm.addDevices(3)
  const token = await world.connectToken()

  world.abm.termsNotSigned = true
  t.match((await world.sync(token.id)).json, { outcome: 'failed', status: 'terms_not_signed' })
  t.match((await world.call('GET', `/api/v1/dep/tokens/${token.id}`)).json, { status: 'terms_not_signed', status_detail: /Terms and Conditions/ })
  world.abm.termsNotSigned = false

  world.abm.failNext('/server/devices', { status: 429, body: 'TOO_MANY_REQUESTS', headers: { 'retry-after': '120' } })
  const throttled = await world.sync(token.id)
  t.match(throttled.json, { outcome: 'failed', status: 'throttled' })
  const view = (await world.call('GET', `/api/v1/dep/tokens/${token.id}`)).json
  const wait = Date.parse(view.retry_after) - Date.parse(view.status_at)
  t.ok(wait >= 119_000 && wait <= 121_000, `retry_after honours Retry-After (${wait} ms)`)
  t.same(await world.orchard.dep.syncAll(), [], 'the loop leaves a throttled token alone until retry_after')

  world.abm.failNext('/server/devices', { status: 500, body: 'INTERNAL_ERROR' })
  await world.database.db.updateTable('dep_tokens').set({ retry_after: null }).where('id', '=', token.id).execute()
  t.match((await world.sync(token.id)).json, { status: 'error', status_detail: /server error/ })

  world.abm.rejectToken = true
  world.abm.expireSessions()
  t.match((await world.sync(token.id)).json, { outcome: 'failed', status: 'token_rejected', status_detail: /upload a new one/ })
  world.abm.rejectToken = false
  t.match((await world.sync(token.id)).json, { outcome: 'synced', status: 'ok', devices: 3 })
})

t.test('one syncer per token: a live lease of another instance makes the sync busy, an expired one does not', async (t) => {
  const world = await setupDep(t)
  world.abm.addDevices(5)
  const token = await world.connectToken()
  const store = createDepStore(world.database.db)
  t.ok(await store.claimSyncLease(token.id, 'replica-2', new Date(), new Date(Date.now() + 60_000)), 'replica 2 holds the lease')
  const busy = await world.sync(token.id)
  t.match(busy.json, { outcome: 'busy', status_detail: /replica-2/ })
  t.equal(world.abm.requests.filter((r) => r.path === '/server/devices').length, 0, 'the busy instance did not call Apple')
  await store.claimSyncLease(token.id, 'replica-2', new Date(), new Date(Date.now() - 1))
  t.match((await world.sync(token.id)).json, { outcome: 'synced', devices: 5 }, 'an expired lease is taken over')
  const row = await world.database.db.selectFrom('dep_tokens').select(['sync_lease_owner']).where('id', '=', token.id).executeTakeFirstOrThrow()
  t.equal(row.sync_lease_owner, null, 'released after the sync')
})

t.test('PreStage profiles: validated, defined at Apple, assigned with per-device results, throttled ones retried', async (t) => {
  const world = await setupDep(t)
  const [d1, d2, d3] = world.abm.addDevices(3).map((d) => d.serial_number)
  const token = await world.connectToken()
  await world.sync(token.id)

  const bad = await world.call('POST', '/api/v1/dep/profiles', {
    body: { token_id: token.id, name: 'Biology', settings: { skip_setup_items: ['Siri', 'NoSuchPane'] } },
  })
  t.equal(bad.statusCode, 400)
  t.same(
    bad.json.errors.map((e: any) => e.pointer),
    ['/settings/skip_setup_items/1'],
  )
  const badCommand = await world.call('POST', '/api/v1/dep/profiles', {
    body: { token_id: token.id, name: 'Biology', enrollment_commands: [{ request_type: 'DeviceLock', PIN: 12 }] },
  })
  t.equal(badCommand.statusCode, 400)
  t.match(badCommand.json.errors[0].pointer, /^\/enrollment_commands\/0/)
  t.equal(
    (await world.call('POST', '/api/v1/dep/profiles', { body: { token_id: token.id, name: 'X', settings: { unknown_key: 1 } } })).statusCode,
    400,
    'unknown Apple keys are refused',
  )
  t.equal((await world.call('POST', '/api/v1/dep/profiles', { body: { token_id: '00000000-0000-4000-8000-000000000000', name: 'X' } })).statusCode, 404)
  t.equal((await world.database.db.selectFrom('dep_profiles').selectAll().execute()).length, 0, 'nothing stored by refusals')

  const created = await world.call('POST', '/api/v1/dep/profiles', {
    body: {
      token_id: token.id,
      name: 'Biology iPads',
      device_kind: 'function',
      settings: {
        is_mdm_removable: false,
        await_device_configured: true,
        department: 'Biology',
        skip_setup_items: ['Siri', 'Location'],
        support_phone_number: '+31 20 000 0000',
      },
    },
  })
  t.equal(created.statusCode, 201)
  t.match(created.json, { name: 'Biology iPads', device_kind: 'function', profile_uuid: /^[0-9A-F]{32}$/, define_error: null, is_default: false })
  const atApple = world.abm.profiles.get(created.json.profile_uuid)!
  t.match(atApple, {
    profile_name: 'Biology iPads',
    url: 'https://mdm.example.test/enroll/ade',
    is_supervised: true,
    is_mdm_removable: false,
    await_device_configured: true,
    skip_setup_items: ['Siri', 'Location'],
  })

  world.abm.throttleSerials.add(d2!)
  world.abm.retryAfterSeconds = 0
  const assigned = await world.call('POST', `/api/v1/dep/profiles/${created.json.id}/assign`, { body: { serial_numbers: [d1, d2, 'NOTOURS1'] } })
  t.equal(assigned.statusCode, 200)
  const bySerial = Object.fromEntries(assigned.json.results.map((r: any) => [r.serial_number, r]))
  t.match(bySerial[d1!], { status: 'SUCCESS', retry_at: null })
  t.match(bySerial[d2!], { status: 'THROTTLED', retry_at: String })
  t.match(bySerial['NOTOURS1'], { status: 'NOT_ACCESSIBLE' })
  t.match((await world.call('GET', `/api/v1/dep/devices/${d1}`)).json, {
    assign_status: 'SUCCESS',
    assigned_profile_id: created.json.id,
    profile_uuid: created.json.profile_uuid,
  })
  t.match((await world.call('GET', `/api/v1/dep/devices?assign_status=THROTTLED`)).json.items, [{ serial_number: d2 }])

  world.abm.throttleSerials.clear()
  t.equal(await world.orchard.dep.retryThrottled(), 1, 'the throttled assignment was retried once due')
  t.match((await world.call('GET', `/api/v1/dep/devices/${d2}`)).json, { assign_status: 'SUCCESS', assign_retry_at: null })
  t.equal(world.abm.devices.get(d2!)!.profile_uuid, created.json.profile_uuid)
  t.equal(await world.orchard.dep.retryThrottled(), 0, 'nothing left to retry')

  // Editing defines a new profile at Apple and moves the assigned devices to it.
  const edited = await world.call('PATCH', `/api/v1/dep/profiles/${created.json.id}`, {
    body: { settings: { is_mdm_removable: false, department: 'Biology & Life Sciences' } },
  })
  t.equal(edited.statusCode, 200)
  t.not(edited.json.profile_uuid, created.json.profile_uuid)
  t.match(world.abm.profiles.get(edited.json.profile_uuid), { department: 'Biology & Life Sciences', profile_name: 'Biology iPads' })
  for (const serial of [d1!, d2!]) t.equal(world.abm.devices.get(serial)!.profile_uuid, edited.json.profile_uuid, `${serial} moved to the new definition`)
  t.not(world.abm.devices.get(d3!)!.profile_uuid, edited.json.profile_uuid, 'an unassigned device stays unassigned')

  // Remove at Apple.
  const removed = await world.call('POST', `/api/v1/dep/tokens/${token.id}/unassign`, { body: { serial_numbers: [d1] } })
  t.match(removed.json.results, [{ serial_number: d1, status: 'SUCCESS' }])
  t.match((await world.call('GET', `/api/v1/dep/devices/${d1}`)).json, { assigned_profile_id: null, profile_status: 'removed' })
})

t.test('the default PreStage is assigned to new devices as sync sees them', async (t) => {
  const world = await setupDep(t)
  const [kept] = world.abm.addDevices(1).map((d) => d.serial_number)
  const token = await world.connectToken()
  const profile = (await world.call('POST', '/api/v1/dep/profiles', { body: { token_id: token.id, name: 'Default', default: true } })).json
  t.equal(profile.is_default, true)
  t.match((await world.call('GET', `/api/v1/dep/tokens/${token.id}`)).json, { default_profile_id: profile.id })
  world.abm.modifyDevice(kept!, { profile_uuid: 'SOMEONE-ELSES', profile_status: 'assigned' })
  const fresh = world.abm.addDevices(2).map((d) => d.serial_number)
  await world.sync(token.id)
  for (const serial of fresh) t.equal(world.abm.devices.get(serial)!.profile_uuid, profile.profile_uuid, `${serial} got the default`)
  t.equal(world.abm.devices.get(kept!)!.profile_uuid, 'SOMEONE-ELSES', 'a device with a profile keeps it')
  const assigns = world.abm.requests.filter((r) => r.path === '/profile/devices')
  t.equal(assigns.length, 1, 'one assign call for the batch')

  const later = world.abm.addDevices(1).map((d) => d.serial_number)
  await world.sync(token.id)
  t.equal(world.abm.devices.get(later[0]!)!.profile_uuid, profile.profile_uuid, 'a device added later gets it through sync deltas')

  t.match((await world.call('PATCH', `/api/v1/dep/tokens/${token.id}`, { body: { default_profile_id: null } })).json, { default_profile_id: null })
  const none = world.abm.addDevices(1).map((d) => d.serial_number)
  await world.sync(token.id)
  t.notOk(world.abm.devices.get(none[0]!)!.profile_uuid, 'no default: left alone')
})

t.test('disown removes the devices at Apple and here; deleting a token takes its PreStages and records', async (t) => {
  const world = await setupDep(t)
  const serials = world.abm.addDevices(2).map((d) => d.serial_number)
  const token = await world.connectToken()
  await world.sync(token.id)
  world.abm.failSerials.add(serials[1]!)
  const disowned = await world.call('POST', `/api/v1/dep/tokens/${token.id}/disown`, { body: { serial_numbers: serials } })
  t.equal(disowned.statusCode, 200)
  t.same(disowned.json.devices, { [serials[0]!]: 'SUCCESS', [serials[1]!]: 'FAILED' })
  t.notOk(world.abm.devices.has(serials[0]!))
  t.match((await world.call('GET', `/api/v1/dep/devices/${serials[0]}`)).json, { removed_at: String })
  t.match((await world.call('GET', `/api/v1/dep/devices/${serials[1]}`)).json, { removed_at: null })

  world.abm.termsNotSigned = true
  const refused = await world.call('POST', `/api/v1/dep/tokens/${token.id}/disown`, { body: { serial_numbers: [serials[1]] } })
  t.equal(refused.statusCode, 502, "Apple's refusal is a 502 with its reason")
  t.match(refused.json, { code: 'upstream_failed', detail: /Terms and Conditions/ })
  world.abm.termsNotSigned = false

  await world.call('POST', '/api/v1/dep/profiles', { body: { token_id: token.id, name: 'P', default: true } })
  t.equal((await world.call('DELETE', `/api/v1/dep/tokens/${token.id}`)).statusCode, 204)
  t.equal((await world.call('GET', `/api/v1/dep/tokens/${token.id}`)).statusCode, 404)
  t.equal((await world.database.db.selectFrom('dep_devices').selectAll().execute()).length, 0)
  t.equal((await world.database.db.selectFrom('dep_profiles').selectAll().execute()).length, 0)
})

t.test("serials Orchard knows under another ABM/ASM token never leave for Apple in this token's name; disown sends only its own", async (t) => {
  const world = await setupDep(t)
  const serials = world.abm.addDevices(2).map((d) => d.serial_number)
  const first = await world.connectToken('Physics MDM server')
  await world.sync(first.id)
  const second = await world.connectToken('Chemistry MDM server')
  const profile = (await world.call('POST', '/api/v1/dep/profiles', { body: { token_id: second.id, name: 'Chemistry iPads' } })).json
  const sentBefore = world.abm.requests.length

  const disowned = await world.call('POST', `/api/v1/dep/tokens/${second.id}/disown`, { body: { serial_numbers: [serials[0], 'NEVERSYNCED1'] } })
  t.equal(disowned.statusCode, 200)
  t.same(
    disowned.json.devices,
    { [serials[0]!]: 'NOT_ACCESSIBLE', NEVERSYNCED1: 'NOT_ACCESSIBLE' },
    "neither another token's device nor an unsynced serial is disowned",
  )
  t.ok(world.abm.devices.has(serials[0]!), 'the device is still at Apple')
  t.equal((await world.call('GET', `/api/v1/dep/devices/${serials[0]}`)).json.removed_at, null)

  const assigned = await world.call('POST', `/api/v1/dep/profiles/${profile.id}/assign`, { body: { serial_numbers: [serials[1]] } })
  t.equal(assigned.statusCode, 200, assigned.body)
  t.match(assigned.json.results, [{ serial_number: serials[1], status: 'NOT_ACCESSIBLE' }])
  t.equal(world.abm.requests.length, sentBefore, 'nothing was sent to Apple')
  t.equal(world.abm.devices.get(serials[1]!)!.profile_uuid ?? null, null)
})
