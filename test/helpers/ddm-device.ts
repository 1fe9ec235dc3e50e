// A simulated device with declarative device management, over the real MDM endpoints: it keeps a
// declaration store, syncs as a device does (tokens, then declaration-items when the
// DeclarationsToken changed, then each declaration whose ServerToken changed, dropping those no
// longer listed) and sends status reports with only what changed, removed declarations marked
// `_removed`, as Apple's devices do. Given a user, it is that user channel of the device (a macOS
// user: UserID; a Shared iPad user: the fixed UserID and UserShortName), with its own declaration
// store, check-ins and command queue.
import type { PlistDict } from '../../src/mdm/plist.js'
import { commandIn, type MdmResponse, type SimulatedDevice } from './simulated-device.js'

/** A user channel's identity keys. */
export interface DdmUser {
  userId?: string
  userShortName?: string
  userLongName?: string
}

interface StoredDeclaration {
  kind: string
  type: string
  serverToken: string
  payload: Record<string, unknown>
}

const groups: Record<string, string> = { Activations: 'activation', Configurations: 'configuration', Assets: 'asset', Management: 'management' }
const statusGroups: Record<string, string> = { activation: 'activations', configuration: 'configurations', asset: 'assets', management: 'management' }

export class DdmDevice {
  /** identifier -> what the device holds. */
  readonly declarations = new Map<string, StoredDeclaration>()
  declarationsToken: string | null = null
  /** Declarations the device finds invalid, with the reason it reports. */
  readonly invalid = new Map<string, string>()
  /** Status items the device reports (dotted name -> value); `reportStatus` sends the changed ones. */
  readonly statusItems = new Map<string, unknown>()
  private readonly reported = new Map<string, string>()
  private readonly reportedDeclarations = new Map<string, { text: string; kind: string }>()
  /** Every DeclarativeManagement check-in endpoint it called, in order. */
  readonly calls: string[] = []
  /** Keys it answers other commands with, by RequestType (e.g. OSUpdateStatus). */
  readonly answers: Record<string, PlistDict> = {}
  /** DeclarativeManagement commands it got: their SyncTokens. */
  readonly commands: Array<{ DeclarationsToken?: string; Timestamp?: string }> = []

  constructor(
    readonly device: SimulatedDevice,
    readonly user?: DdmUser,
  ) {}

  private get userKeys(): PlistDict {
    const keys: PlistDict = {}
    if (this.user?.userId) keys['UserID'] = this.user.userId
    if (this.user?.userShortName) keys['UserShortName'] = this.user.userShortName
    if (this.user?.userLongName) keys['UserLongName'] = this.user.userLongName
    return keys
  }

  /** The user channel's TokenUpdate (its enrollment); throws unless 200. */
  async enrollUser(): Promise<void> {
    const response = await this.device.checkin({
      MessageType: 'TokenUpdate',
      ...this.userKeys,
      Topic: this.device.topic,
      Token: Buffer.alloc(32, 9),
      PushMagic: `magic-${this.user?.userShortName ?? this.user?.userId ?? 'user'}`,
    })
    if (response.status !== 200) throw new Error(`user TokenUpdate failed: ${response.status} ${response.body.toString()}`)
  }

  private poll(): Promise<MdmResponse> {
    return this.user ? this.device.report('Idle', {}, undefined, this.user) : this.device.idle()
  }

  private answer(uuid: string, status: string, keys: PlistDict): Promise<MdmResponse> {
    return this.user ? this.device.report(status, { CommandUUID: uuid, ...keys }, undefined, this.user) : this.device.answer(uuid, status, keys)
  }

  get udid(): string {
    return this.device.udid
  }

  private async checkin(endpoint: string, data?: unknown): Promise<{ status: number; json: any }> {
    this.calls.push(endpoint)
    const response = await this.device.checkin({
      ...this.userKeys,
      MessageType: 'DeclarativeManagement',
      Endpoint: endpoint,
      ...(data !== undefined ? { Data: Buffer.from(JSON.stringify(data)) } : {}),
    })
    const text = response.body.toString('utf8')
    return { status: response.status, json: text ? JSON.parse(text) : undefined }
  }

