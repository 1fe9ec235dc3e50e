// A simulated device that keeps the profiles and apps the server installed on it and answers
// ProfileList/InstalledApplicationList truthfully, over the real MDM endpoints; the commands it
// does not model itself go to `answerOther` (the simulator's device-answers.ts), else are
// acknowledged.
import * as pkijs from 'pkijs'
import { decodePlist, isPlistDict, type PlistDict } from '../mdm/plist.js'
import { commandIn, plistText, type SimulatedDevice } from './simulated-device.js'

export const signedDataOid = '1.2.840.113549.1.7.2'

/** A device's answer to a command: its Status and response keys. */
export interface CommandAnswer {
  status: string
  keys: PlistDict
}

/** The attached content of a CMS SignedData (undefined when it is not one). */
export function cmsContent(payload: Buffer): Buffer | undefined {
  if (payload[0] !== 0x30) return undefined
  const contentInfo = pkijs.ContentInfo.fromBER(payload)
  if (contentInfo.contentType !== signedDataOid) return undefined
  const signedData = new pkijs.SignedData({ schema: contentInfo.content })
  return Buffer.from(signedData.encapContentInfo.eContent!.getValue())
}

/**
 * A device that remembers what was installed on it and tells the truth when asked
 * (it keeps every command it got, opens signed profiles as a device does, and can refuse
 * profiles, apps and removals, each with the ErrorChain a device gives).
 */
export class FaithfulDevice {
  readonly profiles = new Map<string, string>()
  readonly apps = new Set<string>()
  /** The version each app reports (ShortVersion); none: it reports no version. */
  readonly appVersions = new Map<string, string>()
  /** The version an InstallApplication of a source (store id or manifest URL) installs. */
  readonly storeVersions: Record<string, string> = {}
  /** Sources (store id or manifest URL) whose install takes a while: acknowledged with State Installing, done on finishInstalls(). */
  readonly slowApps = new Set<string>()
  /** Sources whose install the user declines once it is underway (ManagedApplicationList: UserRejected). */
  readonly declinedApps = new Set<string>()
  /** Installs underway: bundle id -> source. */
  readonly installing = new Map<string, string>()
  readonly failing = new Set<string>()
  readonly failingApps = new Set<string>()
  /** Identifiers (profiles or bundle ids) whose RemoveProfile/RemoveApplication the device refuses. */
  readonly refusing = new Set<string>()
  readonly ran: string[] = []
  readonly commands: Array<{ requestType: string; command: PlistDict }> = []
  /** Called with each command before the device answers it (to look at the server meanwhile). */
  beforeAnswer: ((requestType: string, command: PlistDict) => Promise<void>) | undefined
  /** Answers the commands this class does not model (undefined, or no answer: Acknowledged). */
  answerOther: ((requestType: string, command: PlistDict) => CommandAnswer | undefined) | undefined
  /** Called with each answer once it is sent. */
  onAnswer: ((requestType: string, command: PlistDict, answer: CommandAnswer) => void) | undefined
  constructor(
    readonly device: SimulatedDevice,
    private readonly bundleOfManifest: Record<string, string> = {},
  ) {}

  get udid(): string {
    return this.device.udid
  }

