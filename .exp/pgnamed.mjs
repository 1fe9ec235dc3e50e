import { PGlite, protocol, parse } from '@electric-sql/pglite'
const { serialize } = protocol
const pg = await PGlite.create()
await pg.exec(`create table d (id bigserial primary key, tenant int, name text, os text, seen timestamptz default now());
create index on d(tenant, name);
insert into d (tenant,name,os) select i%10, 'n'||i, '17.'||(i%5) from generate_series(1,20000) i;
create table s (device_id bigint references d(id), item text, value jsonb, primary key(device_id,item));
insert into s select id, 'k'||j, '{"a":1}' from d, generate_series(1,5) j where id < 5000;`)
const text = `select d.id, d.name, d.os, (select count(*) from s where s.device_id = d.id) as n, (select jsonb_agg(value) from s where s.device_id=d.id and s.item like 'k%') from d where d.tenant = $1 and d.name = $2`
function concat(parts){ const len=parts.reduce((a,p)=>a+p.length,0); const out=new Uint8Array(len); let o=0; for(const p of parts){out.set(p,o);o+=p.length} return out }
let prepared=false, types
async function named(params){
  return pg.runExclusive(async()=>{
    if(!prepared){ const r=await pg.execProtocol(concat([serialize.parse({name:'q1',text}),serialize.describe({type:'S',name:'q1'}),serialize.sync()]),{syncToFs:false}); types=r.messages.find(m=>m.name==='parameterDescription').dataTypeIDs; prepared=true }
    const values=params.map((v,i)=>v==null?null:(pg.serializers[types[i]]?.(v) ?? v.toString()))
    const r=await pg.execProtocol(concat([serialize.bind({statement:'q1',values}),serialize.describe({type:'P'}),serialize.execute({}),serialize.sync()]),{syncToFs:false})
    await pg.syncToFs()
    return parse.parseResults(r.messages, pg.parsers, undefined, undefined)[0]
  })
}
const N=+process.env.N||3000
for (const round of [1,2]) {
  let t=process.cpuUsage(); for(let i=0;i<N;i++){ await pg.query(text,[i%10,'n'+(i*7%20000)]) } let u=process.cpuUsage(t); console.log('query', ((u.user+u.system)/N/1000).toFixed(3),'ms')
  t=process.cpuUsage(); for(let i=0;i<N;i++){ await named([i%10,'n'+(i*7%20000)]) } u=process.cpuUsage(t); console.log('named', ((u.user+u.system)/N/1000).toFixed(3),'ms')
}
const a=await pg.query(text,[3,'n3']); const b=await named([3,'n3']); console.log(JSON.stringify(a.rows)===JSON.stringify(b.rows), a.fields.length, b.fields.length, b.rows[0])
