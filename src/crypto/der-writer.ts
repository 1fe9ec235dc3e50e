// A small DER (X.690) encoder for the CMS structures the server builds: SCEP CertRep
// messages, degenerate certs-only SignedData and EnvelopedData. Each function returns the
// complete encoding of one element; nesting is plain function composition.

function lengthOctets(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length])
  const bytes: number[] = []
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

/** One element: identifier octet, definite length, content. */
export function element(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), lengthOctets(body.length), body])
}

export const sequence = (...children: Buffer[]): Buffer => element(0x30, ...children)

/** SET OF: DER orders the encodings of the members (X.690 §11.6). */
export const setOf = (...children: Buffer[]): Buffer => element(0x31, ...[...children].sort(Buffer.compare))

/** [n] EXPLICIT, or [n] IMPLICIT of a constructed type (SET, SEQUENCE). */
export const contextConstructed = (n: number, ...content: Buffer[]): Buffer => element(0xa0 | n, ...content)

/** [n] IMPLICIT of a primitive type (e.g. OCTET STRING). */
export const contextPrimitive = (n: number, content: Buffer): Buffer => element(0x80 | n, content)

export const octetString = (value: Buffer): Buffer => element(0x04, value)

export const nullValue = (): Buffer => Buffer.from([0x05, 0x00])

export const printableString = (value: string): Buffer => {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(value)) throw new Error(`not a PrintableString: ${JSON.stringify(value)}`)
  return element(0x13, Buffer.from(value, 'latin1'))
}

export const utf8String = (value: string): Buffer => element(0x0c, Buffer.from(value, 'utf8'))

export const bitString = (value: Buffer, unusedBits = 0): Buffer => element(0x03, Buffer.from([unusedBits]), value)

export const booleanValue = (value: boolean): Buffer => Buffer.from([0x01, 0x01, value ? 0xff : 0x00])

/** INTEGER from a small non-negative number. */
export function smallInteger(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) throw new Error(`integer out of range: ${value}`)
  const bytes: number[] = []
  let rest = value
  do {
    bytes.unshift(rest & 0xff)
    rest = Math.floor(rest / 256)
  } while (rest > 0)
  if (bytes[0]! & 0x80) bytes.unshift(0)
  return element(0x02, Buffer.from(bytes))
}

/** INTEGER whose content octets are given as an unsigned big-endian number (serial numbers). */
export function unsignedInteger(value: Buffer): Buffer {
  let start = 0
  while (start < value.length - 1 && value[start] === 0) start++
  const trimmed = value.subarray(start)
  return element(0x02, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed)
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((arc) => BigInt(arc))
  if (arcs.length < 2) throw new Error(`object identifier needs two arcs: ${dotted}`)
  const out: number[] = []
  const push = (value: bigint) => {
    const chunk: number[] = [Number(value & 0x7fn)]
    for (let rest = value >> 7n; rest > 0n; rest >>= 7n) chunk.unshift(Number(rest & 0x7fn) | 0x80)
    out.push(...chunk)
  }
  push(arcs[0]! * 40n + arcs[1]!)
  for (const arc of arcs.slice(2)) push(arc)
  return element(0x06, Buffer.from(out))
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
export function time(value: Date): Buffer {
  const iso = value.toISOString() // 2026-11-22T10:00:00.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') // 20261122100000
  const year = value.getUTCFullYear()
  if (year >= 1950 && year <= 2049) return element(0x17, Buffer.from(`${digits.slice(2)}Z`, 'latin1'))
  return element(0x18, Buffer.from(`${digits}Z`, 'latin1'))
}

/** AlgorithmIdentifier with absent or given parameters. */
export const algorithm = (dotted: string, parameters?: Buffer): Buffer => sequence(oid(dotted), ...(parameters ? [parameters] : []))
