// Encoding: XML property lists as Orchard answers devices.
import { formatPath, INT64_MIN, isPlistDict, isXmlChar, PlistError, UINT64_MAX, type PlistErrorCode, type PlistValue } from './values.js'

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
