// Bearer API keys for the admin API. Keys are kept only as SHA-256 digests and compared
// in constant time.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { OrchardError } from '../errors.js'

export type ApiKeyCheck = (request: FastifyRequest) => Promise<void>

export function createApiKeyCheck(apiKeys: readonly string[]): ApiKeyCheck {
  const digests = apiKeys.map((key) => createHash('sha256').update(key).digest())
  return async function checkApiKey(request) {
    const header = request.headers.authorization
    if (typeof header !== 'string' || !/^Bearer\s+\S+$/i.test(header)) {
      throw new OrchardError('unauthorized', 'an Authorization: Bearer <API key> header is required')
    }
    const presented = createHash('sha256').update(header.replace(/^Bearer\s+/i, '')).digest()
    let match = false
    for (const digest of digests) match = timingSafeEqual(digest, presented) || match
    if (!match) throw new OrchardError('unauthorized', 'the API key is not valid')
  }
}
