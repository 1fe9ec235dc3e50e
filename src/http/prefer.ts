// The Prefer request header (RFC 7240): preferences separated by commas, each a token with an
// optional `=value` and `;` parameters; names are case-insensitive and the header may come
// more than once. A server ignores preferences it does not know.
// https://www.rfc-editor.org/rfc/rfc7240

/** Whether the request's Prefer header(s) name the preference `name` (e.g. respond-async). */
export function prefers(header: string | string[] | undefined, name: string): boolean {
  if (header === undefined) return false
  const values = Array.isArray(header) ? header : [header]
  const wanted = name.toLowerCase()
  return values.some((value) => value.split(',').some((preference) => preference.split(';')[0]!.split('=')[0]!.trim().toLowerCase() === wanted))
}
