import { randomBytes, webcrypto } from 'node:crypto'
import * as pkijs from 'pkijs'
import t from 'tap'
import { createCertificate, generateKeyPair } from '../../src/crypto/certificates.js'
import {
  MachineInfoError,
  maxMachineInfoBytes,
  verifyMachineInfo,
  type MachineInfoErrorReason,
  type VerifiedMachineInfo,
  type VerifyMachineInfoOptions,
} from '../../src/crypto/machine-info.js'
import type { DigestAlgorithm } from '../../src/crypto/mdm-signature.js'
import { OrchardError } from '../../src/errors.js'
import { decodeDeviceInfoHeader, decodeMachineInfo } from '../../src/mdm/machine-info.js'
import { encodePlist, type PlistDict } from '../../src/mdm/plist.js'
import { signDetached } from '../helpers/cms-signer.js'
import { createAppleLikeDeviceIdentity, signMachineInfo, toKeyObject, type MachineInfoSigner } from '../helpers/machine-info-signer.js'
import { seededRandom } from '../helpers/random.js'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })

// Keys once per file: RSA generation dominates the run time.
const apple = await createAppleLikeDeviceIdentity()
const appleEc = await createAppleLikeDeviceIdentity({ deviceKey: 'ec-p256', authorities: apple })
/** Another root and intermediate with the very same names as `apple`'s, other keys. */
const stranger = await createAppleLikeDeviceIdentity()

const machineInfo: PlistDict = {
  UDID: '00008120-001A2B3C4D5E601E',
  SERIAL: 'F2LXK0AAHG7J',
  PRODUCT: 'iPhone15,2',
  VERSION: '21A329',
  OS_VERSION: '17.0.1',
  LANGUAGE: 'en',
  IMEI: '35 123456 789012 3',
  MEID: '35123456789012',
  MDM_CAN_REQUEST_SOFTWARE_UPDATE: true,
  SOFTWARE_UPDATE_DEVICE_ID: 'D73AP',
  SUPPLEMENTAL_BUILD_VERSION: '21A329',
  SUPPLEMENTAL_OS_VERSION_EXTRA: '',
  SOMETHING_NEW: 'kept in raw',
}
const content = encodePlist(machineInfo)
const trusted: VerifyMachineInfoOptions = { trustedCas: [apple.root.certificateDer] }

type Outcome = { ok: true; result: VerifiedMachineInfo } | { ok: false; reason: MachineInfoErrorReason; message: string }

/** Our verifier; anything but MachineInfoError escapes and fails the test. */
function ours(body: unknown, options: VerifyMachineInfoOptions = trusted): Outcome {
  try {
    return { ok: true, result: verifyMachineInfo(body as Buffer, options) }
  } catch (error) {
    if (!(error instanceof MachineInfoError)) throw error
    return { ok: false, reason: error.reason, message: error.message }
  }
}

/** pkijs, the independent implementation, on the same bytes (attached content; chain only when `trustedCerts`). */
async function pkijsVerifies(body: Buffer, trustedCerts?: Buffer[], checkDate?: Date): Promise<boolean> {
  try {
    const contentInfo = pkijs.ContentInfo.fromBER(body)
    const signedData = new pkijs.SignedData({ schema: contentInfo.content })
    return await signedData.verify(
      {
        signer: 0,
        checkChain: trustedCerts !== undefined,
        ...(trustedCerts ? { trustedCerts: trustedCerts.map((der) => pkijs.Certificate.fromBER(der)) } : {}),
        ...(checkDate ? { checkDate } : {}),
      },
      engine,
    )
  } catch {
    return false
  }
}

type Assertions = Pick<typeof t, 'equal' | 'match' | 'fail'>

function expectRefused(t: Assertions, outcome: Outcome, reason: MachineInfoErrorReason, message?: RegExp): void {
  t.equal(outcome.ok ? 'verified' : outcome.reason, reason, `refused: ${reason}`)
  if (!outcome.ok && message) t.match(outcome.message, message)
}

function expectVerified(t: Assertions, outcome: Outcome): VerifiedMachineInfo {
  if (!outcome.ok) {
    t.fail(`expected to verify, got ${outcome.reason}: ${outcome.message}`)
    throw new Error('not verified')
  }
  return outcome.result
}

