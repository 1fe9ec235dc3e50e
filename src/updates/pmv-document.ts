// Apple's software lookup document ("pmv", https://gdmf.apple.com/v2/pmv), read defensively:
// `PublicAssetSets` (the releases offered to anyone who updates) and `AssetSets` (those a device
// management service may push, older majors included), each `{ <platform>: [release, ...] }`
// with ProductVersion, Build, PostingDate, ExpirationDate (after it the release is no longer
// offered) and SupportedDevices (ProductName model identifiers; board IDs for Macs). Other lists
// (PublicRapidSecurityResponses, PublicBackgroundSecurityImprovements) are not releases to
// enforce and are left alone, as are platforms Orchard does not manage. A document whose shape is
// wrong is refused whole; a release entry that is wrong is skipped and counted.
// https://developer.apple.com/documentation/devicemanagement/deploying-software-updates-using-declarative-management
import type { OsAssetSet, OsPlatform } from '../db/schema-updates.js'

export type { OsAssetSet, OsPlatform } from '../db/schema-updates.js'

export interface OsRelease {
  platform: OsPlatform
  set: OsAssetSet
  productVersion: string
  build: string
  /** YYYY-MM-DD */
  postingDate: string
  expirationDate: string | null
  supportedDevices: string[]
}

export interface ParsedCatalogue {
  releases: OsRelease[]
  /** Release entries left out (each with a problem below, up to `problemLimit`). */
  skipped: number
  problems: Array<{ pointer: string; detail: string }>
  /** Platform keys of the document that Orchard does not manage. */
  ignoredPlatforms: string[]
}

/** The document cannot be used: nothing of it is stored. `pointer` is a JSON pointer into it. */
export class CatalogueFormatError extends Error {
  override readonly name = 'CatalogueFormatError'
  constructor(
    readonly pointer: string,
    message: string,
  ) {
    super(message)
  }
}

export const osPlatforms: readonly OsPlatform[] = ['iOS', 'macOS', 'visionOS', 'tvOS', 'watchOS']

/** Document keys by platform; visionOS was xrOS in early documents. iPadOS releases are iOS's. */
const platformKeys: Readonly<Record<string, OsPlatform>> = {
  iOS: 'iOS',
  macOS: 'macOS',
  visionOS: 'visionOS',
  xrOS: 'visionOS',
  tvOS: 'tvOS',
  watchOS: 'watchOS',
}
const sets: ReadonlyArray<{ key: string; set: OsAssetSet; required: boolean }> = [
  { key: 'PublicAssetSets', set: 'public', required: true },
  { key: 'AssetSets', set: 'asset', required: false },
]

/** Apple's document holds a few hundred entries; far more is not that document. */
const entryLimit = 50_000
const devicesPerEntryLimit = 5_000
const problemLimit = 20
const versionPattern = /^[0-9]{1,4}(\.[0-9]{1,4}){0,3}$/
const buildPattern = /^[0-9A-Za-z]{1,32}$/
/** A model identifier (iPad13,1), board ID (J413AP, Mac-…) or virtual machine ID (VMA2MACOSAP). */
const devicePattern = /^[\x21-\x7e]{1,100}$/

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const pointerPart = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1')

function isDate(value: unknown): value is string {
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return false
  const date = new Date(`${value}T00:00:00Z`)
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value)
}

/** One entry as a release, or why it is not one. */
function readEntry(entry: unknown, platform: OsPlatform, set: OsAssetSet): OsRelease | string {
  if (!isRecord(entry)) return 'not an object'
  const { ProductVersion: version, Build: build, PostingDate: posted, ExpirationDate: expires, SupportedDevices: devices } = entry
  if (typeof version !== 'string' || !versionPattern.test(version)) return `ProductVersion ${JSON.stringify(version)} is not a dotted version`
  if (typeof build !== 'string' || !buildPattern.test(build)) return `Build ${JSON.stringify(build)} is not a build number`
  if (!isDate(posted)) return `PostingDate ${JSON.stringify(posted)} is not a YYYY-MM-DD date`
  if (expires !== undefined && expires !== null && !isDate(expires)) return `ExpirationDate ${JSON.stringify(expires)} is not a YYYY-MM-DD date`
  const expirationDate = typeof expires === 'string' ? expires : null
  if (expirationDate !== null && expirationDate < posted) return `ExpirationDate ${expirationDate} is before PostingDate ${posted}`
  if (!Array.isArray(devices)) return 'SupportedDevices is not an array'
  if (devices.length > devicesPerEntryLimit) return `SupportedDevices has more than ${devicesPerEntryLimit} entries`
  const bad: unknown = (devices as unknown[]).find((device) => typeof device !== 'string' || !devicePattern.test(device))
  if (bad !== undefined) return `SupportedDevices holds ${JSON.stringify(bad)}, not a device identifier`
  return { platform, set, productVersion: version, build, postingDate: posted, expirationDate, supportedDevices: [...new Set(devices as string[])].sort() }
}

/** Reads the document; throws CatalogueFormatError when its shape is not Apple's or nothing in it is usable. */
export function parsePmvDocument(document: unknown): ParsedCatalogue {
  if (!isRecord(document)) throw new CatalogueFormatError('', 'the document is not a JSON object')
  const byKey = new Map<string, OsRelease>()
  const result: ParsedCatalogue = { releases: [], skipped: 0, problems: [], ignoredPlatforms: [] }
  const ignored = new Set<string>()
  let entries = 0
  for (const { key, set, required } of sets) {
    const platforms = document[key]
    if (platforms === undefined && !required) continue
    if (!isRecord(platforms)) throw new CatalogueFormatError(`/${key}`, `${key} is ${platforms === undefined ? 'missing' : 'not an object'}`)
    for (const [name, list] of Object.entries(platforms)) {
      const platform = Object.hasOwn(platformKeys, name) ? platformKeys[name] : undefined
      if (platform === undefined) {
        ignored.add(name)
        continue
      }
      const where = `/${key}/${pointerPart(name)}`
      if (!Array.isArray(list)) throw new CatalogueFormatError(where, `${key}.${name} is not an array of releases`)
      entries += list.length
      if (entries > entryLimit) throw new CatalogueFormatError(where, `more than ${entryLimit} release entries: not Apple's software lookup document`)
      for (const [index, entry] of list.entries()) {
        const release = readEntry(entry, platform, set)
        if (typeof release === 'string') {
          result.skipped++
          if (result.problems.length < problemLimit) result.problems.push({ pointer: `${where}/${index}`, detail: release })
          continue
        }
        // The same build listed twice (per device family): one release for all its devices.
        const id = `${platform}\u0000${set}\u0000${release.productVersion}\u0000${release.build}`
        const seen = byKey.get(id)
        if (!seen) byKey.set(id, release)
        else seen.supportedDevices = [...new Set([...seen.supportedDevices, ...release.supportedDevices])].sort().slice(0, devicesPerEntryLimit)
      }
    }
  }
  result.releases = [...byKey.values()]
  result.ignoredPlatforms = [...ignored].sort()
  if (result.releases.length === 0) {
    const first = result.problems[0]
    throw new CatalogueFormatError(
      first?.pointer ?? '/PublicAssetSets',
      first ? `no usable release (${result.skipped} skipped; the first: ${first.detail})` : 'no release of iOS, macOS, visionOS, tvOS or watchOS',
    )
  }
  return result
}
