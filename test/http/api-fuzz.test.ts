// A fuzz test over every operation of openapi.yaml (loadOperations(), so a new route is
// covered as soon as it is documented), called as the central owner in a small world (a
// tenant, enrolled devices, commands, an ABM token with a PreStage and devices, a library
// profile, a blueprint, a webhook with deliveries...). Each operation gets valid-looking path
// and query parameters and bodies (from its schemas and the world), then mutated ones: NUL,
// huge and odd Unicode strings (lone surrogates too), wrong JSON types, unknown and dropped
// fields, deep nesting, tampered pagination cursors (valid base64url of JSON arrays with bad
// sort keys and ids), broken percent-encoding and mutated plists for raw bodies.
//
// Whatever the input, the answer is never a 5xx: a bad input is the caller's error (4xx).
//
// First, for every operation, NUL in each parameter and body string and every tampered
// cursor; then ORCHARD_FUZZ_COUNT random inputs spread over the operations (small by default
// for `npm test`), from ORCHARD_FUZZ_SEED.
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadOperations, type ApiOperation, type JsonSchema } from '../../src/http/openapi.js'
import { encodePlist, type PlistDict } from '../../src/mdm/plist.js'
import { apiClient, type ApiCallOptions } from '../helpers/api.js'
import { encodeBinaryPlist, encodeXmlPlistRaw } from '../helpers/binary-plist.js'
import { setupDep } from '../helpers/dep-fixture.js'
import { createTestCa, mintPushCertificate, startFakeApns } from '../helpers/fake-apns.js'
import {
  deepJsonText,
  fuzzCount,
  fuzzSeed,
  mutantJsonBody,
  mutantJsonValue,
  mutantString,
  mutateTree,
  oddStrings,
  pick,
  withNul,
  type Random,
} from '../helpers/fuzz.js'
import { seededRandom } from '../helpers/random.js'

const randomCount = fuzzCount(1500)
const seed = fuzzSeed(20250917)
const operations = [...loadOperations().values()]

// ---------------------------------------------------------------------------------------
// The world

interface World {
  /** Path and query parameter values by name. */
  values: Record<string, string>
  /** A library profile id (the same name, profile_id, is a PreStage under /dep/). */
  libraryProfileId: string
  caPem: string
  push: { certificate_pem: string; private_key_pem: string }
  api: ReturnType<typeof apiClient>
}

