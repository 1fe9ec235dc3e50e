// XML property lists: a hand-written scanner, not an XML library: no DTD, no entity
// expansion, no recursion, and every input is bounded by PlistLimits and read in linear time.
// Untrusted bytes can only make it throw PlistError.
//
// Text is returned exactly as sent: line ends are not normalized, and raw control characters
// are tolerated (some writers emit them unescaped). Character references, though, must name
// XML 1.0 characters (isXmlChar).
import { isUtf8 } from 'node:buffer'
import { formatPath, INT64_MIN, isXmlChar, normalizeInteger, NUL, nulMessage, PlistError, quote, setEntry, UINT64_MAX } from './values.js'
import type { PlistDict, PlistErrorCode, PlistLimits, PlistValue } from './values.js'

/**
 * Decodes XML bytes (UTF-8; a BOM and leading whitespace are allowed) with a <plist> root
 * holding exactly one value. `input` is already checked against maxBytes and not empty.
 */
export function decodeXmlPlist(input: Buffer, limits: PlistLimits): PlistValue {
  if ((input[0] === 0xfe && input[1] === 0xff) || (input[0] === 0xff && input[1] === 0xfe)) {
    throw new PlistError('plist_unsupported', 'UTF-16 XML (only UTF-8 is supported)', 0)
  }
  const start = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0
  if (!isUtf8(start === 0 ? input : input.subarray(start))) {
    throw new PlistError('plist_malformed', 'invalid UTF-8', firstInvalidUtf8(input, start))
  }
  return new XmlDecoder(input.toString('utf8', start), input.length, start, limits).decode()
}

const LT = 0x3c
const GT = 0x3e
const SLASH = 0x2f
const BANG = 0x21
const QUESTION = 0x3f
const DQUOTE = 0x22
const SQUOTE = 0x27
const LBRACKET = 0x5b

const NAME_CHARS = new Uint8Array(128)
for (const range of ['az', 'AZ', '09', '__', '--', '..', '::']) {
  for (let c = range.charCodeAt(0); c <= range.charCodeAt(1); c++) NAME_CHARS[c] = 1
}

function isNameChar(c: number): boolean {
  return c < 128 && NAME_CHARS[c] === 1
}

function isXmlSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d
}

function trimXmlSpace(text: string): string {
  let start = 0
  let end = text.length
  while (start < end && isXmlSpace(text.charCodeAt(start))) start++
  while (end > start && isXmlSpace(text.charCodeAt(end - 1))) end--
  return start === 0 && end === text.length ? text : text.slice(start, end)
}

/** An element name from the input, cut short for an error message. */
function short(name: string): string {
  return name.length > 40 ? `${name.slice(0, 40)}…` : name
}

/** The key under which `child` (a container still being filled, so the newest entry) sits. */
function keyOf(dict: PlistDict, child: PlistValue): string {
  let found = ''
  for (const key of Object.keys(dict)) if (dict[key] === child) found = key
  return found
}

interface XmlFrame {
  readonly name: 'dict' | 'array'
  readonly dict: PlistDict | undefined
  readonly array: PlistValue[] | undefined
  readonly openedAt: number
  /** The pending <key>, waiting for its value. */
  key: string | undefined
}

class XmlDecoder {
  private pos = 0
  private elements = 0
  private selfClosing = false
  /** The text holds a raw NUL somewhere: strings and keys are checked for it as they are read. */
  private readonly hasNul: boolean

  constructor(
    private readonly text: string,
    private readonly byteLength: number,
    private readonly base: number,
    private readonly limits: PlistLimits,
  ) {
    this.hasNul = text.includes(NUL)
  }

  decode(): PlistValue {
    this.prolog()
    const plistAt = this.pos
    const name = this.readOpenTag()
    if (name !== 'plist') this.fail('plist_malformed', `expected a <plist> root element, found <${short(name)}>`, plistAt)
    if (this.selfClosing) this.fail('plist_malformed', '<plist> holds no value', plistAt)
    const root = this.body(plistAt)
    this.epilog()
    return root
  }

