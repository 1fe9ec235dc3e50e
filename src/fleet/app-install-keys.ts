// The InstallApplication keys of a blueprint app, shared by convergence and app updates.
// https://developer.apple.com/documentation/devicemanagement/installapplicationcommand/command
import type { PlistDict } from '../mdm/plist.js'
import type { BlueprintApplication, BlueprintAppAttributes } from '../db/schema.js'

/** Attributes as the admin API names them (snake_case) and as InstallApplication's Attributes dictionary names them. */
const attributeKeys: Record<keyof BlueprintAppAttributes, string> = {
  vpn_uuid: 'VPNUUID',
  content_filter_uuid: 'ContentFilterUUID',
  dns_proxy_uuid: 'DNSProxyUUID',
  relay_uuid: 'RelayUUID',
  cellular_slice_uuid: 'CellularSliceUUID',
  associated_domains: 'AssociatedDomains',
  associated_domains_enable_direct_downloads: 'AssociatedDomainsEnableDirectDownloads',
  removable: 'Removable',
  tap_to_pay_screen_lock: 'TapToPayScreenLock',
  hideable: 'Hideable',
  lockable: 'Lockable',
}

function attributesDict(attributes: BlueprintAppAttributes): PlistDict {
  const dict: PlistDict = {}
  for (const [name, key] of Object.entries(attributeKeys) as Array<[keyof BlueprintAppAttributes, string]>) {
    const value = attributes[name]
    if (value !== undefined) dict[key] = Array.isArray(value) ? [...value] : value
  }
  return dict
}

/**
 * InstallApplication keys of a blueprint app: ManagementFlags 1 removes it with management, 4
 * keeps its data out of backups; Configuration is the managed app configuration; Attributes
 * the per-app VPN, associated domains and the like (iOS).
 */
export function installKeys(app: BlueprintApplication): PlistDict {
  const flags = (app.remove_on_unenroll !== false ? 1 : 0) | (app.prevent_backup === true ? 4 : 0)
  const attributes = app.attributes !== undefined ? attributesDict(app.attributes) : {}
  return {
    ...(app.manifest_url !== undefined ? { ManifestURL: app.manifest_url } : { iTunesStoreID: Number(app.vpp_asset ?? app.itunes_store_id) }),
    ...(flags !== 0 ? { ManagementFlags: flags } : {}),
    ...(app.configuration !== undefined ? { Configuration: app.configuration as PlistDict } : {}),
    ...(Object.keys(attributes).length > 0 ? { Attributes: attributes } : {}),
  }
}

/** Options.PurchaseMethod 1: install with the licence Apps and Books assigned to the device, no Apple Account. */
export const devicePurchase: PlistDict = { PurchaseMethod: 1 }
