// Server-created Activation Lock bypass codes against known answers: the vectors of MicroMDM's
// implementation of Apple's algorithm (github.com/micromdm/micromdm, activationlock), an
// independent source for the encoding and the PBKDF2 escrow key.
import t from 'tap'
import { createServerBypassCode, decodeBypassCode, encodeBypassCode, escrowKeyOf } from '../../src/crypto/bypass-code.js'

const vectors = [
  {
    raw: '1ea841db5edfafe6075b5ae0d845d254',
    code: '3UM43-PUYVY-QYD1-UVCC-HEHJ-FKA4',
    escrowKey: '6ab40d5eabe7218ec04182f461005600c7e3426bddd82cdb405bde9a1e0014b5',
  },
  {
    raw: '44ebe63375969fec2da67e87e7317946',
    code: '8LNYD-DVNKU-GYRC-E6GU-3YFD-CT86',
    escrowKey: 'c1968cb4c013ea893f1922bb5c39f81e35012c0bd9ce3c01cc2a05873a2499e6',
  },
  {
    raw: 'cb84798c3ca85a674194550a2e96aed8',
    code: 'TF27L-31WN1-E6FH-DMAM-52X5-NFV0',
    escrowKey: '23cf8b7873425fd8efe31dc5b6ab9c357eb98a2a59c82ea1084ca8af58cc480a',
  },
]

t.test("Apple's encoding and escrow key, against known answers", async (t) => {
  for (const vector of vectors) {
    t.equal(encodeBypassCode(Buffer.from(vector.raw, 'hex')), vector.code, `${vector.raw} is written ${vector.code}`)
    t.equal(decodeBypassCode(vector.code)?.toString('hex'), vector.raw, 'and read back')
    t.equal(await escrowKeyOf(vector.code), vector.escrowKey, 'its escrow key')
  }
})

t.test('anything but a canonical code has no escrow key', async (t) => {
  const good = vectors[0]!.code
  for (const bad of [
    '',
    good.slice(0, 30),
    `${good}0`,
    good.replace('-', '_'),
    good.replace('3UM43-', '3UM4-3'),
    good.replace('U', 'B'),
    good.replace(/4$/, 'Z'),
    good.toLowerCase(),
  ]) {
    t.equal(decodeBypassCode(bad), undefined, JSON.stringify(bad))
    t.equal(await escrowKeyOf(bad), undefined)
  }
})

t.test('a new code is random, canonical and carries its own escrow key', async (t) => {
  const first = await createServerBypassCode()
  const second = await createServerBypassCode()
  t.not(first.code, second.code)
  t.match(first.code, /^[0-9ACDEFGHJKLMNPQRTUVWXYZ]{5}-[0-9A-Z]{5}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/)
  t.match(first.escrowKey, /^[0-9a-f]{64}$/)
  t.equal(await escrowKeyOf(first.code), first.escrowKey)
})
