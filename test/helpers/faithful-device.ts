// The faithful device the tests use is the simulator's (src/simulator/faithful-device.ts): one
// copy for both. Here: a Wi-Fi profile to install on it.
import { randomUUID } from 'node:crypto'
import { encodePlist } from '../../src/mdm/plist.js'

export * from '../../src/simulator/faithful-device.js'

export function wifiProfile(identifier: string, ssid: string, uuid: string = randomUUID()): Buffer {
  return encodePlist({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: identifier,
    PayloadUUID: uuid,
    PayloadDisplayName: `Wi-Fi ${ssid}`,
    PayloadContent: [
      {
        PayloadType: 'com.apple.wifi.managed',
        PayloadVersion: 1,
        PayloadIdentifier: `${identifier}.wifi`,
        PayloadUUID: randomUUID(),
        SSID_STR: ssid,
        EncryptionType: 'WPA2',
      },
    ],
  })
}
