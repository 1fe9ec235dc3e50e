// Destructive commands aimed at a filter or at several devices take two steps: a dry run
// answers the exact targets and a confirmation token bound to them (and to the caller and the
// command); the real call must carry that token, and is refused when the set has changed.
// Above a configurable number of devices only an owner may send them at all.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { EncodedCommand } from '../mdm/command.js'
import { decodePlist, encodePlist, isPlistDict } from '../mdm/plist.js'

/** What a confirmation token is bound to. */
export interface ConfirmationBinding {
  principalId: string
  requestType: string
  /** SHA-256 of the command's keys (its CommandUUID aside), hex. */
  commandDigest: string
  /** The enrollment IDs that would get the command. */
  targetIds: readonly string[]
}

export type ConfirmationCheck = { ok: true } | { ok: false; problem: 'malformed' | 'expired' | 'other_command' | 'targets_changed'; detail: string }

export interface ConfirmationTokens {
  issue(binding: ConfirmationBinding): { token: string; expiresAt: Date }
  check(token: string, binding: ConfirmationBinding): ConfirmationCheck
}

/**
 * Why a command is destructive (EraseDevice, DeleteUser, RemoveProfile of the enrollment
 * profile, which ends management), or null. The command is read back from its plist, so
 * typed, built and raw commands are judged alike.
 */
export function destructiveReason(command: EncodedCommand, mdmProfileIdentifier: string): string | null {
  if (command.requestType === 'EraseDevice') return 'EraseDevice erases the device'
  if (command.requestType === 'DeleteUser') return 'DeleteUser deletes a user and its data'
  if (command.requestType === 'RemoveProfile' && commandKeys(command)['Identifier'] === mdmProfileIdentifier) {
    return `RemoveProfile of the enrollment profile (${mdmProfileIdentifier}) ends management`
  }
  return null
}

function commandKeys(command: EncodedCommand): Record<string, unknown> {
  const envelope = decodePlist(command.payload)
  const inner = isPlistDict(envelope) ? envelope['Command'] : undefined
  return isPlistDict(inner) ? inner : {}
}

/** The digest a confirmation binds: the Command dictionary, not the CommandUUID (a typed command gets a new one per call). */
export function commandDigest(command: EncodedCommand): string {
  const envelope = decodePlist(command.payload)
  const inner = isPlistDict(envelope) && isPlistDict(envelope['Command']) ? envelope['Command'] : {}
  return createHash('sha256').update(encodePlist(inner)).digest('hex')
}

const targetSetDigest = (ids: readonly string[]) =>
  createHash('sha256')
    .update([...ids].sort().join('\n'))
    .digest('base64url')
    .slice(0, 22)

/**
 * The key of confirmation tokens, derived from the first master key so that every instance
 * on one database accepts the others' tokens; without master keys, one per process.
 */
export function confirmationKeyFrom(secretKeys: readonly Buffer[]): Buffer | undefined {
  const master = secretKeys[0]
  return master ? createHmac('sha256', master).update('orchard confirmation tokens').digest() : undefined
}

/**
 * Tokens are `<payload>.<HMAC>`: the payload (base64url JSON) holds the expiry, the size and
 * a digest of the target set, so a refusal can say what changed. `key` must be the same on
 * every instance sharing a database (main.ts derives it from ORCHARD_SECRET_KEYS).
 */
export function createConfirmationTokens(options: { key?: Buffer; ttlSeconds?: number; now?: () => Date } = {}): ConfirmationTokens {
  const key = options.key ?? randomBytes(32)
  const ttlMs = (options.ttlSeconds ?? 600) * 1000
  const now = options.now ?? (() => new Date())
  const mac = (payload: string, binding: ConfirmationBinding) =>
    createHmac('sha256', key)
      .update(JSON.stringify([payload, binding.principalId, binding.requestType, binding.commandDigest]))
      .digest()

  return {
    issue(binding) {
      const expiresAt = new Date(now().getTime() + ttlMs)
      const payload = Buffer.from(
        JSON.stringify({ e: Math.floor(expiresAt.getTime() / 1000), n: binding.targetIds.length, t: targetSetDigest(binding.targetIds) }),
      ).toString('base64url')
      return { token: `${payload}.${mac(payload, binding).toString('base64url')}`, expiresAt }
    },

    check(token, binding) {
      const [payload, signature, ...rest] = token.split('.')
      if (!payload || !signature || rest.length > 0) return { ok: false, problem: 'malformed', detail: 'the confirmation token is not one this server issued' }
      const expected = mac(payload, binding)
      const given = Buffer.from(signature, 'base64url')
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return {
          ok: false,
          problem: 'other_command',
          detail: 'the confirmation token was issued for another command or another caller: run the dry run for this one',
        }
      }
      let fields: { e?: unknown; n?: unknown; t?: unknown }
      try {
        fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof fields
      } catch {
        return { ok: false, problem: 'malformed', detail: 'the confirmation token is not one this server issued' }
      }
      if (typeof fields.e !== 'number' || fields.e * 1000 <= now().getTime())
        return { ok: false, problem: 'expired', detail: 'the confirmation token has expired: run the dry run again' }
      if (fields.t !== targetSetDigest(binding.targetIds)) {
        return {
          ok: false,
          problem: 'targets_changed',
          detail: `the targets changed since the dry run (${String(fields.n)} then, ${binding.targetIds.length} now): run the dry run again and check them`,
        }
      }
      return { ok: true }
    },
  }
}
