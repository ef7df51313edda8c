// One error model (the undici pattern): every local failure mxd reports is an MxdError with a
// stable `code`; callers branch on the code (or the subclass), never on the message text.
// Remote SMTP replies are not errors — they are data (core/smtp-reply.ts).
//
// Three tables live here and nowhere else:
// - LOCAL_STATUS: the RFC 3463 status of each kind of local failure, for delivery results
//   (delivery/, queue/) and for replies to our own clients (smtp/server.ts);
// - smtpReplyFor(): the reply an inbound client gets when the spool fails under it;
// - exitStatusFor() / cliMessage(): what the `mxd` command exits with and prints.

export type MxdErrorCode =
  /** The spool could not be written or read (I/O error, failed sync). */
  | "MXD_SPOOL_IO"
  /** The spool's file system is below its free-space reserve (spool.minFree). */
  | "MXD_SPOOL_FULL"
  /** No queued message with that id. */
  | "MXD_SPOOL_NOT_FOUND"
  /** A record read back from the spool does not validate. */
  | "MXD_SPOOL_INVALID"
  /** There is no spool at spoolDir (CLI, daemon down). */
  | "MXD_SPOOL_MISSING"
  /** Another daemon holds this spool (its admin socket answers, or its pid lock is live). */
  | "MXD_ALREADY_RUNNING"
  /** The spool lock (spoolDir/mxd.pid) could not be written. */
  | "MXD_LOCK_IO"
  /** The configuration does not validate (config.ts). */
  | "MXD_CONFIG_INVALID"
  /** A command line the CLI does not understand. */
  | "MXD_USAGE"
  /** A daemon seems to run but its admin API cannot be used (refused token, timeout, no answer). */
  | "MXD_ADMIN_UNREACHABLE"
  /** The daemon's admin API answered with an error status. */
  | "MXD_ADMIN_REFUSED"
  /** A request to our admin API that it refuses (admin/server.ts: bad request, 404, 405, 413). */
  | "MXD_ADMIN_BAD_REQUEST"
  /** A DNS lookup failed (io/resolver.ts; `kind` says whether for good). */
  | "MXD_DNS"
  /** An outbound TCP connection could not be made (io/connector.ts). */
  | "MXD_CONNECT"
  /** The outbound TLS handshake failed. */
  | "MXD_TLS_HANDSHAKE"
  /** An outbound SMTP conversation broke: timeout, connection lost, garbage (smtp/client.ts). */
  | "MXD_SMTP_SESSION"
  /** A server reply that is not SMTP (core/smtp-reply.ts). */
  | "MXD_REPLY_SYNTAX"
  /** A TLS certificate or key file cannot be read, or the pair does not match (tls.*). */
  | "MXD_TLS_CREDENTIALS"
  /** A new configuration cannot be applied to the running daemon (reload refused). */
  | "MXD_RELOAD_REFUSED"
  /** The delivery thread failed or stopped under a delivery (delivery/thread-courier.ts). */
  | "MXD_DELIVERY_THREAD";

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
 * RFC 3463 enhanced status codes of local failures. All temporary (4.x.x): the message stays
 * queued (outbound) or with the client (inbound), and is tried again.
 */
export const LOCAL_STATUS = {
  /** X.3.0 other mail system status: our own fault (spool read, local drop, a throwing courier). */
  localError: "4.3.0",
  /** X.3.1 mail system full: the spool is below its reserve. */
  storageFull: "4.3.1",
  /** X.4.1 no answer from host: refused, timed out, or skipped (recently dead, busy). */
  noAnswer: "4.4.1",
  /** X.4.2 bad connection: the session broke or timed out. */
  badConnection: "4.4.2",
  /** X.4.3 directory server failure: DNS failed temporarily. */
  dnsFailure: "4.4.3",
  /** X.4.4 unable to route: a route's hosts have no address. */
  noRoute: "4.4.4",
  /** X.7.5 cryptographic failure: the TLS handshake failed. */
  tlsFailure: "4.7.5",
} as const;

export type LocalFailure = keyof typeof LOCAL_STATUS;

const FAILURE_OF_CODE: Partial<Record<MxdErrorCode, LocalFailure>> = {
  MXD_SPOOL_FULL: "storageFull",
  MXD_CONNECT: "noAnswer",
  MXD_SMTP_SESSION: "badConnection",
  MXD_REPLY_SYNTAX: "badConnection",
  MXD_TLS_HANDSHAKE: "tlsFailure",
  MXD_DNS: "dnsFailure",
};

/** The enhanced status of a local failure (an error we caught); a local error when unknown. */
export function localStatusOf(e: unknown): string {
  return LOCAL_STATUS[(e instanceof MxdError && FAILURE_OF_CODE[e.code]) || "localError"];
}

/** A local failure as reply text: "451 4.3.0 text" (421 for replies that close the session). */
export function localReply(failure: LocalFailure, text: string, code: 421 | 451 | 452 = 451): string {
  return `${code} ${LOCAL_STATUS[failure]} ${text}`;
}

/** What a client hears when its message could not be written to the spool. */
export const SPOOL_WRITE_ERROR = localReply("localError", "Error: queue file write error, try again later");

/**
 * The SMTP reply a local failure turns into when a client is waiting (RFC 3463 codes):
 * a full spool is "insufficient system storage" (452 4.3.1), any other spool fault a local
 * error in processing (451 4.3.0). Both are temporary: the client keeps the message and retries.
 */
export function smtpReplyFor(e: unknown): string {
  if (isMxdError(e, "MXD_SPOOL_FULL")) return localReply("storageFull", "Error: insufficient system storage, try again later", 452);
  return SPOOL_WRITE_ERROR;
}

/** CLI exit statuses other than 1: what the operator must fix in the command or the config. */
const EXIT_STATUS: Partial<Record<MxdErrorCode, number>> = {
  MXD_CONFIG_INVALID: 2,
  MXD_USAGE: 2,
};

/** The `mxd` command's exit status for a failure: 2 for usage and config problems, 1 for the rest. */
export function exitStatusFor(e: unknown): number {
  if (e instanceof MxdError) return EXIT_STATUS[e.code] ?? 1;
  // Node's own argument checks (a port out of range that got past the schema): a config problem.
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" && (code === "ERR_SOCKET_BAD_PORT" || code.startsWith("ERR_PARSE_ARGS"))) return 2;
  return 1;
}

/**
 * The line the CLI prints: the message for an MxdError and for system errors (EADDRINUSE,
 * EACCES, ENOSPC…: operator problems — say what, not where); a stack only for a bug.
 */
export function cliMessage(e: unknown): string {
  const err = e as { code?: unknown; message?: string; stack?: string } | null;
  return `mxd: ${err?.code ? err.message : (err?.stack ?? String(e))}`;
}
