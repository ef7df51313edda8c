// An in-process cache of the DNS answers delivery asks for (MX, A, AAAA, TXT), so that 20,000
// messages to one domain cost one MX and one A query per TTL instead of 40,000 (KumoMTA keeps
// such a cache; Postfix leaves it to a local caching resolver). Correctness first:
// - an answer is kept no longer than its TTL, and never longer than `maxTtlMs`. node:dns reports
//   TTLs only for A and AAAA (io/resolver.ts); MX and TXT answers are kept `unknownTtlMs`, a
//   short fixed time (a record with a smaller TTL is then kept a little longer than it asks);
// - NXDOMAIN and NODATA are kept `negativeTtlMs` (RFC 2308 §5 says the SOA minimum, which
//   node:dns does not expose, so a small fixed cap stands in for it);
// - temporary failures (SERVFAIL, timeouts, refused) are never kept: the next lookup asks again;
// - concurrent lookups of one name and type share one query (the in-flight map);
// - memory is bounded: at most `maxEntries` answers in two generations of maxEntries/2 (an
//   approximate LRU, O(1) per insert, as in smtp/rate-limit.ts): a hit in the previous
//   generation moves to the current one; a full current generation becomes the previous one
//   and the old previous one is dropped whole. Expired entries go when they are next looked up
//   or with their generation.
// The DANE resolver (io/dnssec-resolver.ts) is separate and never goes through this cache.
import { GenerationalMap } from "../core/generational-map.js";
import { DnsError, type MxRecord, type Resolver, type TimedAnswer, type TimedResolver } from "./resolver.js";

export interface DnsCacheSettings {
  /** No answer is kept longer than this (ms); 0 disables the cache. */
  maxTtlMs: number;
  /** How long an answer whose TTL the resolver does not report is kept (ms). */
  unknownTtlMs: number;
  /** How long NXDOMAIN / NODATA is kept (ms); 0 = not kept. */
  negativeTtlMs: number;
  /** Answers kept at most (≥ 2). */
  maxEntries: number;
}

/** What a lookup gave: the records with their TTL, or the error it threw. */
export type LookupOutcome = { ok: true; ttlMs: number | undefined } | { ok: false; error: unknown };

/** How long (ms) an outcome may be kept; 0 = not at all. Pure: the whole caching policy. */
export function cacheLifetime(o: LookupOutcome, s: Pick<DnsCacheSettings, "maxTtlMs" | "unknownTtlMs" | "negativeTtlMs">): number {
  if (!(s.maxTtlMs > 0)) return 0;
  if (!o.ok) {
    // RFC 2308 §5: negative answers may be cached; §7.1: a server failure must not be kept
    // longer than 5 minutes, and we do not keep it at all (the next attempt asks again).
    const negative = o.error instanceof DnsError && (o.error.kind === "nxdomain" || o.error.kind === "nodata");
    return negative ? Math.max(0, Math.min(s.negativeTtlMs, s.maxTtlMs)) : 0;
  }
  const ttl = o.ttlMs ?? s.unknownTtlMs;
  return Math.max(0, Math.min(ttl, s.maxTtlMs));
}

interface Entry {
  expiresAt: number;
  /** The records (ok) or the error to throw again. */
  ok: boolean;
  value: unknown;
}

/** Bounded key → entry store (core/generational-map.ts); expiry is checked against `now`. */
export class AnswerStore {
  private readonly map: GenerationalMap<Entry>;

  constructor(maxEntries: number) {
    this.map = new GenerationalMap(maxEntries);
  }

  /** Entries held (live or expired but not yet dropped); never more than maxEntries. */
  get size(): number {
    return this.map.size;
  }

  /** The live entry of `key`, or undefined (an expired one is dropped). */
  get(key: string, now: number): Entry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      this.map.delete(key);
      return undefined;
    }
    return e;
  }

  set(key: string, e: Entry): void {
    this.map.set(key, e);
  }
}

export interface DnsCacheStats {
  /** Lookups answered from the cache. */
  hits: number;
  /** Lookups that joined a query already in flight. */
  shared: number;
  /** Queries sent to the resolver. */
  queries: number;
  /** Answers held now. */
  entries: number;
}

export interface CachingResolver extends Resolver {
  stats(): DnsCacheStats;
}

// Callers get their own copies: a cached answer must not change if one of them edits its list.
const copyMx = (l: MxRecord[]): MxRecord[] => l.map((r) => ({ exchange: r.exchange, priority: r.priority }));
const copyList = (l: string[]): string[] => l.slice();
const copyTxt = (l: string[][]): string[][] => l.map((r) => r.slice());

/** `inner` behind the cache; `now` is the clock (ms) the TTLs are counted against. */
export function cachingResolver(inner: TimedResolver, settings: DnsCacheSettings, now: () => number): CachingResolver {
  const store = new AnswerStore(settings.maxEntries);
  // One entry per lookup in progress: bounded by the lookups delivery runs at once.
  const inflight = new Map<string, Promise<unknown>>();
  const stats = { hits: 0, shared: 0, queries: 0 };

  function lookup<T>(type: string, name: string, ask: () => Promise<TimedAnswer<T>>, copy: (v: T) => T): Promise<T> {
    // DNS names are case-insensitive (RFC 4343); a trailing dot names the same node.
    const key = `${type} ${name.toLowerCase().replace(/\.$/, "")}`;
    const hit = store.get(key, now());
    if (hit) {
      stats.hits++;
      return hit.ok ? Promise.resolve(copy(hit.value as T)) : Promise.reject(hit.value);
    }
    const pending = inflight.get(key) as Promise<T> | undefined;
    if (pending) {
      stats.shared++;
      return pending.then(copy);
    }
    stats.queries++;
    const keep = (o: LookupOutcome, value: unknown): void => {
      inflight.delete(key);
      const ms = cacheLifetime(o, settings);
      if (ms > 0) store.set(key, { expiresAt: now() + ms, ok: o.ok, value });
    };
    const p = ask().then(
      (a) => {
        keep({ ok: true, ttlMs: a.ttlMs }, a.value);
        return a.value;
      },
      (e: unknown) => {
        keep({ ok: false, error: e }, e);
        throw e;
      },
    );
    inflight.set(key, p);
    return p.then(copy);
  }

  const txt = inner.txt?.bind(inner);
  return {
    mx: (d) => lookup("MX", d, () => inner.mx(d), copyMx),
    a: (h) => lookup("A", h, () => inner.a(h), copyList),
    aaaa: (h) => lookup("AAAA", h, () => inner.aaaa(h), copyList),
    ...(txt ? { txt: (n: string) => lookup("TXT", n, () => txt(n), copyTxt) } : {}),
    stats: () => ({ ...stats, entries: store.size }),
  };
}

/** The config's dns.cache as settings; undefined when the cache is off (enabled false or maxTtl 0). */
export function dnsCacheSettings(c: { enabled: boolean; maxTtl: number; unknownTtl: number; negativeTtl: number; maxEntries: number }): DnsCacheSettings | undefined {
  if (!c.enabled || c.maxTtl <= 0) return undefined;
  return { maxTtlMs: c.maxTtl, unknownTtlMs: c.unknownTtl, negativeTtlMs: c.negativeTtl, maxEntries: c.maxEntries };
}
