// Shared iPad users: what UserList answers, kept per device and shown with the user channels
// Orchard knows for it. The list is asked for at enrollment (a device known to be a Shared
// iPad: DeviceInformation IsMultiUser, its PreStage's is_multi_user, or user channels),
// after every DeviceInformation answer saying IsMultiUser (so daily, with the inventory
// refresh), after LogOutUser and DeleteUser answers, and on demand. The actions are
// shared-ipad-actions.ts.
// https://developer.apple.com/documentation/devicemanagement/user-list-command
import type { Logger } from 'pino'
import type { DeviceEventOf } from '../device/events.js'
import { OrchardError } from '../errors.js'
import type { Channel } from '../mdm/identity.js'
import { plistToJson } from '../mdm/json.js'
import { platformFromProduct } from '../mdm/command-validation.js'
import { isPlistDict, type PlistDict, type PlistValue } from '../mdm/plist.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import type { CommandDispatcher, DispatchResult } from '../queue/dispatch.js'
import { backgroundInventoryPriority } from './inventory-refresh.js'
import { describeErrorChain, settingsItemRefusal } from './shared-device-configuration.js'
import type {
  NewSharedIpadUser,
  SharedIpadDeviceRow,
  SharedIpadFacts,
  SharedIpadUserRow,
  SharedIpadUserStore,
  UserChannelRow,
} from './shared-ipad-user-store.js'

export interface SharedIpadUser extends SharedIpadUserRow {
  /** The user's channel (UserAuthenticate / user TokenUpdate), when Orchard knows one. */
  channel: UserChannelRow | null
}

export interface SharedIpadUsersView {
  deviceId: string
  sharedIpad: boolean
  /** Why the device is not taken for a Shared iPad (null when it is). */
  notSharedIpadDetail: string | null
  users: SharedIpadUser[]
  /** User channels that match no reported user (logged in since, or deleted). */
  otherChannels: UserChannelRow[]
  state: SharedIpadDeviceRow | undefined
  userListOpen: boolean
}

export interface SharedIpadUsers {
  /** The `enrolled` device event: a Shared iPad is asked for its users; never throws. */
  deviceEnrolled(channel: Channel): Promise<void>
  /** The `command_result` device event: UserList answers, the answers that make it stale, Settings answers. */
  commandResult(event: DeviceEventOf<'command_result'>): Promise<'more' | void>
  view(scope: AccessScope, deviceId: string): Promise<SharedIpadUsersView>
  /** Queues UserList for the device (audited with the command); the caller refuses what was not queued. */
  refresh(scope: AccessScope, deviceId: string, options: { push: boolean }): Promise<DispatchResult>
  /** The device in scope, enrolled and a Shared iPad; else not_found, conflict or not_applicable (reason not_shared_ipad). */
  requireSharedIpad(scope: AccessScope, deviceId: string): Promise<SharedIpadFacts>
}

/** Whether the facts make the device a Shared iPad, or why not. */
export function sharedIpadVerdict(facts: SharedIpadFacts): { shared: true } | { shared: false; detail: string } {
  const platform = platformFromProduct(facts.productName, facts.model)
  if (platform !== undefined && platform !== 'iOS') return { shared: false, detail: `it is a ${platform} device; Shared iPad is an iPadOS mode` }
  if (facts.reportedMultiUser === true) return { shared: true }
  if (facts.reportedMultiUser === false) {
    return { shared: false, detail: 'its DeviceInformation says IsMultiUser false: it is not in Shared iPad mode (a PreStage with is_multi_user sets it up)' }
  }
  if (facts.preStageMultiUser) return { shared: true }
  // iOS has user channels only on Shared iPad.
  if (facts.userChannels > 0 && platform === 'iOS') return { shared: true }
  return {
    shared: false,
    detail:
      'it is not known to be a Shared iPad: no DeviceInformation answer with IsMultiUser yet (POST .../refresh-inventory asks for one) and its PreStage does not set is_multi_user',
  }
}

