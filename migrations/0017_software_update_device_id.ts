// Frozen: never edit a migration that has landed; add a new numbered one instead.
// A device's SoftwareUpdateDeviceID (DeviceInformation; macOS 12 and iOS 15 and later): the ID
// Apple's software lookup document lists a Mac under in SupportedDevices (J413AP,
// Mac-827FAC58A8FDFA22, VMA2MACOSAP), where its ProductName (Mac14,2) does not appear.
// https://developer.apple.com/documentation/devicemanagement/deviceinformationresponse/queryresponses
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table devices add column software_update_device_id text`.execute(db)
}
