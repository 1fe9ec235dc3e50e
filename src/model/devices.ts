// What a device is to the organisation: its kind (personal devices are never erased, located
// or put in Lost Mode), its lifecycle state, and the lifecycle actions taken on it.
export const deviceKinds = ['personal', 'work', 'function'] as const
export type DeviceKind = (typeof deviceKinds)[number]
export const lifecycleStates = ['active', 'lost', 'wipe_pending', 'wiped', 'retired'] as const
export type LifecycleState = (typeof lifecycleStates)[number]
export const lifecycleActionKinds = ['lost', 'found', 'locate', 'erase', 'selective_wipe', 'reinstall', 'retire', 'kind_changed', 'offboard'] as const
export type LifecycleActionKind = (typeof lifecycleActionKinds)[number]
