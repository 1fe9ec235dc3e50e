// App versions as devices report them (CFBundleShortVersionString, e.g. "3.10.2"): compared as
// dotted numbers, so 3.10 is newer than 3.9. A part that is not a number compares as text
// after the numeric parts ("2.0b1" < "2.0.1" is not promised; the store's own versions are
// numeric in practice).

/** Negative when a is older than b, 0 when equal, positive when newer. */
export function compareVersions(a: string, b: string): number {
  const left = a.trim().split('.')
  const right = b.trim().split('.')
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const x = left[i] ?? '0'
    const y = right[i] ?? '0'
    const xNumber = /^\d+$/.test(x) ? Number(x) : NaN
    const yNumber = /^\d+$/.test(y) ? Number(y) : NaN
    if (!Number.isNaN(xNumber) && !Number.isNaN(yNumber)) {
      if (xNumber !== yNumber) return xNumber < yNumber ? -1 : 1
      continue
    }
    if (Number.isNaN(xNumber) !== Number.isNaN(yNumber)) return Number.isNaN(xNumber) ? -1 : 1
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

/** The newest of the versions given (undefined for none). */
export function newestVersion(versions: Iterable<string | null | undefined>): string | undefined {
  let newest: string | undefined
  for (const version of versions) {
    if (version === null || version === undefined || version === '') continue
    if (newest === undefined || compareVersions(version, newest) > 0) newest = version
  }
  return newest
}