  private fail(code: PlistErrorCode, message: string, at: number): never {
    throw new PlistError(code, message, this.byteOffset(at))
  }

  private truncated(what: string, openedAt: number): never {
    this.fail('plist_malformed', `input ends inside ${what} opened at byte ${this.byteOffset(openedAt)}`, this.text.length)
  }

  private byteOffset(index: number): number {
    if (this.text.length + this.base === this.byteLength) return this.base + index
    return this.base + Buffer.byteLength(this.text.slice(0, index), 'utf8')
  }

  private skipSpace(): void {
    const text = this.text
    let pos = this.pos
    while (pos < text.length && isXmlSpace(text.charCodeAt(pos))) pos++
    this.pos = pos
  }

  /** XML declaration, comments, processing instructions and one DOCTYPE before <plist>. */
  private prolog(): void {
    const text = this.text
    let doctype = false
    for (;;) {
      this.skipSpace()
      const at = this.pos
      if (at >= text.length) this.fail('plist_malformed', at === 0 ? 'empty input' : 'no <plist> element', at)
      if (text.charCodeAt(at) !== LT) this.fail('plist_malformed', `not a property list: unexpected text ${quote(text.slice(at, at + 16))}`, at)
      const next = text.charCodeAt(at + 1)
      if (next === QUESTION) {
        this.skipProcessingInstruction()
      } else if (next !== BANG) {
        return
      } else if (text.startsWith('<!--', at)) {
        this.skipComment()
      } else if (text.startsWith('<!DOCTYPE', at) && !doctype) {
        this.skipDoctype()
        doctype = true
      } else {
        this.markupDeclaration(at)
      }
    }
  }

  /** The <plist> content: exactly one value, then </plist>. Iterative: nesting costs heap, not stack. */
  private body(plistAt: number): PlistValue {
    const text = this.text
    const { maxDepth, maxElements } = this.limits
    const stack: XmlFrame[] = []
    let root: PlistValue | undefined
    for (;;) {
      this.skipSpace()
      const at = this.pos
      const top = stack[stack.length - 1]
      if (at >= text.length) this.truncated(top === undefined ? '<plist>' : `<${top.name}>`, top === undefined ? plistAt : top.openedAt)
      if (text.charCodeAt(at) !== LT) this.fail('plist_malformed', `text outside elements ${quote(text.slice(at, at + 16))}`, at)
      const next = text.charCodeAt(at + 1)

      if (next === SLASH) {
        const name = this.readCloseTag()
        if (top === undefined) {
          if (name !== 'plist') this.fail('plist_malformed', `unexpected </${short(name)}>, expected </plist>`, at)
          if (root === undefined) this.fail('plist_malformed', '<plist> holds no value', at)
          return root
        }
        if (name !== top.name) this.fail('plist_malformed', `mismatched </${short(name)}>, expected </${top.name}>`, at)
        if (top.key !== undefined) this.fail('plist_malformed', `key ${quote(top.key)} has no value before </dict>`, at)
        stack.pop()
        continue
      }
      if (next === BANG) {
        if (text.startsWith('<!--', at)) this.skipComment()
        else if (text.startsWith('<![CDATA[', at)) this.fail('plist_malformed', 'text (CDATA) outside elements', at)
        else this.markupDeclaration(at)
        continue
      }
      if (next === QUESTION) {
        this.skipProcessingInstruction()
        continue
      }

      const name = this.readOpenTag()
      const selfClosing = this.selfClosing
      if (name === 'key') {
        if (top === undefined || top.dict === undefined) this.fail('plist_malformed', '<key> outside a <dict>', at)
        if (top.key !== undefined) this.fail('plist_malformed', `key ${quote(top.key)} has no value`, at)
        const key = selfClosing ? '' : this.readText('key', at)
        if (this.hasNul && key.includes(NUL)) this.fail('plist_unsupported', nulMessage('key', this.pathOf(stack), key), at)
        if (Object.hasOwn(top.dict, key)) this.fail('plist_malformed', `duplicate key ${quote(key)}`, at)
        top.key = key
        continue
      }

      // A value: it needs a slot (the root, the next array item, or a pending key).
      if (top === undefined) {
        if (root !== undefined) this.fail('plist_malformed', `more than one value in <plist>: unexpected <${short(name)}>`, at)
      } else if (top.dict !== undefined && top.key === undefined) {
        this.fail('plist_malformed', `<${short(name)}> in a <dict> without a <key>`, at)
      }
      if (++this.elements > maxElements) this.fail('plist_limit_exceeded', `more than maxElements ${maxElements} values`, at)

      let value: PlistValue
      let frame: XmlFrame | undefined
      if (name === 'dict' || name === 'array') {
        const dict: PlistDict | undefined = name === 'dict' ? {} : undefined
        const array: PlistValue[] | undefined = name === 'array' ? [] : undefined
        value = dict ?? array!
        if (stack.length >= maxDepth) this.fail('plist_limit_exceeded', `nesting deeper than maxDepth ${maxDepth}`, at)
        if (!selfClosing) frame = { name, dict, array, openedAt: at, key: undefined }
      } else {
        value = this.leaf(name, selfClosing, at)
        if (this.hasNul && typeof value === 'string' && value.includes(NUL)) {
          const slot = top === undefined ? [] : top.array !== undefined ? [top.array.length] : [top.key!]
          this.fail('plist_unsupported', nulMessage('string', this.pathOf(stack, slot), value), at)
        }
      }

      if (top === undefined) {
        root = value
      } else if (top.array !== undefined) {
        top.array.push(value)
      } else {
        setEntry(top.dict!, top.key!, value)
        top.key = undefined
      }
      if (frame !== undefined) stack.push(frame)
    }
  }

