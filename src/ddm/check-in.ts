// The DeclarativeManagement check-in of a device channel (User Enrollment too) or a user channel,
// served from the channel's stored declaration set (computed on the first check-in when there is
// none): tokens, the manifest (declaration-items), each declaration with the channel's
// substitutions, and status reports (kept per channel).
// https://developer.apple.com/documentation/devicemanagement/declarativemanagement
import { OrchardError } from '../errors.js'
import { declarationItems, substitute, syncTimestamp, type DeviceSubstitutions, type SetDeclaration } from '../mdm/declarations.js'
import type { Channel } from '../mdm/identity.js'
import { parseStatusReport, type DeclarativeManagementHandler } from '../device/declarative-management.js'
import { emptyReply, jsonReply, type MdmReply } from '../device/mdm-types.js'
import type { DeclarationSetStore, StoredSet } from './declaration-set-store.js'
import { substitutionsOf, type DeclarationSets } from './declaration-sets.js'
import type { LegacyProfileUrls } from './legacy-profile-urls.js'
import type { StatusChannel } from './status-channel.js'
import { userSubstitutionsOf } from './user-channel-sets.js'
import type { UserChannelStore } from './user-channel-store.js'

const kinds = new Set(['activation', 'configuration', 'asset', 'management'])

const tokensReply = (set: Pick<StoredSet, 'token' | 'changedAt'>) =>
  jsonReply({ SyncTokens: { DeclarationsToken: set.token, Timestamp: syncTimestamp(set.changedAt) } })

export function createDeclarativeCheckIn(deps: {
  store: DeclarationSetStore
  userStore: Pick<UserChannelStore, 'set' | 'channel'>
  sets: DeclarationSets
  status: StatusChannel
  /** A user channel that has no set (not enrolled) keeps the empty set. */
  fallback: DeclarativeManagementHandler
  /** Where devices fetch the library profiles of legacy-profile declarations; null without secret keys. */
  profileUrls: LegacyProfileUrls | null
}): DeclarativeManagementHandler {
  const { store, userStore } = deps

  /** The channel's stored set (computed with its device's on the first check-in), or undefined. */
  async function setOf(channel: Channel): Promise<StoredSet | undefined> {
    const read = () => (channel.kind === 'device' ? store.set(channel.deviceId) : userStore.set(channel.enrollmentId))
    const stored = await read()
    if (stored) return stored
    await deps.sets.recompute({ deviceIds: [channel.deviceId] })
    return read()
  }

  /** The channel's values for placeholders: the device's, and on a user channel its user's. */
  async function substitutions(channel: Channel): Promise<DeviceSubstitutions | undefined> {
    const device = await store.device(channel.deviceId)
    if (!device) return undefined
    if (channel.kind === 'device') return substitutionsOf(device)
    const user = await userStore.channel(channel.enrollmentId)
    return user && userSubstitutionsOf(device, user)
  }

  async function declaration(channel: Channel, set: StoredSet, path: string): Promise<MdmReply> {
    const [kind, ...rest] = path.split('/')
    const identifier = rest.join('/')
    if (!kind || !kinds.has(kind) || !identifier) return { status: 404, body: null }
    const item = set.items.find((entry) => entry.identifier === identifier && entry.kind === kind)
    // 404: not in its set (any more), so the device removes it.
    if (!item) return { status: 404, body: null }
    let payload = item.payload
    if (!payload && item.declaration_id) {
      const stored = await store.payload(item.declaration_id)
      const values = stored && (await substitutions(channel))
      if (stored && values) payload = substitute(stored.payload, values)
      if (payload && stored?.profileId) {
        // The channel's own signed URL of the profile (without secret keys there is none to give).
        if (!deps.profileUrls) return { status: 404, body: null }
        payload = { ...payload, ProfileURL: deps.profileUrls.urlOf(channel.enrollmentId, item.declaration_id) }
      }
    }
    if (!payload) return { status: 404, body: null }
    return jsonReply({ Type: item.type, Identifier: item.identifier, ServerToken: item.server_token, Payload: payload })
  }

  return {
    async handle(channel: Channel, endpoint, data) {
      if (endpoint === 'tokens' && channel.kind === 'device') {
        const stored = await store.token(channel.deviceId)
        if (stored) return tokensReply(stored)
      }
      // A User Enrollment's device channel is the device (its EnrollmentID); each user channel has its own set.
      const set = endpoint === 'status' ? undefined : await setOf(channel)
      if (!set && endpoint !== 'status') {
        if (channel.kind === 'user') return deps.fallback.handle(channel, endpoint, data)
        throw new OrchardError('unknown_enrollment', 'this device has no declaration set (it is not enrolled)')
      }
      if (endpoint === 'tokens') return tokensReply(set!)
      if (endpoint === 'declaration-items') {
        const items: SetDeclaration[] = set!.items.map((item) => ({
          identifier: item.identifier,
          type: item.type,
          kind: item.kind,
          serverToken: item.server_token,
          declarationId: item.declaration_id,
        }))
        return jsonReply({ Declarations: declarationItems(items).manifest, DeclarationsToken: set!.token })
      }
      if (endpoint.startsWith('declaration/')) return declaration(channel, set!, endpoint.slice('declaration/'.length))
      if (endpoint === 'status') {
        if (channel.kind === 'device') await deps.status.receive(channel.deviceId, parseStatusReport(data))
        else if (await userStore.channel(channel.enrollmentId)) await deps.status.receiveUser(channel.enrollmentId, channel.deviceId, parseStatusReport(data))
        else return deps.fallback.handle(channel, endpoint, data)
        return emptyReply
      }
      throw new OrchardError('malformed_message', `DeclarativeManagement: unknown Endpoint ${JSON.stringify(endpoint.slice(0, 100))}`)
    },
  }
}
