// The statuses a command has for each of its targets (command_targets.status).
// https://developer.apple.com/documentation/devicemanagement/commands-and-queries

/** Still queued for the device: not answered yet (Pending), or refused for now (NotNow). */
export const openCommandStatuses = ['Pending', 'NotNow'] as const
/** Answered, expired or cancelled: history. */
export const finishedCommandStatuses = ['Acknowledged', 'Error', 'CommandFormatError', 'Expired', 'Cancelled'] as const

export const commandTargetStatuses = [...openCommandStatuses, ...finishedCommandStatuses] as const
export type CommandTargetStatus = (typeof commandTargetStatuses)[number]
export type OpenCommandStatus = (typeof openCommandStatuses)[number]

export function isOpenCommandStatus(status: string | null | undefined): status is OpenCommandStatus {
  return (openCommandStatuses as readonly (string | null | undefined)[]).includes(status)
}
