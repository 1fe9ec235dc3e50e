import { PGlite } from '@electric-sql/pglite'
let t=Date.now()
const db = await PGlite.create()
console.log('create ms', Date.now()-t)
const r = await db.query("select 1::int8 as a, '\\x0102'::bytea as b, now() as c, '{\"x\":1}'::jsonb as d, 1.5::numeric as e, $1::text as f", ['hi'])
console.log(r.rows, r.fields)
t=Date.now(); const dump = await db.dumpDataDir('none'); console.log('dump ms', Date.now()-t, dump.size)
t=Date.now(); const db2 = await PGlite.create({loadDataDir: dump}); console.log('load ms', Date.now()-t)
t=Date.now(); for (let i=0;i<1000;i++) await db.query('select $1::int as x',[i]); console.log('1000 q ms', Date.now()-t)
await db.close(); console.log(db.closed)
try { await db.query('select 1') } catch(e) { console.log('closed err', e.message) }