  /** A DDM sync: what changed is fetched, what left is dropped; then a status report. Returns whether anything changed. */
  async sync(): Promise<boolean> {
    const tokens = await this.checkin('tokens')
    if (tokens.status !== 200) throw new Error(`tokens: ${tokens.status}`)
    const token = tokens.json.SyncTokens.DeclarationsToken as string
    if (token === this.declarationsToken) return false
    const items = await this.checkin('declaration-items')
    if (items.status !== 200) throw new Error(`declaration-items: ${items.status}`)
    const listed = new Set<string>()
    for (const [group, kind] of Object.entries(groups)) {
      for (const { Identifier, ServerToken } of items.json.Declarations[group] as Array<{ Identifier: string; ServerToken: string }>) {
        listed.add(Identifier)
        if (this.declarations.get(Identifier)?.serverToken === ServerToken) continue
        const declaration = await this.checkin(`declaration/${kind}/${Identifier}`)
        if (declaration.status !== 200) throw new Error(`declaration/${kind}/${Identifier}: ${declaration.status}`)
        const body = declaration.json as { Type: string; Identifier: string; ServerToken: string; Payload: Record<string, unknown> }
        if (body.ServerToken !== ServerToken) throw new Error(`${Identifier}: the manifest says ${ServerToken}, the declaration ${body.ServerToken}`)
        this.declarations.set(Identifier, { kind, type: body.Type, serverToken: body.ServerToken, payload: body.Payload })
      }
    }
    for (const identifier of [...this.declarations.keys()]) if (!listed.has(identifier)) this.declarations.delete(identifier)
    this.declarationsToken = items.json.DeclarationsToken as string
    await this.reportStatus()
    return true
  }

  /** Whether a configuration is active: an activation of the store names it. */
  active(identifier: string): boolean {
    for (const declaration of this.declarations.values()) {
      if (declaration.kind !== 'activation') continue
      const standard = declaration.payload['StandardConfigurations']
      if (Array.isArray(standard) && standard.includes(identifier)) return !this.invalid.has(identifier)
    }
    return false
  }

  /** Sends the status items and declaration states that changed since the last report (`full`: everything). */
  async reportStatus(full = false): Promise<number> {
    const declarations: Record<string, Array<Record<string, unknown>>> = { activations: [], configurations: [], assets: [], management: [] }
    const seen = new Set<string>()
    for (const [identifier, declaration] of this.declarations) {
      seen.add(identifier)
      const invalid = this.invalid.get(identifier)
      const active = declaration.kind === 'configuration' ? this.active(identifier) : invalid === undefined
      const entry = {
        identifier,
        active,
        valid: invalid === undefined ? 'valid' : 'invalid',
        'server-token': declaration.serverToken,
        ...(invalid !== undefined ? { reasons: [{ code: 'Error.ConfigurationCannotBeApplied', description: invalid }] } : {}),
      }
      const text = JSON.stringify(entry)
      if (!full && this.reportedDeclarations.get(identifier)?.text === text) continue
      this.reportedDeclarations.set(identifier, { text, kind: declaration.kind })
      declarations[statusGroups[declaration.kind]!]!.push(entry)
    }
    for (const [identifier, { kind }] of [...this.reportedDeclarations]) {
      if (seen.has(identifier)) continue
      this.reportedDeclarations.delete(identifier)
      declarations[statusGroups[kind]!]!.push({ identifier, _removed: true })
    }
    const items: Record<string, unknown> = {}
    let count = 0
    const put = (name: string, value: unknown) => {
      const parts = name.split('.')
      let node = items
      for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>
      node[parts.at(-1)!] = value
      count++
    }
    for (const [name, value] of this.statusItems) {
      const text = JSON.stringify(value)
      if (!full && this.reported.get(name) === text) continue
      this.reported.set(name, text)
      put(name, value)
    }
    const changedDeclarations = Object.values(declarations).some((list) => list.length > 0)
    if (changedDeclarations) put('management.declarations', declarations)
    if (count === 0) return 0
    const response = await this.checkin('status', { StatusItems: items, Errors: [], ...(full ? { FullReport: true } : {}) })
    if (response.status !== 200) throw new Error(`status: ${response.status}`)
    return count
  }

  /** Runs the MDM queue (the user channel's, for a user): a DeclarativeManagement command is acknowledged and followed by a DDM sync. */
  async runQueue(): Promise<string[]> {
    const ran: string[] = []
    let next = commandIn(await this.poll())
    while (next) {
      ran.push(next.requestType)
      let sync = false
      if (next.requestType === 'DeclarativeManagement') {
        const data = next.command['Data']
        this.commands.push(Buffer.isBuffer(data) ? (JSON.parse(data.toString('utf8')) as { SyncTokens: Record<string, string> }).SyncTokens : {})
        sync = true
      }
      next = commandIn(await this.answer(next.uuid, 'Acknowledged', this.answers[next.requestType] ?? {}))
      if (sync) await this.sync()
    }
    return ran
  }
}
