// Who may do what on the admin API (docs/admin-api.md, docs/security.md). Pure: the server
// passes what it knows about the request and gets a verdict.
//
//  - The spool socket (mode 0600, only root and the mxd user can connect) may do everything.
//  - On TCP the Host header must name this listener: an IP literal, "localhost" or the
//    configured hostname, with the listener's port. A web page whose name was re-pointed at
//    127.0.0.1 (DNS rebinding) sends its own name and is refused. An Origin header, sent by
//    browsers on cross-site requests, must be the same host.
//  - On TCP with admin.token, every request carries it (Bearer, or Basic with the token as
//    password for the status page in a browser). Without admin.token, TCP is read-only: the
//    status page, /healthz, /metrics, /status; actions go through the socket.
//  - A request body must be JSON, and on TCP every POST says so (Content-Type: application/json):
//    an HTML form can only send form-encoded or text bodies, and a script that sets a JSON type
//    cross-site must ask first (a CORS preflight, which the API never answers with permission).
import { hostKind, parseHostPort } from "../core/host-port.js";

/** Served on TCP without a token: the status page and what monitoring reads. */
export const READ_ONLY_PATHS: readonly string[] = ["/", "/live", "/events", "/healthz", "/metrics", "/status"];
/** Where a browser may be asked for Basic credentials. */
export const STATUS_PAGE_PATHS: readonly string[] = ["/", "/live", "/events"];

export interface AccessRequest {
  /** Arrived on the spool's Unix socket. */
  local: boolean;
  method: string;
  /** Normalised path ("/queue/flush"). */
  path: string;
  host: string | undefined;
  origin: string | undefined;
  /** Whether the credentials match admin.token (false when none were sent); undefined = no token configured. */
  tokenOk: boolean | undefined;
  /** The TCP listener's port (for the Host check). */
  port: number;
  /** Names besides IP literals and "localhost" that Host may carry (the configured hostname). */
  hostnames: readonly string[];
}

export type AccessVerdict = { ok: true } | { ok: false; status: 401 | 403 | 415; message: string; wwwAuthenticate?: string };

export function checkAccess(r: AccessRequest): AccessVerdict {
  if (r.local) return { ok: true };
  if (!hostAllowed(r.host, r.port, r.hostnames)) {
    return { ok: false, status: 403, message: `Host ${r.host === undefined ? "(none)" : JSON.stringify(r.host)} is not this admin listener (use its IP address, localhost or the configured hostname, with port ${r.port})` };
  }
  if (r.origin !== undefined && r.origin !== "null" && originHost(r.origin) !== (r.host ?? "").toLowerCase()) {
    return { ok: false, status: 403, message: `cross-origin request from ${JSON.stringify(r.origin)} refused` };
  }
  if (r.tokenOk === false) {
    return {
      ok: false,
      status: 401,
      message: "missing or wrong bearer token",
      wwwAuthenticate: STATUS_PAGE_PATHS.includes(r.path) ? 'Basic realm="mxd", Bearer realm="mxd"' : 'Bearer realm="mxd"',
    };
  }
  if (r.tokenOk === undefined && !(r.method === "GET" && READ_ONLY_PATHS.includes(r.path))) {
    return { ok: false, status: 403, message: "admin.token is not set, so the TCP admin API is read-only (/, /live, /events, /healthz, /metrics, /status); use the spool socket (mxd queue …, mxd reload) or set admin.token" };
  }
  return { ok: true };
}

/**
 * Checked when an endpoint reads a body (so a wrong method is still a 405): it must be JSON,
 * and on TCP even an empty one must say so.
 */
export function bodyTypeProblem(r: { local: boolean; contentType: string | undefined; hasBody: boolean }): string | undefined {
  const isJson = r.contentType !== undefined && /^application\/json\s*(;|$)/i.test(r.contentType.trim());
  if (isJson || (r.local && !r.hasBody)) return undefined;
  return `the body must be JSON (Content-Type: application/json), got ${r.contentType === undefined ? "no Content-Type" : JSON.stringify(r.contentType)}`;
}

/** "127.0.0.1:8025", "[::1]:8025", "localhost:8025", "mx.example.org:8025" (the port must be ours). */
export function hostAllowed(host: string | undefined, port: number, hostnames: readonly string[]): boolean {
  if (host === undefined) return false;
  const p = parseHostPort(host.toLowerCase(), { defaultPort: 80, minPort: 1 });
  if (!p.ok || p.value.port !== port) return false;
  const h = p.value.host.replace(/\.$/, "");
  // An IP literal cannot be re-pointed by DNS; a name must be one we answer to.
  return hostKind(h) !== "name" || h === "localhost" || hostnames.some((n) => n.toLowerCase() === h);
}

/** "http://127.0.0.1:8025" → "127.0.0.1:8025" (default ports spelled out as the Host header would omit them). */
function originHost(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    return u.host.toLowerCase();
  } catch {
    return undefined;
  }
}