  /** The key path of the innermost open container, plus `slot` (only computed for messages). */
  private pathOf(stack: readonly XmlFrame[], slot: readonly (string | number)[] = []): string {
    const segments: (string | number)[] = []
    for (let i = 1; i < stack.length; i++) {
      const parent = stack[i - 1]!
      const child = stack[i]!
      segments.push(parent.array !== undefined ? parent.array.length - 1 : keyOf(parent.dict!, (child.dict ?? child.array)!))
    }
    return formatPath([...segments, ...slot])
  }

  /** After </plist>: only whitespace, comments and processing instructions. */
  private epilog(): void {
    const text = this.text
    for (;;) {
      this.skipSpace()
      const at = this.pos
      if (at >= text.length) return
      if (text.startsWith('<!--', at)) this.skipComment()
      else if (text.startsWith('<?', at)) this.skipProcessingInstruction()
      else this.fail('plist_malformed', `content after </plist>: ${quote(text.slice(at, at + 16))}`, at)
    }
  }

  private leaf(name: string, selfClosing: boolean, at: number): PlistValue {
    switch (name) {
      case 'string':
        return selfClosing ? '' : this.readText(name, at)
      case 'integer':
        return this.integer(selfClosing ? '' : this.readText(name, at), at)
      case 'real':
        return this.real(selfClosing ? '' : this.readText(name, at), at)
      case 'date':
        return this.date(selfClosing ? '' : this.readText(name, at), at)
      case 'data':
        return this.data(selfClosing ? '' : this.readText(name, at), at)
      case 'true':
      case 'false':
        if (!selfClosing && trimXmlSpace(this.readText(name, at)) !== '') this.fail('plist_malformed', `<${short(name)}> must be empty`, at)
        return name === 'true'
      case 'plist':
        return this.fail('plist_malformed', 'nested <plist>', at)
      default:
        return this.fail('plist_malformed', `unknown element <${short(name)}>`, at)
    }
  }

