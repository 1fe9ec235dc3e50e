// A small bplist00 writer for tests (src/mdm/plist.ts only decodes binary plists). It writes
// every node as its own object (no sharing) and, unlike encodePlist, any string: NUL and lone
// surrogates included, so tests can send what a hostile or broken client might.
// Format: CoreFoundation's CFBinaryPList.c.
import type { PlistValue } from '../../src/mdm/plist.js'

const BPLIST_EPOCH_MS = 978_307_200_000 // 2001-01-01T00:00:00Z

function marker(type: number, length: number): Buffer {
  if (length < 15) return Buffer.from([(type << 4) | length])
  return Buffer.concat([Buffer.from([(type << 4) | 0xf]), integer(length)])
}

function integer(value: number | bigint): Buffer {
  const v = BigInt(value)
  if (v >= 0n && v < 0x100n) return Buffer.from([0x10, Number(v)])
  if (v >= 0n && v < 0x10000n) return Buffer.from([0x11, Number(v >> 8n), Number(v & 0xffn)])
  if (v >= 0n && v < 0x1_0000_0000n) {
    const b = Buffer.alloc(5, 0x12)
    b.writeUInt32BE(Number(v), 1)
    return b
  }
  if (v >= -(2n ** 63n) && v < 2n ** 63n) {
    const b = Buffer.alloc(9, 0x13)
    b.writeBigInt64BE(v, 1)
    return b
  }
  const b = Buffer.alloc(17, 0x14)
  b.writeBigInt64BE(v >> 64n, 1)
  b.writeBigUInt64BE(v & (2n ** 64n - 1n), 9)
  return b
}

function string(text: string): Buffer {
  // ASCII strings are one byte per character; anything else is UTF-16BE, one unit per code unit.

  if (/^[\x00-\x7f]*$/.test(text)) return Buffer.concat([marker(0x5, text.length), Buffer.from(text, 'latin1')])
  const units = Buffer.alloc(text.length * 2)
  for (let i = 0; i < text.length; i++) units.writeUInt16BE(text.charCodeAt(i), i * 2)
  return Buffer.concat([marker(0x6, text.length), units])
}

function refs(list: number[], size: number): Buffer {
  const b = Buffer.alloc(list.length * size)
  list.forEach((ref, i) => b.writeUIntBE(ref, i * size, size))
  return b
}

/** Encodes a value as a binary property list (bplist00). */
export function encodeBinaryPlist(value: PlistValue): Buffer {
  const encoders: ((refSize: number) => Buffer)[] = []
  const add = (v: PlistValue): number => {
    const index = encoders.length
    encoders.push(() => Buffer.alloc(0))
    if (typeof v === 'string') encoders[index] = () => string(v)
    else if (typeof v === 'number') {
      encoders[index] = () => {
        if (Number.isSafeInteger(v)) return integer(v)
        const b = Buffer.alloc(9, 0x23)
        b.writeDoubleBE(v, 1)
        return b
      }
    } else if (typeof v === 'bigint') encoders[index] = () => integer(v)
    else if (typeof v === 'boolean') encoders[index] = () => Buffer.from([v ? 0x09 : 0x08])
    else if (v instanceof Date) {
      encoders[index] = () => {
        const b = Buffer.alloc(9, 0x33)
        b.writeDoubleBE((v.getTime() - BPLIST_EPOCH_MS) / 1000, 1)
        return b
      }
    } else if (Buffer.isBuffer(v)) encoders[index] = () => Buffer.concat([marker(0x4, v.length), v])
    else if (Array.isArray(v)) {
      const items = v.map(add)
      encoders[index] = (refSize) => Buffer.concat([marker(0xa, items.length), refs(items, refSize)])
    } else {
      const keys: number[] = []
      const values: number[] = []
      for (const [key, item] of Object.entries(v)) {
        keys.push(add(key))
        values.push(add(item))
      }
      encoders[index] = (refSize) => Buffer.concat([marker(0xd, keys.length), refs(keys, refSize), refs(values, refSize)])
    }
    return index
  }
  add(value)
  const refSize = encoders.length < 0x100 ? 1 : encoders.length < 0x10000 ? 2 : 4
  const parts: Buffer[] = [Buffer.from('bplist00', 'latin1')]
  const offsets: number[] = []
  let at = 8
  for (const encode of encoders) {
    const object = encode(refSize)
    offsets.push(at)
    parts.push(object)
    at += object.length
  }
  const offsetSize = at < 0x100 ? 1 : at < 0x10000 ? 2 : 4
  parts.push(refs(offsets, offsetSize))
  const trailer = Buffer.alloc(32)
  trailer[6] = offsetSize
  trailer[7] = refSize
  trailer.writeBigUInt64BE(BigInt(encoders.length), 8)
  trailer.writeBigUInt64BE(0n, 16)
  trailer.writeBigUInt64BE(BigInt(at), 24)
  parts.push(trailer)
  return Buffer.concat(parts)
}

/**
 * Encodes a value as an XML property list that may hold any string: encodePlist refuses
 * characters XML 1.0 cannot carry (NUL), so those are written raw, as broken writers do.
 */
export function encodeXmlPlistRaw(value: PlistValue, encode: (value: PlistValue) => Buffer): Buffer {
  const raw = new Map<string, string>()
  let next = 0
  const replace = (text: string): string => {
    if (!/[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]/.test(text)) return text
    const placeholder = `\ue000raw${next++}\ue000`
    raw.set(placeholder, text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'))
    return placeholder
  }
  const walk = (v: PlistValue): PlistValue => {
    if (typeof v === 'string') return replace(v)
    if (Array.isArray(v)) return v.map(walk)
    if (typeof v === 'object' && v !== null && !(v instanceof Date) && !Buffer.isBuffer(v)) {
      return Object.fromEntries(Object.entries(v).map(([key, item]) => [replace(key), walk(item)]))
    }
    return v
  }
  let text = encode(walk(value)).toString('utf8')
  for (const [placeholder, original] of raw) text = text.split(placeholder).join(original)
  return Buffer.from(text, 'utf8')
}
