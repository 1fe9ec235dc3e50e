// The content token file (.vpptoken) an Apps and Books location downloads from Apple
// Business/School Manager: base64 of a JSON object with the token, its expiry and the
// organisation. The sToken Apple's API takes is the file's content itself, as downloaded.
// https://developer.apple.com/documentation/devicemanagement/managing-apps-and-books-through-web-services
import { OrchardError } from '../errors.js'

export interface VppTokenFile {
  /** What goes into `Authorization: Bearer`: the file's base64 text, whitespace removed. */
  sToken: string
  expiresAt: Date | null
  orgName: string | null
}

const maxFileBytes = 16 * 1024

function invalid(detail: string): OrchardError {
  return new OrchardError('validation_failed', `not an Apps and Books content token: ${detail}`, {
    details: { errors: [{ pointer: '/content_token', detail }] },
  })
}

/** Apple writes dates as `2027-01-05T10:20:30-0800` (no colon in the offset): in token files and API answers. */
export function appleDate(value: unknown): Date | null {
  if (typeof value !== 'string' || value === '') return null
  const date = new Date(value.trim().replace(/([+-]\d\d)(\d\d)$/, '$1:$2'))
  return Number.isNaN(date.getTime()) ? null : date
}

/** Reads a .vpptoken file (its text, or the base64 text given in JSON). */
export function readVppTokenFile(content: string): VppTokenFile {
  if (content.length > maxFileBytes) throw invalid(`the file is larger than ${maxFileBytes} bytes`)
  const sToken = content.replace(/\s+/g, '')
  if (sToken === '') throw invalid('the file is empty')
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sToken)) throw invalid('the file is not base64 text (upload the .vpptoken file as downloaded)')
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(sToken, 'base64').toString('utf8'))
  } catch {
    throw invalid('the decoded file is not JSON')
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid('the decoded file is not a JSON object')
  const fields = parsed as Record<string, unknown>
  if (typeof fields['token'] !== 'string' || fields['token'] === '') throw invalid('the decoded file has no "token"')
  const orgName = typeof fields['orgName'] === 'string' && fields['orgName'] !== '' ? fields['orgName'].slice(0, 500) : null
  return { sToken, expiresAt: appleDate(fields['expDate']), orgName }
}
