// The orchard CLI against a live server on loopback: listing and showing devices (tables and
// --json), destructive commands with their dry run and confirmation, and exit codes.
import t from 'tap'
import { liveOrchard } from '../helpers/orchard-cli.js'

t.test('devices ls and show: tables by default, --json for scripts, search and filters', async (t) => {
  const orchard = await liveOrchard(t)
  const first = await orchard.fixture.enrolledDevice({ serialNumber: 'SERIALAAA1' })
  const second = await orchard.fixture.enrolledDevice({ serialNumber: 'SERIALBBB2' })

  const json = await orchard.cli(['devices', 'ls', '--json'])
  t.equal(json.code, 0, json.stderr)
  const listed = JSON.parse(json.stdout)
  t.same(listed.items.map((d: any) => d.id).sort(), [first.udid, second.udid].sort())
  t.equal(listed.next_cursor, null)

  const tableRun = await orchard.cli(['devices'])
  t.equal(tableRun.code, 0, tableRun.stderr)
  const lines = tableRun.stdout.trimEnd().split('\n')
  t.match(lines[0], /^ID\s+SERIAL\s+NAME\s+MODEL\s+OS\s+KIND\s+STATE\s+TENANT\s+ENROLLED\s+LAST SEEN$/)
  t.equal(lines.length, 3, 'a header and two devices')
  t.match(tableRun.stdout, new RegExp(`${first.udid}\\s+SERIALAAA1\\s+-\\s+iPad\\s+18\\.1\\s+work\\s+active\\s+\\(central\\)\\s+yes`))

  const searched = await orchard.cli(['devices', 'ls', '--search', 'serialbbb', '--json'])
  t.same(
    JSON.parse(searched.stdout).items.map((d: any) => d.serial_number),
    ['SERIALBBB2'],
    'search is the server q= (prefix, case-insensitive)',
  )
  const filtered = await orchard.cli(['devices', 'ls', '--kind', 'personal'])
  t.equal(filtered.code, 0)
  t.equal(filtered.stdout, 'no devices\n')

  const paged = await orchard.cli(['devices', 'ls', '--limit', '1', '--json'])
  t.equal(JSON.parse(paged.stdout).items.length, 1)
  t.type(JSON.parse(paged.stdout).next_cursor, 'string')
  const all = await orchard.cli(['devices', 'ls', '--limit', '1', '--all', '--json'])
  t.equal(JSON.parse(all.stdout).items.length, 2, '--all follows the cursor')

  const shown = await orchard.cli(['devices', 'show', first.udid, '--json'])
  t.equal(shown.code, 0, shown.stderr)
  t.equal(JSON.parse(shown.stdout).serial_number, 'SERIALAAA1')
  const bySerial = await orchard.cli(['devices', 'show', 'SERIALBBB2'])
  t.equal(bySerial.code, 0, bySerial.stderr)
  t.match(bySerial.stdout, new RegExp(`^ID:\\s+${second.udid}$`, 'm'), 'a serial number finds the device')
  t.match(bySerial.stdout, /^Kind:\s+work$/m)
  t.match(bySerial.stdout, new RegExp(`^CHANNEL\\s+TYPE\\s+USER\\s+ENROLLED[^\\n]*\\n${second.udid}\\s+device`, 'm'))
})

