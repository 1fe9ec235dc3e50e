// Admin API: a Shared iPad's users (the view, refresh, log out, delete) and its
// SharedDeviceConfiguration.
import { OrchardError } from '../errors.js'
import { scopeForRoles, type Principal, type TenantTree } from '../access/access-control.js'
import type { SharedIpadUsers as SharedIpadUsersJson } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { dispatchResultJson, dryRunJson } from '../queue/command-json.js'
import type { DispatchCaller, DispatchResult } from '../queue/dispatch.js'
import { refuse } from './devices-api.js'
import type { SharedIpadActions } from './shared-ipad-actions.js'
import type { SharedIpadUsers, SharedIpadUsersView } from './shared-ipad-users.js'

export interface SharedIpadHandlerDeps {
  users: Pick<SharedIpadUsers, 'view' | 'refresh'>
  actions: SharedIpadActions
  tenants: TenantTree
}

const iso = (date: Date | null | undefined) => (date ? date.toISOString() : null)

type UserChannelRow = SharedIpadUsersView['otherChannels'][number]

function channelJson(channel: UserChannelRow) {
  return {
    enrollment_id: channel.id,
    user_id: channel.user_id,
    user_short_name: channel.user_short_name,
    user_long_name: channel.user_long_name,
    enrolled: channel.enabled,
    last_seen_at: iso(channel.last_seen_at),
  }
}

export function sharedIpadUsersJson(view: SharedIpadUsersView): SharedIpadUsersJson {
  const state = view.state
  return {
    device_id: view.deviceId,
    shared_ipad: view.sharedIpad,
    shared_ipad_detail: view.notSharedIpadDetail,
    reported_at: iso(state?.users_reported_at),
    detail: state?.users_detail ?? null,
    refresh_pending: view.userListOpen,
    users: view.users.map((user) => ({
      user_name: user.user_name,
      full_name: user.full_name,
      user_guid: user.user_guid,
      is_logged_in: user.is_logged_in,
      has_data_to_sync: user.has_data_to_sync,
      data_quota: user.data_quota,
      data_used: user.data_used,
      mobile_account: user.mobile_account,
      reported_at: user.reported_at.toISOString(),
      channel: user.channel ? channelJson(user.channel) : null,
    })),
    other_channels: view.otherChannels.map(channelJson),
    shared_device_configuration:
      state?.configuration && state.configuration_status
        ? {
            settings: state.configuration,
            command_uuid: state.configuration_command_uuid,
            status: state.configuration_status,
            detail: state.configuration_detail,
            sent_at: iso(state.configuration_sent_at),
            answered_at: iso(state.configuration_answered_at),
          }
        : null,
  }
}

export function sharedIpadHandlers(deps: SharedIpadHandlerDeps): OperationHandlers {
  // A forced deletion is checked against the caller: its dry run's token (shared-ipad-actions.ts).
  async function callerOf(principal: Principal | undefined, confirmationToken: string | undefined): Promise<DispatchCaller> {
    if (!principal) throw new OrchardError('unauthorized', 'not authenticated')
    return {
      principalId: principal.id,
      ownerScope: await scopeForRoles(principal, ['owner'], deps.tenants),
      ...(confirmationToken !== undefined ? { confirmationToken } : {}),
    }
  }

  /** The answer for one device's command: its result, or the problem saying why it was not queued. */
  const queued = (result: DispatchResult, deviceId: string) => {
    if (result.targets[0]?.result !== 'queued') refuse(result, deviceId)
    return dispatchResultJson(result)
  }

  return {
    async listDeviceUsers(request) {
      return sharedIpadUsersJson(await deps.users.view(accessOf(request), request.params.device_id))
    },

    async refreshDeviceUsers(request, reply) {
      const deviceId = request.params.device_id
      return reply.code(201).send(queued(await deps.users.refresh(accessOf(request), deviceId, { push: request.query.push }), deviceId))
    },

    async logOutDeviceUser(request, reply) {
      const deviceId = request.params.device_id
      return reply.code(201).send(queued(await deps.actions.logOut(accessOf(request), deviceId, { push: request.query.push }), deviceId))
    },

    async deleteDeviceUser(request, reply) {
      const { device_id: deviceId, user_name: userName } = request.params
      const { query } = request
      const outcome = await deps.actions.deleteUser(accessOf(request), deviceId, {
        userName,
        force: query.force,
        dryRun: query.dry_run,
        push: query.push,
        caller: await callerOf(request.principal, query.confirmation_token),
      })
      if ('dryRun' in outcome) return reply.code(200).send(dryRunJson(outcome.dryRun))
      return reply.code(201).send(queued(outcome.queued, deviceId))
    },

    async setSharedDeviceConfiguration(request, reply) {
      const deviceId = request.params.device_id
      const result = await deps.actions.configure(accessOf(request), deviceId, request.body, { push: request.query.push })
      return reply.code(201).send(queued(result, deviceId))
    },
  }
}
