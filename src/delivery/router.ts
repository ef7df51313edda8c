// Which hosts to try for a domain: an address literal, else a `routes` override (exact domain,
// then the longest ".parent" suffix), else MX resolution (mx.ts). `delivery.fallbackRelays`
// are resolved separately and only used once every MX has failed temporarily.
import type { Config } from "../config.js";
import type { Resolver } from "../io/resolver.js";
import { parseIPv4, parseIPv6 } from "../core/cidr.js";
import {
  canonicalIp,
  capTargets,
  fail,
  normalizeHost,
  orderAddresses,
  parseAddressLiteral,
  planMx,
  resolveHost,
  type AddressPreference,
  type ResolvedHost,
  type RouteFailure,
} from "./mx.js";

export type DestinationKind = "mx" | "implicit-mx" | "route" | "literal" | "fallback";

/** One address to connect to. */
export interface Destination {
  /** Host name (MX exchange, route or relay host); the IP itself for literals. */
  host: string;
  ip: string;
  port: number;
  preference: number;
  kind: DestinationKind;
}

export interface HostPort {
  host: string;
  port: number;
}

export type RoutePlan =
  | { ok: true; destinations: Destination[]; via: "mx" | "implicit-mx" | "route" | "literal" }
  | { ok: false; failure: RouteFailure };

/** "host", "host:port", "[v6]", "[v6]:port", "192.0.2.1:2525". */
export function parseHostPort(s: string, defaultPort: number): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) return { host: s, port: defaultPort };
  return { host: m[1]!, port: m[2] !== undefined ? Number(m[2]) : defaultPort };
}

/**
 * Lookup by destination domain (routes, delivery.tls.policy.domains): exact key first, then
 * ".example.com" keys for subdomains, longest first.
 */
export function findRoute<T = readonly string[]>(routes: Readonly<Record<string, T>>, domain: string): T | undefined {
  const d = normalizeHost(domain);
  const keys = Object.keys(routes);
  const exact = keys.find((k) => normalizeHost(k) === d);
  if (exact !== undefined) return routes[exact];
  let best: string | undefined;
  for (const k of keys) {
    const kk = normalizeHost(k);
    if (kk.startsWith(".") && d.endsWith(kk) && (best === undefined || kk.length > normalizeHost(best).length)) best = k;
  }
  return best !== undefined ? routes[best] : undefined;
}

export interface RouterDeps {
  config: Config;
  resolver: Resolver;
  random?: () => number;
  /** Addresses of this host, for the MX loop check. */
  localAddresses?: readonly string[];
}

export class Router {
  private readonly config: Config;
  private readonly resolver: Resolver;
  private readonly random: () => number;
  private readonly localAddresses: readonly string[];

  constructor(deps: RouterDeps) {
    this.config = deps.config;
    this.resolver = deps.resolver;
    this.random = deps.random ?? Math.random;
    this.localAddresses = deps.localAddresses ?? [];
  }

  async plan(domain: string): Promise<RoutePlan> {
    const port = this.config.delivery.port;
    const literal = parseAddressLiteral(domain);
    if (literal !== undefined) {
      // RFC 5321 §5.1: an address literal is delivered to that address, no DNS involved.
      const mine = new Set(this.localAddresses.map(canonicalIp));
      if (mine.has(canonicalIp(literal))) return { ok: false, failure: fail("permanent", 554, "5.4.6", `mail for ${domain} loops back to myself`) };
      return { ok: true, via: "literal", destinations: [{ host: literal, ip: literal, port, preference: 0, kind: "literal" }] };
    }
    if (domain.startsWith("[")) return { ok: false, failure: fail("permanent", 501, "5.1.2", `invalid address literal ${domain}`) };

    const route = findRoute(this.config.routes, domain);
    if (route) {
      const r = await this.resolveHostList(route, "route");
      if (r.destinations.length === 0) {
        return { ok: false, failure: fail("transient", 451, r.temporary ? "4.4.3" : "4.4.4", `no address for the route hosts of ${domain} (${route.join(", ")})`) };
      }
      return { ok: true, via: "route", destinations: r.destinations };
    }

    const mx = await planMx(domain, {
      resolver: this.resolver,
      random: this.random,
      hostname: this.config.hostname,
      localAddresses: this.localAddresses,
      addressPreference: this.config.delivery.addressPreference as AddressPreference,
      maxAddresses: this.config.delivery.maxAddressesPerAttempt,
    });
    if (!mx.ok) return mx;
    const kind: DestinationKind = mx.implicit ? "implicit-mx" : "mx";
    return { ok: true, via: kind === "mx" ? "mx" : "implicit-mx", destinations: mx.targets.map((t) => ({ ...t, port, kind })) };
  }

  /** The fallback relays (delivery.fallbackRelays), resolved; empty when none are configured. */
  async fallbacks(): Promise<Destination[]> {
    if (this.config.delivery.fallbackRelays.length === 0) return [];
    return (await this.resolveHostList(this.config.delivery.fallbackRelays, "fallback")).destinations;
  }

  /** Resolve "host[:port]" entries in the given order (no MX lookup, like Postfix's [host]). */
  private async resolveHostList(list: readonly string[], kind: DestinationKind): Promise<{ destinations: Destination[]; temporary: boolean }> {
    const parsed = list.map((s) => parseHostPort(s, this.config.delivery.port));
    const pref = this.config.delivery.addressPreference as AddressPreference;
    let temporary = false;
    const hosts: (ResolvedHost & { port: number })[] = await Promise.all(
      parsed.map(async (hp, i) => {
        if (parseIPv4(hp.host) || parseIPv6(hp.host)) return { name: hp.host, preference: i, addresses: [hp.host], port: hp.port };
        const a = await resolveHost(this.resolver, hp.host);
        if (a.temporary) temporary = true;
        return { name: normalizeHost(hp.host), preference: i, addresses: orderAddresses(a.v4, a.v6, pref), port: hp.port };
      }),
    );
    const targets = capTargets(hosts, this.config.delivery.maxAddressesPerAttempt);
    const destinations = targets.map((t) => ({ ...t, port: hosts[t.preference]!.port, kind }));
    return { destinations, temporary };
  }
}
