// A small, bounds-checked reader for DER (X.690) as CMS and X.509 use it. It slices the
// input (no copies) and never reads outside it: every malformed input throws DerError.
//
// Trap: Apple devices encode the Mdm-Signature SignedData with BER *indefinite* lengths
// (ContentInfo, its [0], SignedData and encapContentInfo end with 00 00), so a pure DER
// reader would reject every real device. Indefinite length is accepted on constructed
// elements, scanned with a depth bound; everything that is signed (signedAttrs, the
// certificate's tbsCertificate) is DER by RFC 5652 §5.3 and RFC 5280 §4.1.

export class DerError extends Error {
  override readonly name = 'DerError'
}

/** Deepest nesting of indefinite-length elements scanned from one element (Apple's CMS needs 4). */
export const maxDepth = 32

export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  /** [n] constructed, context-specific: EXPLICIT tags and IMPLICIT SET/SEQUENCE. */
  context: (n: number) => 0xa0 | n,
  /** [n] primitive, context-specific: IMPLICIT primitive types. */
  contextPrimitive: (n: number) => 0x80 | n,
} as const

/**
 * One element: offsets into the input it was read from. Children share that input, so
 * walking a structure allocates no buffers until `value` or `raw` is asked for.
 */
export class DerElement {
  constructor(
    readonly input: Buffer,
    /** Identifier octet: class (bits 8-7), constructed (bit 6), tag number (bits 5-1). */
    readonly tag: number,
    /** True when encoded with BER indefinite length (0x80 ... 00 00). */
    readonly indefinite: boolean,
    readonly start: number,
    readonly contentStart: number,
    readonly contentEnd: number,
    /** After the element, end-of-contents octets included. */
    readonly end: number,
  ) {}

  get constructed(): boolean {
    return (this.tag & 0x20) !== 0
  }

  /** Content octets (without the end-of-contents octets). */
  get value(): Buffer {
    return this.input.subarray(this.contentStart, this.contentEnd)
  }

  /** The whole encoding: identifier, length, content and end-of-contents. */
  get raw(): Buffer {
    return this.input.subarray(this.start, this.end)
  }
}

const hex = (tag: number) => `0x${tag.toString(16).padStart(2, '0')}`

/** Reads the element at `offset`, which must end at or before `end`. */
function readAt(input: Buffer, offset: number, end: number, depth: number): DerElement {
  if (depth > maxDepth) throw new DerError(`nesting deeper than ${maxDepth} levels`)
  if (offset + 2 > end) throw new DerError(`truncated element at offset ${offset}`)
  const tag = input[offset]!
  if ((tag & 0x1f) === 0x1f) throw new DerError(`high tag number form at offset ${offset} is not supported`)
  if (tag === 0x00) throw new DerError(`unexpected end-of-contents at offset ${offset}`)
  const first = input[offset + 1]!
  let position = offset + 2

  if (first === 0x80) {
    // Indefinite length (X.690 §8.1.3.6): constructed only; content runs to 00 00.
    if ((tag & 0x20) === 0) throw new DerError(`indefinite length on primitive element at offset ${offset}`)
    const contentStart = position
    for (;;) {
      if (position + 2 > end) throw new DerError(`missing end-of-contents for element at offset ${offset}`)
      if (input[position] === 0x00 && input[position + 1] === 0x00) break
      position = readAt(input, position, end, depth + 1).end
    }
    return new DerElement(input, tag, true, offset, contentStart, position, position + 2)
  }

  let length = first
  if (first & 0x80) {
    const count = first & 0x7f
    if (count === 0x7f) throw new DerError(`reserved length octet at offset ${offset}`)
    if (count > 4) throw new DerError(`length of ${count} octets at offset ${offset} is too large`)
    if (position + count > end) throw new DerError(`truncated length at offset ${offset}`)
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + input[position + i]!
    position += count
  }
  if (length > end - position) throw new DerError(`element at offset ${offset} claims ${length} bytes but ${end - position} remain`)
  return new DerElement(input, tag, false, offset, position, position + length, position + length)
}

/** Decodes `input` as exactly one element: trailing bytes are an error. */
export function decodeElement(input: Buffer): DerElement {
  const element = readAt(input, 0, input.length, 0)
  if (element.end !== input.length) throw new DerError(`${input.length - element.end} trailing bytes after the element`)
  return element
}

/** The elements inside a constructed element. */
export function childrenOf(parent: DerElement): DerElement[] {
  if (!parent.constructed) throw new DerError(`element ${hex(parent.tag)} is primitive, expected constructed`)
  const children: DerElement[] = []
  let position = parent.contentStart
  while (position < parent.contentEnd) {
    const child = readAt(parent.input, position, parent.contentEnd, 0)
    children.push(child)
    position = child.end
  }
  return children
}

/** Walks a constructed element's children in order, as ASN.1 SEQUENCE definitions read. */
export class ChildCursor {
  readonly #children: DerElement[]
  readonly #what: string
  #index = 0

  constructor(parent: DerElement, what: string) {
    this.#what = what
    this.#children = childrenOf(parent)
  }

