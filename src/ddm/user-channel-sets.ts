// A user channel's declaration set: the user-channel declarations (channel 'user') of the
// blueprints that reach its device, those Apple's schema allows on this kind of user channel
// (a macOS user's, a Shared iPad user's), the activation Orchard adds, and a status
// subscription to the status items that user channel reports. Each user's substitutions
// (short name, full name, email) make its own content and ServerToken.
// https://developer.apple.com/documentation/devicemanagement/declarativemanagement
import type { DeclarationSetItem } from '../db/schema-ddm.js'
import { userChannelStatusItems } from '../mdm/generated/user-channel-support.js'
import {
  buildDeclarationSet,
  declarationItems,
  hasPlaceholders,
  serverTokenOf,
  substitute,
  userChannelsOfType,
  type DeviceSubstitutions,
  type SetDeclaration,
} from '../mdm/declarations.js'
import type { DeclarationForSet, DeviceDeclarations } from './declaration-set-store.js'
import type { UserChannelFacts } from './user-channel-store.js'

/**
 * The user's email: a Shared iPad user signs in with a Managed Apple ID (its short name); a
 * macOS user is taken to be the person the device belongs to (the device's user_email).
 */
export function userEmailOf(channel: Pick<UserChannelFacts, 'platform' | 'userShortName' | 'deviceUserEmail'>): string | null {
  if (channel.platform === 'sharedIPad') return channel.userShortName?.includes('@') ? channel.userShortName : null
  return channel.deviceUserEmail
}

/** The values a user channel's declarations put in place of their placeholders: its device's and its user's. */
export function userSubstitutionsOf(
  device: Pick<DeviceDeclarations, 'deviceId' | 'serialNumber' | 'deviceName' | 'tenantId'>,
  channel: Pick<UserChannelFacts, 'platform' | 'userShortName' | 'userLongName' | 'deviceUserEmail'>,
): DeviceSubstitutions {
  return {
    udid: device.deviceId,
    serial_number: device.serialNumber,
    device_name: device.deviceName,
    tenant_id: device.tenantId,
    user_short_name: channel.userShortName,
    user_full_name: channel.userLongName,
    user_email: userEmailOf(channel),
  }
}

export function setOfUserChannel(
  channel: UserChannelFacts,
  device: DeviceDeclarations,
  declarations: ReadonlyMap<string, DeclarationForSet>,
): { token: string; items: DeclarationSetItem[] } {
  const wanted: SetDeclaration[] = []
  const activations = new Map<string, Record<string, unknown>>()
  const values = userSubstitutionsOf(device, channel)
  for (const id of device.declarationIds) {
    const declaration = declarations.get(id)
    if (!declaration || declaration.channel !== 'user' || !userChannelsOfType(declaration.type).includes(channel.platform)) continue
    wanted.push({
      identifier: declaration.identifier,
      type: declaration.type,
      kind: declaration.kind,
      declarationId: id,
      serverToken: hasPlaceholders(declaration.payload) ? serverTokenOf(declaration.type, substitute(declaration.payload, values)) : declaration.serverToken,
    })
    if (declaration.kind === 'activation' && !activations.has(declaration.identifier)) activations.set(declaration.identifier, declaration.payload)
  }
  const set = buildDeclarationSet(wanted, activations, { userEnrollment: device.userEnrollment, statusItems: userChannelStatusItems[channel.platform] })
  return {
    token: declarationItems(set).token,
    items: set.map((d) => ({
      identifier: d.identifier,
      type: d.type,
      kind: d.kind,
      server_token: d.serverToken,
      declaration_id: d.declarationId,
      ...(d.declarationId === null && d.payload ? { payload: d.payload } : {}),
    })),
  }
}
