// Declarative device management, the pure part: declarations checked against Apple's schema
// (src/mdm/generated/declaration-schema.ts), their ServerToken, a device's declaration set
// with the activation and status subscriptions Orchard adds, and the status report read into
// status items. No I/O.
// https://developer.apple.com/documentation/devicemanagement/declarations
// https://developer.apple.com/documentation/devicemanagement/statusreport
import { createHash } from 'node:crypto'
import { declarationSchema, type DeclarationKind } from './generated/declaration-schema.js'
import { statusItemNames } from './generated/status-items.js'
import { declarationUserChannels, type UserChannelPlatform } from './generated/user-channel-support.js'
import { checkDictionary, Problems } from './key-schema-check.js'
import type { PlistDict } from './plist.js'

export type { DeclarationKind } from './generated/declaration-schema.js'
export type { UserChannelPlatform } from './generated/user-channel-support.js'

/** The kind of a declaration type of Apple's schema; undefined for a type it does not have. */
export function declarationKind(type: string): DeclarationKind | undefined {
  return declarationSchema[type]?.kind
}

/** Where a JSON value holds null (declarations have no nulls): its JSON pointer. */
function nullAt(value: unknown, pointer: string): string | undefined {
  if (value === null) return pointer || '/'
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nullAt(value[i], `${pointer}/${i}`)
      if (found) return found
    }
  } else if (typeof value === 'object') {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      const found = nullAt(item, `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`)
      if (found) return found
    }
  }
  return undefined
}

/** What is wrong with a declaration's payload for its type, as lines (`Payload.TargetOSVersion: is required`); empty when valid. */
export function validateDeclaration(type: string, payload: Record<string, unknown>): string[] {
  const schema = declarationSchema[type]
  if (!schema) return [`Type: ${JSON.stringify(type)} is not a declaration type of Apple's schema`]
  const nulls = nullAt(payload, '')
  if (nulls) return [`Payload${nulls.replace(/\//g, '.')}: null is not a declaration value`]
  const problems = new Problems({ json: true })
  checkDictionary(schema.keys, payload as PlistDict, 'Payload', `a key of ${type}`, problems)
  return problems.list
}

/** JSON with object keys sorted: equal content, equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

const hash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32)

/** A declaration's ServerToken: changes exactly when its type or payload changes. */
export function serverTokenOf(type: string, payload: Record<string, unknown>): string {
  return hash(canonicalJson({ type, payload }))
}

/**
 * Legacy-profile declarations (an MDM profile carried by DDM) may name a profile of Orchard's
 * library instead of a ProfileURL: Orchard fills in a URL of its own per device.
 * https://developer.apple.com/documentation/devicemanagement/legacyprofile
 */
export const legacyProfileTypes: ReadonlySet<string> = new Set(['com.apple.configuration.legacy', 'com.apple.configuration.legacy.interactive'])

/** The ServerToken of a declaration that carries a library profile: it changes with the profile too. */
export function effectiveServerToken(serverToken: string, profileSha256: string | null): string {
  return profileSha256 === null ? serverToken : hash(`${serverToken}:${profileSha256}`)
}

/** Per-device values a payload may name as `{{name}}` in its strings (user channels: the user's too). */
export interface DeviceSubstitutions {
  udid: string
  serial_number: string | null
  device_name: string | null
  tenant_id: string | null
  user_short_name?: string | null
  user_full_name?: string | null
  user_email?: string | null
}

const placeholder = /\{\{\s*(udid|serial_number|device_name|tenant_id|user_short_name|user_full_name|user_email)\s*\}\}/g
const userPlaceholder = /\{\{\s*(user_short_name|user_full_name|user_email)\s*\}\}/

/** Where a payload names a user's value (only user-channel declarations have a user): its JSON pointer. */
export function userPlaceholderAt(value: unknown, pointer = ''): string | undefined {
  if (typeof value === 'string') return userPlaceholder.test(value) ? pointer : undefined
  if (value === null || typeof value !== 'object') return undefined
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const found = userPlaceholderAt(item, `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`)
    if (found !== undefined) return found
  }
  return undefined
}

/** Which user channels a declaration type may be sent on (Apple's allowed scopes); none: the device channel only. */
export function userChannelsOfType(type: string): readonly UserChannelPlatform[] {
  return declarationUserChannels[type] ?? []
}

export function hasPlaceholders(payload: unknown): boolean {
  return canonicalJson(payload).search(placeholder) !== -1
}

