import { readFileSync } from 'node:fs'

/** The package version, read from package.json whether we run from src/ or dist/src/. */
export const version: string = (() => {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'orchard' && pkg.version) return pkg.version
    } catch {
      // try the next location
    }
  }
  return '0.0.0'
})()
