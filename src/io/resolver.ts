// DNS lookups as an injected dependency. The Node implementation uses node:dns/promises with
// the servers from `dns.servers` (empty = system resolver). Errors are mapped to three kinds so
// that policy code never sees node error codes.
import { Resolver as NodeResolver } from "node:dns/promises";
import { MxdError } from "../core/errors.js";

export interface MxRecord {
  exchange: string;
  priority: number;
}

export type DnsErrorKind = "nxdomain" | "nodata" | "temporary";

export class DnsError extends MxdError {
  constructor(readonly kind: DnsErrorKind, readonly name_: string, /** The resolver's code (ENOTFOUND, ESERVFAIL, …). */ readonly dnsCode: string) {
    super("MXD_DNS", `DNS ${kind} for ${name_} (${dnsCode})`);
    this.name = "DnsError";
  }
}

export interface Resolver {
  /** MX records; throws DnsError("nodata") when the name exists without MX, ("nxdomain") when it does not exist. */
  mx(domain: string): Promise<MxRecord[]>;
  a(host: string): Promise<string[]>;
  aaaa(host: string): Promise<string[]>;
  /** TXT records, each as its list of strings (MTA-STS). Optional: test doubles without it mean "no TXT records anywhere". */
  txt?(name: string): Promise<string[][]>;
}

export function classifyDnsCode(code: string | undefined): DnsErrorKind {
  switch (code) {
    case "ENOTFOUND": // NXDOMAIN
      return "nxdomain";
    case "ENODATA": // name exists, no records of this type
      return "nodata";
    default: // ESERVFAIL, ETIMEOUT, ECONNREFUSED, EREFUSED, ...
      return "temporary";
  }
}

export interface NodeResolverOptions {
  /** "host" or "host:port" ("[v6]:port"). */
  servers?: readonly string[];
  timeoutMs?: number;
  tries?: number;
}

/** An answer and how long its records may be kept, in ms (undefined: the resolver does not say). */
export interface TimedAnswer<T> {
  value: T;
  ttlMs: number | undefined;
}

/** The Resolver's lookups, each with the TTL of its answer when the resolver reports one (io/dns-cache.ts keeps them). */
export interface TimedResolver {
  mx(domain: string): Promise<TimedAnswer<MxRecord[]>>;
  a(host: string): Promise<TimedAnswer<string[]>>;
  aaaa(host: string): Promise<TimedAnswer<string[]>>;
  txt?(name: string): Promise<TimedAnswer<string[][]>>;
}

/** The smallest TTL of a record set, in ms: the set may be kept no longer than its shortest-lived record. */
function minTtlMs(records: readonly { ttl: number }[]): number {
  let min = Infinity;
  for (const r of records) min = Math.min(min, r.ttl);
  return Number.isFinite(min) ? min * 1000 : 0;
}

/**
 * node:dns/promises with TTLs where node gives them: resolve4/resolve6 accept `{ ttl: true }`;
 * resolveMx and resolveTxt have no such option (and resolveAny reports no TTL for MX or TXT
 * either, besides being an ANY query that servers may refuse, RFC 8482), so their TTL is unknown.
 */
export function createNodeTimedResolver(opts: NodeResolverOptions = {}): TimedResolver {
  const r = new NodeResolver({ timeout: opts.timeoutMs ?? 5000, tries: opts.tries ?? 2 });
  if (opts.servers && opts.servers.length) r.setServers([...opts.servers]);
  const wrap = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new DnsError(classifyDnsCode(code), name, code ?? "UNKNOWN");
    }
  };
  const addresses = (list: { address: string; ttl: number }[]): TimedAnswer<string[]> => ({ value: list.map((x) => x.address), ttlMs: minTtlMs(list) });
  return {
    mx: (d) => wrap(d, async () => ({ value: await r.resolveMx(d), ttlMs: undefined })),
    a: (h) => wrap(h, async () => addresses(await r.resolve4(h, { ttl: true }))),
    aaaa: (h) => wrap(h, async () => addresses(await r.resolve6(h, { ttl: true }))),
    txt: (n) => wrap(n, async () => ({ value: await r.resolveTxt(n), ttlMs: undefined })),
  };
}

/** The same lookups without their TTLs. */
export function withoutTtl(t: TimedResolver): Resolver {
  const txt = t.txt?.bind(t);
  return {
    mx: async (d) => (await t.mx(d)).value,
    a: async (h) => (await t.a(h)).value,
    aaaa: async (h) => (await t.aaaa(h)).value,
    ...(txt ? { txt: async (n: string) => (await txt(n)).value } : {}),
  };
}

export function createNodeResolver(opts: NodeResolverOptions = {}): Resolver {
  return withoutTtl(createNodeTimedResolver(opts));
}
