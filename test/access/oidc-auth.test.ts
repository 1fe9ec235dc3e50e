// People calling the admin API with their identity provider's tokens: groups map to
// roles in tenants; expired, foreign, forged and group-less tokens are refused; API keys still work.
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { grantsFromClaims } from '../../src/access/admin-authentication.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { startTestOidcIssuer } from '../helpers/test-oidc-issuer.js'

t.test('OIDC bearer tokens through the admin API', async (t) => {
  const issuer = await startTestOidcIssuer({ audience: 'orchard' })
  t.teardown(() => issuer.close())
  const mdm = await setupMdm(t, {
    ORCHARD_OIDC_ISSUER: issuer.issuer,
    ORCHARD_OIDC_AUDIENCE: 'orchard',
    ORCHARD_OIDC_GROUP_ROLES: 'mdm-admins=owner,servicedesk=auditor,servicedesk-leads=admin,physics-desk=helpdesk@physics',
  })
  const api = apiClient(mdm.app)

  const helpdesk = issuer.sign({ sub: 'anne', groups: ['staff', 'servicedesk'] })
  t.equal((await api('GET', '/api/v1/devices', { key: helpdesk })).statusCode, 200, 'a read group reads')
  const refused = await api('POST', '/api/v1/commands', { key: helpdesk, body: { enrollment_ids: ['x'], command: { request_type: 'ProfileList' } } })
  t.equal(refused.statusCode, 403)
  t.match(refused.json.detail, /needs one of the roles owner, admin; you have auditor in central IT/)
  const lead = issuer.sign({ sub: 'bert', groups: ['servicedesk', 'servicedesk-leads'] })
  t.equal(
    (await api('POST', '/api/v1/commands', { key: lead, body: { enrollment_ids: ['x'], command: { request_type: 'ProfileList' } } })).statusCode,
    201,
    'any grant of the groups that allows the operation',
  )
  const physics = issuer.sign({ sub: 'paula', groups: ['physics-desk'] })
  const physicsList = await api('GET', '/api/v1/devices', { key: physics })
  t.equal(physicsList.statusCode, 200, 'a tenant helpdesk reads its tenant')
  t.same(physicsList.json.items, [], "and sees none of central IT's devices")
  t.equal((await api('GET', '/api/v1/api-keys', { key: physics })).statusCode, 403, 'helpdesk cannot list keys')
  t.equal((await api('GET', '/api/v1/api-keys', { key: issuer.sign({ sub: 'carla', groups: ['mdm-admins'] }) })).statusCode, 200)
  t.equal(
    (await api('GET', '/api/v1/devices', { key: issuer.sign({ sub: 'ec-user', groups: ['servicedesk'] }, { key: 'ec' }) })).statusCode,
    200,
    'an ES256 token',
  )
  const oneGroup = issuer.sign({ sub: 'erik', groups: 'servicedesk' })
  t.equal((await api('GET', '/api/v1/devices', { key: oneGroup })).statusCode, 200, 'a groups claim that is one string is that group')
  t.equal(
    (await api('POST', '/api/v1/commands', { key: oneGroup, body: { enrollment_ids: ['x'], command: { request_type: 'ProfileList' } } })).statusCode,
    403,
    'and only that group',
  )

  const noGroup = await api('GET', '/api/v1/devices', { key: issuer.sign({ sub: 'dirk', groups: ['staff'] }) })
  t.equal(noGroup.statusCode, 403)
  t.match(noGroup.json.detail, /none of the groups/)

  const now = Math.floor(Date.now() / 1000)
  for (const [what, token] of [
    ['expired', issuer.sign({ groups: ['mdm-admins'], iat: now - 7200, exp: now - 3600 })],
    ['wrong audience', issuer.sign({ groups: ['mdm-admins'], aud: 'another-app' })],
    ['wrong issuer', issuer.sign({ groups: ['mdm-admins'], iss: 'https://evil.example' })],
    ['unknown key id', issuer.sign({ groups: ['mdm-admins'] }, { key: 'unknown' })],
    ['alg none', issuer.sign({ groups: ['mdm-admins'] }, { alg: 'none' })],
  ] as const) {
    const response = await api('GET', '/api/v1/devices', { key: token })
    t.equal(response.statusCode, 401, what)
    t.equal(response.json.code, 'unauthorized', what)
    t.notOk(response.body.includes(token), `${what}: the token is not echoed`)
  }

  t.equal((await api('GET', '/api/v1/devices')).statusCode, 200, 'API keys keep working beside OIDC')
})

