// ABM/ASM server tokens. Orchard makes a key pair and a self-signed certificate per token;
// the admin uploads the certificate in Apple Business/School Manager, which answers with a
// `.p7m`: an S/MIME message whose body is CMS EnvelopedData encrypted to that certificate.
// Inside is another MIME part with the OAuth credentials as JSON between
// "-----BEGIN MESSAGE-----" and "-----END MESSAGE-----".
//
// The envelope is opened with the SCEP envelope reader (src/crypto/scep.ts), not pkijs:
// Apple encrypts the content key with RSA PKCS#1 v1.5 key transport, which WebCrypto (and
// so pkijs) cannot decrypt, and which Node 20 only allows through RSA_NO_PADDING with our
// own constant-time unpadding; that code already exists there.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { OrchardError } from '../errors.js'
import { distinguishedName, issueCertificate } from './certificate-issuer.js'
import { openEnvelope, ScepFailure } from './scep.js'

export interface ServerTokenCredentials {
  consumerKey: string
  consumerSecret: string
  accessToken: string
  accessSecret: string
  accessTokenExpiry: Date | null
}

export interface TokenExchangeIdentity {
  certificateDer: Buffer
  privateKey: KeyObject
}

/** An RSA-2048 key and a self-signed certificate (5 years) to upload to Apple for one token. */
export function generateTokenExchangeIdentity(options: { name: string; organization: string; now?: Date }): TokenExchangeIdentity {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const notBefore = new Date((options.now ?? new Date()).getTime() - 5 * 60_000)
  const issued = issueCertificate({
    subject: distinguishedName({ commonName: `Orchard ADE token: ${options.name}`.slice(0, 64), organization: options.organization }),
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    selfSignKey: privateKey,
    notBefore,
    notAfter: new Date(notBefore.getTime() + 5 * 365 * 86_400_000),
    profile: 'ra',
  })
  return { certificateDer: issued.der, privateKey }
}

const invalid = (detail: string) =>
  new OrchardError('validation_failed', `the server token is not usable: ${detail}`, { details: { errors: [{ pointer: '', detail }] } })

/** The CMS bytes of a token file: S/MIME (headers + base64 body), PEM, base64 or DER. */
function envelopeBytes(file: Buffer): Buffer {
  if (file[0] === 0x30) return file
  const text = file.toString('latin1')
  const pem = /-----BEGIN (?:PKCS7|CMS)-----([\s\S]*?)-----END (?:PKCS7|CMS)-----/.exec(text)
  let body = pem ? pem[1]! : text
  if (!pem) {
    // S/MIME: the base64 body follows the first empty line after the headers.
    const headerEnd = /\r?\n\r?\n/.exec(text)
    if (/^[A-Za-z-]+:/.test(text) && headerEnd) body = text.slice(headerEnd.index + headerEnd[0].length)
  }
  const compact = body.replace(/\s+/g, '')
  if (compact === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact))
    throw invalid('expected the .p7m file from Apple Business/School Manager (S/MIME, PEM or DER CMS)')
  return Buffer.from(compact, 'base64')
}

function credentialsJson(content: Buffer): Record<string, unknown> {
  const text = content.toString('utf8')
  const wrapped = /-----BEGIN MESSAGE-----([\s\S]*?)-----END MESSAGE-----/.exec(text)
  const json = wrapped ? wrapped[1]! : text.slice(Math.max(0, text.indexOf('{')))
  try {
    const parsed = JSON.parse(json.trim()) as unknown
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>
  } catch {
    // reported below
  }
  throw invalid('the decrypted token holds no JSON credentials')
}

/** Decrypts a `.p7m` server token with the token's exchange key and reads its OAuth credentials. */
export function openServerToken(file: Buffer, recipient: TokenExchangeIdentity): ServerTokenCredentials {
  if (file.length === 0) throw invalid('the file is empty')
  let content: Buffer
  try {
    content = openEnvelope(envelopeBytes(file), [{ certificateDer: recipient.certificateDer, privateKey: recipient.privateKey }]).content
  } catch (error) {
    if (error instanceof ScepFailure) throw invalid(`${error.message} (was it downloaded for this token's certificate?)`)
    throw error
  }
  const json = credentialsJson(content)
  const text = (key: string) => {
    const value = json[key]
    if (typeof value !== 'string' || value === '' || value.length > 1000) throw invalid(`the credentials lack ${key}`)
    return value
  }
  const expiryText = json['access_token_expiry']
  let accessTokenExpiry: Date | null = null
  if (typeof expiryText === 'string' && expiryText !== '') {
    // Apple writes "2025-05-01T12:00:00Z"; older tokens used a space instead of the T.
    const parsed = new Date(expiryText.replace(' ', 'T'))
    if (Number.isNaN(parsed.getTime())) throw invalid(`access_token_expiry ${JSON.stringify(expiryText.slice(0, 40))} is not a date`)
    accessTokenExpiry = parsed
  }
  return {
    consumerKey: text('consumer_key'),
    consumerSecret: text('consumer_secret'),
    accessToken: text('access_token'),
    accessSecret: text('access_secret'),
    accessTokenExpiry,
  }
}
