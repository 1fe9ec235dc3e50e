// Binary property lists (bplist00): header, objects, offset table, 32-byte trailer. Objects
// refer to each other by index, so a hostile file can share objects (exponential expansion)
// or refer back to an ancestor (a cycle): every visit counts against maxElements, <data>
// copies against maxBytes, and ancestors are tracked. Sets and UIDs are refused
// (plist_unsupported): MDM never sends them. Format: CoreFoundation's CFBinaryPList.c.
import { formatPath, normalizeInteger, NUL, nulMessage, PlistError, quote, setEntry, textMessage } from './values.js'
import type { PlistDict, PlistErrorCode, PlistLimits, PlistValue } from './values.js'

/** Decodes bplist00 bytes; `input` starts with "bplist", is already checked against maxBytes. */
export function decodeBinaryPlist(input: Buffer, limits: PlistLimits): PlistValue {
  if (input.length < 8) throw new PlistError('plist_malformed', 'truncated binary plist header', input.length)
  const version = input.toString('latin1', 6, 8)
  if (version !== '00') {
    throw new PlistError('plist_unsupported', `binary plist version ${JSON.stringify(version)} (only "00" is supported)`, 6)
  }
  return new BinaryDecoder(input, limits).decode()
}

const BPLIST_EPOCH_MS = 978_307_200_000 // 2001-01-01T00:00:00Z

// Only UTF-16 strings of binary plists can hold one (XML is checked UTF-8, character references must be characters).
const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

interface BinaryFrame {
  readonly index: number
  readonly dict: PlistDict | undefined
  readonly array: PlistValue[] | undefined
  readonly refsAt: number
  readonly count: number
  next: number
}

class BinaryDecoder {
  private offsetSize = 0
  private refSize = 0
  private objectCount = 0
  private tableAt = 0
  private elements = 0
  private dataBytes = 0
  private strings: (string | undefined)[] = []
  private readonly stack: BinaryFrame[] = []
  private readonly ancestors = new Set<number>()
  // Results of readLength(): where the payload starts and how many units it has.
  private payloadAt = 0
  private payloadLength = 0

  constructor(
    private readonly buf: Buffer,
    private readonly limits: PlistLimits,
  ) {}

  decode(): PlistValue {
    const buf = this.buf
    if (buf.length < 8 + 1 + 32) this.fail('plist_malformed', 'binary plist too short for its trailer', buf.length)
    const trailer = buf.length - 32
    this.offsetSize = buf[trailer + 6]!
    this.refSize = buf[trailer + 7]!
    if (this.offsetSize < 1 || this.offsetSize > 8) this.fail('plist_malformed', `offset size ${this.offsetSize} in the trailer`, trailer + 6)
    if (this.refSize < 1 || this.refSize > 8) this.fail('plist_malformed', `object reference size ${this.refSize} in the trailer`, trailer + 7)
    this.objectCount = readUInt(buf, trailer + 8, 8)
    const top = readUInt(buf, trailer + 16, 8)
    this.tableAt = readUInt(buf, trailer + 24, 8)
    if (this.objectCount < 1) this.fail('plist_malformed', 'no objects in the trailer', trailer + 8)
    if (top >= this.objectCount) this.fail('plist_malformed', `top object #${top} of ${this.objectCount}`, trailer + 16)
    if (this.tableAt < 9 || this.tableAt + this.objectCount * this.offsetSize > trailer) {
      this.fail('plist_malformed', `offset table (${this.objectCount} entries at byte ${this.tableAt}) outside the file`, trailer + 24)
    }

    // Small files get a dense cache; for big ones the array grows (sparse) as strings are met.
    if (this.objectCount <= 4096) this.strings = new Array<string | undefined>(this.objectCount)
    const root = this.object(top)
    const { refSize } = this
    const stack = this.stack
    for (let frame = stack[stack.length - 1]; frame !== undefined; frame = stack[stack.length - 1]) {
      if (frame.next === frame.count) {
        stack.pop()
        this.ancestors.delete(frame.index)
        continue
      }
      const i = frame.next++
      if (frame.dict !== undefined) {
        const keyAt = frame.refsAt + i * refSize
        const key = this.key(this.ref(keyAt), keyAt)
        if (Object.hasOwn(frame.dict, key)) this.fail('plist_malformed', `duplicate key ${quote(key)} in dict #${frame.index}`, keyAt)
        setEntry(frame.dict, key, this.object(this.ref(frame.refsAt + (frame.count + i) * refSize)))
      } else {
        frame.array!.push(this.object(this.ref(frame.refsAt + i * refSize)))
      }
    }
    return root
  }