const text = (dict: PlistDict, key: string): string | null => {
  const value = dict[key]
  return typeof value === 'string' ? value : null
}
const flag = (dict: PlistDict, key: string): boolean | null => {
  const value = dict[key]
  return typeof value === 'boolean' ? value : null
}
const count = (dict: PlistDict, key: string): number | null => {
  const value = dict[key]
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value
  if (typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(value)
  return null
}

/** The users of a UserList answer (Apple's UsersItem), one per UserName; undefined when it holds no Users list. */
export function usersFromAnswer(report: PlistDict): NewSharedIpadUser[] | undefined {
  const list: PlistValue | undefined = report['Users']
  if (!Array.isArray(list)) return undefined
  const byName = new Map<string, NewSharedIpadUser>()
  for (const user of list.filter(isPlistDict)) {
    const name = text(user, 'UserName')
    if (!name || byName.has(name)) continue
    byName.set(name, {
      user_name: name,
      user_guid: text(user, 'UserGUID'),
      full_name: text(user, 'FullName'),
      is_logged_in: flag(user, 'IsLoggedIn'),
      has_data_to_sync: flag(user, 'HasDataToSync'),
      data_quota: count(user, 'DataQuota'),
      data_used: count(user, 'DataUsed'),
      mobile_account: flag(user, 'MobileAccount'),
      attributes: JSON.stringify(plistToJson(user)),
    })
  }
  return [...byName.values()]
}

/** A user channel belongs to a user when its short name is the user's name (Shared iPad) or its UserID the user's GUID. */
function channelOf(user: SharedIpadUserRow, channels: readonly UserChannelRow[]): UserChannelRow | undefined {
  const name = user.user_name.toLowerCase()
  return (
    channels.find((channel) => channel.user_short_name?.toLowerCase() === name) ??
    (user.user_guid ? channels.find((channel) => channel.user_id?.toLowerCase() === user.user_guid!.toLowerCase()) : undefined)
  )
}

export function createSharedIpadUsers(deps: {
  store: SharedIpadUserStore
  dispatcher: Pick<CommandDispatcher, 'dispatch' | 'pushOnly'>
  logger: Logger
}): SharedIpadUsers {
  const { store, dispatcher } = deps
  const log = deps.logger.child({ service: 'shared-ipad' })

  async function requireSharedIpad(scope: AccessScope, deviceId: string): Promise<SharedIpadFacts> {
    const facts = await store.facts(scope, deviceId)
    if (!facts) throw new OrchardError('not_found', `no device ${deviceId}`)
    if (!facts.enrolled || facts.lifecycleState === 'retired' || facts.lifecycleState === 'wiped') {
      throw new OrchardError('conflict', `device ${deviceId} is not enrolled (it checked out, was wiped or retired, or has not finished enrolling)`)
    }
    const verdict = sharedIpadVerdict(facts)
    if (!verdict.shared)
      throw new OrchardError('not_applicable', `device ${deviceId} is not a Shared iPad: ${verdict.detail}`, { details: { reason: 'not_shared_ipad' } })
    return facts
  }

  /** UserList for the device channel, unless one is open; 'more' when queued (it goes out in this exchange). */
  async function askAgain(deviceId: string, reason: string, priority: number): Promise<'more' | void> {
    if (await store.userListOpen(deviceId)) return
    const result = await dispatcher.dispatch(fullAccess, {
      targets: { enrollmentIds: [deviceId] },
      command: { kind: 'built', requestType: 'UserList', keys: {} },
      priority,
      push: false,
    })
    const target = result.targets[0]
    if (target?.result !== 'queued') {
      log.info({ device_id: deviceId, result: target?.result, reason }, 'UserList not queued')
      return
    }
    log.debug({ device_id: deviceId, command_uuid: result.commandUuid, reason }, 'UserList queued')
    return 'more'
  }

  async function usersReported(event: DeviceEventOf<'command_result'>): Promise<void> {
    const fields = { device_id: event.deviceId, command_uuid: event.commandUuid }
    if (event.status !== 'Acknowledged') {
      const why = describeErrorChain(event.report['ErrorChain'])
      await store.userListFailed(event.deviceId, event.commandUuid, `UserList answered ${event.status}${why ? `: ${why}` : ''}`)
      log.info({ ...fields, status: event.status }, 'UserList failed')
      return
    }
    const users = usersFromAnswer(event.report)
    if (!users) {
      await store.userListFailed(event.deviceId, event.commandUuid, 'the UserList answer held no Users list')
      return
    }
    await store.replaceUsers(event.deviceId, event.commandUuid, users)
    log.info({ ...fields, users: users.length }, 'Shared iPad users reported')
  }

  async function configurationAnswered(event: DeviceEventOf<'command_result'>): Promise<void> {
    const refusal = event.status === 'Acknowledged' ? settingsItemRefusal(event.report) : null
    const why =
      event.status === 'Acknowledged' ? refusal : `Settings answered ${event.status}: ${describeErrorChain(event.report['ErrorChain']) || 'no reason given'}`
    const mine = await store.configurationAnswered(event.deviceId, event.commandUuid, why ? 'error' : 'acknowledged', why)
    if (mine) log.info({ device_id: event.deviceId, command_uuid: event.commandUuid, refused: why }, 'SharedDeviceConfiguration answered')
  }

  return {
    requireSharedIpad,

    async deviceEnrolled(channel) {
      if (channel.kind !== 'device') return
      try {
        const facts = await store.facts(fullAccess, channel.deviceId)
        if (!facts || !sharedIpadVerdict(facts).shared) return
        // Pushed, as the other enrollment work; after what blueprints and ADE queue (lower priority).
        if ((await askAgain(channel.deviceId, 'enrolled', backgroundInventoryPriority)) === 'more') await dispatcher.pushOnly(fullAccess, [channel.deviceId])
      } catch (error) {
        log.error({ device_id: channel.deviceId, err: error }, 'asking a Shared iPad for its users failed')
      }
    },

    async commandResult(event) {
      // Users are the device channel's answers; a user channel's are about one user.
      if (event.deviceId !== event.enrollmentId) return
      switch (event.requestType) {
        case 'UserList':
          return usersReported(event)
        case 'LogOutUser':
        case 'DeleteUser': {
          // Even after an Error: the device may have changed something. Only a Shared iPad (a typed DeleteUser may go to a Mac).
          if (event.status === 'CommandFormatError') return
          const facts = await store.facts(fullAccess, event.deviceId)
          return facts && sharedIpadVerdict(facts).shared ? askAgain(event.deviceId, event.requestType, 0) : undefined
        }
        case 'DeviceInformation': {
          const responses = event.report['QueryResponses']
          if (event.status !== 'Acknowledged' || !isPlistDict(responses) || responses['IsMultiUser'] !== true) return
          return askAgain(event.deviceId, 'DeviceInformation says IsMultiUser', backgroundInventoryPriority)
        }
        case 'Settings':
          return configurationAnswered(event)
      }
    },

    async view(scope, deviceId) {
      const facts = await store.facts(scope, deviceId)
      if (!facts) throw new OrchardError('not_found', `no device ${deviceId}`)
      const verdict = sharedIpadVerdict(facts)
      const { state, users, channels, userListOpen } = await store.view(deviceId)
      const matched = new Set<string>()
      const withChannels = users.map((user) => {
        const channel = channelOf(user, channels) ?? null
        if (channel) matched.add(channel.id)
        return { ...user, channel }
      })
      return {
        deviceId,
        sharedIpad: verdict.shared,
        notSharedIpadDetail: verdict.shared ? null : verdict.detail,
        users: withChannels,
        otherChannels: channels.filter((channel) => !matched.has(channel.id)),
        state,
        userListOpen,
      }
    },

    async refresh(scope, deviceId, options) {
      await requireSharedIpad(scope, deviceId)
      return dispatcher.dispatch(scope, {
        targets: { enrollmentIds: [deviceId] },
        command: { kind: 'built', requestType: 'UserList', keys: {} },
        push: options.push,
      })
    },
  }
}
