// MX policy (RFC 5321 §5.1, RFC 7505): which hosts and addresses to try for a domain, in which
// order. The decisions are pure functions; planMx() composes them with an injected Resolver.
import { DnsError, type DnsErrorKind, type MxRecord, type Resolver } from "../io/resolver.js";
import { canonicalIp, parseIPv4, parseIPv6 } from "../core/cidr.js";
import { LOCAL_STATUS } from "../core/errors.js";
import { normalizeHost } from "../core/host-port.js";

export type AddressPreference = "any" | "ipv4" | "ipv6";

/** A decision not to deliver now: a local diagnostic, never a remote reply. */
export interface RouteFailure {
  outcome: "transient" | "permanent";
  /** RFC 3463 enhanced status. */
  status: string;
  /** Diagnostic text starting with the reply code and status, e.g. "556 5.1.10 ...". */
  reply: string;
}

export interface MxHost {
  name: string;
  preference: number;
}

export interface ResolvedHost extends MxHost {
  /** Ordered by the address preference. */
  addresses: string[];
}

/** One address to try, in order. */
export interface Target {
  host: string;
  ip: string;
  preference: number;
}

export type MxPlan =
  | { ok: true; targets: Target[]; implicit: boolean }
  | { ok: false; failure: RouteFailure };

export function fail(outcome: RouteFailure["outcome"], code: number, status: string, text: string): RouteFailure {
  return { outcome, status, reply: `${code} ${status} ${text}` };
}

/** RFC 7505 §3: a null MX is a single MX record whose exchange is the root ("."). */
export function isNullMx(records: readonly MxRecord[]): boolean {
  return records.length === 1 && (records[0]!.exchange === "" || records[0]!.exchange === ".");
}

/**
 * RFC 5321 §5.1: lowest preference first; among equal preferences the order MUST be random
 * (Fisher–Yates with the injected random()). Root exchanges ("." among other records, which
 * RFC 7505 §3 forbids) are dropped: nothing can be delivered to them.
 */
export function orderMx(records: readonly MxRecord[], random: () => number): MxHost[] {
  const groups = new Map<number, MxHost[]>();
  for (const r of records) {
    const name = normalizeHost(r.exchange);
    if (name === "") continue;
    const g = groups.get(r.priority) ?? [];
    if (!g.some((h) => h.name === name)) g.push({ name, preference: r.priority });
    groups.set(r.priority, g);
  }
  const out: MxHost[] = [];
  for (const pref of [...groups.keys()].sort((a, b) => a - b)) {
    const g = groups.get(pref)!;
    for (let i = g.length - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(random() * (i + 1)));
      [g[i], g[j]] = [g[j]!, g[i]!];
    }
    out.push(...g);
  }
  return out;
}

/** Outcome of the MX query when it returned no usable list. */
export function mxLookupFailure(domain: string, kind: DnsErrorKind): RouteFailure | "implicit" {
  switch (kind) {
    case "nodata":
      return "implicit"; // RFC 5321 §5.1: no MX at all → the domain itself, preference 0
    case "nxdomain":
      return fail("permanent", 550, "5.1.2", `domain ${domain} does not exist (DNS NXDOMAIN)`);
    case "temporary":
      return fail("transient", 451, LOCAL_STATUS.dnsFailure, `temporary DNS failure looking up MX for ${domain}`);
  }
}

/**
 * RFC 5321 §5.1: if we are one of the MX hosts (by name or by address), only hosts with a
 * strictly lower preference than our best record may be used; none left is a mail loop.
 */
export function cutOwnHost(
  domain: string,
  hosts: readonly ResolvedHost[],
  self: { hostname: string; localAddresses: readonly string[] },
): ResolvedHost[] | RouteFailure {
  const me = normalizeHost(self.hostname);
  const mine = new Set(self.localAddresses.map(canonicalIp));
  let best = Infinity;
  for (const h of hosts) {
    if (h.name === me || h.addresses.some((a) => mine.has(canonicalIp(a)))) best = Math.min(best, h.preference);
  }
  if (best === Infinity) return [...hosts];
  const kept = hosts.filter((h) => h.preference < best);
  if (kept.length === 0) return fail("permanent", 554, "5.4.6", `mail for ${domain} loops back to myself`);
  return kept;
}

/**
 * Order one host's addresses. "ipv4"/"ipv6": that family first, then the other. "any":
 * alternate families starting with IPv6 (RFC 8305 §4 interleaving), so a broken IPv6 path
 * costs one address, not all of them.
 */
