// Declarative management status reports, kept as the device sent them.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'

export interface DdmStatusStore {
  storeStatusReport(enrollmentId: string, reportJson: string): Promise<void>
}

export function createDdmStatusStore(db: Kysely<Database>): DdmStatusStore {
  return {
    async storeStatusReport(enrollmentId, reportJson) {
      await db.insertInto('ddm_status_reports').values({ enrollment_id: enrollmentId, report: reportJson }).execute()
    },
  }
}
