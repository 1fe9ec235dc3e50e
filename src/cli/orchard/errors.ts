// Exit codes and the errors that carry them (README, "orchard CLI").

export const exitCodes = {
  ok: 0,
  /** The server failed (5xx), could not be reached, or something unexpected happened; a job failed. */
  error: 1,
  /** Bad usage, or the server refused the input (400, 413, 415). */
  usage: 2,
  /** 404: no such device, command, tenant... */
  notFound: 3,
  /** 401 or 403: no or a bad token, or a role that may not do it. */
  auth: 4,
  /** 409, 410, 422, 428: the state forbids it; or a confirmation was declined or could not be asked. */
  conflict: 5,
} as const

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message)
  }
}

export interface Problem {
  type?: string
  title?: string
  status?: number
  code?: string
  detail?: string
  errors?: Array<{ pointer?: string; parameter?: string; detail: string }>
  [key: string]: unknown
}

export function exitCodeForStatus(status: number): number {
  if (status === 404) return exitCodes.notFound
  if (status === 401 || status === 403) return exitCodes.auth
  if (status === 400 || status === 413 || status === 415) return exitCodes.usage
  if (status === 409 || status === 410 || status === 422 || status === 428) return exitCodes.conflict
  return exitCodes.error
}

/** A non-2xx answer: shown as `title: detail`, with each invalid field below. */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly problem: Problem | undefined,
    fallback: string,
  ) {
    super(ApiError.describe(status, problem, fallback), exitCodeForStatus(status))
  }

  static describe(status: number, problem: Problem | undefined, fallback: string): string {
    if (!problem || (problem.title === undefined && problem.detail === undefined)) return `HTTP ${status}: ${fallback}`
    const head = [problem.title ?? `HTTP ${status}`, problem.detail].filter((part) => part !== undefined && part !== '').join(': ')
    const fields = (problem.errors ?? []).map(
      (error) => `\n  ${error.pointer ?? error.parameter ?? ''}${error.pointer || error.parameter ? ': ' : ''}${error.detail}`,
    )
    return head + fields.join('')
  }
}
