import { X509Certificate } from 'node:crypto'

/** Every CERTIFICATE block of a PEM text, as DER; throws when one does not parse. */
export function certificatesFromPem(pem: string, source: string): Buffer[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new Error(`${source}: no PEM certificate found`)
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block).raw
    } catch (error) {
      throw new Error(`${source}: certificate #${index + 1} does not parse: ${(error as Error).message}`)
    }
  })
}