  /** Reads `<name attributes...>` or `<name/>` at pos; attributes are skipped. */
  private readOpenTag(): string {
    const text = this.text
    const at = this.pos
    let i = at + 1
    while (isNameChar(text.charCodeAt(i))) i++
    if (i === at + 1) this.fail('plist_malformed', `expected an element name after "<", found ${quote(text.slice(at, at + 16))}`, at)
    const name = text.slice(at + 1, i)
    let c = text.charCodeAt(i)
    if (c !== GT && c !== SLASH && !isXmlSpace(c) && i < text.length) {
      this.fail('plist_malformed', `invalid character in the name of <${short(name)}>`, i)
    }
    this.selfClosing = false
    for (;;) {
      if (i >= text.length) this.truncated(`<${short(name)}> tag`, at)
      c = text.charCodeAt(i)
      if (c === GT) break
      if (c === SLASH) {
        if (text.charCodeAt(i + 1) !== GT) this.fail('plist_malformed', `"/" not followed by ">" in the <${short(name)}> tag`, i)
        this.selfClosing = true
        i++
        break
      }
      if (c === DQUOTE || c === SQUOTE) {
        const end = text.indexOf(c === DQUOTE ? '"' : "'", i + 1)
        if (end < 0) this.truncated(`an attribute of <${short(name)}>`, at)
        i = end + 1
        continue
      }
      if (c === LT) this.fail('plist_malformed', `"<" inside the <${short(name)}> tag`, i)
      i++
    }
    this.pos = i + 1
    return name
  }

  /** Reads `</name>` (whitespace allowed before ">") at pos. */
  private readCloseTag(): string {
    const text = this.text
    const at = this.pos
    let i = at + 2
    while (isNameChar(text.charCodeAt(i))) i++
    if (i === at + 2) this.fail('plist_malformed', 'expected an element name after "</"', at)
    const name = text.slice(at + 2, i)
    while (i < text.length && isXmlSpace(text.charCodeAt(i))) i++
    if (i >= text.length) this.truncated(`</${short(name)}>`, at)
    if (text.charCodeAt(i) !== GT) this.fail('plist_malformed', `unexpected ${quote(text.charAt(i))} in </${short(name)}>`, i)
    this.pos = i + 1
    return name
  }

  /** Character data up to `</name>`, with entities decoded; pos is just after the open tag. */
  private readText(name: string, openedAt: number): string {
    const text = this.text
    const start = this.pos
    const lt = text.indexOf('<', start)
    if (lt < 0) this.truncated(`<${short(name)}>`, openedAt)
    // Fast path: plain text straight up to the exact close tag.
    if (text.charCodeAt(lt + 1) === SLASH && text.startsWith(name, lt + 2) && text.charCodeAt(lt + 2 + name.length) === GT) {
      this.pos = lt + 3 + name.length
      const raw = text.slice(start, lt)
      return raw.indexOf('&') < 0 ? raw : this.decodeEntities(raw, start)
    }
    let out = ''
    for (;;) {
      const pos = this.pos
      const next = text.indexOf('<', pos)
      if (next < 0) this.truncated(`<${short(name)}>`, openedAt)
      if (next > pos) {
        const raw = text.slice(pos, next)
        out += raw.indexOf('&') < 0 ? raw : this.decodeEntities(raw, pos)
      }
      this.pos = next
      if (text.charCodeAt(next + 1) === SLASH) {
        const closeName = this.readCloseTag()
        if (closeName !== name) this.fail('plist_malformed', `mismatched </${short(closeName)}>, expected </${short(name)}>`, next)
        return out
      }
      if (text.startsWith('<![CDATA[', next)) {
        const end = text.indexOf(']]>', next + 9)
        if (end < 0) this.truncated('a CDATA section', next)
        out += text.slice(next + 9, end)
        this.pos = end + 3
      } else if (text.startsWith('<!--', next)) {
        this.skipComment()
      } else if (text.charCodeAt(next + 1) === QUESTION) {
        this.skipProcessingInstruction()
      } else {
        this.fail('plist_malformed', `unexpected ${quote(text.slice(next, next + 16))} inside <${short(name)}>`, next)
      }
    }
  }

