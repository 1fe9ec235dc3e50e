// The device CAs: the one issuing identities now, older issuing CAs and extra trusted CAs.
import { sql, type Kysely, type Selectable } from 'kysely'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { CertificateAuthoritiesTable, Database } from '../db/schema.js'

export type CertificateAuthorityRow = Selectable<CertificateAuthoritiesTable>
export type NewCertificateAuthority = Omit<CertificateAuthorityRow, 'created_at' | 'active'>

// The operator's changes (activate, addTrusted, remove) take the caller's scope and write its
// audit row (installation-wide: tenant null) in the transaction of the change.
export interface CertificateAuthorityStore {
  list(): Promise<CertificateAuthorityRow[]>
  /** Inserts a generated CA as the active one unless another instance got there first (false). */
  insertActiveIfNone(row: NewCertificateAuthority): Promise<boolean>
  /** An imported CA with its key becomes the active one; the previous one stays trusted. */
  activate(scope: AccessScope, row: NewCertificateAuthority): Promise<void>
  /** A CA trusted for device identities, without a key. False when it is already there. */
  addTrusted(scope: AccessScope, row: NewCertificateAuthority): Promise<boolean>
  remove(scope: AccessScope, id: string): Promise<'removed' | 'active' | 'not_found'>
  setRegistrationAuthority(id: string, certificateDer: Buffer, privateKeySealed: Buffer): Promise<void>
}

export function createCertificateAuthorityStore(db: Kysely<Database>): CertificateAuthorityStore {
  return {
    list() {
      return db.selectFrom('certificate_authorities').selectAll().orderBy('created_at').orderBy('id').execute()
    },

    async insertActiveIfNone(row) {
      // The partial unique index on active makes two instances starting at once safe.
      const inserted = await db
        .insertInto('certificate_authorities')
        .columns([
          'id',
          'certificate_der',
          'subject',
          'not_before',
          'not_after',
          'source',
          'private_key_sealed',
          'ra_certificate_der',
          'ra_private_key_sealed',
          'active',
        ])
        .expression(
          db
            .selectNoFrom([
              sql<string>`${row.id}::text`.as('id'),
              sql<Buffer>`${row.certificate_der}::bytea`.as('certificate_der'),
              sql<string>`${row.subject}::text`.as('subject'),
              sql<Date>`${row.not_before}::timestamptz`.as('not_before'),
              sql<Date>`${row.not_after}::timestamptz`.as('not_after'),
              sql<string>`${row.source}::text`.as('source'),
              sql<Buffer>`${row.private_key_sealed}::bytea`.as('private_key_sealed'),
              sql<Buffer | null>`${row.ra_certificate_der}::bytea`.as('ra_certificate_der'),
              sql<Buffer | null>`${row.ra_private_key_sealed}::bytea`.as('ra_private_key_sealed'),
              sql<boolean>`true`.as('active'),
            ])
            .where(({ not, exists, selectFrom }) => not(exists(selectFrom('certificate_authorities').select('id').where('active', '=', true)))),
        )
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .execute()
      return inserted.length > 0
    },

    async activate(scope, row) {
      await db.transaction().execute(async (trx) => {
        const previous = await trx.updateTable('certificate_authorities').set({ active: false }).where('active', '=', true).returning('id').executeTakeFirst()
        await trx
          .insertInto('certificate_authorities')
          .values({ ...row, active: true })
          .onConflict((oc) =>
            oc.column('id').doUpdateSet({
              source: row.source,
              private_key_sealed: row.private_key_sealed,
              ra_certificate_der: row.ra_certificate_der,
              ra_private_key_sealed: row.ra_private_key_sealed,
              active: true,
            }),
          )
          .execute()
        await recordAdminWrite(trx, scope, {
          type: 'certificate_authority',
          id: row.id,
          tenantId: null,
          details: {
            subject: row.subject,
            source: row.source,
            active: true,
            previous_active_id: previous?.id ?? null,
            registration_authority: row.ra_certificate_der !== null,
          },
        })
      })
    },

    async addTrusted(scope, row) {
      return db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('certificate_authorities')
          .values({ ...row, active: false })
          .onConflict((oc) => oc.column('id').doNothing())
          .returning('id')
          .execute()
        if (inserted.length === 0) return false
        await recordAdminWrite(trx, scope, {
          type: 'certificate_authority',
          id: row.id,
          tenantId: null,
          details: { subject: row.subject, source: row.source, active: false },
        })
        return true
      })
    },

    async remove(scope, id) {
      return db.transaction().execute(async (trx) => {
        const deleted = await trx
          .deleteFrom('certificate_authorities')
          .where('id', '=', id)
          .where('active', '=', false)
          .returning(['id', 'subject', 'source'])
          .executeTakeFirst()
        if (deleted) {
          await recordAdminWrite(trx, scope, {
            type: 'certificate_authority',
            id,
            tenantId: null,
            details: { subject: deleted.subject, source: deleted.source },
          })
          return 'removed' as const
        }
        const row = await trx.selectFrom('certificate_authorities').select('active').where('id', '=', id).executeTakeFirst()
        return row ? ('active' as const) : ('not_found' as const)
      })
    },

    async setRegistrationAuthority(id, certificateDer, privateKeySealed) {
      await db
        .updateTable('certificate_authorities')
        .set({ ra_certificate_der: certificateDer, ra_private_key_sealed: privateKeySealed })
        .where('id', '=', id)
        .execute()
    },
  }
}
