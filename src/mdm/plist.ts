// Property lists as the MDM protocol uses them: devices send XML (some tools send binary
// bplist00), Orchard answers in XML. Format reference:
// https://developer.apple.com/library/archive/documentation/Cocoa/Conceptual/PropertyLists/
//
// The decoder is a hand-written scanner, not an XML library: no DTD, no entity expansion,
// no recursion, and every input is bounded by PlistLimits and read in linear time.
// Untrusted bytes can only make it throw PlistError.

import { isUtf8 } from 'node:buffer'

export type PlistValue = string | number | bigint | boolean | Date | Buffer | PlistValue[] | PlistDict

export interface PlistDict {
  [key: string]: PlistValue
}

export interface PlistLimits {
  /** Deepest nesting of dicts and arrays; a root dict is depth 1. */
  maxDepth: number
  /** Most values (dicts, arrays and leaves; keys are not counted) one document may hold. */
  maxElements: number
  /** Largest input; also caps the <data> bytes a binary plist may expand to by sharing objects. */
  maxBytes: number
}

export const defaultPlistLimits: PlistLimits = Object.freeze({
  maxDepth: 64,
  maxElements: 200_000,
  maxBytes: 16 * 1024 * 1024,
})

export type PlistErrorCode = 'plist_malformed' | 'plist_limit_exceeded' | 'plist_unsupported'

export class PlistError extends Error {
  override readonly name = 'PlistError'
  readonly code: PlistErrorCode
  /** Byte offset in the decoded input where the problem is; undefined when encoding. */
  readonly offset: number | undefined

  constructor(code: PlistErrorCode, message: string, offset?: number) {
    super(offset === undefined ? message : `${message} at byte ${offset}`)
    this.code = code
    this.offset = offset
  }
}

/** A plain object (the shape decodePlist gives dicts): not an array, Date, Buffer or class instance. */
export function isPlistDict(value: unknown): value is PlistDict {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * Decodes an XML or binary (bplist00) property list, told apart by their first bytes.
 * XML must be UTF-8 (a BOM and leading whitespace are allowed) with a <plist> root holding
 * exactly one value. Strings and keys holding U+0000 are refused (plist_unsupported: PostgreSQL
 * text cannot store NUL), and so are unpaired surrogates in binary UTF-16 strings
 * (plist_malformed); both messages name the key path. Throws PlistError and nothing else for
 * any input bytes.
 */
export function decodePlist(bytes: Buffer, limits?: Partial<PlistLimits>): PlistValue {
  const raw: unknown = bytes
  if (!(raw instanceof Uint8Array)) throw new TypeError('decodePlist expects a Buffer')
  const input = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
  const resolved = resolveLimits(limits)
  if (input.length > resolved.maxBytes) {
    throw new PlistError('plist_limit_exceeded', `input is ${input.length} bytes, more than maxBytes ${resolved.maxBytes}`)
  }
  if (input.length === 0) throw new PlistError('plist_malformed', 'empty input', 0)
  if (input.length >= 6 && input.toString('latin1', 0, 6) === 'bplist') {
    if (input.length < 8) throw new PlistError('plist_malformed', 'truncated binary plist header', input.length)
    const version = input.toString('latin1', 6, 8)
    if (version !== '00') {
      throw new PlistError('plist_unsupported', `binary plist version ${JSON.stringify(version)} (only "00" is supported)`, 6)
    }
    return new BinaryDecoder(input, resolved).decode()
  }
  if ((input[0] === 0xfe && input[1] === 0xff) || (input[0] === 0xff && input[1] === 0xfe)) {
    throw new PlistError('plist_unsupported', 'UTF-16 XML (only UTF-8 is supported)', 0)
  }
  const start = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0
  if (!isUtf8(start === 0 ? input : input.subarray(start))) {
    throw new PlistError('plist_malformed', 'invalid UTF-8', firstInvalidUtf8(input, start))
  }
  return new XmlDecoder(input.toString('utf8', start), input.length, start, resolved).decode()
}

function resolveLimits(limits: Partial<PlistLimits> | undefined): PlistLimits {
  if (limits === undefined) return defaultPlistLimits
  return {
    maxDepth: limits.maxDepth ?? defaultPlistLimits.maxDepth,
    maxElements: limits.maxElements ?? defaultPlistLimits.maxElements,
    maxBytes: limits.maxBytes ?? defaultPlistLimits.maxBytes,
  }
}

// Keys that Object.prototype has ("__proto__", "constructor", "toString"...) are defined,
// not assigned: assigning "__proto__" goes through a setter and replaces the prototype.
// Plain assignment is kept for all other keys because it is several times faster.
const objectPrototype: object = Object.prototype

function setEntry(dict: PlistDict, key: string, value: PlistValue): void {
  if (key in objectPrototype) Object.defineProperty(dict, key, { value, writable: true, enumerable: true, configurable: true })
  else dict[key] = value
}

/** An element name from the input, cut short for an error message. */
function short(name: string): string {
  return name.length > 40 ? `${name.slice(0, 40)}…` : name
}

/** A short, quoted excerpt of untrusted text for an error message. */
function quote(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)
}

