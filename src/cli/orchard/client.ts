// The admin API client: openapi-fetch over the types openapi-typescript generates from
// openapi.yaml (src/cli/generated/admin-api.ts, by scripts/generate-openapi.ts). `send` turns
// a non-2xx answer into an ApiError (the problem document's `title: detail`) and keeps 202
// answers with a job's Location for the job follower.
import createClient from 'openapi-fetch'
import type { paths } from '../generated/admin-api.js'
import type { Connection } from './config.js'
import { ApiError, CliError, exitCodes, type Problem } from './errors.js'

export type AdminClient = ReturnType<typeof createClient<paths>>
export type Transport = (request: Request) => Promise<Response>

export function adminClient(connection: Connection, transport?: Transport): AdminClient {
  const base = transport ?? ((request: Request) => globalThis.fetch(request))
  return createClient<paths>({
    baseUrl: connection.url,
    headers: connection.token ? { authorization: `Bearer ${connection.token}` } : {},
    fetch: async (request) => {
      try {
        return await base(request)
      } catch (error) {
        const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message
        throw new CliError(`cannot reach ${connection.url}: ${cause}`, exitCodes.error)
      }
    },
  })
}

export interface Sent<T> {
  data: T
  status: number
  /** Set on 202 Accepted with `Location: /api/v1/jobs/{id}`. */
  jobId: string | undefined
}

const jobLocation = /\/api\/v1\/jobs\/([^/?#]+)/

/** Awaits an openapi-fetch call; throws ApiError for anything but 2xx. */
export async function send<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<Sent<T>> {
  const { data, error, response } = await call
  if (!response.ok) {
    const problem = typeof error === 'object' && error !== null ? (error as Problem) : undefined
    throw new ApiError(response.status, problem, typeof error === 'string' && error !== '' ? error.slice(0, 500) : response.statusText)
  }
  const location = response.status === 202 ? response.headers.get('location') : null
  return { data: data as T, status: response.status, jobId: location ? jobLocation.exec(location)?.[1] : undefined }
}
