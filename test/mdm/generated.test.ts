import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { generatedFiles } from '../../scripts/generate-mdm-schema.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const schemaDir = `${root}schema/apple`

t.test('generated code matches the Apple schema digest in schema/apple (run `npm run generate` when this fails)', async (t) => {
  for (const [file, content] of Object.entries(generatedFiles(schemaDir))) {
    t.equal(readFileSync(`${root}${file}`, 'utf8'), content, `${file} is up to date`)
  }
})
