// One error model (the undici pattern): every local failure mxd reports is an MxdError with a
// stable `code`; callers branch on the code, never on the message text. Remote SMTP replies
// are not errors — they are data (core/smtp-reply.ts).

export type MxdErrorCode =
  /** The spool could not be written or read (I/O error, failed sync). */
  | "MXD_SPOOL_IO"
  /** The spool's file system is below its free-space reserve (spool.minFree). */
  | "MXD_SPOOL_FULL"
  /** No queued message with that id. */
  | "MXD_SPOOL_NOT_FOUND"
  /** A record read back from the spool does not validate. */
  | "MXD_SPOOL_INVALID"
  /** A TLS certificate or key file cannot be read, or the pair does not match (tls.*). */
  | "MXD_TLS_CREDENTIALS"
  /** A new configuration cannot be applied to the running daemon (reload refused). */
  | "MXD_RELOAD_REFUSED";

export class MxdError extends Error {
  constructor(readonly code: MxdErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MxdError";
  }
}

export function isMxdError(e: unknown, code?: MxdErrorCode): e is MxdError {
  return e instanceof MxdError && (code === undefined || e.code === code);
}

/**
 * The SMTP reply a local failure turns into when a client is waiting (RFC 3463 codes):
 * a full spool is "insufficient system storage" (452 4.3.1), any other spool fault a local
 * error in processing (451 4.3.0). Both are temporary: the client keeps the message and retries.
 */
export function smtpReplyFor(e: unknown): string {
  if (isMxdError(e, "MXD_SPOOL_FULL")) return "452 4.3.1 Error: insufficient system storage, try again later";
  return "451 4.3.0 Error: queue file write error, try again later";
}