async function buildWorld(t: Parameters<typeof setupDep>[0]): Promise<World> {
  // Pushes go to a fake APNs (a closed port makes the APNs client retry for seconds).
  const pushCa = await createTestCa('Fuzz push CA', 'rsa-2048')
  const topic = `com.apple.mgmt.External.${randomUUID()}`
  const apns = await startFakeApns({ topic, clientCaPem: pushCa.pem })
  t.teardown(() => apns.close())
  const apnsCaDir = mkdtempSync(join(tmpdir(), 'orchard-fuzz-apns-'))
  t.teardown(() => rmSync(apnsCaDir, { recursive: true, force: true }))
  writeFileSync(join(apnsCaDir, 'ca.pem'), apns.caPem)
  // MachineInfo signatures are checked but not their chain: /enroll/ade answers instead of 503.
  const env = {
    ORCHARD_WEBHOOK_WORKER: 'false',
    ORCHARD_APNS_URL: apns.url,
    ORCHARD_APNS_CA_FILE: join(apnsCaDir, 'ca.pem'),
    ORCHARD_ADE_VERIFY_MACHINE_INFO: 'false',
  }
  const fixture = await setupDep(t, env)
  const api = apiClient(fixture.app)
  const ok = async (promise: ReturnType<typeof api>, what: string): Promise<any> => {
    const response = await promise
    if (response.statusCode >= 300) throw new Error(`${what}: ${response.statusCode} ${response.body}`)
    return response.json
  }
  await ok(api('POST', '/api/v1/tenants', { body: { id: 'alpha', name: 'Alpha' } }), 'tenant')
  const webhook = await ok(api('POST', '/api/v1/webhooks', { body: { url: 'http://127.0.0.1:9/hook', event_types: ['*'] } }), 'webhook')
  const [trusted, spareCa] = await Promise.all([createTestCa('Fuzz trusted CA'), createTestCa('Fuzz spare CA')])
  const ca = await ok(api('POST', '/api/v1/certificate-authorities', { body: { certificate_pem: trusted.pem } }), 'CA')
  const [identity, spare] = await Promise.all([mintPushCertificate(pushCa, topic), mintPushCertificate(pushCa)])
  await ok(
    api('POST', '/api/v1/push-certificates', { body: { certificate_pem: identity.certificatePem, private_key_pem: identity.privateKeyPem } }),
    'push certificate',
  )

  // Two of each listed thing, so every list has a second page (a real cursor to tamper with).
  const devices = [await fixture.enrolledDevice({ topic }), await fixture.enrolledDevice({ topic })]
  const ids = devices.map((device) => device.udid)
  const command = await ok(api('POST', '/api/v1/commands', { body: { enrollment_ids: ids, command: { request_type: 'ProfileList' }, push: false } }), 'command')
  await ok(api('POST', `/api/v1/devices/${ids[0]}/commands?push=false`, { body: { request_type: 'SecurityInfo' } }), 'second command')
  const link = await ok(api('POST', '/api/v1/enrollment-links', { body: { name: 'Fuzz link' } }), 'link')
  const token = await fixture.connectToken('Fuzz ABM')
  const preStage = await ok(api('POST', '/api/v1/dep/profiles', { body: { token_id: token.id, name: 'Fuzz PreStage' } }), 'PreStage')
  const depSerials = ['FUZZDEP00001', 'FUZZDEP00002']
  for (const serial of depSerials) {
    await fixture.database.db
      .insertInto('dep_devices')
      .values({ serial_number: serial, token_id: token.id, model: 'iPad', raw: JSON.stringify({ serial_number: serial }) })
      .execute()
  }
  const library = await ok(
    api('POST', '/api/v1/profiles', { raw: { payload: wifiProfile('com.example.fuzz.wifi'), contentType: 'application/x-apple-aspen-config' } }),
    'library profile',
  )
  const blueprint = await ok(api('POST', '/api/v1/blueprints', { body: { name: 'Fuzz blueprint', profile_ids: [library.id] } }), 'blueprint')
  const lost = await ok(api('POST', `/api/v1/devices/${ids[0]}/lost`, { body: { message: 'fuzz' } }), 'lost')
  const key = await ok(api('POST', '/api/v1/api-keys', { body: { name: 'Fuzz target key', role: 'auditor' } }), 'API key')
  const delivery = await fixture.database.db.selectFrom('webhook_deliveries').select('id').orderBy('id').executeTakeFirst()
  // Certificates that expire soon, so the expiring identities list has two pages as well.
  await fixture.database.db
    .updateTable('devices')
    .set({ identity_not_after: new Date(Date.now() + 86_400_000) })
    .execute()
  return {
    api,
    libraryProfileId: library.id,
    caPem: spareCa.pem,
    push: { certificate_pem: spare.certificatePem, private_key_pem: spare.privateKeyPem },
    values: {
      device_id: ids[0]!,
      enrollment_id: ids[0]!,
      ids: ids.join(','),
      udid: ids[0]!,
      identifier: 'com.example.fuzz.wifi',
      command_uuid: command.command_uuid,
      topic,
      key_id: key.id,
      link_id: link.id,
      token: String(link.url).split('/').pop()!,
      token_id: token.id,
      profile_id: preStage.id,
      blueprint_id: blueprint.id,
      action_id: lost.id,
      serial_number: depSerials[0]!,
      tenant_id: 'alpha',
      webhook_id: webhook.id,
      delivery_id: String(delivery?.id ?? 1),
      ca_id: ca.id,
      request_type: 'ProfileList',
      principal_id: key.id,
      action: 'createTenant',
    },
  }
}

function wifiProfile(identifier: string): Buffer {
  return encodePlist(wifiProfileDict(identifier))
}

