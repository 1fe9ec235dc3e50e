// The shape of the house, checked on the code itself (README, "Layout"): SQL stays in stores,
// handlers call services, imports never go round in a circle, files stay small enough to hold
// in one's head, and handlers take the contract's types instead of casting requests.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../', import.meta.url))

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sourceFiles(path))
    else if (entry.name.endsWith('.ts')) out.push(path)
  }
  return out
}

const files = sourceFiles('src').filter((file) => !file.includes('/generated/'))
const text = new Map(files.map((file) => [file, readFileSync(join(root, file), 'utf8')]))
const specifiers = (source: string) => [...source.matchAll(/^(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)].map((match) => match[1]!)

/** The src files a file imports (relative imports only), as paths like src/queue/dispatch.ts. */
function localImports(file: string): string[] {
  return specifiers(text.get(file)!)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts'))
    .filter((target) => text.has(target))
}

t.test('only stores, SQL fragments and db/ import kysely', async (t) => {
  const allowed = (file: string) => file.startsWith('src/db/') || /-(store|sql)\.ts$/.test(file)
  const offenders = files.filter((file) => !allowed(file) && specifiers(text.get(file)!).includes('kysely'))
  t.same(offenders, [], 'kysely is imported only where SQL lives')
})

t.test('handlers call services, never a store', async (t) => {
  const handlers = files.filter((file) => /(^|\/)(api|[a-z-]+-api)\.ts$/.test(file))
  t.ok(handlers.length >= 10, `${handlers.length} handler files`)
  const offenders = handlers.flatMap((file) =>
    localImports(file)
      .filter((target) => target.endsWith('-store.ts'))
      .map((target) => `${file} -> ${target}`),
  )
  t.same(offenders, [], 'no handler file imports a *-store.ts')
})

t.test('no import cycles in src/', async (t) => {
  const state = new Map<string, 'visiting' | 'done'>()
  const cycles: string[] = []
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' -> '))
      return
    }
    state.set(file, 'visiting')
    for (const target of localImports(file)) visit(target, [...path, file])
    state.set(file, 'done')
  }
  for (const file of files) visit(file, [])
  t.same(cycles, [], 'every import graph path ends')
})

t.test('no hand-written file in src/ is over 400 lines, but the named ones', async (t) => {
  // Each with its reason: splitting it would scatter one thing.
  const exceptions: Record<string, string> = {
    'src/mdm/plist/xml.ts': 'the XML plist decoder, one state machine',
    'src/db/schema.ts': 'the table types, one per table, mirroring the migrations',
    'src/config-options.ts': 'the declarative option table: each option once, with its documentation',
  }
  const long = files.filter((file) => !(file in exceptions) && text.get(file)!.split('\n').length > 400)
  t.same(
    long.map((file) => `${file} (${text.get(file)!.split('\n').length} lines)`),
    [],
    'split files over 400 lines by concern',
  )
  for (const file of Object.keys(exceptions)) t.ok(text.has(file), `${relative('src', file)} still exists (else drop it from the exceptions)`)
})

t.test('handlers are typed by the contract: no request casts', async (t) => {
  const casts = files.flatMap((file) =>
    text
      .get(file)!
      .split('\n')
      .map((line, index) => ({ line, index }))
      .filter(({ line }) => /request\.(params|body|query)\s+as\b/.test(line))
      .map(({ index }) => `${file}:${index + 1}`),
  )
  t.same(casts, [], 'request.params|body|query are typed from openapi.yaml (src/http/generated/operations.ts)')
})
