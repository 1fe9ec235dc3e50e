// Configuration profiles checked against Apple's profile schema (src/mdm/generated/
// profile-payload-schema.ts): the top-level Configuration dict against TopLevel, each item
// of PayloadContent against CommonPayloadKeys plus the keys of its PayloadType. Proves
// that the profiles Orchard builds are well-formed before a device sees them. Pure: no I/O.
// https://developer.apple.com/documentation/devicemanagement/toplevel
import { knownPayloadTypes, profilePayloadSchema, profileSchemaNames, type ProfileSchemaName } from './generated/profile-payload-schema.js'
import { checkDictionary, describeType, Problems } from './key-schema-check.js'
import { isPlistDict, type PlistDict, type PlistValue } from './plist.js'

/** Payload types this validator knows: every schema but the two that describe shared keys. */
const payloadTypes: ReadonlySet<string> = new Set(profileSchemaNames.filter((name) => name !== 'TopLevel' && name !== 'CommonPayloadKeys'))

/**
 * What is wrong with a profile (the decoded top-level dict), as lines such as
 * `PayloadContent[2].ServerURL: "http://mdm.example" does not match ^https://.*$`; empty when
 * it is valid. Payload types outside the generated schema count as problems.
 */
export interface ProfileValidationOptions {
  /**
   * Accept every PayloadType of Apple's schema, checking only the common payload keys of those
   * whose own keys are not in the digest (admins' profiles); default: only fully known types
   * (the profiles Orchard builds).
   */
  anyApplePayloadType?: boolean
}

export function validateProfile(profile: PlistValue, options: ProfileValidationOptions = {}): string[] {
  if (!isPlistDict(profile)) return [`the profile must be a dictionary, not ${describeType(profile)}`]
  const problems = new Problems()
  // TopLevel declares PayloadContent items free-form; they are checked one by one below.
  checkDictionary(profilePayloadSchema.TopLevel, profile, '', 'a top-level profile key', problems)
  const content = profile['PayloadContent']
  if (Array.isArray(content)) {
    content.forEach((payload, index) => {
      if (isPlistDict(payload)) checkPayload(payload, `PayloadContent[${index}]`, problems, options)
    })
  }
  return problems.list
}

function checkPayload(payload: PlistDict, path: string, problems: Problems, options: ProfileValidationOptions): void {
  const type = payload['PayloadType']
  const known = typeof type === 'string' && payloadTypes.has(type)
  const apple = typeof type === 'string' && options.anyApplePayloadType === true && knownPayloadTypes.has(type)
  if (typeof type === 'string' && !known && !apple) {
    if (options.anyApplePayloadType) problems.add(`${path}.PayloadType`, `${JSON.stringify(type)} is not a PayloadType of Apple's device-management schema`)
    else problems.add(`${path}.PayloadType`, `${JSON.stringify(type)} is not a payload type known here (${[...payloadTypes].join(', ')})`)
  }
  const keys = known ? [...profilePayloadSchema.CommonPayloadKeys, ...profilePayloadSchema[type as ProfileSchemaName]] : profilePayloadSchema.CommonPayloadKeys
  // Without a known type its own keys are unknown too: check the common ones only.
  checkDictionary(keys, payload, path, known ? `a key of ${type}` : undefined, problems)
}