function wifiProfileDict(identifier: string): PlistDict {
  return {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: identifier,
    PayloadUUID: randomUUID(),
    PayloadDisplayName: 'Fuzz Wi-Fi',
    PayloadContent: [
      { PayloadType: 'com.apple.wifi.managed', PayloadVersion: 1, PayloadIdentifier: `${identifier}.wifi`, PayloadUUID: randomUUID(), SSID_STR: 'fuzz' },
    ],
  }
}

// ---------------------------------------------------------------------------------------
// Valid-looking values, from the schemas and the world

const patternExamples: Record<string, string> = {
  '^[0-9]{6}$': '123456',
  '^[a-z0-9]{12}$': 'abcdef012345',
  '^[0-9a-f]{64}$': 'ab'.repeat(32),
  '^[0-9]+(\\.[0-9]+){0,2}$': '17.0',
  '^https://': 'https://example.test/fuzz',
  '^com\\.apple\\.mgmt\\.': 'com.apple.mgmt.External.fuzz',
  '^[a-z0-9][a-z0-9-]{0,62}$': 'alpha',
}

/** Commands with string keys, so that body mutations reach the plist encoder. */
const typedCommands: readonly Record<string, unknown>[] = [
  { request_type: 'DeviceLock', Message: 'Call IT', PhoneNumber: '+31 20 000 0000' },
  { request_type: 'ProfileList' },
  { request_type: 'DeviceInformation', Queries: ['DeviceName', 'OSVersion'] },
  { request_type: 'InstallApplication', ManifestURL: 'https://example.test/app.plist' },
  { request_type: 'Settings', Settings: [{ Item: 'DeviceName', DeviceName: 'Fuzz' }] },
]

interface Sampler {
  world: World
  op: ApiOperation
  random: Random
  serial: number
}

function nameValue(s: Sampler, name: string): unknown {
  const { world, op } = s
  if (name === 'profile_id' && !op.path.includes('/dep/')) return world.libraryProfileId
  if (name === 'id' && op.operationId === 'createTenant') return `fuzz-${s.serial++}`
  if (name === 'name') return `Fuzz ${op.operationId} ${s.serial++}`
  if (name === 'certificate_pem') return op.operationId.includes('Push') ? world.push.certificate_pem : world.caPem
  if (name === 'private_key_pem') return world.push.private_key_pem
  if (name === 'url') return 'http://127.0.0.1:9/fuzz'
  if (name === 'default_profile_id') return world.values['profile_id']
  return world.values[name]
}

/** A valid-looking instance of a (dereferenced) schema; `name` is the property it is for. */
function sample(s: Sampler, schema: JsonSchema | undefined, name = '', depth = 0): unknown {
  if (!schema || depth > 8) return 'fuzz'
  if ('const' in schema) return schema['const']
  const known = name ? nameValue(s, name) : undefined
  if (known !== undefined && (schema['type'] === 'string' || (Array.isArray(schema['type']) && schema['type'].includes('string')))) return known
  if (Array.isArray(schema['enum']))
    return pick(
      s.random,
      schema['enum'].filter((value) => value !== null),
    )
  if (Array.isArray(schema['examples']) && schema['examples'].length > 0) return schema['examples'][0]
  if ((schema['properties'] as JsonSchema | undefined)?.['request_type']) return structuredClone(pick(s.random, typedCommands))
  for (const combinator of ['oneOf', 'anyOf'] as const) {
    const branches = (schema[combinator] as JsonSchema[] | undefined)?.filter((branch) => branch['type'] !== 'null')
    if (branches?.length) return sample(s, pick(s.random, branches), name, depth + 1)
  }
  if (Array.isArray(schema['allOf'])) {
    const parts = (schema['allOf'] as JsonSchema[]).map((branch) => sample(s, branch, name, depth + 1))
    return Object.assign({}, ...parts.filter((part) => typeof part === 'object' && part !== null))
  }
  const type = Array.isArray(schema['type']) ? schema['type'].find((candidate) => candidate !== 'null') : schema['type']
  switch (type ?? (schema['properties'] ? 'object' : undefined)) {
    case 'string': {
      const pattern = schema['pattern'] as string | undefined
      if (pattern !== undefined) return patternExamples[pattern] ?? 'fuzz'
      switch (schema['format']) {
        case 'uuid':
          return randomUUID()
        case 'date-time':
          return new Date(Date.now() - 86_400_000).toISOString()
        case 'date':
          return new Date().toISOString().slice(0, 10)
        case 'uri':
          return 'https://example.test/fuzz'
        case 'email':
          return 'fuzz@example.test'
      }
      return 'x'.repeat(Math.max(1, Number(schema['minLength'] ?? 4)))
    }
    case 'integer':
    case 'number':
      return Number(schema['minimum'] ?? 1)
    case 'boolean':
      return false
    case 'array': {
      const singular = name.endsWith('s') ? name.slice(0, -1) : name
      const length = Math.max(1, Number(schema['minItems'] ?? 1))
      if (schema['maxItems'] === 0) return []
      return Array.from({ length }, () => sample(s, schema['items'] as JsonSchema, singular, depth + 1))
    }
    case 'object': {
      const out: Record<string, unknown> = {}
      const required = new Set((schema['required'] as string[] | undefined) ?? [])
      for (const [key, property] of Object.entries((schema['properties'] as Record<string, JsonSchema> | undefined) ?? {})) {
        if (required.has(key) || s.random() < 0.6) out[key] = sample(s, property, key, depth + 1)
      }
      return out
    }
  }
  return 'fuzz'
}