  private fail(code: PlistErrorCode, message: string, at: number): never {
    throw new PlistError(code, message, at)
  }

  /** The object table entry for an index: where the object starts. */
  private offsetOf(index: number): number {
    const entryAt = this.tableAt + index * this.offsetSize
    const offset = readUInt(this.buf, entryAt, this.offsetSize)
    if (offset < 8 || offset >= this.tableAt) this.fail('plist_malformed', `object #${index} offset ${offset} outside the object area`, entryAt)
    return offset
  }

  private ref(at: number): number {
    const index = readUInt(this.buf, at, this.refSize)
    if (index >= this.objectCount) this.fail('plist_malformed', `reference to object #${index} of ${this.objectCount}`, at)
    return index
  }

  /** Fails unless `length` bytes from `at` lie inside the object area. */
  private need(at: number, length: number, index: number): void {
    if (at + length > this.tableAt) this.fail('plist_malformed', `object #${index} runs past the object area`, at)
  }

  /** Sets payloadAt and payloadLength; counts above 14 follow the marker as an int object. */
  private readLength(at: number, info: number, index: number): void {
    if (info < 15) {
      this.payloadAt = at + 1
      this.payloadLength = info
      return
    }
    this.need(at + 1, 1, index)
    const marker = this.buf[at + 1]!
    if (marker >> 4 !== 0x1 || (marker & 0xf) > 3)
      this.fail('plist_malformed', `object #${index} has an invalid length marker 0x${marker.toString(16)}`, at + 1)
    const size = 1 << (marker & 0xf)
    this.need(at + 2, size, index)
    this.payloadAt = at + 2 + size
    this.payloadLength = readUInt(this.buf, at + 2, size)
  }

  private object(index: number): PlistValue {
    const { maxElements, maxDepth, maxBytes } = this.limits
    const buf = this.buf
    const at = this.offsetOf(index)
    if (++this.elements > maxElements) this.fail('plist_limit_exceeded', `more than maxElements ${maxElements} values (object #${index})`, at)
    const marker = buf[at]!
    const info = marker & 0xf
    switch (marker >> 4) {
      case 0x0:
        if (marker === 0x08) return false
        if (marker === 0x09) return true
        if (marker === 0x00) return this.fail('plist_unsupported', `null (object #${index})`, at)
        break
      case 0x1: {
        if (info > 4) break
        const size = 1 << info
        this.need(at + 1, size, index)
        // 1, 2 and 4-byte integers are unsigned, 8 and 16-byte ones signed.
        if (size <= 4) return buf.readUIntBE(at + 1, size)
        if (size === 8) return normalizeInteger(buf.readBigInt64BE(at + 1))
        return normalizeInteger((buf.readBigInt64BE(at + 1) << 64n) | buf.readBigUInt64BE(at + 9))
      }
      case 0x2:
        if (info === 2) {
          this.need(at + 1, 4, index)
          return buf.readFloatBE(at + 1)
        }
        if (info === 3) {
          this.need(at + 1, 8, index)
          return buf.readDoubleBE(at + 1)
        }
        break
      case 0x3: {
        if (marker !== 0x33) break
        this.need(at + 1, 8, index)
        const date = new Date(BPLIST_EPOCH_MS + buf.readDoubleBE(at + 1) * 1000)
        if (Number.isNaN(date.getTime())) this.fail('plist_malformed', `date out of range (object #${index})`, at)
        return date
      }
      case 0x4: {
        this.readLength(at, info, index)
        const { payloadAt, payloadLength } = this
        this.need(payloadAt, payloadLength, index)
        this.dataBytes += payloadLength
        if (this.dataBytes > maxBytes) this.fail('plist_limit_exceeded', `shared <data> objects expand past maxBytes ${maxBytes} (object #${index})`, at)
        return Buffer.from(buf.subarray(payloadAt, payloadAt + payloadLength))
      }
      case 0x5:
      case 0x6: {
        const value = this.string(index, at, marker)
        this.checkText('string', value, marker, this.stack.length, at)
        return value
      }
      case 0x8:
        return this.fail('plist_unsupported', `UID (object #${index}; keyed archives are not supported)`, at)
      case 0xa:
      case 0xd: {
        this.readLength(at, info, index)
        const { payloadAt: refsAt, payloadLength: count } = this
        const isDict = marker >> 4 === 0xd
        this.need(refsAt, count * this.refSize * (isDict ? 2 : 1), index)
        if (this.ancestors.has(index)) this.fail('plist_malformed', `reference cycle: object #${index} contains itself`, at)
        if (this.stack.length >= maxDepth) this.fail('plist_limit_exceeded', `nesting deeper than maxDepth ${maxDepth} (object #${index})`, at)
        const dict: PlistDict | undefined = isDict ? {} : undefined
        const array: PlistValue[] | undefined = isDict ? undefined : []
        if (count > 0) {
          this.stack.push({ index, dict, array, refsAt, count, next: 0 })
          this.ancestors.add(index)
        }
        return dict ?? array!
      }
      case 0xb:
      case 0xc:
        return this.fail('plist_unsupported', `set (object #${index})`, at)
    }
    return this.fail('plist_malformed', `unknown object marker 0x${marker.toString(16).padStart(2, '0')} (object #${index})`, at)
  }

