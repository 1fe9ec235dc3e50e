// Calling Apple in a content token's name: the sToken opened from the secret box, this
// installation's claim (mdmInfo, with the notification endpoint when there is one) and whether
// another MDM holds the location, and what an Apple failure means for the token's stored status.
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import type { VppTokenStatus } from '../db/schema-apps.js'
import { OrchardError } from '../errors.js'
import { createVppClient, VppError, type VppClient, type VppClientConfig, type VppMdmInfo } from './vpp-client.js'
import type { VppNotificationEndpoint } from './vpp-notification-endpoint.js'
import type { VppTokenRow, VppTokenStore } from './vpp-token-store.js'

export interface VppAccess {
  secretBox(): SecretBox
  sealToken(id: string, sToken: string): Buffer
  /** A client for an sToken not stored yet (an upload being checked). */
  clientFor(sToken: string): VppClient
  client(token: VppTokenRow): VppClient
  /** What Orchard tells Apple about itself when it claims a location. */
  readonly mdmInfo: VppMdmInfo
  /** Who else manages the location, in words; null when it is unclaimed or ours. */
  otherManager(config: VppClientConfig): string | null
  /** Apple's client config is this installation's claim as claim() would set it now. */
  claimCurrent(tokenId: string, config: VppClientConfig): boolean
  /** Apple's client config holds the notification endpoint claim() would set now (true when there is none). */
  notificationsCurrent(tokenId: string, config: VppClientConfig): boolean
  /**
   * Claims the location for this installation, with the notification endpoint when there is
   * one; when Apple refuses the endpoint, without it (the licence round then polls).
   */
  claim(token: VppTokenRow, client: VppClient): Promise<VppClientConfig>
  /** Records whether Apple's client config (as read by a sync) notifies this installation. */
  noteConfig(tokenId: string, config: VppClientConfig): void
  /** Stores what an Apple failure means for the token; returns the status. */
  recordFailure(token: VppTokenRow, error: unknown): Promise<{ status: VppTokenStatus; detail: string }>
}

export interface VppAccessDeps {
  store: Pick<VppTokenStore, 'setStatus'>
  secretBox: SecretBox | null
  vppUrl: string
  installationId: string
  version: string
  publicUrl: string
  notifications: VppNotificationEndpoint
  sleep?: (ms: number) => Promise<void>
  log: Logger
  now: () => Date
}

const tokenAad = (id: string) => `vpp-token:${id}`

function statusOf(error: VppError): VppTokenStatus {
  switch (error.code) {
    case 'token_expired':
    case 'token_revoked':
    case 'token_rejected':
    case 'throttled':
      return error.code
    default:
      return 'error'
  }
}

export function createVppAccess(deps: VppAccessDeps): VppAccess {
  const { store, log, now } = deps
  // Apple's limits: id 100 and metadata 255 characters.
  const mdmInfo: VppMdmInfo = {
    id: deps.installationId.slice(0, 100),
    name: 'Orchard',
    metadata: `${deps.version} ${deps.publicUrl}`.slice(0, 255),
  }

  function secretBox(): SecretBox {
    if (!deps.secretBox) throw new OrchardError('not_ready', 'no master key (ORCHARD_SECRET_KEYS): content tokens cannot be sealed')
    return deps.secretBox
  }

  const { notifications } = deps
  const noteConfig = (tokenId: string, config: VppClientConfig) =>
    notifications.noteNotifying(tokenId, notifications.enabled && notifications.current(tokenId, config))

  const clientFor = (sToken: string) => createVppClient({ baseUrl: deps.vppUrl, sToken, ...(deps.sleep ? { sleep: deps.sleep } : {}) })

  return {
    secretBox,
    mdmInfo,
    sealToken: (id, sToken) => secretBox().seal(Buffer.from(sToken, 'utf8'), tokenAad(id)),
    clientFor,
    client: (token) => clientFor(secretBox().open(token.token_sealed, tokenAad(token.id)).toString('utf8')),

    otherManager(config) {
      if (config.mdmInfo) return config.mdmInfo.id === mdmInfo.id ? null : `${config.mdmInfo.name || 'another MDM'} (id ${config.mdmInfo.id})`
      // A location a server of the legacy API claimed carries only its clientContext.
      if (config.clientContext) return `a server of the legacy API (clientContext ${config.clientContext.slice(0, 200)})`
      return null
    },

    claimCurrent: (tokenId, config) => config.mdmInfo?.id === mdmInfo.id && !config.clientContext && notifications.current(tokenId, config),

    notificationsCurrent: (tokenId, config) => notifications.current(tokenId, config),

    noteConfig,

    async claim(token, client) {
      const endpoint = notifications.settingsFor(token.id)
      if (endpoint) {
        try {
          // Apple posts a TEST_NOTIFICATION to the URL before it answers (this server must be
          // reachable and answer 2xx then), and refuses the whole config, mdmInfo included,
          // when that fails (9728) or the URL is not https (9712).
          const config = await client.setClientConfig({ mdmInfo, ...endpoint })
          noteConfig(token.id, config)
          return config
        } catch (error) {
          if (!(error instanceof VppError) || error.code !== 'bad_request') throw error
          log.warn(
            { vpp_token_id: token.id, apple_error: error.details.errorNumber, notification_url: endpoint.notificationUrl },
            `content token "${token.name}": Apple refused the notification URL, so licence events are polled: ${error.message}`,
          )
        }
      }
      const config = await client.setClientConfig({ mdmInfo })
      noteConfig(token.id, config)
      return config
    },

    async recordFailure(token, error) {
      const at = now()
      if (error instanceof VppError) {
        const status = statusOf(error)
        const retryAfter = status === 'throttled' ? new Date(at.getTime() + (error.details.retryAfterSeconds ?? 60) * 1000) : null
        await store.setStatus(token.id, status, error.message, at, retryAfter)
        log.warn(
          { vpp_token_id: token.id, status, apple_error: error.details.errorNumber, http_status: error.details.status },
          `content token "${token.name}": ${error.message}`,
        )
        return { status, detail: error.message }
      }
      const detail = `unexpected failure: ${(error as Error).message}`
      await store.setStatus(token.id, 'error', detail, at)
      log.error({ vpp_token_id: token.id, err: error }, `content token "${token.name}": ${detail}`)
      return { status: 'error', detail }
    },
  }
}