/** A key path for messages: $, $.Command.Message, $.ErrorChain[0], $["odd key"]. */
function formatPath(segments: readonly (string | number)[]): string {
  let path = '$'
  for (const segment of segments) {
    if (typeof segment === 'number') path += `[${segment}]`
    else path += /^[A-Za-z_][A-Za-z0-9_]*$/.test(segment) ? `.${segment}` : `[${quote(segment)}]`
  }
  return path
}

/** The key under which `child` (a container still being filled, so the newest entry) sits. */
function keyOf(dict: PlistDict, child: PlistValue): string {
  let found = ''
  for (const key of Object.keys(dict)) if (dict[key] === child) found = key
  return found
}

const NUL = '\u0000'

// Only UTF-16 strings of binary plists can hold one (XML is checked UTF-8, character references must be characters).
const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

function textMessage(what: 'key' | 'string', path: string, value: string, problem: string): string {
  return what === 'key' ? `key ${quote(value)} in ${path} ${problem}` : `string at ${path} ${problem}`
}

function nulMessage(what: 'key' | 'string', path: string, value: string): string {
  return textMessage(what, path, value, 'contains U+0000 (NUL), which Orchard does not accept')
}

// ---------------------------------------------------------------------------------------
// XML

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

// Text is returned exactly as sent: line ends are not normalized, and raw control characters
// are tolerated (some writers emit them unescaped). Character references, though, must name
// XML 1.0 characters.
function isXmlChar(cp: number): boolean {
  return (
    (cp >= 0x20 && cp <= 0xd7ff) ||
    cp === 0x09 ||
    cp === 0x0a ||
    cp === 0x0d ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  )
}