const signers: Record<'rsa' | 'ec', MachineInfoSigner> = { rsa: apple.device, ec: appleEc.device }

t.test('valid MachineInfo: keys, digests, with and without signed attributes, DER and BER', async (t) => {
  for (const keyType of ['rsa', 'ec'] as const) {
    for (const digest of ['sha1', 'sha256'] as const) {
      for (const signedAttributes of [true, false]) {
        for (const encoding of ['der', 'ber'] as const) {
          const label = `${keyType}, ${digest}, ${signedAttributes ? 'with' : 'without'} signed attributes, ${encoding}`
          const signer = signers[keyType]
          const body = signMachineInfo(machineInfo, signer, { digest, signedAttributes, encoding })
          const result = expectVerified(t, ours(body))
          t.ok(result.content.equals(content), `${label}: content`)
          t.ok(result.signerCertificateDer.equals(signer.certificateDer), `${label}: signer certificate`)
          t.same(
            result.certificatesDer.map((der) => der.toString('hex')),
            [signer.certificateDer, apple.intermediate.certificateDer].map((der) => der.toString('hex')),
            `${label}: included certificates`,
          )
          t.equal(result.chainVerified, true, `${label}: chain verified`)
          t.equal(decodeMachineInfo(result.content).udid, machineInfo['UDID'], `${label}: decodes`)
          t.equal(await pkijsVerifies(body), true, `${label}: pkijs agrees`)
          t.equal(await pkijsVerifies(body, [apple.root.certificateDer]), true, `${label}: pkijs agrees on the chain`)
        }
      }
    }
  }
})

t.test('SHA-384 and SHA-512, and a subjectKeyIdentifier signer identifier', async (t) => {
  for (const digest of ['sha384', 'sha512'] as DigestAlgorithm[]) {
    for (const signer of Object.values(signers)) {
      const body = signMachineInfo(machineInfo, signer, { digest })
      expectVerified(t, ours(body))
      t.equal(await pkijsVerifies(body), true, `pkijs agrees (${digest})`)
    }
  }
  for (const signedAttributes of [true, false]) {
    const body = signMachineInfo(machineInfo, apple.device, { signerIdentifier: 'subjectKeyIdentifier', signedAttributes })
    const result = expectVerified(t, ours(body))
    t.ok(result.signerCertificateDer.equals(apple.device.certificateDer), 'found by subjectKeyIdentifier')
    t.equal(await pkijsVerifies(body), true, 'pkijs agrees')
  }
})

t.test('the content may be a raw buffer and any bytes', async (t) => {
  const raw = Buffer.from('not even a plist')
  const result = expectVerified(t, ours(signMachineInfo(raw, apple.device)))
  t.ok(result.content.equals(raw))
  const empty = expectVerified(t, ours(signMachineInfo(Buffer.alloc(0), apple.device, { signedAttributes: false })))
  t.equal(empty.content.length, 0, 'an empty content verifies; decodeMachineInfo refuses it')
})