t.test('the identity provider unreachable: 503, API keys unaffected', async (t) => {
  const issuer = await startTestOidcIssuer({ audience: 'orchard' })
  const token = issuer.sign({ groups: ['admins'] })
  const mdm = await setupMdm(t, { ORCHARD_OIDC_ISSUER: issuer.issuer, ORCHARD_OIDC_AUDIENCE: 'orchard', ORCHARD_OIDC_GROUP_ROLES: 'admins=owner' })
  await issuer.close()
  const api = apiClient(mdm.app)
  const response = await api('GET', '/api/v1/devices', { key: token })
  t.equal(response.statusCode, 503)
  t.match(response.json.detail, /identity provider/)
  t.equal((await api('GET', '/api/v1/devices')).statusCode, 200)
})

t.test('group claims to grants, and the configuration', async (t) => {
  const rules = {
    groupsClaim: 'roles',
    groupRoles: new Map([
      ['a', { role: 'auditor', tenantId: null }],
      ['b', { role: 'admin', tenantId: 'physics' }],
      ['c', { role: 'admin', tenantId: 'physics' }],
    ] as const),
  }
  t.same(
    grantsFromClaims({ roles: ['x', 'a', 'b', 'c'] }, rules),
    [
      { role: 'auditor', tenantId: null },
      { role: 'admin', tenantId: 'physics' },
    ],
    'each distinct grant once',
  )
  t.same(grantsFromClaims({ roles: 'a' }, rules), [{ role: 'auditor', tenantId: null }])
  t.same(grantsFromClaims({ roles: 'a,b' }, rules), [], 'a string is one group name, never split on commas')
  t.same(grantsFromClaims({ roles: 'a b' }, rules), [], 'nor on spaces')
  t.same(grantsFromClaims({ roles: [1, null] }, rules), [])
  t.same(grantsFromClaims({ groups: ['b'] }, rules), [], 'only the configured claim counts')
  t.throws(() => loadConfig({ ORCHARD_OIDC_ISSUER: 'https://idp.test' }, []), { message: /^ORCHARD_OIDC_AUDIENCE: is required/ })
  t.throws(() => loadConfig({ ORCHARD_OIDC_ISSUER: 'https://idp.test', ORCHARD_OIDC_AUDIENCE: 'o' }, []), { message: /^ORCHARD_OIDC_GROUP_ROLES: is required/ })
  t.throws(() => loadConfig({ ORCHARD_OIDC_ISSUER: 'https://idp.test', ORCHARD_OIDC_AUDIENCE: 'o', ORCHARD_OIDC_GROUP_ROLES: 'a=root' }, []), {
    message: /"a=root" is not group=role or group=role@tenant/,
  })
  t.throws(() => loadConfig({ ORCHARD_OIDC_ISSUER: 'https://idp.test', ORCHARD_OIDC_AUDIENCE: 'o', ORCHARD_OIDC_GROUP_ROLES: 'a=owner@physics' }, []), {
    message: /owner is a central IT role/,
  })
  t.throws(() => loadConfig({ ORCHARD_OIDC_AUDIENCE: 'o' }, []), { message: /^ORCHARD_OIDC_AUDIENCE: is set but ORCHARD_OIDC_ISSUER is not/ })
  const config = loadConfig(
    {
      ORCHARD_OIDC_ISSUER: 'https://idp.test/realms/uni',
      ORCHARD_OIDC_AUDIENCE: 'orchard, dashboard',
      ORCHARD_OIDC_GROUP_ROLES: 'mdm=admin, physics-it=admin@physics',
    },
    [],
  )
  t.match(config.oidc, { issuer: 'https://idp.test/realms/uni', audiences: ['orchard', 'dashboard'], groupsClaim: 'groups' })
  t.same(config.oidc?.groupRoles.get('mdm'), { role: 'admin', tenantId: null })
  t.same(config.oidc?.groupRoles.get('physics-it'), { role: 'admin', tenantId: 'physics' })
})
