import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { openPgliteDatabase } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrations.js'
const mb = (n: number) => (n / 2 ** 20).toFixed(0)
const show = (label: string) => { const m = process.memoryUsage(); console.log(label, 'rss', mb(m.rss), 'heap', mb(m.heapUsed), '/', mb(m.heapTotal), 'ext', mb(m.external), 'ab', mb(m.arrayBuffers)) }
show('start')
const dir = mkdtempSync(join(tmpdir(), 'pgmem-'))
const h = await openPgliteDatabase(dir, pino({ level: 'warn' }))
show('opened')
await migrateToLatest(h.db)
show('migrated')
