// A simulated Shared iPad: it keeps its users and answers UserList from them, LogOutUser
// (the logged-in user leaves), DeleteUser (refused while the user has data to sync unless
// ForceDeletion, as iPadOS does), Settings (records the SharedDeviceConfiguration item, or
// refuses it), and DeviceInformation (IsMultiUser). Other commands are acknowledged.
import type { PlistDict } from '../../src/mdm/plist.js'
import { isPlistDict } from '../../src/mdm/plist.js'
import { sharedIPadUserId } from '../../src/mdm/identity.js'
import { commandIn, plistText, type MdmResponse, type SimulatedDevice } from './simulated-device.js'

export interface SharedIpadUserState {
  name: string
  loggedIn: boolean
  hasDataToSync: boolean
  quota: number
  used: number
}

export interface SharedIpadState {
  multiUser: boolean
  users: SharedIpadUserState[]
  /** The SharedDeviceConfiguration items received, in order. */
  configurations: PlistDict[]
  /** Answer the next SharedDeviceConfiguration item with Status Error and this reason. */
  refuseConfiguration?: string
  /** Answer UserList with an Error and this reason. */
  failUserList?: string
}

export interface SeenCommand {
  requestType: string
  command: PlistDict
  status: string
}

export function sharedIpadState(users: Array<Partial<SharedIpadUserState> & { name: string }> = []): SharedIpadState {
  return {
    multiUser: true,
    users: users.map((user) => ({ loggedIn: false, hasDataToSync: false, quota: 2_000_000_000, used: 0, ...user })),
    configurations: [],
  }
}

const error = (description: string): [string, PlistDict] => [
  'Error',
  { ErrorChain: [{ ErrorDomain: 'MCMDMErrorDomain', ErrorCode: 12_000, USEnglishDescription: description }] },
]

function answerFor(requestType: string, command: PlistDict, state: SharedIpadState): [string, PlistDict] {
  switch (requestType) {
    case 'DeviceInformation':
      return ['Acknowledged', { QueryResponses: { IsMultiUser: state.multiUser, ProductName: 'iPad13,1', OSVersion: '18.1' } }]
    case 'UserList':
      if (state.failUserList) return error(state.failUserList)
      // iPadOS answers the UsersItem keys of iOS only (no FullName, UserGUID, MobileAccount).
      return [
        'Acknowledged',
        {
          Users: state.users.map((user) => ({
            UserName: user.name,
            IsLoggedIn: user.loggedIn,
            HasDataToSync: user.hasDataToSync,
            DataQuota: user.quota,
            DataUsed: user.used,
          })),
        },
      ]
    case 'LogOutUser':
      for (const user of state.users) user.loggedIn = false
      return ['Acknowledged', {}]
    case 'DeleteUser': {
      const user = state.users.find((candidate) => candidate.name === command['UserName'])
      if (!user) return error(`The user ${plistText(command['UserName'])} does not exist.`)
      if (user.hasDataToSync && command['ForceDeletion'] !== true) return error('The user has data to sync.')
      state.users = state.users.filter((candidate) => candidate !== user)
      return ['Acknowledged', {}]
    }
    case 'Settings': {
      const items = Array.isArray(command['Settings']) ? command['Settings'].filter(isPlistDict) : []
      const answers = items.map((item): PlistDict => {
        if (item['Item'] !== 'SharedDeviceConfiguration') return { Item: item['Item'] ?? '', Status: 'Acknowledged' }
        const refusal = state.refuseConfiguration
        state.refuseConfiguration = undefined
        if (refusal)
          return { Item: 'SharedDeviceConfiguration', Status: 'Error', ErrorChain: [{ ErrorDomain: 'MCMDMErrorDomain', USEnglishDescription: refusal }] }
        state.configurations.push(item)
        return { Item: 'SharedDeviceConfiguration', Status: 'Acknowledged' }
      })
      return ['Acknowledged', { Settings: answers }]
    }
    default:
      return ['Acknowledged', {}]
  }
}

/** Polls the device channel and answers every command queued for it; the commands it got, in order. */
export async function drainSharedIpad(device: SimulatedDevice, state: SharedIpadState, first?: MdmResponse): Promise<SeenCommand[]> {
  const seen: SeenCommand[] = []
  let response = first ?? (await device.idle())
  for (let i = 0; i < 50; i++) {
    const command = commandIn(response)
    if (!command) return seen
    const [status, keys] = answerFor(command.requestType, command.command, state)
    seen.push({ requestType: command.requestType, command: command.command, status })
    response = await device.answer(command.uuid, status, keys)
  }
  throw new Error(`the device kept getting commands: ${seen.map((c) => c.requestType).join(', ')}`)
}

/** A Managed Apple ID logs in: its user channel's TokenUpdate (UserID is the Shared iPad's fixed one). */
export async function userLogsIn(device: SimulatedDevice, userName: string): Promise<void> {
  const response = await device.checkin({
    MessageType: 'TokenUpdate',
    UserID: sharedIPadUserId,
    UserShortName: userName,
    Topic: device.topic,
    Token: Buffer.alloc(32, 7),
    PushMagic: `magic-${userName}`,
  })
  if (response.status !== 200) throw new Error(`user TokenUpdate failed: ${response.status} ${response.body.toString()}`)
}

/** The user channel's poll (Idle as that user). */
export function userIdle(device: SimulatedDevice, userName: string): Promise<MdmResponse> {
  return device.report('Idle', {}, undefined, { userId: sharedIPadUserId, userShortName: userName })
}
