// Property lists as the MDM protocol uses them: devices send XML (some tools send binary
// bplist00), Orchard answers in XML. Format reference:
// https://developer.apple.com/library/archive/documentation/Cocoa/Conceptual/PropertyLists/
//
// This is the public entry: values, limits and errors (plist/values.ts), the XML decoder
// (plist/xml.ts), the binary decoder (plist/binary.ts) and the XML encoder (plist/encode.ts).
// Untrusted bytes can only make decodePlist throw PlistError.

import { decodeBinaryPlist } from './plist/binary.js'
import { PlistError, resolveLimits, type PlistLimits, type PlistValue } from './plist/values.js'
import { decodeXmlPlist } from './plist/xml.js'

export { encodePlist } from './plist/encode.js'
export { defaultPlistLimits, isPlistDict, PlistError, type PlistDict, type PlistErrorCode, type PlistLimits, type PlistValue } from './plist/values.js'

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
  if (input.length >= 6 && input.toString('latin1', 0, 6) === 'bplist') return decodeBinaryPlist(input, resolved)
  return decodeXmlPlist(input, resolved)
}
