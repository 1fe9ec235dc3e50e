// PostgreSQL error codes the stores turn into outcomes (the same on PGlite).
// https://www.postgresql.org/docs/current/errcodes-appendix.html
const codeOf = (error: unknown): string | undefined => (error as { code?: string } | null)?.code

/** unique_violation: a row with this key exists. */
export function isUniqueViolation(error: unknown): boolean {
  return codeOf(error) === '23505'
}

/**
 * A row is still referenced, or the referenced row is missing: foreign_key_violation
 * (23503), or restrict_violation (23001), which ON DELETE RESTRICT reports instead.
 */
export function isReferenceViolation(error: unknown): boolean {
  const code = codeOf(error)
  return code === '23503' || code === '23001'
}
