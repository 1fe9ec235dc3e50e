// A fake of Apple's software lookup service (GET /v2/pmv on gdmf.apple.com) on loopback, over
// plain HTTP. It serves a document of the recorded shape (PublicAssetSets and AssetSets per
// platform, PublicRapidSecurityResponses beside them; SupportedDevices with model identifiers,
// board IDs for Macs), with dates around today so that expiry can be tested, and fails on demand:
// an HTTP status, a hang, an oversized or non-JSON answer.
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export type FakeCatalogueBehaviour =
  | { kind: 'document'; document?: unknown }
  | { kind: 'status'; status: number }
  /** Headers sent, then nothing (the client's timeout must fire). */
  | { kind: 'hang' }
  /** `bytes` of JSON-looking text; `declared`: with Content-Length, else chunked. */
  | { kind: 'oversized'; bytes: number; declared: boolean }
  | { kind: 'raw'; body: string; contentType?: string }

export interface FakeOsCatalogue {
  /** The document's URL (…/v2/pmv). */
  url: string
  behaviour: FakeCatalogueBehaviour
  /** Paths requested, in order. */
  requests: string[]
  close(): Promise<void>
}

/** YYYY-MM-DD, `days` from now. */
export function dayFromNow(days: number, now = new Date()): string {
  return new Date(now.getTime() + days * 86_400_000).toISOString().slice(0, 10)
}

const entry = (version: string, build: string, postedDaysAgo: number, expiresInDays: number | null, devices: string[]) => ({
  ProductVersion: version,
  Build: build,
  PostingDate: dayFromNow(-postedDaysAgo),
  ...(expiresInDays === null ? {} : { ExpirationDate: dayFromNow(expiresInDays) }),
  SupportedDevices: devices,
})

const newIpads = ['iPad13,1', 'iPad13,2', 'iPad13,16']
const newIphones = ['iPhone15,2', 'iPhone15,3', 'iPhone16,1']
const oldIphones = ['iPhone10,3', 'iPhone10,6']

/**
 * A document of the recorded shape: 17.5.1 for current iPhones and iPads (public and asset),
 * 17.4.1 (asset, expired), 16.7.8 for old iPhones, macOS 14.5 by board ID, visionOS 1.2
 * without an ExpirationDate, one malformed iOS entry, and a platform Orchard ignores.
 */
export function samplePmvDocument(): Record<string, unknown> {
  return {
    PublicAssetSets: {
      iOS: [
        entry('17.5.1', '21F90', 10, 90, [...newIpads, ...newIphones]),
        entry('16.7.8', '20H343', 17, 80, oldIphones),
        { ProductVersion: '17.5', Build: '21F79', PostingDate: 'yesterday', SupportedDevices: newIphones },
      ],
      macOS: [entry('14.5', '23F79', 17, 90, ['J413AP', 'J314sAP', 'Mac-827FAC58A8FDFA22', 'VMA2MACOSAP'])],
      visionOS: [entry('1.2', '21O589', 5, null, ['RealityDevice14,1'])],
      audioOS: [entry('17.5', '21L569', 10, 90, ['AudioAccessory6,1'])],
    },
    AssetSets: {
      iOS: [
        entry('17.5.1', '21F90', 10, 90, [...newIpads, ...newIphones]),
        entry('17.4.1', '21E236', 60, -5, [...newIpads, ...newIphones]),
        entry('16.7.8', '20H343', 17, 80, oldIphones),
      ],
      macOS: [entry('13.6.7', '22G720', 17, 90, ['J413AP', 'Mac-827FAC58A8FDFA22'])],
    },
    PublicRapidSecurityResponses: {
      iOS: [{ ProductVersion: '16.5.1', Build: '20F770750d', PostingDate: dayFromNow(-300), SupportedDevices: newIphones }],
    },
  }
}

export async function startFakeOsCatalogue(behaviour: FakeCatalogueBehaviour = { kind: 'document' }): Promise<FakeOsCatalogue> {
  const hanging = new Set<ServerResponse>()
  const fake: FakeOsCatalogue = {
    url: '',
    behaviour,
    requests: [],
    async close() {
      for (const res of hanging) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  const server = createServer((req, res) => {
    fake.requests.push(req.url ?? '')
    if (req.method !== 'GET' || req.url !== '/v2/pmv') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      return
    }
    const now = fake.behaviour
    switch (now.kind) {
      case 'document': {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(now.document ?? samplePmvDocument()))
        return
      }
      case 'status':
        res.writeHead(now.status, { 'content-type': 'text/html' }).end(`<html>${now.status}</html>`)
        return
      case 'hang':
        hanging.add(res)
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{"PublicAssetSets": ')
        return
      case 'oversized': {
        const chunk = Buffer.alloc(64 * 1024, ' ')
        res.writeHead(200, { 'content-type': 'application/json', ...(now.declared ? { 'content-length': String(now.bytes) } : {}) })
        let sent = 0
        const pump = () => {
          while (sent < now.bytes) {
            const piece = chunk.subarray(0, Math.min(chunk.length, now.bytes - sent))
            sent += piece.length
            if (!res.write(piece)) return void res.once('drain', pump)
          }
          res.end()
        }
        res.on('error', () => undefined)
        pump()
        return
      }
      case 'raw':
        res.writeHead(200, { 'content-type': now.contentType ?? 'application/json' }).end(now.body)
        return
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/pmv`
  return fake
}