// ---------------------------------------------------------------------------------------
// Requests

interface Input {
  label: string
  /** Path parameter -> already percent-encoded text. */
  path: Record<string, string>
  /** Percent-encoded query pairs. */
  query: Array<[string, string]>
  body?: unknown
  /** Raw body: plists, certificates, random bytes. */
  raw?: { payload: Buffer | string; contentType: string }
  /** JSON text sent as is (for what JSON.stringify cannot produce). */
  json?: string
}

/** encodeURIComponent, but a lone surrogate (which it refuses) becomes the bytes of its CESU-8 form. */
function percent(text: string): string {
  try {
    return encodeURIComponent(text)
  } catch {
    return [...text].map((c) => (c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) <= 0xdfff && c.length === 1 ? '%ED%A0%80' : encodeURIComponent(c))).join('')
  }
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

const pathNames = (op: ApiOperation) => [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!)
const queryProperties = (op: ApiOperation) => (op.querystring['properties'] as Record<string, JsonSchema> | undefined) ?? {}

function baseInput(s: Sampler, label: string): Input {
  const { op } = s
  const path: Record<string, string> = {}
  for (const name of pathNames(op)) {
    const schema = (op.params?.['properties'] as Record<string, JsonSchema> | undefined)?.[name]
    path[name] = percent(String(nameValue(s, name) ?? sample(s, schema, name)))
  }
  const query: Array<[string, string]> = []
  const required = new Set((op.querystring['required'] as string[] | undefined) ?? [])
  for (const [name, schema] of Object.entries(queryProperties(op))) {
    if (name === 'cursor' || name === 'push') continue
    if (required.has(name) || s.random() < 0.3) query.push([name, percent(String(sample(s, schema, name)))])
  }
  // Pushes go to the fake APNs anyway; no need to wait for them.
  if ('push' in queryProperties(op)) query.push(['push', 'false'])
  const input: Input = { label, path, query }
  if (op.jsonBody) input.body = sample(s, op.jsonBody)
  else if (op.rawBodyTypes.length) input.raw = rawBody(s)
  return input
}

function rawBody(s: Sampler, mutate = false): { payload: Buffer; contentType: string } {
  const { op, random } = s
  const contentType = op.rawBodyTypes[0]!
  if (!contentType.includes('plist') && !contentType.includes('xml') && !contentType.includes('aspen-config')) {
    return { payload: Buffer.from(pick(random, ['', 'garbage', '\u0000', '-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n', '0\x82\x01\x00'])), contentType }
  }
  const plist: PlistDict =
    op.operationId === 'enqueueRawCommand'
      ? { CommandUUID: randomUUID(), Command: { RequestType: pick(random, ['ProfileList', 'DeviceLock', 'InstallProfile']), Message: 'fuzz' } }
      : wifiProfileDict(op.operationId === 'replaceProfile' ? 'com.example.fuzz.wifi' : `com.example.fuzz.${s.serial++}`)
  if (mutate) for (let i = 0, n = 1 + Math.floor(random() * 3); i < n; i++) mutateTree(random, plist)
  const binary = random() < 0.4
  let payload: Buffer
  try {
    payload = binary ? encodeBinaryPlist(plist) : encodeXmlPlistRaw(plist, encodePlist)
  } catch {
    payload = encodeBinaryPlist(plist)
  }
  return { payload, contentType }
}

