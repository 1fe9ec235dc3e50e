// The SharedDeviceConfiguration item of the Settings command (Shared iPad: quota, resident
// users, temporary sessions, timeouts...). Its keys, types and the iOS version each needs come
// from Apple's schema (the generated command catalogue); nothing here lists them again.
// https://developer.apple.com/documentation/devicemanagement/settingscommand/command/settings/shareddeviceconfiguration
import { commandCatalogue, type CommandKeySchema } from '../mdm/generated/command-catalogue.js'
import { validateTypedCommand, type FieldError } from '../mdm/command-validation.js'
import { isPlistDict, type PlistDict, type PlistValue } from '../mdm/plist.js'
import { compareVersions } from '../model/app-version.js'

export const sharedDeviceConfigurationItem = 'SharedDeviceConfiguration'

function itemSchema(): CommandKeySchema {
  const settings = commandCatalogue.Settings.keys.find((key) => key.key === 'Settings')
  const item = settings?.subkeys?.find((key) => key.key === sharedDeviceConfigurationItem)
  if (!item) throw new Error(`the command catalogue has no Settings item ${sharedDeviceConfigurationItem}`)
  return item
}

const schema = itemSchema()

/** The keys an admin sets (Apple's names; Item aside). */
export const sharedDeviceConfigurationKeys: readonly string[] = (schema.subkeys ?? []).map((key) => key.key).filter((key) => key !== 'Item')

/**
 * The Settings command's keys for these settings, checked against Apple's schema; errors
 * point into the settings object (e.g. '/QuotaSize').
 */
export function sharedDeviceConfigurationCommand(settings: Record<string, unknown>): { ok: true; keys: PlistDict } | { ok: false; errors: FieldError[] } {
  if (Object.hasOwn(settings, 'Item')) return { ok: false, errors: [{ pointer: '/Item', detail: 'must not be given: the item is SharedDeviceConfiguration' }] }
  const checked = validateTypedCommand({ request_type: 'Settings', Settings: [{ ...settings, Item: sharedDeviceConfigurationItem }] })
  if (!checked.ok) return { ok: false, errors: checked.errors.map((error) => ({ ...error, pointer: error.pointer.replace(/^\/Settings\/0/, '') })) }
  return { ok: true, keys: checked.keys }
}

/** The keys of `settings` (and the item itself) that need a newer iOS than `osVersion`, with the version each needs. */
export function keysTooNewFor(settings: Record<string, unknown>, osVersion: string | null): Array<{ key: string; introduced: string }> {
  if (!osVersion) return []
  const introducedIn = (key: CommandKeySchema) => {
    const ios = key.os?.iOS
    return ios && ios !== 'n/a' ? ios.introduced : undefined
  }
  const tooNew: Array<{ key: string; introduced: string }> = []
  const itemIntroduced = introducedIn(schema)
  if (itemIntroduced && compareVersions(osVersion, itemIntroduced) < 0) tooNew.push({ key: sharedDeviceConfigurationItem, introduced: itemIntroduced })
  for (const key of schema.subkeys ?? []) {
    const introduced = introducedIn(key)
    if (Object.hasOwn(settings, key.key) && introduced && compareVersions(osVersion, introduced) < 0) tooNew.push({ key: key.key, introduced })
  }
  return tooNew
}

/** An ErrorChain as one line (its first description), or ''. */
export function describeErrorChain(chain: PlistValue | undefined): string {
  const first = Array.isArray(chain) ? chain.find(isPlistDict) : undefined
  const text = first && [first['USEnglishDescription'], first['LocalizedDescription']].find((value) => typeof value === 'string')
  return typeof text === 'string' ? text.slice(0, 500) : ''
}

/**
 * Why the device refused the SharedDeviceConfiguration item of an Acknowledged Settings
 * command (each item answers its own Status), or null when it took it.
 */
export function settingsItemRefusal(report: PlistDict): string | null {
  const answered = report['Settings']
  const items = Array.isArray(answered) ? answered.filter(isPlistDict) : isPlistDict(answered) ? [answered] : []
  const failed = items.find((item) => item['Status'] === 'Error')
  if (!failed) return null
  const why = describeErrorChain(failed['ErrorChain'])
  return `the device refused the ${sharedDeviceConfigurationItem} item${why ? `: ${why}` : ''}`
}
