import t from 'tap'
import { commandTenant, createTenantTree, scopeForRoles, type Principal } from '../../src/access/access-control.js'
import { fullAccess, tenantsAccess } from '../../src/model/access.js'

const tenants = [
  { id: 'science', parentId: null },
  { id: 'physics', parentId: 'science' },
  { id: 'chemistry', parentId: 'science' },
  { id: 'library', parentId: null },
]

t.test('the tenant tree: departments of an organisation, the organisation of a department, cached for its TTL', async (t) => {
  let loads = 0
  let clock = 0
  const tree = createTenantTree(
    async () => {
      loads += 1
      return tenants
    },
    { ttlMs: 1000, now: () => clock },
  )
  t.same(await tree.withDepartments('science'), ['science', 'physics', 'chemistry'])
  t.same(await tree.withDepartments('physics'), ['physics'])
  t.equal(await tree.organisationOf('chemistry'), 'science')
  t.equal(await tree.organisationOf('library'), 'library')
  t.equal(await tree.organisationOf('unknown'), 'unknown')
  t.equal(loads, 1, 'one load serves them all')
  clock = 1001
  await tree.withDepartments('science')
  t.equal(loads, 2, 'reloaded after the TTL')
  tree.invalidate()
  await tree.organisationOf('physics')
  t.equal(loads, 3, 'and after invalidate()')
})

t.test('scopeForRoles: central grants see all; tenant grants see their tenants with departments; no usable grant, no scope', async (t) => {
  const tree = createTenantTree(async () => tenants)
  const principal = (grants: Principal['grants']): Principal => ({ id: 'p', name: 'p', source: 'database', grants })
  t.match(await scopeForRoles(principal([{ tenantId: null, role: 'auditor' }]), ['owner', 'auditor'], tree), { kind: 'all' })
  t.same(
    await scopeForRoles(
      principal([
        { tenantId: 'science', role: 'admin' },
        { tenantId: 'library', role: 'helpdesk' },
      ]),
      ['owner', 'admin'],
      tree,
    ),
    { kind: 'tenants', ids: ['science', 'physics', 'chemistry'] },
    'only the grants with an allowed role',
  )
  t.equal(await scopeForRoles(principal([{ tenantId: 'library', role: 'helpdesk' }]), ['owner', 'admin'], tree), null)
})

t.test("commandTenant: one tenant, a common organisation, central IT, or the sender's own tenant", async (t) => {
  const tree = createTenantTree(async () => tenants)
  t.equal(await commandTenant(new Set(['physics']), fullAccess, tree), 'physics')
  t.equal(await commandTenant(new Set([null]), fullAccess, tree), null)
  t.equal(await commandTenant(new Set(['physics', 'chemistry']), fullAccess, tree), 'science', 'two departments of one organisation: the organisation')
  t.equal(await commandTenant(new Set(['physics', 'science']), fullAccess, tree), 'science')
  t.equal(
    await commandTenant(new Set(['physics', 'chemistry']), tenantsAccess(['science', 'physics', 'chemistry']), tree),
    'science',
    'the organisation admin sees it',
  )
  t.equal(await commandTenant(new Set(['physics', 'library']), fullAccess, tree), null, 'unrelated tenants: central IT')
  t.equal(await commandTenant(new Set(['physics', null]), fullAccess, tree), null)
  t.equal(
    await commandTenant(new Set(['library', 'physics']), tenantsAccess(['physics', 'library']), tree),
    'physics',
    'a sender with two unrelated tenants keeps sight of it: its first tenant',
  )
  t.equal(
    await commandTenant(new Set(['physics', 'chemistry']), tenantsAccess(['chemistry', 'physics']), tree),
    'chemistry',
    'no grant in the organisation: its first tenant',
  )
})
