// Text no column can hold: U+0000 (PostgreSQL text and jsonb refuse it) and unpaired
// surrogates (no character at all; jsonb refuses their \ud800 escapes, text would get U+FFFD).
// Refused wherever input is decoded, as the caller's error, never left to the database:
// admin API parameters and JSON bodies (http/plugin.ts), plists (mdm/plist.ts checks NUL
// itself), pagination cursors, JSON a device sends.

const unstorable = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Why `text` cannot be stored ("contains U+0000 ..."), or undefined when it can. */
export function unstorableDetail(text: string): string | undefined {
  const match = unstorable.exec(text)
  if (match === null) return undefined
  return match[0] === '\u0000' ? 'contains U+0000 (NUL), which Orchard does not accept' : 'contains an unpaired surrogate, which is not valid Unicode'
}

/**
 * `text` with U+0000 and unpaired surrogates replaced by U+FFFD, for what is recorded even when
 * the request is refused (the audit row of a failed admin write names its target).
 */
export function storableText(text: string): string {
  return text.replace(new RegExp(unstorable.source, 'g'), '\ufffd')
}

export interface UnstorableField {
  /** JSON pointer (RFC 6901) of the string, or of the key when the key itself is the problem. */
  pointer: string
  detail: string
}

const pointerToken = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1')

/**
 * Strings and keys of a decoded JSON value that cannot be stored, at most `max`. Iterative: a deeply nested value costs heap, not stack.
 */
export function unstorableFields(value: unknown, max = 20): UnstorableField[] {
  const found: UnstorableField[] = []
  const stack: Array<[unknown, string]> = [[value, '']]
  while (stack.length > 0 && found.length < max) {
    const [node, pointer] = stack.pop()!
    if (typeof node === 'string') {
      const detail = unstorableDetail(node)
      if (detail !== undefined) found.push({ pointer, detail })
    } else if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push([node[i], `${pointer}/${i}`])
    } else if (typeof node === 'object' && node !== null && !Buffer.isBuffer(node)) {
      const entries = Object.entries(node as Record<string, unknown>)
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, item] = entries[i]!
        const detail = unstorableDetail(key)
        if (detail !== undefined) found.push({ pointer: `${pointer}/${pointerToken(key)}`, detail: `(the field name) ${detail}` })
        else stack.push([item, `${pointer}/${pointerToken(key)}`])
      }
    }
  }
  return found
}
