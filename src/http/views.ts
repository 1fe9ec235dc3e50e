// Generic helpers for the admin API's JSON shapes; each feature maps its own resources
// (fleet/device-json.ts, queue/command-json.ts, ...).
import type { FastifyReply } from 'fastify'

/** A date as ISO 8601, or null. */
export function iso(date: Date | null | undefined): string | null {
  return date ? date.toISOString() : null
}

/** A CSV answer, downloaded as `name`.csv (text/csv replies are not typed by the contract). */
export function sendCsv(reply: FastifyReply, name: string, csv: string) {
  return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`).send(csv)
}
