// OAuth 1.0a request signing (RFC 5849) with HMAC-SHA1, as Apple's DEP `/session` endpoint
// wants it: consumer key/secret and access token/secret from the ABM/ASM server token.
// https://developer.apple.com/documentation/devicemanagement/authenticating-with-a-device-enrollment-program-dep-server
import { createHmac, randomBytes } from 'node:crypto'

export interface OAuth1Credentials {
  consumerKey: string
  consumerSecret: string
  accessToken: string
  accessSecret: string
}

/** RFC 3986 unreserved characters stay; everything else is %XX (RFC 5849 §3.6). */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/** scheme://host[:port]/path with scheme and host lower-cased and default ports dropped (§3.4.1.2). */
function baseStringUri(url: URL): string {
  const defaultPort = (url.protocol === 'http:' && url.port === '80') || (url.protocol === 'https:' && url.port === '443')
  return `${url.protocol.toLowerCase()}//${url.hostname.toLowerCase()}${url.port && !defaultPort ? `:${url.port}` : ''}${url.pathname}`
}

export interface SignOptions {
  timestamp?: number
  nonce?: string
  realm?: string
}

/** The Authorization header value for `method url` (query parameters are signed too). */
export function oauth1Authorization(method: string, url: string, credentials: OAuth1Credentials, options: SignOptions = {}): string {
  const target = new URL(url)
  const protocol: Array<[string, string]> = [
    ['oauth_consumer_key', credentials.consumerKey],
    ['oauth_token', credentials.accessToken],
    ['oauth_signature_method', 'HMAC-SHA1'],
    ['oauth_timestamp', String(options.timestamp ?? Math.floor(Date.now() / 1000))],
    ['oauth_nonce', options.nonce ?? randomBytes(16).toString('hex')],
    ['oauth_version', '1.0'],
  ]
  const parameters = [...protocol, ...[...target.searchParams.entries()]]
    .map(([key, value]) => [percentEncode(key), percentEncode(value)] as const)
    .sort(([ak, av], [bk, bv]) => (ak === bk ? (av < bv ? -1 : av > bv ? 1 : 0) : ak < bk ? -1 : 1))
    .map(([key, value]) => `${key}=${value}`)
    .join('&')
  const baseString = [method.toUpperCase(), percentEncode(baseStringUri(target)), percentEncode(parameters)].join('&')
  const key = `${percentEncode(credentials.consumerSecret)}&${percentEncode(credentials.accessSecret)}`
  const signature = createHmac('sha1', key).update(baseString).digest('base64')
  const fields = [
    ...(options.realm !== undefined ? [['realm', options.realm] as [string, string]] : []),
    ...protocol,
    ['oauth_signature', signature] as [string, string],
  ]
  return `OAuth ${fields.map(([name, value]) => `${name}="${percentEncode(value)}"`).join(', ')}`
}
