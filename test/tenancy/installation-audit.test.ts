// Installation-wide admin writes (settings, webhooks, device CAs), owners only: each success
// leaves exactly one audit row, written by its store in the transaction of the change
// (tenant null), and a change that fails takes its audit row down with it. Also writes that
// change nothing but are answered as a success: audited by their store all the same.
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'
import { Writable } from 'node:stream'
import { sql } from 'kysely'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { distinguishedName, issueCertificate } from '../../src/crypto/certificate-issuer.js'
import { apiClient, type ApiResponse } from '../helpers/api.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'

const notAuditedByStore = 'admin write not audited by its store'

/** An app whose error log is kept, to see what it says. */
async function installation(t: Test, env: Record<string, string> = {}) {
  const logged: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logged.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const mdm = await setupMdm(
    t,
    { ORCHARD_SECRET_KEYS: randomBytes(32).toString('base64'), ORCHARD_WEBHOOK_WORKER: 'false', ...env },
    { logger: pino({ level: 'error' }, sink) },
  )
  return { mdm, api: apiClient(mdm.app), logged }
}

const auditRowsOf = (mdm: MdmFixture, response: ApiResponse) =>
  mdm.database.db.selectFrom('audit_events').selectAll().where('request_id', '=', String(response.headers['x-request-id'])).orderBy('id').execute()

/** The one row of a successful write, written by its store (no status code, not outside the transaction). */
async function auditedInTransaction(
  t: Test,
  mdm: MdmFixture,
  response: ApiResponse,
  expected: { action: string; targetType: string; targetId: string | null; tenantId?: string | null; details?: Record<string, unknown> },
) {
  t.ok(response.statusCode < 300, `${expected.action} succeeded (${response.statusCode})`)
  const rows = await auditRowsOf(mdm, response)
  t.equal(rows.length, 1, `${expected.action}: exactly one audit row`)
  const row = rows[0]!
  t.match(
    row,
    {
      category: 'admin',
      outcome: 'success',
      action: expected.action,
      tenant_id: expected.tenantId === undefined ? null : expected.tenantId,
      target_type: expected.targetType,
      target_id: expected.targetId,
      principal_id: 'config:0',
      status_code: null,
      ...(expected.details ? { details: expected.details } : {}),
    },
    `${expected.action}: the row of the change`,
  )
  t.equal(
    (row.details as { outside_transaction?: unknown } | null)?.outside_transaction,
    undefined,
    `${expected.action}: written by the store, in its transaction`,
  )
  return row
}

