// Fetches Apple's software lookup document (ORCHARD_OS_CATALOGUE_URL, default
// https://gdmf.apple.com/v2/pmv; no authentication) or a mirror of it at any http(s) URL.
// Bounded: one timeout for the whole exchange, a size limit read as the bytes arrive.
//
// TLS: gdmf.apple.com presents a chain from Apple's own CA (Apple Root CA), which Node's bundled
// roots may not hold. Orchard does not switch certificate checks off: an operator adds the root
// (https://www.apple.com/certificateauthority/) to Node's trust with NODE_EXTRA_CA_CERTS=<pem
// file> in the server's environment (read once, at process start), or imports the document
// instead (POST /api/v1/os-releases/import).
import { createHash } from 'node:crypto'
import { readLimited } from '../read-limited.js'

/** The document could not be fetched; the message says what happened, for the status and a 502. */
export class CatalogueFetchError extends Error {
  override readonly name = 'CatalogueFetchError'
}

export interface CatalogueDocument {
  document: unknown
  bytes: number
  sha256: string
}

export interface CatalogueClientOptions {
  /** The whole exchange, headers and body (default 30 s). */
  timeoutMs?: number
  /** Apple's document is a few hundred KiB (default 8 MiB). */
  maxBytes?: number
  userAgent?: string
  fetch?: typeof fetch
}

export const catalogueMaxBytes = 8 * 1024 * 1024

/** Node's codes for a chain it cannot verify: Apple's root is missing from its trust. */
const untrustedChainCodes = new Set([
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
])

function describe(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'timed out'
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined
  const code = cause && 'code' in cause ? cause.code : undefined
  if (typeof code === 'string' && untrustedChainCodes.has(code))
    return `the server's certificate chain is not trusted (${code}): add Apple's root CA with NODE_EXTRA_CA_CERTS, or import the document`
  const message = error instanceof Error ? error.message : String(error)
  return cause && cause.message !== message ? `${message} (${cause.message})` : message
}

/** GET `url`: its JSON, size and SHA-256. Throws CatalogueFetchError. */
export async function fetchCatalogueDocument(url: string, options: CatalogueClientOptions = {}): Promise<CatalogueDocument> {
  const timeoutMs = options.timeoutMs ?? 30_000
  const fetchFn = options.fetch ?? fetch
  const signal = AbortSignal.timeout(timeoutMs)
  const fail = (what: string, cause?: unknown) => new CatalogueFetchError(`GET ${url}: ${what}`, cause === undefined ? undefined : { cause })
  let body: Buffer
  try {
    const response = await fetchFn(url, {
      headers: { accept: 'application/json', ...(options.userAgent ? { 'user-agent': options.userAgent } : {}) },
      signal,
    })
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined)
      throw fail(`answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`)
    }
    const limit = options.maxBytes ?? catalogueMaxBytes
    body = await readLimited(
      response,
      limit,
      (declared) => new CatalogueFetchError(`the answer is larger than ${limit} bytes${declared !== undefined ? ` (Content-Length ${declared})` : ''}`),
    )
  } catch (error) {
    if (error instanceof CatalogueFetchError) throw error.message.startsWith('GET ') ? error : fail(error.message, error)
    throw fail(signal.aborted ? `no complete answer within ${timeoutMs} ms` : describe(error), error)
  }
  try {
    return { document: JSON.parse(body.toString('utf8')) as unknown, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') }
  } catch (error) {
    throw fail(`the answer is not JSON (${error instanceof Error ? error.message : String(error)})`, error)
  }
}