/** The payload with the device's values in place of its placeholders (an unknown value becomes ''). */
export function substitute(payload: Record<string, unknown>, device: DeviceSubstitutions): Record<string, unknown> {
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return value.replace(placeholder, (_, name: keyof DeviceSubstitutions) => device[name] ?? '')
    if (Array.isArray(value)) return value.map(walk)
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, walk(item)]))
    return value
  }
  return walk(payload) as Record<string, unknown>
}

export interface SetDeclaration {
  identifier: string
  type: string
  kind: DeclarationKind
  serverToken: string
  declarationId: string | null
  payload?: Record<string, unknown>
}

/** Status items Orchard subscribes every DDM device to (a status-subscriptions configuration). */
export const subscribedStatusItems = [
  'device.identifier.serial-number',
  'device.identifier.udid',
  'device.model.family',
  'device.model.identifier',
  'device.model.marketing-name',
  'device.operating-system.build-version',
  'device.operating-system.family',
  'device.operating-system.marketing-name',
  'device.operating-system.supplemental.build-version',
  'device.operating-system.version',
  'device.power.battery-health',
  'management.client-capabilities',
  'management.declarations',
  'passcode.is-compliant',
  'passcode.is-present',
  'softwareupdate.failure-reason',
  'softwareupdate.install-reason',
  'softwareupdate.install-state',
  'softwareupdate.pending-version',
]

/** A User Enrollment keeps the device's identifiers private: these items are not asked of it. */
const notInUserEnrollment = new Set(['device.identifier.serial-number', 'device.identifier.udid'])

export const statusSubscriptionsIdentifier = 'orchard.status-subscriptions'
export const defaultActivationIdentifier = 'orchard.activation.default'
export const updateEnforcementIdentifier = 'orchard.softwareupdate.enforcement'

/** A declaration Orchard makes itself (no declarations row): its payload travels with the set. */
export function made(identifier: string, type: string, kind: DeclarationKind, payload: Record<string, unknown>): SetDeclaration {
  return { identifier, type, kind, serverToken: serverTokenOf(type, payload), declarationId: null, payload }
}

/**
 * A device's set: its declarations (one per identifier, the caller's order wins a clash), the
 * status subscriptions, and an activation of every configuration no activation of the set
 * names (a configuration applies only when an activation names it). `activationPayloads`:
 * the payloads of the set's activations, by identifier; `statusItems`: what the channel is
 * subscribed to (default: a device channel's).
 */
export function buildDeclarationSet(
  declarations: readonly SetDeclaration[],
  activationPayloads: ReadonlyMap<string, Record<string, unknown>>,
  device: { userEnrollment: boolean; statusItems?: readonly string[] } = { userEnrollment: false },
): SetDeclaration[] {
  const byIdentifier = new Map<string, SetDeclaration>()
  for (const declaration of declarations) if (!byIdentifier.has(declaration.identifier)) byIdentifier.set(declaration.identifier, declaration)
  byIdentifier.set(
    statusSubscriptionsIdentifier,
    made(statusSubscriptionsIdentifier, 'com.apple.configuration.management.status-subscriptions', 'configuration', {
      StatusItems: (device.statusItems ?? subscribedStatusItems)
        .filter((name) => !device.userEnrollment || !notInUserEnrollment.has(name))
        .map((name) => ({ Name: name })),
    }),
  )
  const named = new Set<string>()
  for (const declaration of byIdentifier.values()) {
    if (declaration.kind !== 'activation') continue
    const standard = activationPayloads.get(declaration.identifier)?.['StandardConfigurations']
    if (Array.isArray(standard)) for (const identifier of standard) if (typeof identifier === 'string') named.add(identifier)
  }
  const unnamed = [...byIdentifier.values()].filter((d) => d.kind === 'configuration' && !named.has(d.identifier)).map((d) => d.identifier)
  if (unnamed.length > 0)
    byIdentifier.set(
      defaultActivationIdentifier,
      made(defaultActivationIdentifier, 'com.apple.activation.simple', 'activation', { StandardConfigurations: unnamed.sort() }),
    )
  return [...byIdentifier.values()]
}

/** Apple's SyncTokens Timestamp: RFC 3339 without fractions; the same in the command and the tokens answer. */
export const syncTimestamp = (at: Date) => at.toISOString().replace(/\.\d{3}Z$/, 'Z')