t.test('chain', async (t) => {
  await t.test('through the included intermediate to the root', async (t) => {
    const body = signMachineInfo(machineInfo, apple.device)
    t.equal(expectVerified(t, ours(body)).chainVerified, true)
    t.equal(await pkijsVerifies(body, [apple.root.certificateDer]), true, 'pkijs agrees')
  })

  await t.test('the intermediate not included', async (t) => {
    const body = signMachineInfo(machineInfo, apple.device, { certificates: [apple.device.certificateDer] })
    expectRefused(t, ours(body), 'untrusted', /does not chain to a trusted CA/)
    t.equal(await pkijsVerifies(body, [apple.root.certificateDer]), false, 'pkijs refuses too')
    t.equal(
      expectVerified(t, ours(body, { trustedCas: [apple.root.certificateDer, apple.intermediate.certificateDer] })).chainVerified,
      true,
      'unless the intermediate is trusted',
    )
    t.equal(expectVerified(t, ours(body, { trustedCas: [apple.intermediate.certificateDer] })).chainVerified, true, 'the intermediate alone as anchor')
  })

  await t.test('the root included too, and certificates in any order', async (t) => {
    const body = signMachineInfo(machineInfo, apple.device, {
      certificates: [apple.root.certificateDer, apple.intermediate.certificateDer, apple.device.certificateDer],
    })
    t.equal(expectVerified(t, ours(body)).chainVerified, true)
  })

  await t.test('an untrusted root', async (t) => {
    const body = signMachineInfo(machineInfo, apple.device)
    expectRefused(t, ours(body, { trustedCas: [stranger.root.certificateDer] }), 'untrusted')
    t.equal(await pkijsVerifies(body, [stranger.root.certificateDer]), false, 'pkijs refuses too')
    expectRefused(t, ours(body, { trustedCas: [] }), 'untrusted', /does not chain/)
    const strangerBody = signMachineInfo(machineInfo, stranger.device)
    expectRefused(t, ours(strangerBody), 'untrusted')
    t.equal(await pkijsVerifies(strangerBody, [apple.root.certificateDer]), false, 'pkijs refuses too')
  })

  await t.test('an impostor intermediate with the same name', async (t) => {
    // stranger.intermediate is "Test iPhone Device CA" too, but did not sign apple.device.
    const body = signMachineInfo(machineInfo, { ...apple.device, chain: [stranger.intermediate.certificateDer] })
    expectRefused(t, ours(body, { trustedCas: [stranger.root.certificateDer] }), 'untrusted')
    expectRefused(t, ours(body), 'untrusted')
  })

  await t.test('trustedCas null: signature only', async (t) => {
    const result = expectVerified(t, ours(signMachineInfo(machineInfo, stranger.device), { trustedCas: null }))
    t.equal(result.chainVerified, false)
    const selfSigned = expectVerified(
      t,
      ours(signMachineInfo(machineInfo, { certificateDer: stranger.root.certificateDer, privateKey: stranger.root.privateKey }), { trustedCas: null }),
    )
    t.equal(selfSigned.chainVerified, false)
  })

  await t.test('the signer is the trusted CA itself', async (t) => {
    const body = signMachineInfo(machineInfo, { certificateDer: apple.root.certificateDer, privateKey: apple.root.privateKey })
    expectRefused(t, ours(body), 'untrusted', /is a trusted CA certificate/)
  })

  await t.test('an intermediate that is not a CA', async (t) => {
    const middleKeys = await generateKeyPair('ec-p256')
    const middle = await createCertificate({
      subject: { commonName: 'not a CA' },
      publicKey: middleKeys.publicKey,
      issuer: { certificate: apple.intermediate.certificate, privateKey: apple.intermediate.cryptoKey },
      validDays: 2,
      usage: 'client',
    })
    const leafKeys = await generateKeyPair('ec-p256')
    const leaf = await createCertificate({
      subject: { commonName: 'below a leaf' },
      publicKey: leafKeys.publicKey,
      issuer: { certificate: middle, privateKey: middleKeys.privateKey },
      validDays: 2,
      usage: 'client',
    })
    const signer = { certificateDer: Buffer.from(leaf.toSchema().toBER(false)), privateKey: await toKeyObject(leafKeys.privateKey) }
    const body = signMachineInfo(machineInfo, signer, {
      certificates: [signer.certificateDer, Buffer.from(middle.toSchema().toBER(false)), apple.intermediate.certificateDer],
    })
    expectRefused(t, ours(body), 'untrusted', /does not chain/)
    t.equal(expectVerified(t, ours(body, { trustedCas: null })).chainVerified, false, 'the signature itself is fine')
  })

  await t.test('validity at `now`', async (t) => {
    const day = 86_400_000
    const body = signMachineInfo(machineInfo, apple.device)
    expectRefused(t, ours(body, { ...trusted, now: new Date(Date.now() + 10 * day) }), 'untrusted', /signer certificate .* expired at/)
    expectRefused(t, ours(body, { ...trusted, now: new Date(Date.now() - day) }), 'untrusted', /signer certificate .* is not valid before/)
    t.equal(expectVerified(t, ours(body, { ...trusted, now: new Date(Date.now() + day) })).chainVerified, true, 'inside the validity')
    t.equal(expectVerified(t, ours(body, { trustedCas: null, now: new Date(Date.now() + 10 * day) })).chainVerified, false, 'no chain, no dates')

    // A device certificate outliving its intermediate (30 days).
    const longLived = await createAppleLikeDeviceIdentity({
      authorities: apple,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 60 * day),
    })
    const longBody = signMachineInfo(machineInfo, longLived.device)
    expectRefused(t, ours(longBody, { ...trusted, now: new Date(Date.now() + 40 * day) }), 'untrusted', /intermediate certificate .* expired at/)
    t.equal(await pkijsVerifies(longBody, [apple.root.certificateDer], new Date(Date.now() + 40 * day)), false, 'pkijs refuses too')

    // Apple's real intermediates have expired: checkValidity false skips every date, nothing else.
    const years = new Date(Date.now() + 3650 * day)
    t.equal(
      expectVerified(t, ours(body, { ...trusted, now: years, checkValidity: false })).chainVerified,
      true,
      'checkValidity false: an expired leaf and intermediate chain',
    )
    t.equal(
      expectVerified(t, ours(longBody, { ...trusted, now: years, checkValidity: false })).chainVerified,
      true,
      'checkValidity false: an expired intermediate',
    )
    expectRefused(t, ours(body, { trustedCas: [stranger.root.certificateDer], now: years, checkValidity: false }), 'untrusted', /does not chain/)
  })

  await t.test('an unreadable trusted CA is a configuration error, not a MachineInfoError', async (t) => {
    t.throws(() => verifyMachineInfo(signMachineInfo(machineInfo, apple.device), { trustedCas: [Buffer.from('nope')] }), /trusted MachineInfo CA 1/)
  })
})

