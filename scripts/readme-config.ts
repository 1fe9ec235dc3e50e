// Writes the configuration table of README.md from the option list in src/config.ts
// (`npm run docs`); test/config.test.ts fails when the README is out of date.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { configOptions } from '../src/config.js'

const start = '<!-- config-table:start (npm run docs) -->'
const end = '<!-- config-table:end -->'

export function configTable(): string {
  const rows = configOptions.map((o) => `| \`${o.env}\` | \`${o.flag}\` | ${o.defaultText} | ${o.description} |`)
  return ['| Variable | Flag | Default | Meaning |', '|---|---|---|---|', ...rows].join('\n')
}

export function readmeWithConfigTable(readme: string): string {
  const from = readme.indexOf(start)
  const to = readme.indexOf(end)
  if (from === -1 || to === -1) throw new Error(`README.md needs the markers ${start} and ${end}`)
  return `${readme.slice(0, from + start.length)}\n${configTable()}\n${readme.slice(to)}`
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../README.md', import.meta.url))
  writeFileSync(file, readmeWithConfigTable(readFileSync(file, 'utf8')))
  console.log('README.md configuration table updated')
}