  /** The next child, which must have `tag`. */
  take(tag: number, field: string): DerElement {
    const child = this.#children[this.#index]
    if (!child) throw new DerError(`${this.#what}: missing ${field}`)
    if (child.tag !== tag) throw new DerError(`${this.#what}: ${field} has tag ${hex(child.tag)}, expected ${hex(tag)}`)
    this.#index++
    return child
  }

  /** The next child if it has one of `tags` (an OPTIONAL or CHOICE field), else undefined. */
  optional(...tags: number[]): DerElement | undefined {
    const child = this.#children[this.#index]
    if (!child || !tags.includes(child.tag)) return undefined
    this.#index++
    return child
  }

  /** Asserts there are no children left. */
  end(): void {
    const child = this.#children[this.#index]
    if (child) throw new DerError(`${this.#what}: unexpected element ${hex(child.tag)} after the last field`)
  }
}

export function expectTag(element: DerElement, tag: number, what: string): DerElement {
  if (element.tag !== tag) throw new DerError(`${what} has tag ${hex(element.tag)}, expected ${hex(tag)}`)
  return element
}

/** OBJECT IDENTIFIER content to dotted form (X.690 §8.19). */
export function decodeOid(element: DerElement): string {
  expectTag(element, Tag.oid, 'object identifier')
  const { input, contentStart, contentEnd } = element
  if (contentEnd === contentStart) throw new DerError('empty object identifier')
  if (contentEnd - contentStart > 64) throw new DerError('object identifier longer than 64 bytes')
  let text = ''
  // Arcs stay exact numbers up to 2^46 before the next 7-bit shift; longer ones (UUID arcs) go through BigInt.
  let value = 0
  let big: bigint | undefined
  let arcStart = true
  for (let i = contentStart; i < contentEnd; i++) {
    const byte = input[i]!
    if (arcStart && byte === 0x80) throw new DerError('object identifier arc with a leading 0x80 octet')
    arcStart = false
    if (big !== undefined) big = (big << 7n) | BigInt(byte & 0x7f)
    else if (value >= 2 ** 46) big = (BigInt(value) << 7n) | BigInt(byte & 0x7f)
    else value = value * 128 + (byte & 0x7f)
    if (byte & 0x80) continue
    if (text === '') {
      // The first subidentifier packs two arcs: 40 * X + Y.
      if (big !== undefined) text = `2.${big - 80n}`
      else text = value < 40 ? `0.${value}` : value < 80 ? `1.${value - 40}` : `2.${value - 80}`
    } else {
      text += `.${big ?? value}`
    }
    value = 0
    big = undefined
    arcStart = true
  }
  if (!arcStart) throw new DerError('object identifier ends inside an arc')
  return text
}

/** INTEGER content octets (two's complement, as encoded). */
export function integerBytes(element: DerElement, what: string): Buffer {
  expectTag(element, Tag.integer, what)
  if (element.value.length === 0) throw new DerError(`${what}: empty INTEGER`)
  return element.value
}

/** OCTET STRING content (primitive only: DER). */
export function octetString(element: DerElement, what: string): Buffer {
  return expectTag(element, Tag.octetString, what).value
}

/** Deepest nesting of chunks accepted in a constructed OCTET STRING. */
const maxOctetStringNesting = 4

/**
 * OCTET STRING content, primitive or constructed of chunks (BER, X.690 §8.7.3), as attached
 * CMS content arrives. Primitive: a slice of the input; constructed: the chunks joined (a copy).
 */
export function berOctetString(element: DerElement, what: string): Buffer {
  const read = (current: DerElement, depth: number): Buffer => {
    if (current.tag === Tag.octetString) return current.value
    if (current.tag === (Tag.octetString | 0x20)) {
      if (depth >= maxOctetStringNesting) throw new DerError(`${what}: constructed OCTET STRING nested too deeply`)
      return Buffer.concat(childrenOf(current).map((chunk) => read(chunk, depth + 1)))
    }
    throw new DerError(`${what} has tag ${hex(current.tag)}, expected OCTET STRING`)
  }
  return read(element, 0)
}

/** UTCTime or GeneralizedTime as RFC 5280 §4.1.2.5 allows them: UTC ("Z") with seconds, no fractions. */
export function decodeTime(element: DerElement, what: string): Date {
  const utc = element.tag === Tag.utcTime
  if (!utc && element.tag !== Tag.generalizedTime) {
    throw new DerError(`${what} has tag ${hex(element.tag)}, expected UTCTime or GeneralizedTime`)
  }
  const text = element.value.toString('latin1')
  const match = (utc ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/).exec(text)
  if (!match) throw new DerError(`${what}: malformed ${utc ? 'UTCTime' : 'GeneralizedTime'}`)
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number]
  const fullYear = utc ? (year >= 50 ? 1900 + year : 2000 + year) : year // RFC 5280 §4.1.2.5.1
  const date = new Date(Date.UTC(fullYear, month - 1, day, hour, minute, second))
  // Date.UTC rolls over (Feb 30 -> Mar 2, hour 24 -> next day): reject instead of moving the time.
  const roundTrip = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
  if (roundTrip.join() !== [fullYear, month, day, hour, minute, second].join()) throw new DerError(`${what}: not a valid date and time`)
  return date
}
