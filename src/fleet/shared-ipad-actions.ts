// What an admin does to a Shared iPad's users: log out the current user (LogOutUser), delete a
// user (DeleteUser), and set the SharedDeviceConfiguration (Settings). Each goes to one
// device that must be a Shared iPad (shared-ipad-users.ts says which are).
//
// Deleting is destructive (queue/destructive-guard.ts). A user whose data has synced loses
// nothing that is not in iCloud: like an erase of one device, one call does it. A forced
// deletion throws away data that exists nowhere else, so it takes the two steps the guard asks
// of commands to several devices: a dry run answers a confirmation token bound to the caller,
// this device and this command, and the real call must carry it.
// https://developer.apple.com/documentation/devicemanagement/delete-user-command
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { buildCommand } from '../mdm/command.js'
import type { AccessScope } from '../model/access.js'
import type { CommandAdmin } from '../queue/command-admin.js'
import { commandDigest, type ConfirmationTokens } from '../queue/destructive-guard.js'
import type { CommandDispatcher, DispatchCaller, DispatchResult, DryRunResult } from '../queue/dispatch.js'
import { keysTooNewFor, sharedDeviceConfigurationCommand } from './shared-device-configuration.js'
import type { SharedIpadUserStore } from './shared-ipad-user-store.js'
import type { SharedIpadUsers } from './shared-ipad-users.js'

export interface DeleteUserInput {
  userName: string
  /** ForceDeletion: delete even with data not synced yet (that data is lost). */
  force: boolean
  dryRun: boolean
  push: boolean
  caller: DispatchCaller
}

export type DeleteUserOutcome = { dryRun: DryRunResult } | { queued: DispatchResult }

export interface SharedIpadActions {
  logOut(scope: AccessScope, deviceId: string, options: { push: boolean }): Promise<DispatchResult>
  /** Refused (conflict) while the user has data to sync, unless forced; a forced one needs a dry run's token. */
  deleteUser(scope: AccessScope, deviceId: string, input: DeleteUserInput): Promise<DeleteUserOutcome>
  /** Settings with the SharedDeviceConfiguration item; the keys left out keep their value on the device. */
  configure(scope: AccessScope, deviceId: string, settings: Record<string, unknown>, options: { push: boolean }): Promise<DispatchResult>
}

export interface SharedIpadActionsDeps {
  users: Pick<SharedIpadUsers, 'requireSharedIpad'>
  store: Pick<SharedIpadUserStore, 'user' | 'configurationSent'>
  dispatcher: Pick<CommandDispatcher, 'dispatch' | 'dryRun' | 'pushOnly'>
  /** The queue's confirmation tokens (the dry run issues them through the dispatcher). */
  tokens: Pick<ConfirmationTokens, 'check'>
  recordDryRun: CommandAdmin['recordDryRun']
  logger: Logger
}

export function createSharedIpadActions(deps: SharedIpadActionsDeps): SharedIpadActions {
  const { users, store, dispatcher } = deps
  const log = deps.logger.child({ service: 'shared-ipad' })
  const one = (deviceId: string) => ({ enrollmentIds: [deviceId] })

  /** Refuses a plain deletion of a user the last UserList does not show as safe to delete. */
  async function checkSynced(deviceId: string, userName: string): Promise<void> {
    const { reportedAt, user } = await store.user(deviceId, userName)
    if (reportedAt === null) {
      throw new OrchardError(
        'conflict',
        `the users of device ${deviceId} are not known yet: ask for them (POST /api/v1/devices/${deviceId}/users/refresh), then delete once they are shown`,
      )
    }
    const asOf = `users as the device reported them at ${reportedAt.toISOString()}`
    if (!user) throw new OrchardError('not_found', `device ${deviceId} has no user ${JSON.stringify(userName)} (${asOf})`)
    if (user.has_data_to_sync === true) {
      throw new OrchardError(
        'conflict',
        `user ${JSON.stringify(userName)} has data that has not synced yet (${asOf}): wait until it has (the iPad online, the user logged out), or delete with force=true, which loses that data`,
        { details: { reason: 'has_data_to_sync' } },
      )
    }
  }

  return {
    async logOut(scope, deviceId, options) {
      await users.requireSharedIpad(scope, deviceId)
      return dispatcher.dispatch(scope, { targets: one(deviceId), command: { kind: 'built', requestType: 'LogOutUser', keys: {} }, push: options.push })
    },

    async deleteUser(scope, deviceId, input) {
      await users.requireSharedIpad(scope, deviceId)
      if (!input.force) await checkSynced(deviceId, input.userName)
      const keys = { UserName: input.userName, ForceDeletion: input.force }
      const request = {
        targets: one(deviceId),
        command: { kind: 'built' as const, requestType: 'DeleteUser', keys },
        push: input.push,
        caller: input.caller,
      }
      if (input.dryRun) {
        const result = await dispatcher.dryRun(scope, request)
        await deps.recordDryRun(scope, result)
        return { dryRun: { ...result, confirmationRequired: input.force } }
      }
      if (input.force) {
        const token = input.caller.confirmationToken
        if (token === undefined) {
          throw new OrchardError(
            'confirmation_required',
            `deleting ${JSON.stringify(input.userName)} with force=true loses the data it has not synced: run it with dry_run=true first, then again with the confirmation_token the dry run answered`,
          )
        }
        const check = deps.tokens.check(token, {
          principalId: input.caller.principalId,
          requestType: 'DeleteUser',
          commandDigest: commandDigest(buildCommand('DeleteUser', keys)),
          targetIds: [deviceId],
        })
        if (!check.ok) throw new OrchardError('confirmation_invalid', check.detail, { details: { problem: check.problem } })
      }
      const result = await dispatcher.dispatch(scope, request)
      if (result.targets[0]?.result === 'queued') {
        log.warn(
          { device_id: deviceId, command_uuid: result.commandUuid, force: input.force, principal_id: input.caller.principalId },
          'Shared iPad user deletion queued',
        )
      }
      return { queued: result }
    },

    async configure(scope, deviceId, settings, options) {
      const facts = await users.requireSharedIpad(scope, deviceId)
      const built = sharedDeviceConfigurationCommand(settings)
      if (!built.ok) {
        const first = built.errors[0]!
        throw new OrchardError('validation_failed', `${first.pointer.replace(/^\//, '') || 'body'}: ${first.detail}`, { details: { errors: built.errors } })
      }
      const tooNew = keysTooNewFor(settings, facts.osVersion)
      if (tooNew.length > 0) {
        const needs = tooNew.map((key) => `${key.key} needs iOS ${key.introduced}`).join(', ')
        throw new OrchardError('not_applicable', `device ${deviceId} runs iOS ${facts.osVersion}: ${needs}`, { details: { reason: 'os_too_old' } })
      }
      // Recorded before the push, so that an answer cannot come before the record it completes.
      const result = await dispatcher.dispatch(scope, {
        targets: one(deviceId),
        command: { kind: 'built', requestType: 'Settings', keys: built.keys },
        push: false,
      })
      if (result.targets[0]?.result !== 'queued') return result
      await store.configurationSent(deviceId, settings, result.commandUuid)
      return { ...result, push: options.push ? await dispatcher.pushOnly(scope, [deviceId]) : null }
    },
  }
}
