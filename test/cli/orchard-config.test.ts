// The orchard CLI's configuration (ORCHARD_URL/ORCHARD_TOKEN, profiles in a 0600 config
// file), its help, shell completion and the database-direct local-keys commands.
import { spawnSync } from 'node:child_process'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { isolatedHome, liveOrchard, runCli } from '../helpers/orchard-cli.js'
import { testApiKey } from '../helpers/mdm-fixture.js'

t.test('profiles: set-profile writes a 0600 file; the current profile, --profile, and the environment', async (t) => {
  const orchard = await liveOrchard(t)
  const home = isolatedHome()
  const file = join(home.XDG_CONFIG_HOME!, 'orchard', 'config.json')

  const none = await runCli(['tenants'], { env: home })
  t.equal(none.code, 2)
  t.match(none.stderr, /no server: set ORCHARD_URL and ORCHARD_TOKEN, or add a profile/)

  const saved = await runCli(['config', 'set-profile', 'prod', '--url', `${orchard.url}/`, '--token', testApiKey], { env: home })
  t.equal(saved.code, 0, saved.stderr)
  t.match(saved.stderr, /profile prod saved in .*config\.json \(current\)/)
  t.equal(statSync(file).mode & 0o777, 0o600, 'the file holds tokens: mode 0600')
  t.equal(statSync(join(home.XDG_CONFIG_HOME!, 'orchard')).mode & 0o777, 0o700)
  t.same(JSON.parse(readFileSync(file, 'utf8')), { current_profile: 'prod', profiles: { prod: { url: orchard.url, token: testApiKey } } })

  const viaProfile = await runCli(['tenants', '--json'], { env: home })
  t.equal(viaProfile.code, 0, viaProfile.stderr)
  t.same(JSON.parse(viaProfile.stdout), { items: [] })

  // A second profile whose token the server refuses; --profile picks it, `config use` makes it current.
  t.equal(
    (await runCli(['config', 'set-profile', 'stale', '--url', orchard.url, '--token-stdin'], { env: home, stdin: 'not-a-key-of-this-server-000000\n' })).code,
    0,
  )
  t.equal((await runCli(['--profile', 'stale', 'tenants'], { env: home })).code, 4, '--profile before the command')
  t.equal((await runCli(['tenants', '--profile', 'stale'], { env: home })).code, 4, '--profile after it')
  t.equal((await runCli(['tenants'], { env: home })).code, 0, 'the current profile is still prod')
  t.equal((await runCli(['tenants'], { env: { ...home, ORCHARD_TOKEN: 'not-a-key-of-this-server-000000' } })).code, 4, 'ORCHARD_TOKEN wins over the file')
  t.equal((await runCli(['config', 'use', 'stale'], { env: home })).code, 0)
  t.equal((await runCli(['tenants'], { env: home })).code, 4)
  t.equal((await runCli(['tenants'], { env: { ...home, ORCHARD_PROFILE: 'prod' } })).code, 0, 'ORCHARD_PROFILE names one')

  const listed = await runCli(['config', 'ls'], { env: home })
  t.match(
    listed.stdout,
    /^PROFILE\s+URL\s+TOKEN\n {2}prod\s+http:\/\/127\.0\.0\.1:\d+\s+test-api-key\.\.\.\n\* stale\s+http:\/\/127\.0\.0\.1:\d+\s+not-a-key-of\.\.\.\n$/,
  )
  t.notMatch(listed.stdout, /0123456789abcdef/, 'tokens are masked')
  const shown = await runCli(['config', 'show', '--json'], { env: home })
  t.same(JSON.parse(shown.stdout), { url: orchard.url, token: 'not-a-key-of...', source: 'profile stale', config_file: file })

  const unknown = await runCli(['--profile', 'nope', 'tenants'], { env: home })
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /no profile "nope" in /)
  t.equal((await runCli(['config', 'rm', 'stale'], { env: home })).code, 0)
  t.same(Object.keys(JSON.parse(readFileSync(file, 'utf8')).profiles), ['prod'])

  const badUrl = await runCli(['config', 'set-profile', 'x', '--url', 'mdm.example.com'], { env: home })
  t.equal(badUrl.code, 2)

  writeFileSync(file, '{not json')
  const broken = await runCli(['tenants'], { env: home })
  t.equal(broken.code, 2)
  t.match(broken.stderr, /config\.json: not JSON/)
})

t.test('help and usage', async (t) => {
  const help = await runCli(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: orchard /)
  t.match(
    help.stdout,
    /Exit codes: 0 ok; 1 server error, unreachable, or a job failed; 2 usage or invalid input;\n3 not found; 4 unauthenticated or forbidden; 5 conflict, or not confirmed\./,
  )
  const bare = await runCli([])
  t.equal(bare.code, 2)
  t.match(bare.stderr, /^Usage: orchard /)
  const group = await runCli(['devices', '--help'])
  t.equal(group.code, 0)
  t.match(group.stdout, /^ {2}offboard\s+Offboard a leaver's devices/m)
  const command = await runCli(['devices', 'wipe', '--help'])
  t.equal(command.code, 0)
  t.match(command.stdout, /^Usage: orchard devices wipe DEVICE\.\.\. /)
  const missing = await runCli(['commands', 'status'], { env: { ...isolatedHome(), ORCHARD_URL: 'http://127.0.0.1:9' } })
  t.equal(missing.code, 2)
  t.match(missing.stderr, /^orchard: commands status: missing COMMAND_UUID\nUsage: orchard commands status /)
})

t.test('completion: bash and zsh scripts with every command and its options', async (t) => {
  const bash = await runCli(['completion', 'bash'])
  t.equal(bash.code, 0)
  t.match(bash.stdout, /complete -F _orchard orchard\n$/)
  t.match(bash.stdout, /compgen -W "devices commands tenants keys links push-certs abm vpp reports jobs config completion help simulate local-keys"/)
  t.match(bash.stdout, /offboard\) flags="--profile --url --json --yes --no-wait --help --person --return-to-service/)
  const syntax = spawnSync('bash', ['-n'], { input: bash.stdout })
  t.equal(syntax.status, 0, `bash -n: ${syntax.stderr.toString()}`)
  // Complete `orchard devices of` in bash itself.
  const completed = spawnSync('bash', ['-c', `${bash.stdout}\nCOMP_WORDS=(orchard devices of); COMP_CWORD=2; _orchard; echo "\${COMPREPLY[@]}"`])
  t.equal(completed.stdout.toString().trim(), 'offboard')

  const zsh = await runCli(['completion', 'zsh'])
  t.equal(zsh.code, 0)
  t.match(zsh.stdout, /^#compdef orchard\n/)
  t.match(zsh.stdout, /compdef _orchard orchard/)
  t.match(zsh.stdout, /sync\) flags=\(--profile --url --json --yes --no-wait --help --all\)/)

  const other = await runCli(['completion', 'fish'])
  t.equal(other.code, 2)
})

t.test('local-keys: the database-direct key commands, under orchard', async (t) => {
  const help = await runCli(['local-keys', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: orchard-api-keys <command>/)
  const wrong = await runCli(['local-keys', 'frobnicate'])
  t.equal(wrong.code, 2)
})
