// The statuses a command has for each of its targets (command_targets.status).
// https://developer.apple.com/documentation/devicemanagement/commands-and-queries
export const commandTargetStatuses = ['Pending', 'NotNow', 'Acknowledged', 'Error', 'CommandFormatError', 'Expired', 'Cancelled'] as const
export type CommandTargetStatus = (typeof commandTargetStatuses)[number]