function urlOf(op: ApiOperation, input: Input): string {
  let url = op.path
  for (const [name, value] of Object.entries(input.path)) url = url.replace(`{${name}}`, value)
  if (input.query.length) url += `?${input.query.map(([key, value]) => `${key}=${value}`).join('&')}`
  return url
}

// Tampered cursors: base64url JSON arrays [sort, value, id] as the server writes them, with
// sort keys and ids that are not what the sort's column holds.
const sorts = [
  'created_at',
  '-created_at',
  'last_seen_at',
  '-last_seen_at',
  'serial_number',
  '-serial_number',
  'enrollment_id',
  '-seq',
  '-id',
  'identity_not_after',
]
const badValues: readonly (string | null)[] = [
  '2024-13-45 99:99:99+00',
  'not a date',
  '\u0000',
  '2024-01-01\u0000',
  '99999999999999999999999',
  '-1',
  '1e400',
  'infinity',
  'x'.repeat(1_500),
  '\ud800',
  null,
]
const badIds: readonly string[] = ['\u0000', 'abc', '99999999999999999999999', '-9223372036854775809', '1.5', '', 'a\u0000b', '\ud800', '0x10']

function cursor(parts: unknown): string {
  return Buffer.from(typeof parts === 'string' ? parts : JSON.stringify(parts)).toString('base64url')
}

function tamperedCursors(real: readonly string[]): string[] {
  const out: string[] = []
  sorts.forEach((sort, i) => out.push(cursor([sort, badValues[i % badValues.length], badIds[i % badIds.length]])))
  for (const text of real) {
    const [sort, value, id] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as [string, string | null, string]
    for (const bad of badValues) out.push(cursor([sort, bad, id]))
    for (const bad of badIds) out.push(cursor([sort, value, bad]))
  }
  return out
}

function randomCursor(random: Random, real: readonly string[]): string {
  const roll = random()
  if (roll < 0.15) return pick(random, ['!!!', 'AAAA', '\u0000', cursor('{}'), cursor('[1,2,3]'), cursor('["-id"]'), cursor('null'), cursor('[]')])
  if (roll < 0.3) return cursor([pick(random, sorts), pick(random, badValues), pick(random, badIds), 'extra'])
  const sort = real.length && random() < 0.7 ? (JSON.parse(Buffer.from(pick(random, real), 'base64url').toString('utf8')) as string[])[0]! : pick(random, sorts)
  return cursor([
    sort,
    random() < 0.5 ? pick(random, badValues) : mutantString(random, '2024-01-01 00:00:00+00'),
    random() < 0.5 ? pick(random, badIds) : mutantString(random, '1'),
  ])
}

