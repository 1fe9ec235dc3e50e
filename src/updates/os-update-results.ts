// The MDM path's answers: OSUpdateStatus (and ScheduleOSUpdate's UpdateResults) kept as the
// device's `mdm.os-update-status` status item, which the compliance view reads as it reads the
// declarative path's softwareupdate.* items.
// https://developer.apple.com/documentation/devicemanagement/osupdatestatusresponse
import { plistToJson } from '../mdm/json.js'
import type { PlistDict } from '../mdm/plist.js'
import type { UpdatePolicyStore } from './update-policy-store.js'

export function osUpdateResults(deps: { store: Pick<UpdatePolicyStore, 'putStatusItem'>; now: () => Date }) {
  return async (event: { deviceId: string; enrollmentId: string; requestType: string; status: string; report: PlistDict }): Promise<undefined> => {
    if (event.deviceId !== event.enrollmentId || event.status !== 'Acknowledged') return undefined
    const key = event.requestType === 'OSUpdateStatus' ? 'OSUpdateStatus' : event.requestType === 'ScheduleOSUpdate' ? 'UpdateResults' : undefined
    if (!key) return undefined
    const list = event.report[key]
    if (Array.isArray(list)) await deps.store.putStatusItem(event.deviceId, 'mdm.os-update-status', plistToJson(list), deps.now())
    return undefined
  }
}
