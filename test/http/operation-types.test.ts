// Handlers are typed by the contract (src/http/generated/operations.ts, from openapi.yaml).
// What this file proves is checked by tsc, which `npm test` runs first: each
// `@ts-expect-error` below must stay an error, so a handler that reads a parameter its
// operation lacks, or answers a shape or status the contract does not document, does not
// compile. At run time it only checks the handlers that do compile.
import t from 'tap'
import type { Body, Params, Query, Response, Settings } from '../../src/http/generated/operations.js'
import type { OperationHandler, OperationHandlers } from '../../src/http/plugin.js'

// Parameters, query and body come typed from the contract; defaults make a parameter present.
const deviceId: Params<'getDevice'>['device_id'] = 'd'
const limit: Query<'listDevices'>['limit'] = 50
const push: Query<'removeDeviceProfile'>['push'] = false
const kind: Body<'updateDevice'>['kind'] = 'work'
// @ts-expect-error getDevice has no path parameter "devise_id"
const misspelt: Params<'getDevice'>['devise_id'] = 'd'
// @ts-expect-error a kind the contract does not list
const unknownKind: Body<'updateDevice'>['kind'] = 'borrowed'
// @ts-expect-error enqueueCommand answers an EnqueueResult (201) or a dry run (200), not a string
const notAResponse: Response<'enqueueCommand'> = 'queued'

// A handler answering its 200 payload, and one answering another status with reply.code().
const getSettings: OperationHandler<'getSettings'> = async () => ({ command_retention_days: 90 })
const deleteDevice: OperationHandler<'deleteDevice'> = async (_request, reply) => reply.code(204).send()

// @ts-expect-error a response missing a required field
const missingField: OperationHandler<'getSettings'> = async () => ({})
// A field the contract does not document: TypeScript checks excess fields where an object
// literal meets a declared type, so mappers declare the contract type they return.
function settingsJson(days: number): Settings {
  // @ts-expect-error a response with a field the contract does not document
  return { command_retention_days: days, retention: 'long' }
}
// @ts-expect-error createTenant answers 201 only: a plain return would be a 200
const wrongStatus: OperationHandler<'createTenant'> = async (request) => ({
  id: request.body.id,
  name: request.body.name,
  parent_id: null,
  created_at: '',
  updated_at: '',
})
const undocumentedStatus: OperationHandler<'deleteDevice'> = async (_request, reply) =>
  // @ts-expect-error deleteDevice documents 204, not 200
  reply.code(200).send()
const wrongPayload: OperationHandler<'createTenant'> = async (_request, reply) =>
  // @ts-expect-error the 201 payload is a Tenant
  reply.code(201).send({ id: 'x' })

const handlers: OperationHandlers = {
  getSettings,
  deleteDevice,
  // @ts-expect-error no operation has this operationId
  getSetings: getSettings,
}

t.test('the typed handlers compile (tsc checks the rest)', async (t) => {
  t.same([deviceId, limit, push, kind, misspelt, unknownKind, notAResponse], ['d', 50, false, 'work', 'd', 'borrowed', 'queued'])
  t.same(await getSettings({} as never, {} as never), { command_retention_days: 90 })
  t.same(
    [missingField, wrongStatus, undocumentedStatus, wrongPayload].map((handler) => typeof handler),
    ['function', 'function', 'function', 'function'],
  )
  t.same(settingsJson(30), { command_retention_days: 30, retention: 'long' })
  t.same(Object.keys(handlers), ['getSettings', 'deleteDevice', 'getSetings'])
})