t.test('exit codes: 404 is 3, 401 is 4, 400 is 2, shown as the problem title and detail', async (t) => {
  const orchard = await liveOrchard(t)

  const missing = await orchard.cli(['devices', 'show', 'NO-SUCH-DEVICE'])
  t.equal(missing.code, 3)
  t.equal(missing.stdout, '')
  t.equal(missing.stderr, 'orchard: Not found: no device NO-SUCH-DEVICE\n', 'the problem as title: detail')

  const unauthenticated = await orchard.cli(['devices', 'ls'], { env: { ORCHARD_TOKEN: 'not-a-key-of-this-server-000000' } })
  t.equal(unauthenticated.code, 4)
  t.match(unauthenticated.stderr, /^orchard: Unauthorized: /)

  const invalid = await orchard.cli(['devices', 'ls', '--kind', 'spaceship'])
  t.equal(invalid.code, 2)
  t.match(
    invalid.stderr,
    /^orchard: Validation failed: [^\n]+\n {2}kind: must be equal to one of the allowed values\n/,
    'each invalid parameter on its own line',
  )

  const usage = await orchard.cli(['devices', 'ls', '--no-such-flag'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /unknown option --no-such-flag/)
  const unknown = await orchard.cli(['gadgets'])
  t.equal(unknown.code, 2)

  const unreachable = await orchard.cli(['tenants'], { env: { ORCHARD_URL: 'http://127.0.0.1:9' } })
  t.equal(unreachable.code, 1)
  t.match(unreachable.stderr, /^orchard: cannot reach http:\/\/127\.0\.0\.1:9/)
})

t.test('offboard: the dry run and its count first; declined, no terminal, accepted, --yes', async (t) => {
  const orchard = await liveOrchard(t)
  const devices = [await orchard.fixture.enrolledDevice(), await orchard.fixture.enrolledDevice(), await orchard.fixture.enrolledDevice()]
  const state = async (id: string) => JSON.parse((await orchard.cli(['devices', 'show', id, '--json'])).stdout).lifecycle_state

  const declined = await orchard.cli(['devices', 'offboard', devices[0]!.udid, devices[1]!.udid], { tty: true, stdin: 'n\n' })
  t.equal(declined.code, 5)
  t.match(declined.stderr, /PLAN/)
  t.match(declined.stderr, /Offboard 2 devices\? \[y\/N\] /, 'the count of the dry run in the question')
  t.match(declined.stderr, /not confirmed: nothing was done/)
  t.equal(await state(devices[0]!.udid), 'active', 'nothing was done')

  const noTty = await orchard.cli(['devices', 'offboard', devices[0]!.udid])
  t.equal(noTty.code, 5)
  t.match(noTty.stderr, /Offboard 1 device\?\nrefused: not a terminal, so nothing was asked; run again with --yes/)
  t.equal(await state(devices[0]!.udid), 'active')

  const accepted = await orchard.cli(['devices', 'offboard', devices[0]!.udid], { tty: true, stdin: 'yes\n' })
  t.equal(accepted.code, 0, accepted.stderr)
  t.match(accepted.stdout, new RegExp(`${devices[0]!.udid}\\s+\\S+\\s+erase\\s+started`))
  t.equal(await state(devices[0]!.udid), 'wipe_pending')

  const scripted = await orchard.cli(['devices', 'offboard', devices[1]!.udid, '--yes', '--json'])
  t.equal(scripted.code, 0, scripted.stderr)
  t.same(
    JSON.parse(scripted.stdout).devices.map((d: any) => [d.device_id, d.outcome]),
    [[devices[1]!.udid, 'started']],
  )
  t.equal(await state(devices[1]!.udid), 'wipe_pending')
  t.equal(await state(devices[2]!.udid), 'active', 'only the named devices')
})

t.test('commands send: a destructive command to several devices is confirmed with its count and sent with the token', async (t) => {
  const orchard = await liveOrchard(t)
  const devices = [await orchard.fixture.enrolledDevice(), await orchard.fixture.enrolledDevice()]
  const ids = devices.flatMap((d) => ['--device', d.udid])

  const refused = await orchard.cli(['commands', 'send', 'EraseDevice', ...ids])
  t.equal(refused.code, 5)
  t.match(refused.stderr, /EraseDevice would go to 2 channel\(s\)/)
  t.match(refused.stderr, /destructive: /)
  t.same(JSON.parse((await orchard.cli(['commands', 'ls', '--json'])).stdout).items, [], 'nothing was queued')

  const declined = await orchard.cli(['commands', 'send', 'EraseDevice', ...ids], { tty: true, stdin: '\n' })
  t.equal(declined.code, 5)
  t.match(declined.stderr, /Send EraseDevice to 2 channel\(s\)\? \[y\/N\] /)

  const sent = await orchard.cli(['commands', 'send', 'EraseDevice', ...ids, '--yes'])
  t.equal(sent.code, 0, sent.stderr)
  const [, uuid] = /^EraseDevice (\S+): queued for 2 of 2 target\(s\)$/m.exec(sent.stdout) ?? []
  t.ok(uuid, sent.stdout)

  const status = await orchard.cli(['commands', 'status', uuid!, '--json'])
  t.equal(status.code, 0, status.stderr)
  t.equal(JSON.parse(status.stdout).targets.Pending, 2)

  // Not destructive: sent without a question, even without a terminal.
  const lock = await orchard.cli(['devices', 'lock', devices[0]!.udid, '--message', 'Call IT'])
  t.equal(lock.code, 0, lock.stderr)
  t.match(lock.stdout, /^DeviceLock \S+: queued for 1 of 1 target\(s\)$/m)
  const info = await orchard.cli(['commands', 'send', 'DeviceInformation', '--device', devices[1]!.udid, '--set', 'Queries=["OSVersion"]'])
  t.equal(info.code, 0, info.stderr)

  const cancelled = await orchard.cli(['commands', 'cancel', uuid!])
  t.equal(cancelled.code, 0, cancelled.stderr)
  t.match(cancelled.stdout, /cancelled 2, in flight 0/)

  // devices wipe: the devices and what their kind means, then the question.
  const wipeRefused = await orchard.cli(['devices', 'wipe', devices[0]!.serialNumber])
  t.equal(wipeRefused.code, 5)
  t.match(
    wipeRefused.stderr,
    new RegExp(
      `${devices[0]!.udid}\\s+${devices[0]!.serialNumber}\\s+-\\s+work\\s+erase \\(everything\\)\\norchard: Wipe 1 device\\?\\nrefused: not a terminal`,
    ),
  )
  const wiped = await orchard.cli(['devices', 'wipe', devices[0]!.serialNumber, '--yes'])
  t.equal(wiped.code, 0, wiped.stderr)
  t.match(wiped.stdout, new RegExp(`^erase \\S+ on ${devices[0]!.udid}: pending\\n {2}EraseDevice \\(Pending\\)`))
  t.equal(JSON.parse((await orchard.cli(['devices', 'show', devices[0]!.udid, '--json'])).stdout).lifecycle_state, 'wipe_pending')
})