/** Flips one byte of the content as it sits in the body. */
function tamper(body: Buffer, from = 'F2LXK0AAHG7J', to = 'F2LXK0AAHG7K'): Buffer {
  const at = body.indexOf(from)
  if (at < 0) throw new Error('content not found in the body')
  const copy = Buffer.from(body)
  copy.write(to, at)
  return copy
}

t.test('bad signatures', async (t) => {
  for (const [keyType, signer] of Object.entries(signers)) {
    for (const signedAttributes of [true, false]) {
      const label = `${keyType}, ${signedAttributes ? 'with' : 'without'} signed attributes`
      const body = tamper(signMachineInfo(machineInfo, signer, { signedAttributes }))
      expectRefused(t, ours(body), 'bad_signature', signedAttributes ? /messageDigest/ : /does not verify/)
      expectRefused(t, ours(body, { trustedCas: null }), 'bad_signature')
      t.equal(await pkijsVerifies(body), false, `${label}: pkijs refuses tampered content too`)
    }
  }

  await t.test('wrong messageDigest', async (t) => {
    const body = signMachineInfo(machineInfo, apple.device, { messageDigest: randomBytes(32) })
    expectRefused(t, ours(body), 'bad_signature', /messageDigest attribute does not match the sha256 digest/)
    t.equal(await pkijsVerifies(body), false, 'pkijs refuses too')
    const truncated = signMachineInfo(machineInfo, apple.device, { messageDigest: Buffer.alloc(0) })
    expectRefused(t, ours(truncated), 'bad_signature', /messageDigest/)
  })

  await t.test('signed by another key than the certificate', async (t) => {
    const body = signMachineInfo(machineInfo, {
      certificateDer: apple.device.certificateDer,
      privateKey: stranger.device.privateKey,
      chain: apple.device.chain,
    })
    expectRefused(t, ours(body), 'bad_signature', /does not verify with the signer certificate's key/)
    t.equal(await pkijsVerifies(body), false, 'pkijs refuses too')
    const mixed = signMachineInfo(machineInfo, { certificateDer: apple.device.certificateDer, privateKey: appleEc.device.privateKey })
    expectRefused(t, ours(mixed), 'bad_signature', /does not fit the signer certificate's rsa key/)
  })

  await t.test('contentType attribute disagrees with the content', async (t) => {
    const body = signMachineInfo(machineInfo, apple.device, { contentTypeAttribute: '1.2.840.113549.1.7.2' })
    expectRefused(t, ours(body), 'bad_signature', /contentType attribute/)
  })
})

t.test('malformed bodies', async (t) => {
  const valid = signMachineInfo(machineInfo, apple.device)
  expectRefused(t, ours(Buffer.alloc(0)), 'malformed', /empty/)
  expectRefused(t, ours('MIIG...'), 'malformed', /not a byte buffer/)
  expectRefused(t, ours(undefined), 'malformed')
  expectRefused(t, ours(randomBytes(300)), 'malformed')
  expectRefused(t, ours(Buffer.from('<?xml version="1.0"?><plist><dict/></plist>')), 'malformed', /not a CMS SignedData/)
  expectRefused(t, ours(Buffer.concat([valid, Buffer.from([0])])), 'malformed', /trailing/)
  expectRefused(t, ours(Buffer.from(valid.toString('base64'))), 'malformed', /not a CMS SignedData/)

  await t.test('oversized', async (t) => {
    const big = signMachineInfo({ ...machineInfo, PADDING: 'x'.repeat(maxMachineInfoBytes) }, apple.device)
    expectRefused(t, ours(big), 'malformed', /more than 262144/)
    expectRefused(t, ours(Buffer.alloc(maxMachineInfoBytes + 1)), 'malformed', /more than/)
  })

  await t.test('every truncation', async (t) => {
    const ber = signMachineInfo(machineInfo, apple.device, { encoding: 'ber' })
    let refused = 0
    for (const body of [valid, ber]) {
      for (let length = 1; length < body.length; length++) {
        const outcome = ours(body.subarray(0, length))
        if (!outcome.ok && outcome.reason === 'malformed') refused++
      }
    }
    t.equal(refused, valid.length - 1 + ber.length - 1, 'each prefix is malformed')
  })

  await t.test('not an attached signedData', async (t) => {
    // pkijs's detached signer (Mdm-Signature's shape); its key does not matter, parsing stops first.
    const detached = Buffer.from(
      await signDetached(content, { certificateDer: appleEc.device.certificateDer, privateKey: (await generateKeyPair('ec-p256')).privateKey }),
      'base64',
    )
    expectRefused(t, ours(detached), 'malformed', /detached/)
    // ContentInfo holding id-data.
    const data = Buffer.from(valid)
    const at = data.indexOf(Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]))
    data[at + 10] = 0x01
    expectRefused(t, ours(data), 'malformed', /not signedData/)
  })

  await t.test('signer certificate missing', async (t) => {
    expectRefused(t, ours(signMachineInfo(machineInfo, apple.device, { certificates: [] })), 'malformed', /none of the 0 included certificates/)
    expectRefused(
      t,
      ours(signMachineInfo(machineInfo, apple.device, { certificates: [apple.intermediate.certificateDer] })),
      'malformed',
      /matches the signer's issuerAndSerialNumber/,
    )
    expectRefused(
      t,
      ours(signMachineInfo(machineInfo, apple.device, { certificates: [appleEc.device.certificateDer], signerIdentifier: 'subjectKeyIdentifier' })),
      'malformed',
      /subjectKeyIdentifier/,
    )
  })

  await t.test('two signers', async (t) => {
    // Duplicate the SignerInfo inside the SET (DER, so lengths are rewritten by re-encoding).
    const pkijsContent = pkijs.ContentInfo.fromBER(valid)
    const signedData = new pkijs.SignedData({ schema: pkijsContent.content })
    signedData.signerInfos.push(signedData.signerInfos[0]!)
    const twice = Buffer.from(new pkijs.ContentInfo({ contentType: pkijsContent.contentType, content: signedData.toSchema(true) }).toSchema().toBER(false))
    expectRefused(t, ours(twice), 'malformed', /2 signers/)
  })

  await t.test('mutations never throw anything but MachineInfoError', async (t) => {
    const random = seededRandom(20240601)
    const bodies = [valid, signMachineInfo(machineInfo, appleEc.device, { encoding: 'ber', signedAttributes: false })]
    let verified = 0
    for (let round = 0; round < 3000; round++) {
      const body = Buffer.from(bodies[round % 2]!)
      const edits = 1 + Math.floor(random() * 3)
      for (let i = 0; i < edits; i++) body[Math.floor(random() * body.length)] = Math.floor(random() * 256)
      const outcome = ours(body, round % 3 === 0 ? { trustedCas: null } : trusted)
      if (outcome.ok) verified++
    }
    t.ok(verified < 3000, `${verified} mutated bodies still verified (edits in unsigned fields), no other exception`)
  })
})

