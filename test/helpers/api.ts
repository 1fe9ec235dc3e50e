// Admin API calls through app.inject(), with the fixture's admin key unless told otherwise.
import type { FastifyInstance } from 'fastify'
import { settleJobs } from './jobs.js'
import { testApiKey } from './mdm-fixture.js'

export interface ApiResponse {
  statusCode: number
  headers: Record<string, unknown>
  json: any
  body: string
}

export interface ApiCallOptions {
  /** Bearer token; null sends no Authorization header. */
  key?: string | null
  body?: unknown
  /** Raw body with its content type. */
  raw?: { payload: Buffer | string; contentType: string }
  headers?: Record<string, string>
}

export function apiClient(app: FastifyInstance) {
  return async function api(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, options: ApiCallOptions = {}): Promise<ApiResponse> {
    const key = options.key === undefined ? testApiKey : options.key
    const headers: Record<string, string> = { ...(key !== null ? { authorization: `Bearer ${key}` } : {}), ...options.headers }
    let payload: string | Buffer | undefined
    if (options.raw) {
      payload = options.raw.payload
      headers['content-type'] = options.raw.contentType
    } else if (options.body !== undefined) {
      payload = JSON.stringify(options.body)
      headers['content-type'] = 'application/json'
    }
    const response = await app.inject({ method, url, headers, ...(payload !== undefined ? { payload } : {}) })
    // A job was started: its work is done before the test goes on (no sleeping, no polling).
    const location = response.headers['location']
    if (response.statusCode === 202 && typeof location === 'string' && location.startsWith('/api/v1/jobs/')) await settleJobs(app)
    let json: unknown
    try {
      json = response.body ? JSON.parse(response.body) : undefined
    } catch {
      json = undefined
    }
    return { statusCode: response.statusCode, headers: response.headers, json, body: response.body }
  }
}
