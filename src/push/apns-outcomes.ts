// What one push came to: delivered, or a failure with the HTTP status and APNs's reason,
// classified as the token's fault, the certificate's, or worth a retry.
// https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns

export interface PushTarget {
  enrollmentId: string
  /** The TokenUpdate Token bytes. */
  token: Buffer
  pushMagic: string
}

export type PushOutcome =
  | { enrollmentId: string; ok: true; apnsId: string }
  | {
      enrollmentId: string
      ok: false
      /** HTTP status from APNs; null when no answer came (connection error, sender closed). */
      status: number | null
      reason: string
      /** Unregistered, ExpiredToken, BadDeviceToken, DeviceTokenNotForTopic: stop pushing this token. */
      tokenInvalid: boolean
      /** A problem of the certificate/topic (BadCertificate, BadCertificateEnvironment, Forbidden, BadTopic, TopicDisallowed, MissingTopic ...): not the device's fault. */
      certificateProblem: boolean
    }

export type PushFailure = Extract<PushOutcome, { ok: false }>

// Trap: BadDeviceToken also answers a token of the other environment (a development device
// pushed through production, or the reverse), so a wrong endpoint looks like dead tokens.
const TOKEN_INVALID_REASONS = new Set(['Unregistered', 'ExpiredToken', 'BadDeviceToken', 'DeviceTokenNotForTopic'])
const CERTIFICATE_REASONS = new Set([
  'BadCertificate',
  'BadCertificateEnvironment',
  'Forbidden',
  'BadTopic',
  'TopicDisallowed',
  'MissingTopic',
  'InvalidProviderToken',
  'MissingProviderToken',
  'ExpiredProviderToken',
])
/** TLS alerts the server sends about our certificate (expired, revoked, unknown issuer ...). */
const CERTIFICATE_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_\w+|UNKNOWN_CA|ACCESS_DENIED)$/

/** A push that got no answer: the connection failed, was refused, or the stream was cut. */
export function outcomeFromConnectionError(enrollmentId: string, error: unknown): PushFailure {
  // Streams cancelled by a failing connection carry the connection's error as cause.
  const cause = (error as { code?: unknown; cause?: unknown }).code === 'ERR_HTTP2_STREAM_CANCEL' ? (error as { cause?: unknown }).cause : undefined
  const code = ((cause ?? error) as { code?: unknown }).code
  const reason = typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)
  return { enrollmentId, ok: false, status: null, reason, tokenInvalid: false, certificateProblem: CERTIFICATE_ALERT.test(reason) }
}

/** The outcome of an answer from APNs: its status, apns-id header and (JSON) body. */
export function outcomeFromResponse(enrollmentId: string, status: number, apnsId: string | undefined, body: string): PushOutcome {
  if (status === 200) return { enrollmentId, ok: true, apnsId: apnsId ?? '' }
  let reason: string | undefined
  try {
    const parsed = JSON.parse(body) as { reason?: unknown }
    if (typeof parsed.reason === 'string' && parsed.reason !== '') reason = parsed.reason
  } catch {
    // not JSON: keep the status as the reason
  }
  reason ??= `HTTP ${status}`
  return {
    enrollmentId,
    ok: false,
    status,
    reason,
    // 410: the token is no longer active for the topic, whatever the reason says.
    tokenInvalid: status === 410 || TOKEN_INVALID_REASONS.has(reason),
    certificateProblem: status === 403 || CERTIFICATE_REASONS.has(reason),
  }
}

/** 429, 5xx and connection errors; not a dead token or a refused certificate. */
export function retryable(outcome: PushOutcome): boolean {
  if (outcome.ok || outcome.tokenInvalid || outcome.certificateProblem) return false
  return outcome.status === null || outcome.status === 429 || outcome.status >= 500
}