  private decodeEntities(raw: string, rawAt: number): string {
    let out = ''
    let last = 0
    let amp = raw.indexOf('&')
    while (amp >= 0) {
      out += raw.slice(last, amp)
      const semi = raw.indexOf(';', amp + 1)
      if (semi < 0 || semi - amp > 16) this.fail('plist_malformed', `unterminated entity ${quote(raw.slice(amp, amp + 12))}`, rawAt + amp)
      out += this.entity(raw.slice(amp + 1, semi), rawAt + amp)
      last = semi + 1
      amp = raw.indexOf('&', last)
    }
    return out + raw.slice(last)
  }

  private entity(name: string, at: number): string {
    switch (name) {
      case 'lt':
        return '<'
      case 'gt':
        return '>'
      case 'amp':
        return '&'
      case 'quot':
        return '"'
      case 'apos':
        return "'"
    }
    if (name.charCodeAt(0) !== 0x23) this.fail('plist_malformed', `unknown entity &${name};`, at)
    let cp = Number.NaN
    if (name.charCodeAt(1) === 0x78) {
      if (/^#x[0-9a-fA-F]+$/.test(name)) cp = parseInt(name.slice(2), 16)
    } else if (/^#[0-9]+$/.test(name)) {
      cp = parseInt(name.slice(1), 10)
    }
    if (Number.isNaN(cp)) this.fail('plist_malformed', `malformed character reference &${name};`, at)
    if (!isXmlChar(cp)) this.fail('plist_malformed', `character reference &${name}; is not an XML character`, at)
    return String.fromCodePoint(cp)
  }

  private skipComment(): void {
    const at = this.pos
    const end = this.text.indexOf('-->', at + 4)
    if (end < 0) this.truncated('a comment', at)
    this.pos = end + 3
  }

  private skipProcessingInstruction(): void {
    const at = this.pos
    const end = this.text.indexOf('?>', at + 2)
    if (end < 0) this.truncated('a processing instruction', at)
    this.pos = end + 2
  }

  // An internal subset ("[...]") is where entities would be declared: refuse it outright
  // rather than parse it, so no entity can ever be defined, let alone expanded.
  private skipDoctype(): void {
    const text = this.text
    const at = this.pos
    let i = at + 9
    for (;;) {
      if (i >= text.length) this.truncated('<!DOCTYPE>', at)
      const c = text.charCodeAt(i)
      if (c === GT) break
      if (c === LBRACKET) this.fail('plist_unsupported', 'DOCTYPE with an internal subset (entity declarations are not supported)', i)
      if (c === DQUOTE || c === SQUOTE) {
        const end = text.indexOf(c === DQUOTE ? '"' : "'", i + 1)
        if (end < 0) this.truncated('<!DOCTYPE>', at)
        i = end + 1
        continue
      }
      if (c === LT) this.fail('plist_malformed', '"<" inside <!DOCTYPE>', i)
      i++
    }
    this.pos = i + 1
  }

  private markupDeclaration(at: number): never {
    if (this.text.startsWith('<!ENTITY', at)) this.fail('plist_unsupported', 'entity declarations are not supported', at)
    if (this.text.startsWith('<!DOCTYPE', at)) this.fail('plist_malformed', 'unexpected <!DOCTYPE>', at)
    return this.fail('plist_malformed', `unexpected markup ${quote(this.text.slice(at, at + 16))}`, at)
  }

  private integer(raw: string, at: number): number | bigint {
    const value = parseInteger(trimXmlSpace(raw))
    if (value === undefined) this.fail('plist_malformed', `invalid <integer> ${quote(raw)}`, at)
    if (value === null) this.fail('plist_unsupported', `<integer> ${quote(raw)} is outside the 64-bit range`, at)
    return value
  }

  private real(raw: string, at: number): number {
    const text = trimXmlSpace(raw)
    if (REAL.test(text)) return Number(text)
    switch (text.toLowerCase()) {
      case 'nan':
      case '+nan':
      case '-nan':
        return Number.NaN
      case 'inf':
      case '+inf':
      case 'infinity':
      case '+infinity':
        return Number.POSITIVE_INFINITY
      case '-inf':
      case '-infinity':
        return Number.NEGATIVE_INFINITY
    }
    return this.fail('plist_malformed', `invalid <real> ${quote(raw)}`, at)
  }

  private date(raw: string, at: number): Date {
    const date = parseDate(trimXmlSpace(raw))
    if (date === undefined) this.fail('plist_malformed', `invalid <date> ${quote(raw)} (expected YYYY-MM-DDTHH:MM:SSZ)`, at)
    return date
  }

  private data(raw: string, at: number): Buffer {
    const data = parseBase64(raw)
    if (data === undefined) this.fail('plist_malformed', `invalid base64 in <data> ${quote(raw)}`, at)
    return data
  }
}

const DECIMAL = /^[+-]?[0-9]+$/
const HEX = /^([+-]?)0[xX]([0-9a-fA-F]+)$/
const REAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/
/** A number when safe, else a bigint; undefined when not an integer, null when outside [-2^63, 2^64-1]. */
function parseInteger(text: string): number | bigint | undefined | null {
  if (text.length <= 15 && DECIMAL.test(text)) return Number(text) + 0 // + 0 turns -0 into 0
  let big: bigint
  if (DECIMAL.test(text)) {
    // Check the length before BigInt(): converting a megabyte of digits is not linear.
    if (text.replace(/^[+-]?0*/, '').length > 20) return null
    big = BigInt(text)
  } else {
    const hex = HEX.exec(text)
    if (hex === null) return undefined
    const digits = hex[2]!.replace(/^0+/, '')
    if (digits.length > 16) return null
    big = BigInt(`0x${digits || '0'}`)
    if (hex[1] === '-') big = -big
  }
  if (big < INT64_MIN || big > UINT64_MAX) return null
  return normalizeInteger(big)
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z$/

function parseDate(text: string): Date | undefined {
  const m = DATE.exec(text)
  if (m === null) return undefined
  const year = Number(m[1])
  const month = Number(m[2])
  const day = Number(m[3])
  const hour = Number(m[4])
  const minute = Number(m[5])
  const second = Number(m[6])
  const millisecond = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'))
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millisecond))
  date.setUTCFullYear(year) // Date.UTC maps years 0-99 to 1900-1999
  if (date.getUTCDate() !== day) return undefined // e.g. February 30
  return date
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function parseBase64(raw: string): Buffer | undefined {
  const text = /[\t\n\r ]/.test(raw) ? raw.replace(/[\t\n\r ]+/g, '') : raw
  if (!BASE64.test(text)) return undefined
  const padded = text.endsWith('=')
  if (text.length % 4 === 1 || (padded && text.length % 4 !== 0)) return undefined
  return Buffer.from(text, 'base64')
}

/** Where isUtf8() failed: only computed for the error message. */
function firstInvalidUtf8(bytes: Buffer, from: number): number {
  let i = from
  while (i < bytes.length) {
    const c = bytes[i]!
    if (c < 0x80) {
      i++
      continue
    }
    let extra: number
    let min: number
    if (c >= 0xc2 && c <= 0xdf) [extra, min] = [1, 0x80]
    else if (c >= 0xe0 && c <= 0xef) [extra, min] = [2, 0x800]
    else if (c >= 0xf0 && c <= 0xf4) [extra, min] = [3, 0x10000]
    else return i
    if (i + extra >= bytes.length) return i
    let cp = c & (0x3f >> extra)
    for (let k = 1; k <= extra; k++) {
      const d = bytes[i + k]!
      if ((d & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (d & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i
    i += extra + 1
  }
  return bytes.length
}
