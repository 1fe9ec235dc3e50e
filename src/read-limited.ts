// A fetch answer's body read with a size limit, for the outside services Orchard reads (an
// OpenID provider's documents, Apple's software catalogue): a declared Content-Length over the
// limit is refused before reading, and a stream that goes past it is cancelled.

/** The body, at most `limit` bytes; `tooLarge` makes the error (with the declared length when that was the reason). */
export async function readLimited(response: Response, limit: number, tooLarge: (contentLength: number | undefined) => Error): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  if (declared > limit) {
    await response.body?.cancel().catch(() => undefined)
    throw tooLarge(declared)
  }
  if (!response.body) return Buffer.from(await response.arrayBuffer())
  // A fetch body is a stream of Uint8Array chunks (Fetch standard); Node's typings leave it `any`.
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => undefined)
      throw tooLarge(undefined)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}
