// "host", "host:port", "[IPv6]", "[IPv6]:port": the one parser for every address in the
// config (admin.listen, routes, delivery.fallbackRelays, dns.servers) and for whoever reads them
// back (router, delivery log, admin server, CLI: hostAndPort). Pure: a bad value is an answer naming what is wrong, so the
// config schema can refuse it before anything tries to bind or connect (issue 13, bugs 1–2:
// "127.0.0.7:86000" used to pass and then fail inside Node at run time).
import { parseIPv4, parseIPv6 } from "./cidr.js";

export type HostKind = "ipv4" | "ipv6" | "name";

/** A host name for comparing: lower case, without the root's trailing dot. */
export function normalizeHost(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

export interface ParsedHostPort {
  host: string;
  port: number;
  kind: HostKind;
}

export type HostPortResult = { ok: true; value: ParsedHostPort } | { ok: false; error: string };

/** RFC 1123 §2.1 host name: dot-separated labels of letters, digits and inner hyphens, ≤ 253 octets. */
export function isHostName(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  const labels = (s.endsWith(".") ? s.slice(0, -1) : s).split(".");
  // An all-numeric dotted name is a mistyped IPv4 address ("10.0.0.300"), not a host name.
  if (labels.every((l) => /^\d+$/.test(l))) return false;
  return labels.every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

/** What kind of host this is, or undefined when it is none (bad IP literal, bad name). */
export function hostKind(s: string): HostKind | undefined {
  if (parseIPv4(s)) return "ipv4";
  if (s.includes(":")) return parseIPv6(s) ? "ipv6" : undefined;
  return isHostName(s) ? "name" : undefined;
}

/**
 * Parse an address. `defaultPort` fills a missing port; `minPort` is 1 for destinations (nobody
 * listens on port 0) and 0 for listeners (0 = any free port).
 */
export function parseHostPort(s: string, opts: { defaultPort?: number; minPort?: number } = {}): HostPortResult {
  const minPort = opts.minPort ?? 1;
  if (typeof s !== "string" || s.trim() !== s || s === "") return { ok: false, error: `expected "host" or "host:port", got ${JSON.stringify(s)}` };
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
    if (!parseIPv6(host)) return { ok: false, error: `${JSON.stringify(host)} in ${JSON.stringify(s)} is not an IPv6 address` };
  } else {
    const colons = s.split(":").length - 1;
    if (colons > 1) return { ok: false, error: `write an IPv6 address in brackets, like "[::1]:25", got ${JSON.stringify(s)}` };
    const i = s.indexOf(":");
    host = i >= 0 ? s.slice(0, i) : s;
    portText = i >= 0 ? s.slice(i + 1) : undefined;
    if (/^[\d.]+$/.test(host)) {
      if (!parseIPv4(host)) return { ok: false, error: `${JSON.stringify(host)} in ${JSON.stringify(s)} is not an IPv4 address` };
    } else if (!isHostName(host)) return { ok: false, error: `${JSON.stringify(host)} in ${JSON.stringify(s)} is not a host name` };
  }
  let port: number;
  if (portText === undefined) {
    if (opts.defaultPort === undefined) return { ok: false, error: `expected "host:port", got ${JSON.stringify(s)} (no port)` };
    port = opts.defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) return { ok: false, error: `port ${JSON.stringify(portText)} in ${JSON.stringify(s)} is not a number` };
    port = Number(portText);
    if (port < minPort || port > 65535) return { ok: false, error: `port ${port} in ${JSON.stringify(s)} is out of range (${minPort}–65535)` };
  }
  return { ok: true, value: { host, port, kind: hostKind(host)! } };
}

/**
 * Host and port of a value the config schema has already checked (routes, fallback relays,
 * admin.listen), the default port filled in. Of a value that does not parse (a refinement looking
 * at a value the schema refuses anyway) the host is what stands before the port.
 */
/** "localhost", ::1 or 127.x.y.z, with or without a port. */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostAndPort(hostPort, 0).host.toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function hostAndPort(s: string, defaultPort: number): { host: string; port: number } {
  const r = parseHostPort(s, { defaultPort, minPort: 0 });
  if (r.ok) return { host: r.value.host, port: r.value.port };
  const m = /^\[([^\]]*)\]/.exec(s);
  return { host: m ? m[1]! : s.split(":")[0]!, port: defaultPort };
}
