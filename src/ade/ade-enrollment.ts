// ADE enrollment, device side. During Setup Assistant the device POSTs its CMS-signed
// MachineInfo to the PreStage's `url`; a serial Apple assigned to one of our tokens gets the
// enrollment profile of its PreStage, or 403 com.apple.softwareupdate.required when the
// PreStage asks for a newer OS than the device runs (and the device says it can update).
// https://developer.apple.com/documentation/devicemanagement/machineinfo
// https://developer.apple.com/documentation/devicemanagement/errorcodesoftwareupdaterequired
//
// After enrollment, a device whose PreStage sets await_device_configured sits in Setup
// Assistant ("AwaitingConfiguration") until it gets DeviceConfigured: the PreStage's
// enrollment commands are queued first, DeviceConfigured last, so the FIFO queue delivers
// it once the device has worked through the rest.
import type { Logger } from 'pino'
import { MachineInfoError, verifyMachineInfo } from '../crypto/machine-info.js'
import { OrchardError } from '../errors.js'
import type { Channel } from '../mdm/identity.js'
import { decodeMachineInfo, type MachineInfo } from '../mdm/machine-info.js'
import { fullAccess } from '../model/access.js'
import type { DeviceStore } from './device-store.js'
import type { ProfileStore } from './profile-store.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import { compareVersions } from './profiles.js'
import type { EnrollmentProfile, EnrollmentService } from '../enrollment/enrollment-service.js'

export type AdeEnrollmentResult =
  { kind: 'profile'; profile: EnrollmentProfile; machineInfo: MachineInfo } | { kind: 'software_update_required'; osVersion: string; machineInfo: MachineInfo }

export interface AdeEnrollmentService {
  /** Answers a MachineInfo request body. */
  enroll(body: Buffer): Promise<AdeEnrollmentResult>
  /** The first TokenUpdate of a channel; queues the PreStage's steps and DeviceConfigured when the device awaits them. */
  enrolled(channel: Channel, facts: { awaitingConfiguration: boolean }): Promise<void>
}

export interface AdeEnrollmentDeps {
  store: Pick<DeviceStore, 'adeLookup'> & Pick<ProfileStore, 'profileForDevice'>
  enrollment: EnrollmentService
  dispatcher: CommandDispatcher
  /** Whether MachineInfo signers must chain to `machineInfoCas` (Apple's device CAs); the signature itself is always checked. */
  verifyMachineInfoChain: boolean
  machineInfoCas: readonly Buffer[]
  logger: Logger
  now?: () => Date
}

export function createAdeEnrollmentService(deps: AdeEnrollmentDeps): AdeEnrollmentService {
  const log = deps.logger.child({ service: 'ade-enrollment' })
  const now = deps.now ?? (() => new Date())

  return {
    async enroll(body) {
      if (deps.verifyMachineInfoChain && deps.machineInfoCas.length === 0) {
        throw new OrchardError(
          'not_ready',
          'ADE enrollment needs the CAs that sign MachineInfo: set ORCHARD_ADE_MACHINE_INFO_CA_FILES (Apple Root CA and Apple iPhone Device CA), or ORCHARD_ADE_VERIFY_MACHINE_INFO=false',
        )
      }
      let content: Buffer
      try {
        // No validity dates: Apple's device CA chain (RSA-1024 "Apple iPhone Device CA") expired
        // years ago and old devices keep their factory identities; the signatures still prove origin.
        content = verifyMachineInfo(body, { trustedCas: deps.verifyMachineInfoChain ? deps.machineInfoCas : null, now: now(), checkValidity: false }).content
      } catch (error) {
        if (error instanceof MachineInfoError) {
          if (error.reason === 'malformed') throw new OrchardError('bad_request', `MachineInfo: ${error.message}`)
          throw new OrchardError('forbidden', `MachineInfo: ${error.message}`)
        }
        throw error
      }
      const machineInfo = decodeMachineInfo(content)
      const fields = { serial_number: machineInfo.serialNumber, udid: machineInfo.udid, product: machineInfo.product, os_version: machineInfo.osVersion }
      const found = await deps.store.adeLookup(machineInfo.serialNumber)
      if (!found) {
        log.warn(fields, 'ADE enrollment refused: the serial number is not assigned to any of our ABM/ASM tokens')
        throw new OrchardError('forbidden', `serial number ${machineInfo.serialNumber} is not assigned to this MDM server in Apple Business/School Manager`)
      }
      if (!found.profile) {
        log.warn({ ...fields, dep_token_id: found.token.id }, 'ADE enrollment refused: no PreStage for this device')
        throw new OrchardError(
          'forbidden',
          `device ${machineInfo.serialNumber} has no PreStage profile (assign one, or set a default profile on token "${found.token.name}")`,
        )
      }
      const profile = found.profile
      const minimum = profile.minimum_os_version
      if (minimum && machineInfo.osVersion && compareVersions(machineInfo.osVersion, minimum) < 0) {
        if (machineInfo.canRequestSoftwareUpdate) {
          log.info({ ...fields, dep_profile_id: profile.id, minimum_os_version: minimum }, 'ADE enrollment: the device must update its OS first')
          return { kind: 'software_update_required', osVersion: minimum, machineInfo }
        }
        // Older devices cannot update from Setup Assistant: refusing would only strand them.
        log.warn(
          { ...fields, dep_profile_id: profile.id, minimum_os_version: minimum },
          'ADE enrollment below the PreStage minimum OS: the device cannot update during Setup Assistant, so it enrolls',
        )
      }
      const enrollmentProfile = await deps.enrollment.adeProfile({ depProfileId: profile.id, serialNumber: machineInfo.serialNumber })
      log.info({ ...fields, dep_profile_id: profile.id, dep_token_id: found.token.id }, 'ADE enrollment: profile handed out')
      return { kind: 'profile', profile: enrollmentProfile, machineInfo }
    },

    async enrolled(channel, facts) {
      if (channel.kind !== 'device' || !facts.awaitingConfiguration) return
      const fields = { device_id: channel.deviceId, enrollment_id: channel.enrollmentId }
      try {
        const profile = await deps.store.profileForDevice(channel.deviceId)
        const steps = profile?.enrollment_commands ?? []
        const targets = { enrollmentIds: [channel.enrollmentId] }
        for (const [index, json] of steps.entries()) {
          const result = await deps.dispatcher.dispatch(fullAccess, {
            targets,
            command: { kind: 'typed', json, pointer: `/enrollment_commands/${index}` },
            push: false,
          })
          const target = result.targets[0]
          if (target?.result !== 'queued')
            log.warn({ ...fields, request_type: result.requestType, result: target?.result }, 'a PreStage enrollment step was not queued')
        }
        // Even without a known PreStage a device waiting here must be released.
        const configured = await deps.dispatcher.dispatch(fullAccess, { targets, command: { kind: 'built', requestType: 'DeviceConfigured', keys: {} } })
        log.info(
          { ...fields, dep_profile_id: profile?.id ?? null, steps: steps.length, command_uuid: configured.commandUuid },
          'device awaits configuration: enrollment steps and DeviceConfigured queued',
        )
      } catch (error) {
        // The TokenUpdate itself succeeded; a failure here must not make the device retry it.
        log.error({ ...fields, err: error }, 'queueing the enrollment steps of an ADE device failed')
      }
    },
  }
}