export function orderAddresses(v4: readonly string[], v6: readonly string[], pref: AddressPreference): string[] {
  if (pref === "ipv4") return [...v4, ...v6];
  if (pref === "ipv6") return [...v6, ...v4];
  const out: string[] = [];
  for (let i = 0; i < Math.max(v4.length, v6.length); i++) {
    if (i < v6.length) out.push(v6[i]!);
    if (i < v4.length) out.push(v4[i]!);
  }
  return out;
}

/** Flatten hosts into addresses to try, keeping at most `cap` (Postfix smtp_mx_address_limit). */
export function capTargets(hosts: readonly ResolvedHost[], cap: number): Target[] {
  const out: Target[] = [];
  for (const h of hosts) {
    for (const ip of h.addresses) {
      if (out.length >= cap) return out;
      if (!out.some((t) => t.ip === ip)) out.push({ host: h.name, ip, preference: h.preference });
    }
  }
  return out;
}

/**
 * RFC 5321 §4.1.3 address literal as a domain: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
 * Returns the IP, or undefined when the domain is not a (valid) literal.
 */
export function parseAddressLiteral(domain: string): string | undefined {
  const m = /^\[(.*)\]$/.exec(domain.trim());
  if (!m) return undefined;
  const inner = m[1]!;
  if (/^ipv6:/i.test(inner)) {
    const ip = inner.slice(5);
    return parseIPv6(ip) ? ip.toLowerCase() : undefined;
  }
  return parseIPv4(inner) ? inner : undefined;
}

export interface HostAddresses {
  v4: string[];
  v6: string[];
  /** A lookup failed temporarily (the host may have addresses we did not see). */
  temporary: boolean;
}

/** A and AAAA of one host, in parallel. nxdomain/nodata mean "none of that family". */
export async function resolveHost(resolver: Resolver, name: string): Promise<HostAddresses> {
  let temporary = false;
  const get = async (f: () => Promise<string[]>): Promise<string[]> => {
    try {
      return await f();
    } catch (e) {
      if (!(e instanceof DnsError) || e.kind === "temporary") temporary = true;
      return [];
    }
  };
  const [v4, v6] = await Promise.all([get(() => resolver.a(name)), get(() => resolver.aaaa(name))]);
  return { v4, v6, temporary };
}

export interface MxDeps {
  resolver: Resolver;
  random: () => number;
  hostname: string;
  localAddresses: readonly string[];
  addressPreference: AddressPreference;
  maxAddresses: number;
}

/** MX lookup → ordered, loop-cut, capped list of addresses to try for `domain`. */
export async function planMx(domain: string, d: MxDeps): Promise<MxPlan> {
  let hosts: MxHost[];
  let implicit = false;
  try {
    const records = await d.resolver.mx(domain);
    // RFC 7505 §4.1: a null MX means the domain accepts no mail; fail at once.
    if (isNullMx(records)) return { ok: false, failure: fail("permanent", 556, "5.1.10", `recipient domain ${domain} has a null MX (accepts no mail)`) };
    hosts = orderMx(records, d.random);
    if (hosts.length === 0) return { ok: false, failure: fail("permanent", 556, "5.1.10", `recipient domain ${domain} has only null MX records`) };
  } catch (e) {
    const kind: DnsErrorKind = e instanceof DnsError ? e.kind : "temporary";
    const r = mxLookupFailure(domain, kind);
    if (r !== "implicit") return { ok: false, failure: r };
    hosts = [{ name: normalizeHost(domain), preference: 0 }];
    implicit = true;
  }

  const lookups = await Promise.all(hosts.map((h) => resolveHost(d.resolver, h.name)));
  const resolved: ResolvedHost[] = hosts.map((h, i) => ({
    ...h,
    addresses: orderAddresses(lookups[i]!.v4, lookups[i]!.v6, d.addressPreference),
  }));
  const cut = cutOwnHost(domain, resolved, { hostname: d.hostname, localAddresses: d.localAddresses });
  if (!Array.isArray(cut)) return { ok: false, failure: cut };
  const targets = capTargets(cut, d.maxAddresses);
  if (targets.length === 0) {
    const anyTemporary = hosts.some((h, i) => cut.some((c) => c.name === h.name) && lookups[i]!.temporary);
    if (anyTemporary) return { ok: false, failure: fail("transient", 451, LOCAL_STATUS.dnsFailure, `temporary DNS failure resolving the mail hosts of ${domain}`) };
    const what = implicit ? `domain ${domain} has no MX and no A/AAAA records` : `no A/AAAA records for the MX hosts of ${domain}`;
    return { ok: false, failure: fail("permanent", 550, implicit ? "5.1.2" : "5.4.4", what) };
  }
  return { ok: true, targets, implicit };
}