  /** Runs the queue to the end, answering each command as a real device would. */
  async sync(): Promise<void> {
    let next = commandIn(await this.device.idle())
    while (next) {
      // A convergence that never ends is a bug, not a slow test.
      if (this.ran.length > 200) throw new Error(`the queue never empties: ${this.ran.slice(-10).join(', ')}`)
      const { uuid, requestType, command } = next
      this.commands.push({ requestType, command })
      this.ran.push(`${requestType}${command['Identifier'] ? ` ${plistText(command['Identifier'])}` : ''}`)
      let status = 'Acknowledged'
      let keys: PlistDict = {}
      if (requestType === 'ProfileList') {
        keys = {
          ProfileList: [...this.profiles].map(([identifier, payloadUuid]) => ({
            PayloadIdentifier: identifier,
            PayloadUUID: payloadUuid,
            IsManaged: true,
            PayloadContent: [],
          })),
        }
      } else if (requestType === 'InstalledApplicationList') {
        keys = {
          InstalledApplicationList: [...this.apps].map((identifier) => {
            const version = this.appVersions.get(identifier)
            return { Identifier: identifier, Name: identifier, IsManaged: true, ...(version !== undefined ? { ShortVersion: version, Version: version } : {}) }
          }),
        }
      } else if (requestType === 'ManagedApplicationList') {
        const asked = Array.isArray(command['Identifiers']) ? (command['Identifiers'] as string[]) : [...this.apps, ...this.installing.keys()]
        const list: PlistDict = {}
        for (const identifier of asked) {
          const source = this.installing.get(identifier)
          const status = this.apps.has(identifier)
            ? 'Managed'
            : source === undefined
              ? undefined
              : this.declinedApps.has(source)
                ? 'UserRejected'
                : 'Installing'
          if (status) list[identifier] = { Status: status, ManagementFlags: 1, HasConfiguration: false, HasFeedback: false, IsValidated: true }
        }
        keys = { ManagedApplicationList: list }
      } else if (requestType === 'InstallProfile') {
        const payload = command['Payload'] as Buffer
        const profile = decodePlist(cmsContent(payload) ?? payload)
        if (!isPlistDict(profile)) throw new Error('not a profile')
        const identifier = plistText(profile['PayloadIdentifier'])
        this.ran[this.ran.length - 1] += ` ${identifier}`
        if (this.failing.has(identifier)) {
          status = 'Error'
          keys = {
            ErrorChain: [
              {
                ErrorCode: 4001,
                ErrorDomain: 'MCProfileErrorDomain',
                LocalizedDescription: 'The Wi-Fi password is wrong.',
                USEnglishDescription: 'The Wi-Fi password is wrong.',
              },
            ],
          }
        } else this.profiles.set(identifier, plistText(profile['PayloadUUID']))
      } else if ((requestType === 'RemoveProfile' || requestType === 'RemoveApplication') && this.refusing.has(plistText(command['Identifier']))) {
        status = 'Error'
        keys = {
          ErrorChain: [
            {
              ErrorCode: 4002,
              ErrorDomain: 'MCProfileErrorDomain',
              LocalizedDescription: 'Removal is not allowed.',
              USEnglishDescription: 'Removal is not allowed.',
            },
          ],
        }
      } else if (requestType === 'RemoveProfile') {
        this.profiles.delete(plistText(command['Identifier']))
      } else if (requestType === 'InstallApplication') {
        const source = plistText(command['ManifestURL'] ?? command['iTunesStoreID'])
        this.ran[this.ran.length - 1] += ` ${source}`
        if (this.failingApps.has(source)) {
          status = 'Error'
          keys = {
            ErrorChain: [
              {
                ErrorCode: 12064,
                ErrorDomain: 'MCMDMErrorDomain',
                LocalizedDescription: 'The app is not available in this storefront.',
                USEnglishDescription: 'The app is not available in this storefront.',
              },
            ],
          }
        } else if (this.slowApps.has(source)) {
          this.installing.set(this.bundleOfManifest[source]!, source)
          keys = { Identifier: this.bundleOfManifest[source]!, State: 'Installing' }
        } else {
          const bundleId = this.bundleOfManifest[source]!
          this.apps.add(bundleId)
          const version = this.storeVersions[source]
          if (version !== undefined) this.appVersions.set(bundleId, version)
        }
      } else if (requestType === 'RemoveApplication') {
        this.apps.delete(plistText(command['Identifier']))
      } else {
        const answer = this.answerOther?.(requestType, command)
        if (answer) ({ status, keys } = answer)
      }
      await this.beforeAnswer?.(requestType, command)
      next = commandIn(await this.device.answer(uuid, status, keys))
      this.onAnswer?.(requestType, command, { status, keys })
    }
  }

  /** The installs underway finish (declined ones stay declined). */
  finishInstalls(): void {
    for (const [bundleId, source] of this.installing) {
      if (this.declinedApps.has(source)) continue
      this.apps.add(bundleId)
      const version = this.storeVersions[source]
      if (version !== undefined) this.appVersions.set(bundleId, version)
      this.installing.delete(bundleId)
    }
  }

  /** Forgets what it ran so far (the device keeps its profiles and apps). */
  reset(): void {
    this.ran.length = 0
    this.commands.length = 0
  }
}