  private key(index: number, refAt: number): string {
    const at = this.offsetOf(index)
    const marker = this.buf[at]!
    const type = marker >> 4
    if (type !== 0x5 && type !== 0x6) this.fail('plist_malformed', `dict key object #${index} is not a string`, at)
    const key = this.string(index, at, marker)
    // The frame being filled is on top of the stack: the key's path is that of its ancestors.
    this.checkText('key', key, marker, this.stack.length - 1, refAt)
    return key
  }

  /** Refuses NUL, and unpaired surrogates in UTF-16 strings (no character, and no column takes them). */
  private checkText(what: 'key' | 'string', value: string, marker: number, depth: number, at: number): void {
    if (value.includes(NUL)) this.fail('plist_unsupported', nulMessage(what, this.pathOf(depth), value), at)
    if (marker >> 4 === 0x6 && UNPAIRED_SURROGATE.test(value)) {
      this.fail('plist_malformed', textMessage(what, this.pathOf(depth), value, 'is not valid UTF-16 (an unpaired surrogate)'), at)
    }
  }

  /**
   * The key path of the value being read, inside the first `depth` frames of the stack
   * (each frame's current slot is its last read entry; only computed for messages).
   */
  private pathOf(depth: number): string {
    const segments: (string | number)[] = []
    for (let i = 0; i < depth; i++) {
      const frame = this.stack[i]!
      const slot = frame.next - 1
      if (frame.array !== undefined) {
        segments.push(slot)
      } else {
        const keyIndex = this.ref(frame.refsAt + slot * this.refSize)
        const keyAt = this.offsetOf(keyIndex)
        segments.push(this.string(keyIndex, keyAt, this.buf[keyAt]!))
      }
    }
    return formatPath(segments)
  }

  // Strings are immutable, so one decoding serves every reference to the object.
  private string(index: number, at: number, marker: number): string {
    const cached = this.strings[index]
    if (cached !== undefined) return cached
    this.readLength(at, marker & 0xf, index)
    const { payloadAt, payloadLength } = this
    let value: string
    if (marker >> 4 === 0x5) {
      this.need(payloadAt, payloadLength, index)
      value = this.buf.toString('latin1', payloadAt, payloadAt + payloadLength)
    } else {
      this.need(payloadAt, payloadLength * 2, index)
      value = Buffer.from(this.buf.subarray(payloadAt, payloadAt + payloadLength * 2))
        .swap16()
        .toString('utf16le')
    }
    this.strings[index] = value
    return value
  }
}

/** Big-endian unsigned integer of 1-8 bytes; Infinity when above 2^53 (callers range-check). */
function readUInt(buf: Buffer, at: number, size: number): number {
  if (size === 1) return buf[at]!
  if (size === 2) return (buf[at]! << 8) | buf[at + 1]!
  if (size <= 6) return buf.readUIntBE(at, size)
  const high = buf.readUIntBE(at, size - 4)
  if (high > 0x1fffff) return Number.POSITIVE_INFINITY
  return high * 0x1_0000_0000 + buf.readUInt32BE(at + size - 4)
}
