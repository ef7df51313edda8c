// Outbound TCP connections and the STARTTLS upgrade, as an injected dependency (tests may
// replace it; the courier and the SMTP client never import node:net or node:tls themselves).
import * as net from "node:net";
import * as tls from "node:tls";
import { waitForEvent } from "./wait-event.js";
import { MxdError } from "../core/errors.js";
import { X509Certificate } from "node:crypto";
import { caBundle } from "./ca-bundle.js";

export interface ConnectOptions {
  host: string;
  port: number;
  /** Source address to bind (delivery.sourceAddress). */
  localAddress?: string;
  timeoutMs: number;
}

export interface TlsUpgradeOptions {
  /** SNI name; ignored when it is an IP address (RFC 6066 §3 forbids literal addresses). */
  servername?: string;
  timeoutMs: number;
  /** Refuse older protocol versions (set whenever the TLS policy requires TLS). */
  minVersion?: "TLSv1.2";
  /** PEM file of CAs trusted in addition to the system ones (delivery.tls.caFile). */
  caFile?: string;
}

export type ConnectErrorKind = "refused" | "timeout" | "reset" | "unreachable" | "other";

/** A connection could not be made (or a TLS handshake failed): the next address should be tried. */
export class ConnectError extends MxdError {
  constructor(
    readonly kind: ConnectErrorKind,
    /** The system error code (ECONNREFUSED, ETIMEDOUT, …). */
    readonly sysCode: string,
    message: string,
  ) {
    super("MXD_CONNECT", message);
    this.name = "ConnectError";
  }
}

export class TlsHandshakeError extends MxdError {
  constructor(message: string, /** The system or OpenSSL error code. */ readonly sysCode: string) {
    super("MXD_TLS_HANDSHAKE", message);
    this.name = "TlsHandshakeError";
  }
}

export interface Connector {
  /** Resolves with a connected socket (no timeout set on it) or rejects with ConnectError. */
  connect(opts: ConnectOptions): Promise<net.Socket>;
  /** Runs a client TLS handshake over an established socket; rejects with TlsHandshakeError. */
  upgradeTls(socket: net.Socket, opts: TlsUpgradeOptions): Promise<tls.TLSSocket>;
}

export function connectErrorKind(code: string | undefined): ConnectErrorKind {
  switch (code) {
    case "ECONNREFUSED":
      return "refused";
    case "ETIMEDOUT":
      return "timeout";
    case "ECONNRESET":
    case "EPIPE":
      return "reset";
    case "ENETUNREACH":
    case "EHOSTUNREACH":
    case "EADDRNOTAVAIL":
    case "ENETDOWN":
      return "unreachable";
    default:
      return "other";
  }
}

export async function connect(opts: ConnectOptions): Promise<net.Socket> {
  const socket = net.connect({
    host: opts.host,
    port: opts.port,
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  });
  await waitForEvent(socket, "connect", {
    timeoutMs: opts.timeoutMs,
    timeout: () => new ConnectError("timeout", "ETIMEDOUT", `connect to ${opts.host}:${opts.port} timed out after ${opts.timeoutMs} ms`),
    fail: { error: (e: NodeJS.ErrnoException) => new ConnectError(connectErrorKind(e.code), e.code ?? "UNKNOWN", `connect to ${opts.host}:${opts.port}: ${e.message}`) },
    onFail: () => socket.destroy(),
  });
  socket.setNoDelay(true);
  return socket;
}

/**
 * STARTTLS client side (RFC 3207). Opportunistic, Postfix security level "may": the
 * certificate is not verified (RFC 7435 §1.3: unauthenticated encryption beats cleartext).
 */
export async function upgradeTls(socket: net.Socket, opts: TlsUpgradeOptions): Promise<tls.TLSSocket> {
  const servername = opts.servername && net.isIP(opts.servername) === 0 ? opts.servername.replace(/\.$/, "") : undefined;
  let ca: string[] | undefined;
  try {
    ca = opts.caFile ? caBundle(opts.caFile) : undefined;
  } catch (e) {
    throw new TlsHandshakeError((e as Error).message, "ECAFILE");
  }
  // Never rejected here: the TLS policy judges the chain afterwards (tlsPeer + the courier's
  // verify), so that "may" still encrypts and MTA-STS testing can report without refusing.
  const secure = tls.connect({ socket, rejectUnauthorized: false, ...(servername ? { servername } : {}), ...(opts.minVersion ? { minVersion: opts.minVersion } : {}), ...(ca ? { ca } : {}) });
  await waitForEvent(secure, "secureConnect", {
    timeoutMs: opts.timeoutMs,
    timeout: () => new TlsHandshakeError(`TLS handshake timed out after ${opts.timeoutMs} ms`, "ETIMEDOUT"),
    fail: {
      error: (e: NodeJS.ErrnoException) => new TlsHandshakeError(`TLS handshake failed: ${e.message}`, e.code ?? "UNKNOWN"),
      close: () => new TlsHandshakeError("TLS handshake failed: connection closed during handshake", "ECONNRESET"),
    },
    onFail: () => secure.destroy(),
  });
  return secure;
}

/** What the TLS layer knows about the peer once the handshake is done. */
export interface TlsPeer {
  /** The certificate the peer presented (undefined: none). */
  readonly leaf: X509Certificate | undefined;
  /** Leaf first, built on first use (only DANE needs more than the leaf). */
  readonly chain: X509Certificate[];
  /** The chain leads to a trusted CA (system CAs + delivery.tls.caFile): Node's own check. */
  readonly authorized: boolean;
  readonly authorizationError?: string;
}

/**
 * The peer's certificate and Node's PKIX verdict, for the TLS policy's verify. Cheap for the
 * common case (the leaf only); the chain is parsed when someone asks for it.
 */
export function tlsPeer(secure: tls.TLSSocket): TlsPeer {
  let chain: X509Certificate[] | undefined;
  const err = secure.authorizationError as unknown;
  return {
    leaf: peerLeaf(secure),
    get chain() {
      chain ??= peerChain(secure);
      return chain;
    },
    authorized: secure.authorized,
    ...(err ? { authorizationError: err instanceof Error ? err.message : String(err) } : {}),
  };
}

// Not getPeerX509Certificate(): on Node 20 one call of it leaves getPeerCertificate() empty
// and itself undefined afterwards (seen on 20.20), which would hide the chain from DANE.
function peerLeaf(secure: tls.TLSSocket): X509Certificate | undefined {
  const raw = secure.getPeerCertificate(false)?.raw;
  if (!raw) return undefined;
  try {
    return new X509Certificate(raw);
  } catch {
    return undefined;
  }
}

function peerChain(secure: tls.TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: tls.DetailedPeerCertificate | undefined = secure.getPeerCertificate(true);
  // The issuer links end in a self-reference at the root; a bound keeps a strange chain finite.
  while (c && c.raw && chain.length < 10 && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    try {
      chain.push(new X509Certificate(c.raw));
    } catch {
      break;
    }
    c = c.issuerCertificate;
  }
  return chain;
}

export const nodeConnector: Connector = { connect, upgradeTls };
