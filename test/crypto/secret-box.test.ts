import { createHash } from 'node:crypto'
import t from 'tap'
import { createSecretBox, masterKeyId, parseMasterKey, SecretBoxError } from '../../src/crypto/secret-box.js'

// Fixed keys: the tests are deterministic apart from the random IVs and data keys.
const keyA = Buffer.from('a1'.repeat(32), 'hex')
const keyB = Buffer.from('b2'.repeat(32), 'hex')
const keyC = Buffer.from('c3'.repeat(32), 'hex')
const secret = Buffer.from('-----BEGIN PRIVATE KEY-----\nnot really a key\n-----END PRIVATE KEY-----\n')
const row = 'push-certificate:com.apple.mgmt.External.5f0c2a3e-8b7d-4c1e-9a64-2d3b8e71f0a9'

t.test('round trip', async (t) => {
  const box = createSecretBox([keyA])
  const sealed = box.seal(secret, row)
  t.same(box.open(sealed, row), secret)
  t.notOk(sealed.includes(secret), 'the plaintext does not appear in the sealed value')
  t.equal(sealed.length, 1 + 8 + 12 + 32 + 16 + 12 + secret.length + 16, 'version, key id, wrapped data key, payload')
  t.equal(sealed[0], 1, 'format version 1')
  t.equal(sealed.subarray(1, 9).toString('hex'), createHash('sha256').update(keyA).digest('hex').slice(0, 16), 'key id = SHA-256 prefix')
  t.equal(masterKeyId(keyA), sealed.subarray(1, 9).toString('hex'))

  t.notSame(box.seal(secret, row), sealed, 'a fresh data key and IVs each time')
  t.same(box.open(box.seal(Buffer.alloc(0))), Buffer.alloc(0), 'empty plaintext, no associated data')
  t.same(box.open(box.seal(secret), ''), secret, 'absent associated data equals the empty string')
  t.same(box.open(new Uint8Array(sealed) as Buffer, row), secret, 'a plain Uint8Array, as PGlite returns bytea')
  const big = Buffer.alloc(1 << 20, 7)
  t.same(box.open(box.seal(big, 'x'), 'x'), big, '1 MiB')
})

t.test('rotation: sealed with A, opened after [B, A]; new values use B', async (t) => {
  const sealedWithA = createSecretBox([keyA]).seal(secret, row)
  const rotated = createSecretBox([keyB, keyA])
  t.same(rotated.open(sealedWithA, row), secret)
  const sealedWithB = rotated.seal(secret, row)
  t.equal(sealedWithB.subarray(1, 9).toString('hex'), masterKeyId(keyB), 'the first key seals')
  t.same(createSecretBox([keyB]).open(sealedWithB, row), secret)
  t.throws(() => createSecretBox([keyA]).open(sealedWithB, row), {
    name: 'SecretBoxError',
    message: `sealed with an unknown master key (id ${masterKeyId(keyB)}); the configured keys have ids ${masterKeyId(keyA)}`,
  })
})

t.test('unknown master key is named', async (t) => {
  const sealed = createSecretBox([keyA]).seal(secret, row)
  const error = t.throws(() => createSecretBox([keyB, keyC]).open(sealed, row)) as Error
  t.type(error, SecretBoxError)
  t.match(error.message, /unknown master key/)
  t.match(error.message, masterKeyId(keyA))
  t.match(error.message, `${masterKeyId(keyB)}, ${masterKeyId(keyC)}`)
})

t.test('wrong associated data fails', async (t) => {
  const box = createSecretBox([keyA])
  const sealed = box.seal(secret, row)
  const notAuthentic = /does not authenticate: it was modified, or it was sealed with other associated data/
  t.throws(() => box.open(sealed, 'push-certificate:com.apple.mgmt.External.other'), notAuthentic)
  t.throws(() => box.open(sealed), notAuthentic, 'none')
  t.throws(() => box.open(sealed, `${row} `), notAuthentic, 'one more character')
  t.throws(() => box.open(box.seal(secret), row), notAuthentic, 'sealed without, opened with')
})

