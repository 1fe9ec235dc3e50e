// RFC 9457 problem details: the one place where errors become HTTP responses for the
// admin API and the operational endpoints. (The MDM surface maps errors its own way:
// Apple's protocol gives statuses meanings, and a device that gets 401 unenrolls.)
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { ErrorObject } from 'ajv'
import { errorCodes, OrchardError, type ErrorCode } from '../errors.js'
import { fieldProblems, type FieldProblem } from './validation.js'

export const problemContentType = 'application/problem+json'

export interface ProblemDocument {
  type: string
  title: string
  status: number
  code: ErrorCode
  detail: string
  instance?: string
  request_id?: string
  [extension: string]: unknown
}

const titles: Record<ErrorCode, string> = {
  bad_request: 'Bad request',
  invalid_json: 'Invalid JSON',
  validation_failed: 'Validation failed',
  invalid_cursor: 'Invalid cursor',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  not_found: 'Not found',
  method_not_allowed: 'Method not allowed',
  conflict: 'Conflict',
  confirmation_required: 'Confirmation required',
  confirmation_invalid: 'Confirmation invalid',
  gone: 'Gone',
  not_applicable: 'Command not applicable',
  payload_too_large: 'Payload too large',
  unsupported_media_type: 'Unsupported media type',
  upstream_failed: 'Upstream service failed',
  database_unavailable: 'Database unavailable',
  not_ready: 'Not ready',
  shutting_down: 'Shutting down',
  internal: 'Internal server error',
  malformed_message: 'Malformed message',
  identity_missing: 'Device identity missing',
  identity_rejected: 'Device identity rejected',
  unknown_enrollment: 'Unknown enrollment',
  user_declined: 'User declined',
  reenrollment_refused: 'Re-enrollment refused',
  unrecognized_device: 'Unrecognized device',
  device_retired: 'Device retired',
  account_authentication_required: 'Account authentication required',
}

export function problemType(code: ErrorCode): string {
  return `urn:orchard:problem:${code}`
}

/** validation_failed naming the first bad field (a parameter, or a pointer into the body); all of them in `errors`. */
export function validationFailed(errors: FieldProblem[], fallback = 'the request is not valid', cause?: unknown): OrchardError {
  const first = errors[0]
  const where = first?.parameter !== undefined ? `parameter ${first.parameter}` : first?.pointer ? `request body field ${first.pointer}` : 'request body'
  const summary = first ? `${where} ${first.detail}` : fallback
  return new OrchardError('validation_failed', errors.length > 1 ? `${summary} (and ${errors.length - 1} more)` : summary, { cause, details: { errors } })
}

/** Turns any thrown value into an OrchardError; unknown errors become `internal`. */
export function toOrchardError(error: unknown): OrchardError {
  if (error instanceof OrchardError) return error
  const e = error as FastifyError & { validation?: Array<Partial<ErrorObject>>; validationContext?: string }
  if (e?.validation) return validationFailed(fieldProblems(e.validation, e.validationContext), e.message, error)
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OrchardError('payload_too_large', 'the request body is larger than this endpoint accepts', { cause: error })
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new OrchardError('unsupported_media_type', e.message, { cause: error })
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new OrchardError('invalid_json', 'the request body is empty but Content-Type says JSON', { cause: error })
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new OrchardError('invalid_json', `the request body is not valid JSON: ${e.message}`, { cause: error })
  }
  if (error instanceof SyntaxError && (e as { statusCode?: number }).statusCode === 400) {
    return new OrchardError('invalid_json', `the request body is not valid JSON: ${error.message}`, { cause: error })
  }
  const status = e?.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = (Object.keys(errorCodes) as ErrorCode[]).find((c) => errorCodes[c] === status) ?? 'bad_request'
    return new OrchardError(code, e.message, { cause: error })
  }
  return new OrchardError('internal', 'internal server error', { cause: error })
}

export function problemFor(error: OrchardError, request: FastifyRequest): ProblemDocument {
  return {
    type: problemType(error.code),
    title: titles[error.code],
    status: error.status,
    code: error.code,
    detail: error.message,
    instance: request.url,
    request_id: String(request.id),
    ...error.details,
  }
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: OrchardError): FastifyReply {
  return reply.code(error.status).type(problemContentType).send(problemFor(error, request))
}

export function problemErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const orchardError = toOrchardError(error)
  if (orchardError.status >= 500) {
    request.log.error({ err: error, code: orchardError.code }, 'request failed')
  } else {
    request.log.info({ code: orchardError.code, reason: orchardError.message }, 'request refused')
  }
  return sendProblem(reply, request, orchardError)
}

/** 404 for an unknown path; 405 with Allow when the path exists for other methods. */
export function createNotFoundHandler(allowedMethods: (path: string) => string[]) {
  return function problemNotFoundHandler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const path = request.url.split('?')[0]!
    const allowed = allowedMethods(path).filter((method) => method !== request.method)
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '))
      return sendProblem(reply, request, new OrchardError('method_not_allowed', `${request.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`))
    }
    return sendProblem(reply, request, new OrchardError('not_found', `no route for ${request.method} ${path}`))
  }
}
