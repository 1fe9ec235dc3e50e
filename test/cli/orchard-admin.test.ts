// The orchard CLI's administration commands against a live server on loopback: tenants, API
// keys, enrollment links, moving devices, push certificate expiry and reports written to files.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { liveOrchard } from '../helpers/orchard-cli.js'

t.test('tenants, keys and links: create, list, show, revoke; a new key works at once', async (t) => {
  const orchard = await liveOrchard(t)
  const created = await orchard.cli(['tenants', 'create', 'physics', '--name', 'Physics'])
  t.equal(created.code, 0, created.stderr)
  const tenants = await orchard.cli(['tenants'])
  t.match(tenants.stdout, /^ID\s+NAME\s+PARENT[^\n]*\nphysics\s+Physics\s+-/)
  const duplicate = await orchard.cli(['tenants', 'create', 'physics', '--name', 'Physics'])
  t.equal(duplicate.code, 5, '409 is a conflict')

  const key = await orchard.cli(['keys', 'create', '--name', 'physics desk', '--role', 'helpdesk', '--tenant', 'physics'])
  t.equal(key.code, 0, key.stderr)
  t.match(key.stdout, /^orchard_[a-z0-9]{12}_\S+\n$/, 'the key alone on stdout')
  t.match(key.stderr, /\(helpdesk in physics\) created\. Store it now/)
  const keyId = key.stdout.split('_')[1]!
  const asHelpdesk = await orchard.cli(['tenants', '--json'], { env: { ORCHARD_TOKEN: key.stdout.trim() } })
  t.equal(asHelpdesk.code, 0, asHelpdesk.stderr)
  t.same(
    JSON.parse(asHelpdesk.stdout).items.map((tenant: any) => tenant.id),
    ['physics'],
  )
  const forbidden = await orchard.cli(['keys', 'create', '--name', 'x', '--role', 'admin'], { env: { ORCHARD_TOKEN: key.stdout.trim() } })
  t.equal(forbidden.code, 4, '403 is 4')
  const keys = await orchard.cli(['keys', 'ls', '--json'])
  t.same(
    JSON.parse(keys.stdout).items.map((k: any) => k.id),
    [keyId],
  )
  const revoked = await orchard.cli(['keys', 'revoke', keyId])
  t.equal(revoked.code, 0, revoked.stderr)
  t.equal(revoked.stdout, `revoked ${keyId}\n`)
  t.equal((await orchard.cli(['keys', 'ls', '--json'])).stdout.includes(keyId), false, 'a revoked key is listed only with --all')
  t.match((await orchard.cli(['keys', 'ls', '--all'])).stdout, new RegExp(`${keyId}\\s+physics desk\\s+helpdesk\\s+physics`))

  const link = await orchard.cli(['links', 'create', '--name', 'Physics iPads', '--tenant', 'physics', '--kind', 'function', '--max-uses', '20'])
  t.equal(link.code, 0, link.stderr)
  t.match(link.stdout, /^https?:\/\/\S+\/enroll\/\S+\n$/, 'the URL alone on stdout')
  const links = await orchard.cli(['links', 'ls'])
  t.match(links.stdout, /Physics iPads\s+device\s+function\s+physics\s+-\s+0\/20\s+true\s+http/)
  const linkId = JSON.parse((await orchard.cli(['links', 'ls', '--json'])).stdout).items[0].id
  t.equal((await orchard.cli(['links', 'revoke', linkId])).code, 0)
  t.equal(JSON.parse((await orchard.cli(['links', 'show', linkId, '--json'])).stdout).usable, false)
})

t.test('devices move; push-certs expiry; reports to CSV and JSON files', async (t) => {
  const orchard = await liveOrchard(t)
  t.equal((await orchard.cli(['tenants', 'create', 'chemistry', '--name', 'Chemistry'])).code, 0)
  const device = await orchard.fixture.enrolledDevice({ serialNumber: 'SERIALMOVE1' })

  const moved = await orchard.cli(['devices', 'move', device.udid, 'UNKNOWN-DEVICE', '--tenant', 'chemistry'])
  t.equal(moved.code, 3, 'a device not found makes it exit 3')
  t.equal(moved.stdout, `moved to chemistry: ${device.udid}\nnot found: UNKNOWN-DEVICE\n`)
  t.equal(JSON.parse((await orchard.cli(['devices', 'show', device.udid, '--json'])).stdout).tenant_id, 'chemistry')

  const expiry = await orchard.cli(['push-certs', 'expiry'])
  t.equal(expiry.code, 0, expiry.stderr)
  t.equal(expiry.stdout, 'no push certificates\n')

  const dir = t.testdir({})
  const today = new Date().toISOString().slice(0, 10)
  const csvFile = join(dir, 'device-days.csv')
  const csv = await orchard.cli(['reports', 'device-days', '--from', today, '--to', today, '--output', csvFile])
  t.equal(csv.code, 0, csv.stderr)
  t.match(csv.stderr, /^wrote \S+device-days\.csv \(\d+ bytes\)\n$/)
  t.equal(csv.stdout, '')
  const rows = readFileSync(csvFile, 'utf8').trimEnd().split(/\r?\n/)
  t.match(rows[0], /^tenant_id,/, 'the CSV header')
  t.ok(
    rows.some((row) => row.startsWith('chemistry,')),
    'a row for the tenant',
  )

  const perDevice = await orchard.cli(['reports', 'device-days', '--from', today, '--to', today, '--per-device', '--format', 'json'])
  t.equal(perDevice.code, 0, perDevice.stderr)
  t.ok(JSON.parse(perDevice.stdout), 'JSON on stdout')

  const jsonFile = join(dir, 'devices.json')
  const devices = await orchard.cli(['reports', 'devices', '--output', jsonFile])
  t.equal(devices.code, 0, devices.stderr)
  const report = JSON.parse(readFileSync(jsonFile, 'utf8'))
  t.type(report, 'object', 'a .json output file gets JSON')

  const missing = await orchard.cli(['reports', 'device-days', '--from', today])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /--to is required/)
  const badRange = await orchard.cli(['reports', 'device-days', '--from', today, '--to', '2001-01-01'])
  t.equal(badRange.code, 2, badRange.stderr)
})