/** NUL in each path and query parameter and in each string of the body; every tampered cursor. */
function systematicInputs(s: Sampler, realCursors: readonly string[]): Input[] {
  const { op } = s
  const inputs: Input[] = []
  for (const name of pathNames(op)) {
    const input = baseInput(s, `NUL in path parameter ${name}`)
    input.path[name] = percent(withNul(s.random, decoded(input.path[name]!)))
    inputs.push(input)
  }
  for (const [name, schema] of Object.entries(queryProperties(op))) {
    if (name === 'cursor') {
      for (const text of tamperedCursors(realCursors)) {
        const input = baseInput(s, `tampered cursor ${Buffer.from(text, 'base64url').toString('utf8').slice(0, 60)}`)
        input.query.push(['cursor', percent(text)])
        inputs.push(input)
      }
      continue
    }
    const input = baseInput(s, `NUL in query parameter ${name}`)
    input.query = input.query.filter(([key]) => key !== name)
    input.query.push([name, percent(withNul(s.random, String(sample(s, schema, name))))])
    inputs.push(input)
  }
  if (op.jsonBody) {
    // Every optional field, so each one gets its NUL.
    const full = baseInput({ ...s, random: () => 0 }, '')
    for (const path of stringPaths(full.body)) {
      const input: Input = {
        ...full,
        path: { ...full.path },
        query: [...full.query],
        body: structuredClone(full.body),
        label: `NUL in body /${path.join('/')}`,
      }
      setAt(input.body, path, (value) => withNul(s.random, value as string))
      inputs.push(input)
    }
    const input = baseInput(s, 'NUL in a body key')
    if (typeof input.body === 'object' && input.body !== null) {
      ;(input.body as Record<string, unknown>)['na\u0000me'] = 'x'
      inputs.push(input)
    }
  }
  if (op.rawBodyTypes.length && op.rawBodyTypes.some((type) => type.includes('plist') || type.includes('aspen-config'))) {
    for (const binary of [false, true]) {
      const input = baseInput(s, `NUL in a ${binary ? 'binary' : 'XML'} plist string`)
      const plist: PlistDict =
        op.operationId === 'enqueueRawCommand'
          ? { CommandUUID: `fuzz-\u0000-${randomUUID()}`, Command: { RequestType: 'DeviceLock', Message: 'a\u0000b' } }
          : { ...wifiProfileDict('com.example.fuzz.wifi'), PayloadDisplayName: 'Fuzz\u0000Wi-Fi' }
      input.raw = { payload: binary ? encodeBinaryPlist(plist) : encodeXmlPlistRaw(plist, encodePlist), contentType: op.rawBodyTypes[0]! }
      inputs.push(input)
    }
  }
  return inputs
}

function stringPaths(value: unknown, path: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (typeof value === 'string') out.push(path)
  else if (Array.isArray(value)) value.forEach((item, index) => stringPaths(item, [...path, index], out))
  else if (typeof value === 'object' && value !== null) for (const [key, item] of Object.entries(value)) stringPaths(item, [...path, key], out)
  return out
}

function setAt(root: unknown, path: (string | number)[], change: (value: unknown) => unknown): void {
  if (path.length === 0) return
  let parent = root as Record<string | number, unknown>
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>
  const last = path[path.length - 1]!
  parent[last] = change(parent[last])
}

/** One random input: a valid-looking request with one to three mutations. */
function randomInput(s: Sampler, realCursors: readonly string[]): Input {
  const { op, random } = s
  const input = baseInput(s, '')
  const done: string[] = []
  for (let i = 0, n = 1 + Math.floor(random() * 3); i < n; i++) {
    const roll = random()
    const paths = Object.keys(input.path)
    const queries = Object.keys(queryProperties(op))
    if (roll < 0.2 && paths.length) {
      const name = pick(random, paths)
      const bad =
        random() < 0.2
          ? pick(random, ['%00', '%ED%A0%80', '%E0%A4%A', '%', '%FF%FE', '..', '%2F%2F'])
          : percent(mutantString(random, decoded(input.path[name]!)))
      input.path[name] = bad
      done.push(`path ${name}`)
    } else if (roll < 0.45 && queries.length) {
      const name = pick(random, queries)
      const value =
        name === 'cursor'
          ? randomCursor(random, realCursors)
          : random() < 0.3
            ? String(mutantJsonValue(random))
            : mutantString(random, String(sample(s, queryProperties(op)[name], name)))
      input.query = input.query.filter(([key]) => key !== name || random() < 0.3)
      input.query.push([name, percent(value)])
      done.push(`query ${name}`)
    } else if (roll < 0.5) {
      input.query.push([percent(mutantString(random, 'unknown')), percent(pick(random, oddStrings))])
      done.push('unknown query parameter')
    } else if (op.jsonBody) {
      if (random() < 0.05) {
        input.json = deepJsonText(random)
        done.push('deep JSON')
      } else if (random() < 0.15) {
        input.body = mutantJsonBody(random)
        done.push('whole body')
      } else if (typeof input.body === 'object' && input.body !== null && !Array.isArray(input.body)) {
        done.push(`body ${mutateTree(random, input.body as PlistDict, mutantJsonValue)}`)
      }
    } else if (op.rawBodyTypes.length) {
      input.raw = rawBody(s, true)
      done.push('raw body')
    } else if (random() < 0.5) {
      input.json = JSON.stringify(mutantJsonBody(random))
      done.push('unexpected body')
    }
  }
  input.label = done.join(', ') || 'valid-looking'
  return input
}

