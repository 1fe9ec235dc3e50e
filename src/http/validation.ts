// JSON Schema validation for the admin API, with Ajv in JSON Schema 2020-12 mode (the
// dialect of OpenAPI 3.1). Path and query values arrive as strings and are coerced to the
// documented types; bodies are validated as sent, never coerced; responses are checked
// against the documented schema before they leave.
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import * as ajvFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import { unstorableDetail } from '../model/storable-text.js'
import type { JsonSchema } from './openapi.js'

export interface FieldProblem {
  /** JSON pointer into the request body (RFC 6901), for body errors. */
  pointer?: string
  /** The query or path parameter, for parameter errors. */
  parameter?: string
  detail: string
}

type AddFormats = (ajv: Ajv2020) => Ajv2020
const addFormats = (ajvFormats as unknown as { default: AddFormats }).default ?? (ajvFormats as unknown as AddFormats)

function createAjv(options: { coerceTypes: boolean; useDefaults: boolean }): Ajv2020 {
  const ajv = new Ajv2020({
    strict: false,
    allErrors: true,
    coerceTypes: options.coerceTypes ? 'array' : false,
    useDefaults: options.useDefaults,
    removeAdditional: false,
  })
  addFormats(ajv)
  // OpenAPI's annotation formats for non-JSON content.
  ajv.addFormat('binary', true)
  ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/)
  return ajv
}

const parameterAjv = createAjv({ coerceTypes: true, useDefaults: true })
const bodyAjv = createAjv({ coerceTypes: false, useDefaults: true })
const responseAjv = createAjv({ coerceTypes: false, useDefaults: false })

export const validatorCompiler: FastifySchemaCompiler<JsonSchema> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? bodyAjv : parameterAjv).compile(schema) as ValidateFunction & ((data: unknown) => boolean)

export function compileResponseValidator(schema: JsonSchema): ValidateFunction {
  return responseAjv.compile(schema)
}

/** A JSON pointer token (RFC 6901). */
const pointerToken = (name: string) => name.replace(/~/g, '~0').replace(/\//g, '~1')

/** decodeURIComponent, or the text as it is when it is not valid percent-encoding. */
function decodeName(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** Ajv errors as problem entries: a JSON pointer for body fields, the name for parameters. */
export function fieldProblems(errors: readonly Partial<ErrorObject>[], part: string | undefined): FieldProblem[] {
  return errors.map((error) => {
    const params = (error.params ?? {}) as Record<string, unknown>
    // additionalProperties: false, or unevaluatedProperties: false where allOf composes a schema.
    const unknownField = [params['additionalProperty'], params['unevaluatedProperty']].find((name): name is string => typeof name === 'string')
    const child = typeof params['missingProperty'] === 'string' ? params['missingProperty'] : unknownField
    const pointer = `${error.instancePath ?? ''}${child === undefined ? '' : `/${pointerToken(child)}`}`
    const detail = unknownField !== undefined ? 'is not a known field' : (error.message ?? 'is invalid')
    if (part === 'querystring' || part === 'params') {
      const name = decodeName(pointer.split('/')[1] ?? '')
        .replace(/~1/g, '/')
        .replace(/~0/g, '~')
      return { parameter: name, detail: unknownField !== undefined ? 'is not a known parameter' : detail }
    }
    return { pointer, detail }
  })
}

/** Path or query parameters (strings, or arrays of them) whose name or value no column can hold (see storable-text.ts). */
export function unstorableParameters(parameters: unknown): FieldProblem[] {
  if (typeof parameters !== 'object' || parameters === null) return []
  const problems: FieldProblem[] = []
  for (const [name, value] of Object.entries(parameters)) {
    const nameDetail = unstorableDetail(name)
    if (nameDetail !== undefined) {
      problems.push({ parameter: name, detail: `(its name) ${nameDetail}` })
      continue
    }
    for (const item of [value].flat()) {
      const detail = typeof item === 'string' ? unstorableDetail(item) : undefined
      if (detail === undefined) continue
      problems.push({ parameter: name, detail })
      break
    }
  }
  return problems
}
