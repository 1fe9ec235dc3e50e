import t from 'tap'
import { rc2CbcDecrypt, rc2DecryptBlock, rc2EncryptBlock, rc2ExpandKey } from '../../src/crypto/rc2.js'

// RFC 2268 §5: key, effective key bits (T1), plaintext, ciphertext.
const rfcVectors: Array<[string, number, string, string]> = [
  ['0000000000000000', 63, '0000000000000000', 'ebb773f993278eff'],
  ['ffffffffffffffff', 64, 'ffffffffffffffff', '278b27e42e2f0d49'],
  ['3000000000000000', 64, '1000000000000001', '30649edf9be7d2c2'],
  ['88', 64, '0000000000000000', '61a8a244adacccf0'],
  ['88bca90e90875a', 64, '0000000000000000', '6ccf4308974c267f'],
  ['88bca90e90875a7f0f79c384627bafb2', 64, '0000000000000000', '1a807d272bbe5db1'],
  ['88bca90e90875a7f0f79c384627bafb2', 128, '0000000000000000', '2269552ab0f85ca6'],
  ['88bca90e90875a7f0f79c384627bafb216f80a6f85920584c42fceb0be255daf1e', 129, '0000000000000000', '5b78d3a43dfff1f1'],
]

t.test('RFC 2268 §5 test vectors, both directions', async (t) => {
  for (const [key, bits, plain, cipher] of rfcVectors) {
    const k = rc2ExpandKey(Buffer.from(key, 'hex'), bits)
    const block = Buffer.from(plain, 'hex')
    rc2EncryptBlock(k, block)
    t.equal(block.toString('hex'), cipher, `encrypt: key ${key}, T1 ${bits}`)
    rc2DecryptBlock(k, block)
    t.equal(block.toString('hex'), plain, `decrypt: key ${key}, T1 ${bits}`)
  }
})

t.test('CBC decryption matches OpenSSL (legacy provider)', async (t) => {
  // Made once with: printf 'Orchard RC2-CBC check: 40-bit key, PKCS#7 padded.' |
  //   openssl enc -provider legacy -provider default -rc2-40-cbc -K 0102030405 -iv 1122334455667788
  // (and -rc2-cbc -K 88bca90e90875a7f0f79c384627bafb2 -iv 0000000000000000 for 128 bits).
  const plain = 'Orchard RC2-CBC check: 40-bit key, PKCS#7 padded.'
  const pad = 8 - (plain.length % 8)
  const padded = Buffer.concat([Buffer.from(plain), Buffer.alloc(pad, pad)])
  const rc240 = Buffer.from('32d9fb91416db258377e8727cb09f977cb332f8b0bab22dca5a0c9f11da83330516c4e27d31aced77f6608c222d852914c64cc6d0735d765', 'hex')
  t.same(rc2CbcDecrypt(Buffer.from('0102030405', 'hex'), 40, Buffer.from('1122334455667788', 'hex'), rc240), padded)
  const rc2128 = Buffer.from('113cb2800ba9ca5efe639ee9098ee0e943724710cec426f3c20c6d3eb1bdf5e377527daf965edca6f2861fa3c6f55bef0744081782cb6049', 'hex')
  t.same(rc2CbcDecrypt(Buffer.from('88bca90e90875a7f0f79c384627bafb2', 'hex'), 128, Buffer.alloc(8), rc2128), padded)
})

t.test('rejects bad parameters', async (t) => {
  t.throws(() => rc2ExpandKey(Buffer.alloc(0), 64), /1 to 128 bytes/)
  t.throws(() => rc2ExpandKey(Buffer.alloc(129), 64), /1 to 128 bytes/)
  t.throws(() => rc2ExpandKey(Buffer.alloc(8), 0), /effective key bits/)
  t.throws(() => rc2ExpandKey(Buffer.alloc(8), 1025), /effective key bits/)
  t.throws(() => rc2CbcDecrypt(Buffer.alloc(5), 40, Buffer.alloc(7), Buffer.alloc(8)), /IV must be 8 bytes/)
  t.throws(() => rc2CbcDecrypt(Buffer.alloc(5), 40, Buffer.alloc(8), Buffer.alloc(12)), /multiple of 8/)
  t.throws(() => rc2CbcDecrypt(Buffer.alloc(5), 40, Buffer.alloc(8), Buffer.alloc(0)), /multiple of 8/)
})