function caPem(key: 'rsa' | 'ec', name: string) {
  const { privateKey, publicKey } = key === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const issued = issueCertificate({
    subject: distinguishedName({ commonName: name, organization: 'Orchard tests' }),
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    selfSignKey: privateKey,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 365 * 86_400_000),
    profile: 'ca',
  })
  return { certificatePem: new X509Certificate(issued.der).toString(), privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

/** Makes every commit that inserted, updated or deleted rows of `table` fail (after the statements ran). */
async function failCommitsTouching(mdm: MdmFixture, table: string) {
  const db = mdm.database.db
  await sql`create or replace function orchard_test_refuse() returns trigger language plpgsql as $$ begin raise exception 'refused by the test'; end $$`.execute(
    db,
  )
  await sql`create constraint trigger orchard_test_refuse after insert or update or delete on ${sql.table(table)} deferrable initially deferred for each row execute function orchard_test_refuse()`.execute(
    db,
  )
}

t.test('settings and webhooks: one audit row per write, in the transaction of the change, never the secret', async (t) => {
  const { mdm, api, logged } = await installation(t)

  const settings = await api('PATCH', '/api/v1/settings', { body: { command_retention_days: 30 } })
  t.equal(settings.json.command_retention_days, 30)
  await auditedInTransaction(t, mdm, settings, {
    action: 'updateSettings',
    targetType: 'settings',
    targetId: 'command_retention_days',
    details: { command_retention_days: 30 },
  })

  const secret = 'whsec_test-secret-0123456789'
  const created = await api('POST', '/api/v1/webhooks', {
    body: { url: 'http://127.0.0.1:9/hook', event_types: ['checkin.authenticate', 'command.result'], secret },
  })
  t.equal(created.statusCode, 201)
  const id: string = created.json.id
  const createdRow = await auditedInTransaction(t, mdm, created, {
    action: 'createWebhook',
    targetType: 'webhook',
    targetId: id,
    details: { url: 'http://127.0.0.1:9/hook', event_types: ['checkin.authenticate', 'command.result'] },
  })
  t.notOk(JSON.stringify(createdRow).includes(secret), 'the secret is not in the audit row')

  const updated = await api('PATCH', `/api/v1/webhooks/${id}`, { body: { enabled: false, event_types: ['*'] } })
  t.equal(updated.json.enabled, false)
  await auditedInTransaction(t, mdm, updated, {
    action: 'updateWebhook',
    targetType: 'webhook',
    targetId: id,
    details: { url: 'http://127.0.0.1:9/hook', event_types: ['*'], enabled: false },
  })

  const rotated = await api('POST', `/api/v1/webhooks/${id}/rotate-secret`)
  t.equal(rotated.statusCode, 200)
  const rotatedRow = await auditedInTransaction(t, mdm, rotated, {
    action: 'rotateWebhookSecret',
    targetType: 'webhook',
    targetId: id,
    details: { secret_rotated: true },
  })
  t.notOk(JSON.stringify(rotatedRow).includes(rotated.json.secret), 'nor the new one')

  const delivery = await mdm.database.db
    .insertInto('webhook_deliveries')
    .values({
      webhook_id: id,
      event_id: 'evt-1',
      event_type: 'command.result',
      payload: JSON.stringify({ id: 'evt-1' }),
      status: 'failed',
      attempts: 3,
      next_attempt_at: new Date(),
      last_error: 'HTTP 500',
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  const retried = await api('POST', `/api/v1/webhooks/${id}/deliveries/${delivery.id}/retry`)
  t.equal(retried.statusCode, 202)
  await auditedInTransaction(t, mdm, retried, {
    action: 'retryWebhookDelivery',
    targetType: 'webhook_delivery',
    targetId: String(delivery.id),
    details: { webhook_id: id, event_id: 'evt-1' },
  })
  const notFailed = await api('POST', `/api/v1/webhooks/${id}/deliveries/${delivery.id}/retry`)
  t.equal(notFailed.statusCode, 409, 'it is pending now')
  t.match(await auditRowsOf(mdm, notFailed), [{ outcome: 'failure', status_code: 409 }], 'a refused write: its failure row only')

  const deleted = await api('DELETE', `/api/v1/webhooks/${id}`)
  t.equal(deleted.statusCode, 204)
  await auditedInTransaction(t, mdm, deleted, { action: 'deleteWebhook', targetType: 'webhook', targetId: id, details: { url: 'http://127.0.0.1:9/hook' } })
  const gone = await api('DELETE', `/api/v1/webhooks/${id}`)
  t.equal(gone.statusCode, 404)
  t.match(await auditRowsOf(mdm, gone), [{ outcome: 'failure', status_code: 404 }])

  t.same(
    logged.filter((line) => String(line['msg']).includes(notAuditedByStore)),
    [],
    `no "${notAuditedByStore}" in the log`,
  )
})

t.test('device CAs: adding a trusted CA, importing an issuing CA and removing one are audited in their transactions', async (t) => {
  const { mdm, api, logged } = await installation(t)

  const trusted = caPem('rsa', 'Trusted CA')
  const added = await api('POST', '/api/v1/certificate-authorities', { body: { certificate_pem: trusted.certificatePem } })
  t.equal(added.statusCode, 201)
  await auditedInTransaction(t, mdm, added, {
    action: 'addCertificateAuthority',
    targetType: 'certificate_authority',
    targetId: added.json.id,
    details: { source: 'trusted', active: false },
  })
  const again = await api('POST', '/api/v1/certificate-authorities', { body: { certificate_pem: trusted.certificatePem } })
  t.equal(again.statusCode, 409, 'already known')
  t.match(await auditRowsOf(mdm, again), [{ outcome: 'failure', status_code: 409 }])

  const issuing = caPem('ec', 'Imported CA')
  const imported = await api('POST', '/api/v1/certificate-authorities', {
    body: { certificate_pem: issuing.certificatePem, private_key_pem: issuing.privateKeyPem },
  })
  t.equal(imported.statusCode, 201)
  t.equal(imported.json.active, true)
  const importedRow = await auditedInTransaction(t, mdm, imported, {
    action: 'addCertificateAuthority',
    targetType: 'certificate_authority',
    targetId: imported.json.id,
    details: { source: 'imported', active: true, registration_authority: true },
  })
  t.notOk(JSON.stringify(importedRow).includes('PRIVATE KEY'), 'no key in the audit row')

  const removed = await api('DELETE', `/api/v1/certificate-authorities/${added.json.id}`)
  t.equal(removed.statusCode, 204)
  await auditedInTransaction(t, mdm, removed, {
    action: 'removeCertificateAuthority',
    targetType: 'certificate_authority',
    targetId: added.json.id,
    details: { source: 'trusted' },
  })
  const active = await api('DELETE', `/api/v1/certificate-authorities/${imported.json.id}`)
  t.equal(active.statusCode, 409, 'the issuing CA stays')
  t.match(await auditRowsOf(mdm, active), [{ outcome: 'failure', status_code: 409 }])

  t.same(
    logged.filter((line) => String(line['msg']).includes(notAuditedByStore)),
    [],
    `no "${notAuditedByStore}" in the log`,
  )
})

t.test('a change that fails in its transaction takes its audit row with it', async (t) => {
  /** The write fails (500), and its one audit row is the failure the API wrote after it: no success row. */
  async function rolledBack(t: Test, mdm: MdmFixture, action: string, write: () => Promise<ApiResponse>) {
    const successRows = async () =>
      (await mdm.database.db.selectFrom('audit_events').select('id').where('action', '=', action).where('outcome', '=', 'success').execute()).length
    const before = await successRows()
    const response = await write()
    t.equal(response.statusCode, 500, `${action}: the commit failed`)
    const rows = await auditRowsOf(mdm, response)
    t.match(rows, [{ action, outcome: 'failure', status_code: 500 }], `${action}: only the failure row; the store's row rolled back with the change`)
    t.equal(rows.length, 1)
    t.equal(await successRows(), before, `${action}: no success row was left behind`)
  }

  t.test('settings', async (t) => {
    const { mdm, api, logged } = await installation(t)
    await failCommitsTouching(mdm, 'server_settings')
    await rolledBack(t, mdm, 'updateSettings', () => api('PATCH', '/api/v1/settings', { body: { command_retention_days: 7 } }))
    t.ok(
      logged.some((line) => (line['err'] as { message?: string } | undefined)?.message === 'refused by the test'),
      'the app log is observed here: the failed commit is in it',
    )
    t.equal((await api('GET', '/api/v1/settings')).json.command_retention_days, 90, 'the setting is unchanged')
  })

  t.test('webhooks', async (t) => {
    const { mdm, api } = await installation(t)
    const kept = await api('POST', '/api/v1/webhooks', { body: { url: 'http://127.0.0.1:9/kept', event_types: ['*'] } })
    t.equal(kept.statusCode, 201)
    await failCommitsTouching(mdm, 'webhooks')
    await rolledBack(t, mdm, 'createWebhook', () => api('POST', '/api/v1/webhooks', { body: { url: 'http://127.0.0.1:9/new', event_types: ['*'] } }))
    await rolledBack(t, mdm, 'updateWebhook', () => api('PATCH', `/api/v1/webhooks/${kept.json.id}`, { body: { enabled: false } }))
    await rolledBack(t, mdm, 'deleteWebhook', () => api('DELETE', `/api/v1/webhooks/${kept.json.id}`))
    t.match((await api('GET', '/api/v1/webhooks')).json.items, [{ id: kept.json.id, enabled: true }], 'only the first webhook, unchanged')
    t.equal((await api('GET', '/api/v1/webhooks')).json.items.length, 1)
  })

  t.test('device CAs', async (t) => {
    const { mdm, api } = await installation(t)
    const added = await api('POST', '/api/v1/certificate-authorities', { body: { certificate_pem: caPem('rsa', 'Trusted CA').certificatePem } })
    t.equal(added.statusCode, 201)
    await failCommitsTouching(mdm, 'certificate_authorities')
    await rolledBack(t, mdm, 'removeCertificateAuthority', () => api('DELETE', `/api/v1/certificate-authorities/${added.json.id}`))
    t.ok(
      (await api('GET', '/api/v1/certificate-authorities')).json.items.some((ca: { id: string }) => ca.id === added.json.id),
      'the CA is still there',
    )
    const second = caPem('rsa', 'Second trusted CA')
    await rolledBack(t, mdm, 'addCertificateAuthority', () =>
      api('POST', '/api/v1/certificate-authorities', { body: { certificate_pem: second.certificatePem } }),
    )
  })
})

t.test('writes answered as a success that change nothing are audited by their stores too', async (t) => {
  const { mdm, api, logged } = await installation(t, { ORCHARD_PUBLIC_URL: 'https://mdm.example.com' })

  const link = await api('POST', '/api/v1/enrollment-links', { body: { name: 'Library' } })
  t.equal(link.statusCode, 201)
  await auditedInTransaction(t, mdm, await api('DELETE', `/api/v1/enrollment-links/${link.json.id}`), {
    action: 'revokeEnrollmentLink',
    targetType: 'enrollment_link',
    targetId: link.json.id,
  })
  await auditedInTransaction(t, mdm, await api('DELETE', `/api/v1/enrollment-links/${link.json.id}`), {
    action: 'revokeEnrollmentLink',
    targetType: 'enrollment_link',
    targetId: link.json.id,
    details: { already_revoked: true },
  })

  const key = await api('POST', '/api/v1/api-keys', { body: { name: 'dashboard', role: 'auditor' } })
  t.equal(key.statusCode, 201)
  await auditedInTransaction(t, mdm, await api('DELETE', `/api/v1/api-keys/${key.json.id}`), {
    action: 'revokeApiKey',
    targetType: 'api_key',
    targetId: key.json.id,
  })
  await auditedInTransaction(t, mdm, await api('DELETE', `/api/v1/api-keys/${key.json.id}`), {
    action: 'revokeApiKey',
    targetType: 'api_key',
    targetId: key.json.id,
    details: { already_revoked: true },
  })

  // No target can take these: nothing is stored, the answer says why, and the request is audited.
  const typed = await api('POST', '/api/v1/commands', { body: { enrollment_ids: ['nobody'], command: { request_type: 'ProfileList' } } })
  t.equal(typed.statusCode, 201)
  t.match(typed.json.targets, [{ enrollment_id: 'nobody', result: 'unknown_enrollment' }])
  await auditedInTransaction(t, mdm, typed, {
    action: 'enqueueCommand',
    targetType: 'command',
    targetId: typed.json.command_uuid,
    details: { request_type: 'ProfileList', stored: false, targets: 1 },
  })
  const raw = await mdm.enqueue(['nobody', 'nobody-else'], 'ProfileList')
  t.equal(raw.statusCode, 200)
  const rawRows = await mdm.database.db.selectFrom('audit_events').selectAll().where('action', '=', 'enqueueRawCommand').execute()
  t.match(rawRows, [
    { outcome: 'success', target_type: 'command', target_id: raw.uuid, status_code: null, details: { request_type: 'ProfileList', stored: false, targets: 2 } },
  ])
  t.equal(rawRows.length, 1)
  t.equal((await mdm.database.db.selectFrom('commands').select('uuid').execute()).length, 0, 'no command was stored')

  t.same(
    logged.filter((line) => String(line['msg']).includes(notAuditedByStore)),
    [],
    `no "${notAuditedByStore}" in the log`,
  )
})
