// Retry-After of an answer from Apple's services (ABM/ASM, Apps and Books): seconds, or an HTTP date.
// https://www.rfc-editor.org/rfc/rfc9110#field.retry-after

/** Retry-After as seconds (a number or an HTTP date); null when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now: Date): number | null {
  if (!header) return null
  const trimmed = header.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed)
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now.getTime()) / 1000))
}