const plist = (value: PlistDict | unknown[]) => encodePlist(value as PlistDict)

/** The OrchardError decodeMachineInfo throws, or fails. */
function decodeError(t: Assertions, bytes: Buffer, message: RegExp): void {
  try {
    decodeMachineInfo(bytes)
    t.fail(`expected ${message} to be refused`)
  } catch (error) {
    if (!(error instanceof OrchardError)) throw error
    t.equal(error.code, 'malformed_message')
    t.match(error.message, message)
  }
}

t.test('decodeMachineInfo', async (t) => {
  const decoded = decodeMachineInfo(content)
  t.same(
    { ...decoded, raw: undefined },
    {
      udid: '00008120-001A2B3C4D5E601E',
      serialNumber: 'F2LXK0AAHG7J',
      product: 'iPhone15,2',
      version: '21A329',
      osVersion: '17.0.1',
      supplementalBuildVersion: '21A329',
      supplementalOsVersionExtra: null,
      language: 'en',
      imei: '35 123456 789012 3',
      meid: '35123456789012',
      canRequestSoftwareUpdate: true,
      softwareUpdateDeviceId: 'D73AP',
      pairingToken: null,
      raw: undefined,
    },
  )
  t.equal(decoded.raw['SOMETHING_NEW'], 'kept in raw', 'unknown keys are kept')

  const minimal = decodeMachineInfo(plist({ UDID: 'abc', SERIAL: 'C02XYZ', PAIRING_TOKEN: Buffer.from([1, 2]) }))
  t.equal(minimal.product, null)
  t.equal(minimal.osVersion, null)
  t.equal(minimal.canRequestSoftwareUpdate, false, 'MDM_CAN_REQUEST_SOFTWARE_UPDATE defaults to false')
  t.same(minimal.pairingToken, Buffer.from([1, 2]))

  decodeError(t, plist({ SERIAL: 'C02XYZ' }), /UDID is missing/)
  decodeError(t, plist({ UDID: 'abc' }), /SERIAL is missing/)
  decodeError(t, plist({ UDID: 12, SERIAL: 'C02XYZ' }), /UDID must be a string, got number/)
  decodeError(t, plist({ UDID: 'abc', SERIAL: Buffer.from('C02') }), /SERIAL must be a string, got data/)
  decodeError(t, plist({ UDID: 'abc', SERIAL: '  ' }), /SERIAL is empty/)
  decodeError(t, plist({ UDID: 'a'.repeat(300), SERIAL: 'C02' }), /UDID is longer than 256/)
  decodeError(t, plist({ UDID: 'abc', SERIAL: 'C02', PRODUCT: 7 }), /PRODUCT must be a string, got number/)
  decodeError(
    t,
    plist({ UDID: 'abc', SERIAL: 'C02', MDM_CAN_REQUEST_SOFTWARE_UPDATE: 'true' }),
    /MDM_CAN_REQUEST_SOFTWARE_UPDATE must be a boolean, got string/,
  )
  decodeError(t, plist({ UDID: 'abc', SERIAL: 'C02', OS_VERSION: { major: 17 } }), /OS_VERSION must be a string, got dictionary/)
  decodeError(t, plist(['UDID', 'SERIAL']), /must be a dictionary, got array/)
  decodeError(t, plist('just a string' as unknown as PlistDict), /must be a dictionary, got string/)
  decodeError(t, Buffer.from('garbage'), /not a valid plist/)
  decodeError(t, Buffer.alloc(0), /not a valid plist/)
})

t.test('decodeDeviceInfoHeader', async (t) => {
  const body = signMachineInfo(machineInfo, apple.device)
  const header = body.toString('base64')
  t.ok(decodeDeviceInfoHeader(header).equals(body), 'round trip')
  t.ok(decodeDeviceInfoHeader(` ${header}\r\n`).equals(body), 'surrounding whitespace is ignored')
  t.equal(expectVerified(t, ours(decodeDeviceInfoHeader(header))).chainVerified, true, 'verifies as the body does')

  for (const [label, value] of [
    ['empty', ''],
    ['blank', '   '],
    ['undefined', undefined],
    ['missing padding', header.replace(/=+$/, '') + (header.endsWith('=') ? '' : 'A')],
    ['URL alphabet', 'ab-_'],
    ['junk inside', `${header.slice(0, 8)}*${header.slice(9)}`],
    ['a line break inside', `${header.slice(0, 8)}\n${header.slice(8)}`],
    ['non-zero padding bits', 'QR=='],
    ['too long', 'A'.repeat(400_000)],
  ] as const) {
    t.throws(() => decodeDeviceInfoHeader(value as string), { name: 'OrchardError', code: 'malformed_message' }, label)
  }
})
