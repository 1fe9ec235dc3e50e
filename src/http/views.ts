// Generic helpers for the admin API's JSON shapes; each feature maps its own resources
// (fleet/device-json.ts, queue/command-json.ts, ...).

/** A date as ISO 8601, or null. */
export function iso(date: Date | null | undefined): string | null {
  return date ? date.toISOString() : null
}
