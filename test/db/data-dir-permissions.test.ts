// The data directory is owner-only whatever the umask: directories 0700, files 0600, also
// the files the embedded database creates while it runs; start-up repairs an older one.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { pino } from 'pino'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { withSecretKeyFile } from '../../src/db/secret-key-file.js'
import { openDatabase, openPgliteDatabase } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrations.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

type Assertions = Pick<typeof t, 'ok' | 'same' | 'teardown'>

const embeddedOnly = testBackend !== 'pglite' && 'embedded database (PGlite) only: the Postgres pass keeps no database files in the data directory'

interface Entry {
  path: string
  kind: 'directory' | 'file' | 'symlink'
  mode: number
}

/** Every entry under `root` (root included), without following symbolic links. */
function entriesUnder(root: string): Entry[] {
  const entries: Entry[] = []
  const visit = (path: string) => {
    const stats = lstatSync(path)
    const kind = stats.isSymbolicLink() ? 'symlink' : stats.isDirectory() ? 'directory' : 'file'
    entries.push({ path, kind, mode: stats.mode & 0o777 })
    if (kind === 'directory') for (const name of readdirSync(path)) visit(join(path, name))
  }
  visit(root)
  return entries
}

function assertOwnerOnly(t: Assertions, root: string): void {
  const entries = entriesUnder(root)
  const files = entries.filter((entry) => entry.kind === 'file')
  const directories = entries.filter((entry) => entry.kind === 'directory')
  t.ok(files.length > 900, `the database files are there (${files.length} files, ${directories.length} directories)`)
  const octal = (entry: Entry) => `${entry.path.slice(root.length)} ${entry.mode.toString(8)}`
  t.same(files.filter((entry) => entry.mode !== 0o600).map(octal), [], 'every file is 0600')
  t.same(directories.filter((entry) => entry.mode !== 0o700).map(octal), [], 'every directory is 0700')
}

function withUmask(t: Assertions, mask: number): void {
  const previous = process.umask(mask)
  t.teardown(() => void process.umask(previous))
}

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) })
  return { logger, lines }
}

/** What startOrchard does with the data directory: the master key, the database, migrations. */
async function startEmbedded(env: Record<string, string>, logger = pino({ level: 'silent' })) {
  const config = withSecretKeyFile(loadConfig(env, []), logger)
  const database = await openDatabase(config, logger)
  await migrateToLatest(database.db)
  return database
}

for (const mask of [0o000, 0o022]) {
  t.test(`under umask ${mask.toString(8).padStart(4, '0')} the data directory comes out owner-only`, { skip: embeddedOnly }, async (t) => {
    withUmask(t, mask)
    const dataDir = join(mkdtempSync(join(tmpdir(), 'orchard-perm-')), 'data')
    const database = await startEmbedded({ ORCHARD_DATA_DIR: dataDir })
    try {
      // New relations, an index and a checkpoint: files PGlite creates while running.
      const db = database.db
      await sql`create table permission_probe (id int primary key, v text)`.execute(db)
      await sql`insert into permission_probe select g, repeat('x', 200) from generate_series(1, 20000) g`.execute(db)
      await sql`create index on permission_probe (v)`.execute(db)
      await sql`checkpoint`.execute(db)
    } finally {
      await database.close()
    }
    t.ok(existsSync(join(dataDir, 'secret.key')))
    assertOwnerOnly(t, dataDir)
  })
}

t.test('start-up makes an existing, too open data directory owner-only', { skip: embeddedOnly }, async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'orchard-perm-'))
  const dataDir = join(parent, 'data')
  await (await openPgliteDatabase(dataDir)).close()
  writeFileSync(join(dataDir, 'secret.key'), `${'ab'.repeat(32)}\n`)
  // What an older Orchard (or a careless copy) left behind.
  for (const entry of entriesUnder(dataDir)) chmodSync(entry.path, entry.kind === 'directory' ? 0o777 : 0o666)
  writeFileSync(join(dataDir, 'pglite.lock'), '999999999', { mode: 0o666 }) // stale lock of a gone process
  chmodSync(join(dataDir, 'pglite.lock'), 0o666)
  // A link inside is not followed; files Orchard does not own in the data directory keep their modes.
  const outside = join(parent, 'outside.txt')
  writeFileSync(outside, "not Orchard's")
  chmodSync(outside, 0o644)
  symlinkSync(outside, join(dataDir, 'pglite', 'link-to-outside'))
  mkdirSync(join(dataDir, 'tools'))
  writeFileSync(join(dataDir, 'tools', 'backup.sh'), '#!/bin/sh\n')
  chmodSync(join(dataDir, 'tools', 'backup.sh'), 0o755)

  const { logger, lines } = capturingLogger()
  await (await startEmbedded({ ORCHARD_DATA_DIR: dataDir }, logger)).close()

  const repair = lines.find((line) => line['msg'] === 'made the data directory owner-only (directories 0700, files 0600)')
  t.match(repair, { level: 40, data_dir: dataDir, directories: Number, files: Number }, 'logged as a warning with the counts')
  const { directories, files } = repair as { directories: number; files: number }
  t.ok(files > 900 && directories > 20, `counts: ${directories} directories, ${files} files`)
  t.equal(statSync(outside).mode & 0o777, 0o644, 'the target of a link is untouched')
  t.equal(statSync(join(dataDir, 'tools', 'backup.sh')).mode & 0o777, 0o755, 'a file Orchard does not own keeps its mode')
  t.equal(statSync(join(dataDir, 'tools')).mode & 0o777, 0o755, 'a directory Orchard does not own keeps its mode (the 0700 data directory closes it)')
  t.equal(statSync(dataDir).mode & 0o777, 0o700)
  t.equal(statSync(join(dataDir, 'secret.key')).mode & 0o777, 0o600)
  assertOwnerOnly(t, join(dataDir, 'pglite'))

  const { logger: quiet, lines: again } = capturingLogger()
  await (await openPgliteDatabase(dataDir, quiet)).close()
  t.notOk(
    again.some((line) => line['msg'] === repair?.['msg']),
    'nothing to repair on the next start',
  )
})

t.test('PostgreSQL: start-up creates no data directory', { skip: testBackend !== 'postgres' && 'PostgreSQL pass only' }, async (t) => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'orchard-perm-')), 'data')
  await (await startEmbedded({ ORCHARD_DATA_DIR: dataDir, DATABASE_URL: (await createTestDatabase(t)).url! })).close()
  t.notOk(existsSync(dataDir))
})