function trimXmlSpace(text: string): string {
  let start = 0
  let end = text.length
  while (start < end && isXmlSpace(text.charCodeAt(start))) start++
  while (end > start && isXmlSpace(text.charCodeAt(end - 1))) end--
  return start === 0 && end === text.length ? text : text.slice(start, end)
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
const INT64_MIN = -(2n ** 63n)
const UINT64_MAX = 2n ** 64n - 1n

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

function normalizeInteger(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value
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

// ---------------------------------------------------------------------------------------
// Binary (bplist00): header, objects, offset table, 32-byte trailer. Objects refer to each
// other by index, so a hostile file can share objects (exponential expansion) or refer
// back to an ancestor (a cycle): every visit counts against maxElements, <data> copies
// against maxBytes, and ancestors are tracked. Sets and UIDs are refused (plist_unsupported):
// MDM never sends them. Format: CoreFoundation's CFBinaryPList.c.

const BPLIST_EPOCH_MS = 978_307_200_000 // 2001-01-01T00:00:00Z

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
    if (marker >> 4 !== 0x1 || (marker & 0xf) > 3) this.fail('plist_malformed', `object #${index} has an invalid length marker 0x${marker.toString(16)}`, at + 1)
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
      value = Buffer.from(this.buf.subarray(payloadAt, payloadAt + payloadLength * 2)).swap16().toString('utf16le')
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

// ---------------------------------------------------------------------------------------
// Encoding

const XML_HEADER =
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
  '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
  '<plist version="1.0">\n'
const MAX_ENCODE_DEPTH = 512

/**
 * Encodes a value as an XML property list (UTF-8, tab-indented like Apple's). Safe integers
 * become <integer>, other finite numbers <real>; Buffer and Uint8Array become <data>; dates
 * lose their milliseconds. Dict entries whose value is undefined are skipped. Throws
 * PlistError('plist_unsupported') for null, NaN, Infinity, cycles, non-plain objects and
 * strings XML 1.0 cannot carry (e.g. "\u0000").
 */
export function encodePlist(value: PlistValue): Buffer {
  const encoder = new XmlEncoder()
  encoder.value(value, '')
  return Buffer.from(`${XML_HEADER}${encoder.out}</plist>\n`, 'utf8')
}

class XmlEncoder {
  out = ''
  private readonly path: (string | number)[] = []
  private readonly ancestors: object[] = []

  value(value: unknown, indent: string): void {
    switch (typeof value) {
      case 'string':
        this.out += `${indent}<string>${this.escape(value)}</string>\n`
        return
      case 'number':
        if (Number.isSafeInteger(value)) this.out += `${indent}<integer>${value}</integer>\n`
        else if (Number.isFinite(value)) this.out += `${indent}<real>${value}</real>\n`
        else this.fail(`${value} has no property-list form`)
        return
      case 'bigint':
        if (value < INT64_MIN || value > UINT64_MAX) this.fail(`integer ${value} is outside the 64-bit range`)
        this.out += `${indent}<integer>${value}</integer>\n`
        return
      case 'boolean':
        this.out += value ? `${indent}<true/>\n` : `${indent}<false/>\n`
        return
      case 'object':
        if (value === null) return this.fail('null has no property-list form')
        if (value instanceof Date) {
          const iso = Number.isNaN(value.getTime()) ? '' : value.toISOString()
          if (iso.length !== 24) this.fail('invalid date, or a year outside 0000-9999')
          this.out += `${indent}<date>${iso.slice(0, 19)}Z</date>\n`
          return
        }
        if (value instanceof Uint8Array) {
          const data = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
          this.out += `${indent}<data>${data.toString('base64')}</data>\n`
          return
        }
        if (Array.isArray(value)) return this.array(value, indent)
        if (isPlistDict(value)) return this.dict(value, indent)
        return this.fail(`${value.constructor?.name ?? 'object'} is not a plain object, array, Date or Buffer`)
      default:
        return this.fail(`${typeof value} has no property-list form`)
    }
  }

  private array(array: readonly unknown[], indent: string): void {
    if (array.length === 0) {
      this.out += `${indent}<array/>\n`
      return
    }
    this.enter(array)
    this.out += `${indent}<array>\n`
    const inner = `${indent}\t`
    for (let i = 0; i < array.length; i++) {
      this.path.push(i)
      this.value(array[i], inner)
      this.path.pop()
    }
    this.out += `${indent}</array>\n`
    this.ancestors.pop()
  }

  private dict(dict: Record<string, unknown>, indent: string): void {
    this.enter(dict)
    const inner = `${indent}\t`
    let open = false
    for (const key of Object.keys(dict)) {
      const item = dict[key]
      if (item === undefined) continue
      if (!open) {
        this.out += `${indent}<dict>\n`
        open = true
      }
      this.path.push(key)
      this.out += `${inner}<key>${this.escape(key)}</key>\n`
      this.value(item, inner)
      this.path.pop()
    }
    this.out += open ? `${indent}</dict>\n` : `${indent}<dict/>\n`
    this.ancestors.pop()
  }

  private enter(container: object): void {
    if (this.ancestors.includes(container)) this.fail('cycle: the value contains itself')
    if (this.ancestors.length >= MAX_ENCODE_DEPTH) this.fail(`nesting deeper than ${MAX_ENCODE_DEPTH}`, 'plist_limit_exceeded')
    this.ancestors.push(container)
  }

  private escape(text: string): string {
    if (!NEEDS_ESCAPE.test(text)) return text
    let out = ''
    let last = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      let replacement: string
      if (c === 0x26) replacement = '&amp;'
      else if (c === 0x3c) replacement = '&lt;'
      else if (c === 0x3e) replacement = '&gt;'
      // Line ends XML parsers may normalize to "\n" (CR, and NEL, LS, PS for XML 1.1 ones like xmldom).
      else if (c === 0x0d || c === 0x85 || c === 0x2028 || c === 0x2029) replacement = `&#${c};`
      else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        i++
        continue
      } else if (!isXmlChar(c)) {
        this.fail(`string has character U+${c.toString(16).toUpperCase().padStart(4, '0')} at index ${i}, which XML 1.0 cannot carry`)
      } else continue
      out += text.slice(last, i) + replacement
      last = i + 1
    }
    return out + text.slice(last)
  }

  private fail(message: string, code: PlistErrorCode = 'plist_unsupported'): never {
    throw new PlistError(code, `${message} at ${formatPath(this.path)}`)
  }
}

// Anything but ordinary characters: markup, line ends other than LF, controls, surrogates, U+FFFE/U+FFFF.
const NEEDS_ESCAPE = /[^\t\n\x20-\x25\x27-\x3b\x3d\x3f-\x84\x86-\u2027\u202a-\ud7ff\ue000-\ufffd]/
