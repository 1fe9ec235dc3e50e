// Self-test of the fake software lookup service (test/helpers/fake-os-catalogue.ts), with raw
// fetch: the document's shape, and each failure it can be told to give.
import t from 'tap'
import { parsePmvDocument } from '../../src/updates/pmv-document.js'
import { samplePmvDocument, startFakeOsCatalogue } from '../helpers/fake-os-catalogue.js'

t.test('serves a document of the recorded shape at /v2/pmv, and fails on demand', async (t) => {
  const fake = await startFakeOsCatalogue()
  t.teardown(() => fake.close())
  t.match(fake.url, /^http:\/\/127\.0\.0\.1:\d+\/v2\/pmv$/)

  const answer = await fetch(fake.url)
  t.equal(answer.status, 200)
  t.match(answer.headers.get('content-type'), /application\/json/)
  const document = (await answer.json()) as Record<string, any>
  t.same(Object.keys(document).sort(), ['AssetSets', 'PublicAssetSets', 'PublicRapidSecurityResponses'])
  t.same(Object.keys(document['PublicAssetSets']).sort(), ['audioOS', 'iOS', 'macOS', 'visionOS'])
  for (const entry of document['PublicAssetSets'].iOS.slice(0, 2)) {
    t.match(entry, { ProductVersion: /^\d+(\.\d+)*$/, Build: /^\w+$/, PostingDate: /^\d{4}-\d{2}-\d{2}$/, ExpirationDate: /^\d{4}-\d{2}-\d{2}$/ })
    t.ok(Array.isArray(entry.SupportedDevices) && entry.SupportedDevices.length > 0)
  }
  t.notOk('ExpirationDate' in document['PublicAssetSets'].visionOS[0], 'an entry without ExpirationDate')
  t.same(document, JSON.parse(JSON.stringify(samplePmvDocument())), 'the sample document')
  t.match(parsePmvDocument(document), { skipped: 1, ignoredPlatforms: ['audioOS'] })
  t.equal(parsePmvDocument(document).releases.length, 8)

  t.equal((await fetch(fake.url.replace('/v2/pmv', '/v1/pmv'))).status, 404, 'only /v2/pmv')

  fake.behaviour = { kind: 'status', status: 503 }
  t.equal((await fetch(fake.url)).status, 503)

  fake.behaviour = { kind: 'oversized', bytes: 200_000, declared: true }
  const big = await fetch(fake.url)
  t.equal(big.headers.get('content-length'), '200000')
  t.equal((await big.arrayBuffer()).byteLength, 200_000)
  fake.behaviour = { kind: 'oversized', bytes: 150_000, declared: false }
  const chunked = await fetch(fake.url)
  t.equal(chunked.headers.get('content-length'), null)
  t.equal((await chunked.arrayBuffer()).byteLength, 150_000)

  fake.behaviour = { kind: 'raw', body: 'not json', contentType: 'text/plain' }
  t.equal(await (await fetch(fake.url)).text(), 'not json')

  fake.behaviour = { kind: 'hang' }
  const hung = await fetch(fake.url, { signal: AbortSignal.timeout(200) })
  t.equal(hung.status, 200, 'headers arrive')
  await t.rejects(hung.text(), 'the body never ends')

  fake.behaviour = { kind: 'document', document: { PublicAssetSets: {} } }
  t.same(await (await fetch(fake.url)).json(), { PublicAssetSets: {} }, 'any document')
  t.equal(fake.requests.filter((path) => path === '/v2/pmv').length, 7)
})
