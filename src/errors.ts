// One error type for the whole server. Each surface maps it to its own wire format in
// one place: the admin API to RFC 9457 problem+json (src/http/problem.ts), the MDM
// surface to the statuses Apple's protocol defines.

/** Stable codes: clients and tests match on these, never on messages. */
export const errorCodes = {
  bad_request: 400,
  invalid_json: 400,
  validation_failed: 400,
  /** A pagination cursor this server did not issue (tampered, or for another sort). */
  invalid_cursor: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  /** A destructive command to several devices without the confirmation token of a dry run. */
  confirmation_required: 428,
  /** A confirmation token that is expired, for another command or caller, or for targets that changed. */
  confirmation_invalid: 409,
  /** The resource existed but cannot be used any more (a revoked or used-up enrollment link). */
  gone: 410,
  /** A valid command that a target cannot run (platform, supervision, enrollment type). */
  not_applicable: 422,
  payload_too_large: 413,
  unsupported_media_type: 415,
  /** An outside service (Apple's ABM/ASM API) refused or failed a request made for the caller. */
  upstream_failed: 502,
  database_unavailable: 503,
  not_ready: 503,
  shutting_down: 503,
  internal: 500,
  // MDM surface (device-facing). Never 401 there: a device that gets 401 unenrolls itself.
  malformed_message: 400,
  identity_missing: 400,
  identity_rejected: 400,
  unknown_enrollment: 400,
  user_declined: 410,
  /** Authenticate claiming an active enrollment bound to another certificate, on no accepted ground. */
  reenrollment_refused: 403,
  unrecognized_device: 403,
  /**
   * The one 401 of the MDM surface: a retired device whose OS predates the 403 above (iOS 17,
   * macOS 14) is told to unenroll the way its OS knows.
   */
  device_retired: 401,
  /**
   * The other 401 of the MDM surface, for account-driven enrollments only (Apple allows it
   * there): the person must sign in again; `details.www_authenticate` is the challenge.
   */
  account_authentication_required: 401,
} as const

export type ErrorCode = keyof typeof errorCodes

export interface ErrorOptions {
  cause?: unknown
  /** Extra members for the problem document, e.g. `{ errors: [...] }` for validation. */
  details?: Record<string, unknown>
}

export class OrchardError extends Error {
  override readonly name = 'OrchardError'
  readonly code: ErrorCode
  readonly status: number
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = errorCodes[code]
    this.details = options.details
  }
}

/** A request field an admin got wrong: validation_failed naming it, with its JSON pointer in `errors`. */
export function invalidField(pointer: string, detail: string): OrchardError {
  return new OrchardError('validation_failed', `${pointer.replace(/^\//, '') || 'body'}: ${detail}`, { details: { errors: [{ pointer, detail }] } })
}
