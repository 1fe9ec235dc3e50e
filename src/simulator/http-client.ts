// The simulator's HTTP(S): node:http/https requests that trust a given CA (a local CA such as
// `npm run certs:dev` makes) and present the device identity as a TLS client certificate, as
// a device does; the MDM and SCEP transports over them, at the URLs the enrollment profile names.
import { request as httpRequest, Agent as HttpAgent } from 'node:http'
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https'
import type { ScepHttp } from './scep-client.js'
import type { MdmResponse, Transport } from './simulated-device.js'

export interface TlsTrust {
  /** Extra CA certificates (PEM) to trust; unset: the system's. */
  ca?: Buffer
}

export interface HttpResponse {
  status: number
  body: Buffer
  contentType: string | undefined
}

/** How long one request may take before it fails (a device gives up too). */
const requestTimeoutMs = 30_000

export interface SendOptions {
  method: 'GET' | 'PUT' | 'POST'
  headers?: Record<string, string>
  body?: Buffer
  agent?: HttpAgent | HttpsAgent
  trust?: TlsTrust
  signal?: AbortSignal
}

/**
 * One request; rejects on a network error, resolves with any HTTP status. A kept-alive connection
 * the server closed just as it was reused is retried once on a new one (the request never arrived).
 */
export async function send(url: URL, options: SendOptions): Promise<HttpResponse> {
  try {
    return await sendOnce(url, options)
  } catch (error) {
    if ((error as { reusedSocket?: boolean }).reusedSocket && (error as NodeJS.ErrnoException).code === 'ECONNRESET') return sendOnce(url, options)
    throw error
  }
}

function sendOnce(url: URL, options: SendOptions): Promise<HttpResponse> {
  const secure = url.protocol === 'https:'
  if (!secure && url.protocol !== 'http:') return Promise.reject(new Error(`${url.href}: not an http(s) URL`))
  const headers = { ...options.headers, ...(options.body ? { 'content-length': String(options.body.length) } : {}) }
  return new Promise((resolve, reject) => {
    const onResponse = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), contentType: res.headers['content-type'] }))
      res.on('error', reject)
    }
    const common = { method: options.method, headers, timeout: requestTimeoutMs, ...(options.signal ? { signal: options.signal } : {}) }
    const req = secure
      ? httpsRequest(url, { ...common, ...(options.agent ? { agent: options.agent } : {}), ...(options.trust?.ca ? { ca: options.trust.ca } : {}) }, onResponse)
      : httpRequest(url, { ...common, ...(options.agent ? { agent: options.agent } : {}) }, onResponse)
    req.on('timeout', () => req.destroy(new Error(`${options.method} ${url.href}: no answer within ${requestTimeoutMs / 1000} s`)))
    req.on('error', (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })))
    req.end(options.body)
  })
}

/** A kept-alive connection pool for one device: its identity as the TLS client certificate. */
export function deviceAgent(url: URL, trust: TlsTrust, identity: { certificatePem: string; privateKeyPem: string }): HttpAgent | HttpsAgent {
  if (url.protocol !== 'https:') return new HttpAgent({ keepAlive: true, maxSockets: 1 })
  return new HttpsAgent({
    keepAlive: true,
    maxSockets: 1,
    ...(trust.ca ? { ca: trust.ca } : {}),
    cert: identity.certificatePem,
    key: identity.privateKeyPem,
  })
}

/**
 * The MDM transport of a device: check-ins to the profile's CheckInURL, command reports to its
 * ServerURL (SimulatedDevice names them /mdm/checkin and /mdm/connect).
 */
export function mdmTransport(urls: { serverUrl: string; checkInUrl: string }, agent: HttpAgent | HttpsAgent, trust: TlsTrust, signal?: AbortSignal): Transport {
  const server = new URL(urls.serverUrl)
  const checkIn = new URL(urls.checkInUrl)
  return async (path, body, headers): Promise<MdmResponse> => {
    const url = path === '/mdm/checkin' ? checkIn : path === '/mdm/connect' ? server : new URL(path, server)
    return send(url, { method: 'PUT', headers, body, agent, trust, ...(signal ? { signal } : {}) })
  }
}

/** SCEP requests (`/path?operation=...`) to the origin of the profile's SCEP URL. */
export function scepTransport(scepUrl: string, trust: TlsTrust, signal?: AbortSignal): ScepHttp {
  const base = new URL(scepUrl)
  return (request) =>
    send(new URL(request.url, base), {
      method: request.method,
      ...(request.headers ? { headers: request.headers } : {}),
      ...(request.body ? { body: request.body } : {}),
      trust,
      ...(signal ? { signal } : {}),
    })
}
