// The simulated device the tests use is the simulator's (src/simulator/simulated-device.ts): one
// copy for both. Here: what only tests need, a device CA written to a PEM file for
// ORCHARD_DEVICE_CA_FILES, a transport over fastify's inject, and the tests' push topic.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { defaultTopic, type DeviceCa as IssuingCa, type Transport } from '../../src/simulator/simulated-device.js'
import { createTestCa } from './test-ca.js'

export * from '../../src/simulator/simulated-device.js'

export interface DeviceCa extends IssuingCa {
  /** A PEM file holding the CA certificate, for ORCHARD_DEVICE_CA_FILES. */
  pemFile: string
}

export async function createDeviceCa(name = 'Test device CA'): Promise<DeviceCa> {
  const ca = await createTestCa(name, 'ec-p256', 365)
  const pemFile = join(mkdtempSync(join(tmpdir(), 'orchard-device-ca-')), 'ca.pem')
  writeFileSync(pemFile, ca.pem)
  return { certificate: ca.certificate, privateKey: ca.privateKey, pemFile }
}

export function injectTransport(app: FastifyInstance): Transport {
  return async (path, body, headers) => {
    const response = await app.inject({ method: 'PUT', url: path, payload: body, headers })
    return { status: response.statusCode, body: response.rawPayload, contentType: response.headers['content-type'] as string | undefined }
  }
}

export const testTopic = defaultTopic