/** The manifest of a set (declaration-items) and its DeclarationsToken. */
export function declarationItems(set: readonly SetDeclaration[]): {
  manifest: Record<string, Array<{ Identifier: string; ServerToken: string }>>
  token: string
} {
  const manifest: Record<string, Array<{ Identifier: string; ServerToken: string }>> = { Activations: [], Configurations: [], Assets: [], Management: [] }
  const group: Record<DeclarationKind, string> = { activation: 'Activations', configuration: 'Configurations', asset: 'Assets', management: 'Management' }
  for (const declaration of [...set].sort((a, b) => (a.identifier < b.identifier ? -1 : a.identifier > b.identifier ? 1 : 0)))
    manifest[group[declaration.kind]]!.push({ Identifier: declaration.identifier, ServerToken: declaration.serverToken })
  return { manifest, token: hash(canonicalJson(manifest)) }
}

// ---------------------------------------------------------------------------------------
// Status reports

export interface DeclarationStatus {
  identifier: string
  kind: DeclarationKind
  serverToken: string | null
  active: boolean
  valid: 'valid' | 'invalid' | 'unknown'
  reasons: unknown[] | null
  removed: boolean
}

/** A declaration's status in snake_case, as the database row and the webhook event carry it. */
export function declarationStatusJson(status: DeclarationStatus) {
  return {
    identifier: status.identifier,
    kind: status.kind,
    server_token: status.serverToken,
    active: status.active,
    valid: status.valid,
    reasons: status.reasons,
  }
}

export interface StatusReportContent {
  /** Status item name -> its value (only the items in this report). */
  items: Map<string, unknown>
  /** management.declarations, per declaration (kept apart from items). */
  declarations: DeclarationStatus[]
  /** The device sent everything it has (items it did not send are gone). */
  full: boolean
  errors: unknown[]
}

const declarationGroups: Record<string, DeclarationKind> = {
  activations: 'activation',
  configurations: 'configuration',
  assets: 'asset',
  management: 'management',
}

/**
 * Reads a status report: StatusItems is nested by the dots of each item's name
 * ({"device": {"operating-system": {"version": "17.1"}}} is device.operating-system.version);
 * the walk stops at the names Apple's schema knows (their values may be dictionaries).
 */
export function readStatusReport(report: Record<string, unknown>): StatusReportContent {
  const items = new Map<string, unknown>()
  const walk = (value: unknown, path: string) => {
    if (path && (statusItemNames.has(path) || value === null || typeof value !== 'object' || Array.isArray(value))) {
      items.set(path, value)
      return
    }
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) walk(item, path ? `${path}.${key}` : key)
  }
  const statusItems = report['StatusItems']
  if (statusItems !== null && typeof statusItems === 'object' && !Array.isArray(statusItems)) walk(statusItems, '')
  const declarations: DeclarationStatus[] = []
  const managed = items.get('management.declarations')
  if (managed !== null && typeof managed === 'object' && !Array.isArray(managed)) {
    items.delete('management.declarations')
    for (const [group, kind] of Object.entries(declarationGroups)) {
      const list = (managed as Record<string, unknown>)[group]
      if (!Array.isArray(list)) continue
      for (const entry of list) {
        if (entry === null || typeof entry !== 'object') continue
        const e = entry as Record<string, unknown>
        if (typeof e['identifier'] !== 'string') continue
        declarations.push({
          identifier: e['identifier'],
          kind,
          serverToken: typeof e['server-token'] === 'string' ? e['server-token'] : null,
          active: e['active'] === true,
          valid: e['valid'] === 'valid' || e['valid'] === 'invalid' ? e['valid'] : 'unknown',
          reasons: Array.isArray(e['reasons']) ? (e['reasons'] as unknown[]) : null,
          removed: e['_removed'] === true,
        })
      }
    }
  }
  const errors = Array.isArray(report['Errors']) ? (report['Errors'] as unknown[]) : []
  return { items, declarations, full: report['FullReport'] === true, errors }
}

/**
 * A list item's new value from a partial report: its objects replace the stored ones of the same
 * identifier, `_removed` ones go, the others stay.
 */
export function mergeStatusList(stored: unknown, incoming: unknown[]): unknown[] {
  const key = (entry: unknown) =>
    entry !== null && typeof entry === 'object' && typeof (entry as Record<string, unknown>)['identifier'] === 'string'
      ? ((entry as Record<string, unknown>)['identifier'] as string)
      : undefined
  if (!incoming.every((entry) => key(entry) !== undefined)) return incoming
  const merged = new Map<string, unknown>()
  if (Array.isArray(stored)) for (const entry of stored) if (key(entry) !== undefined) merged.set(key(entry)!, entry)
  for (const entry of incoming) {
    if ((entry as Record<string, unknown>)['_removed'] === true) merged.delete(key(entry)!)
    else merged.set(key(entry)!, entry)
  }
  return [...merged.values()]
}