// ---------------------------------------------------------------------------------------

/** Reads first, then writes, deletes last: rows the other requests name stay until the end. */
const stage = (op: ApiOperation) => (op.method === 'GET' ? 0 : op.method === 'DELETE' ? 2 : 1)

t.test(`every operation of openapi.yaml, with mutated parameters and bodies, never answers 5xx (seed ${seed})`, async (t) => {
  const started = Date.now()
  const world = await buildWorld(t)
  t.comment(`world built in ${Date.now() - started} ms`)
  const random = seededRandom(seed)

  // Real cursors (the first page of each list, one row per page) to tamper with.
  const realCursors = new Map<string, string[]>()
  for (const op of operations.filter((candidate) => 'cursor' in queryProperties(candidate))) {
    const found: string[] = []
    const sortsOf = (queryProperties(op)['sort']?.['enum'] as string[] | undefined) ?? [undefined]
    for (const sort of sortsOf) {
      const input = baseInput({ world, op, random: seededRandom(1), serial: 0 }, 'first page')
      input.query = input.query.filter(
        ([key]) => !['limit', 'sort', 'cursor'].includes(key) && (op.querystring['required'] as string[] | undefined)?.includes(key),
      )
      input.query.push(['limit', '1'])
      if (sort) input.query.push(['sort', sort])
      const response = await world.api(op.method, urlOf(op, input))
      if (typeof response.json?.next_cursor === 'string') found.push(response.json.next_cursor)
    }
    realCursors.set(op.operationId, found)
  }
  t.comment(`real cursors: ${[...realCursors.entries()].map(([id, list]) => `${id} ${list.length}`).join(', ')}`)

  const samplers = new Map(operations.map((op) => [op.operationId, { world, op, random, serial: 0 }]))
  const planned: Array<{ op: ApiOperation; input: Input }> = []
  for (const op of operations)
    for (const input of systematicInputs(samplers.get(op.operationId)!, realCursors.get(op.operationId) ?? [])) planned.push({ op, input })
  const systematic = planned.length
  for (let i = 0; i < randomCount; i++) {
    const op = operations[i % operations.length]!
    planned.push({ op, input: randomInput(samplers.get(op.operationId)!, realCursors.get(op.operationId) ?? []) })
  }
  planned.sort((a, b) => stage(a.op) - stage(b.op))

  const statuses = new Map<number, number>()
  const failures = new Map<string, Array<{ input: string; url: string; status: number; body: string }>>()
  for (const { op, input } of planned) {
    const url = urlOf(op, input)
    const options: ApiCallOptions = input.raw
      ? { raw: input.raw }
      : input.json !== undefined
        ? { raw: { payload: input.json, contentType: 'application/json' } }
        : input.body !== undefined
          ? { body: input.body }
          : {}
    const response = await world.api(op.method, url, options)
    statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
    if (response.statusCode >= 500) {
      const list = failures.get(op.operationId) ?? []
      list.push({ input: input.label, url: url.slice(0, 200), status: response.statusCode, body: response.body.slice(0, 300) })
      failures.set(op.operationId, list)
    }
  }
  for (const op of operations) t.same(failures.get(op.operationId) ?? [], [], `${op.operationId} (${op.method} ${op.path}): no 5xx`)
  const summary = [...statuses.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ')
  const fiveXx = [...failures.values()].reduce((sum, list) => sum + list.length, 0)
  const tried = `${planned.length} inputs (${systematic} systematic, ${randomCount} random) over ${operations.length} operations`
  t.comment(`${tried} in ${Date.now() - started} ms; statuses ${summary}; ${fiveXx} 5xx in ${failures.size} operations`)
})