t.test('every single-byte tamper fails, never returns garbage', async (t) => {
  const box = createSecretBox([keyA])
  const sealed = box.seal(secret, row)
  const messages = new Set<string>()
  let failures = 0
  for (let i = 0; i < sealed.length; i++) {
    for (const flip of [0x01, 0x80, 0xff]) {
      const tampered = Buffer.from(sealed)
      tampered[i]! ^= flip
      try {
        box.open(tampered, row)
      } catch (error) {
        if (error instanceof SecretBoxError) failures++
        messages.add((error as Error).message.replace(/id [0-9a-f]{16}/, 'id *'))
        continue
      }
      t.fail(`byte ${i} ^ ${flip} opened`)
    }
  }
  t.equal(failures, sealed.length * 3, 'every tamper failed with a SecretBoxError')
  t.same(
    [...messages].sort(),
    [
      `sealed value does not authenticate: it was modified, or it was sealed with other associated data`,
      `sealed value has format version 0; this Orchard reads version 1`,
      `sealed value has format version 129; this Orchard reads version 1`,
      `sealed value has format version 254; this Orchard reads version 1`,
      `sealed with an unknown master key (id *); the configured keys have ids ${masterKeyId(keyA)}`,
    ].sort(),
  )
  t.same(box.open(sealed, row), secret, 'the original still opens')
})

t.test('truncated and extended values fail', async (t) => {
  const box = createSecretBox([keyA])
  const sealed = box.seal(secret, row)
  for (const length of [0, 1, 9, 96]) {
    t.throws(() => box.open(sealed.subarray(0, length), row), /shorter than the 97 of an empty one: not a secret-box value/, `${length} bytes`)
  }
  t.throws(() => box.open(sealed.subarray(0, sealed.length - 1), row), /does not authenticate/)
  t.throws(() => box.open(Buffer.concat([sealed, Buffer.of(0)]), row), /does not authenticate/)
})

t.test('createSecretBox validates its keys', async (t) => {
  t.throws(() => createSecretBox([]), /at least one master key/)
  t.throws(() => createSecretBox([keyA, Buffer.alloc(16)]), /master key #2 must be 32 bytes, got 16/)
  const mutable = Buffer.from(keyA)
  const box = createSecretBox([mutable])
  const sealed = box.seal(secret)
  mutable.fill(0)
  t.same(box.open(sealed), secret, 'the box keeps its own copy of the keys')
})

t.test('parseMasterKey', async (t) => {
  const hex = keyA.toString('hex')
  t.same(parseMasterKey(hex), keyA, 'hex')
  t.same(parseMasterKey(hex.toUpperCase()), keyA, 'upper-case hex')
  t.same(parseMasterKey(`  ${hex}\n`), keyA, 'surrounding whitespace')
  const random = Buffer.from('fb0f3e9d2c7a61ff8e43b9d5a0c47e1203b6d9f84ac1e57206df93b8e1c4a7ff', 'hex')
  t.same(parseMasterKey(random.toString('base64')), random, 'base64')
  t.same(parseMasterKey(random.toString('base64').replace(/=$/, '')), random, 'base64 without padding')
  t.same(parseMasterKey(random.toString('base64url')), random, 'base64url')

  const rejects = (text: string, what: string) => t.throws(() => parseMasterKey(text), SecretBoxError, what)
  rejects('', 'empty')
  rejects(hex.slice(0, 62), '31 bytes of hex')
  rejects(`${hex}00`, '33 bytes of hex')
  rejects(`${hex.slice(0, 63)}g`, 'not hex')
  rejects(Buffer.alloc(31, 1).toString('base64'), 'base64 of 31 bytes')
  rejects(Buffer.alloc(33, 1).toString('base64'), 'base64 of 33 bytes')
  rejects(`${random.toString('base64').slice(0, 42)}B=`, 'non-canonical base64 (trailing bits set)')
  rejects('correct horse battery staple', 'a passphrase')
  t.throws(() => parseMasterKey('correct horse battery staple'), {
    message: 'a master key must be 64 hex characters or base64 of 32 bytes, e.g. from `openssl rand -hex 32` (got 28 characters)',
  })
  t.throws(() => parseMasterKey('abcd'), { message: /\(got 4 characters of hex\)$/ })
  const error = t.throws(() => parseMasterKey(`${hex.slice(0, 63)}g`)) as Error
  t.notMatch(error.message, hex.slice(0, 16), 'the message does not echo the secret')
})
