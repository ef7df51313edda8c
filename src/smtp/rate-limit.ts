// Rate limits per key (a client IP, an authenticated user): connections, messages and
// recipients per time window. Pure apart from the injected clock; smtp/server.ts owns it.
//
// The algorithm is a token bucket per (rule, key): a bucket holds at most `limit` tokens,
// starts full, and refills continuously at `limit` tokens per `per` milliseconds; each event
// takes one token, and an event that finds less than one is refused. So a client may burst
// `limit` events, then sustains `limit` per window; a client that was refused gets a token
// back after `per / limit` and is fully recovered one window after its last event. A bucket
// is two numbers, whatever the limit — unlike a sliding log, which keeps a timestamp per event.
//
// Memory is bounded: at most `maxKeys` buckets over all rules, kept in two generations of at
// most maxKeys/2 each (an approximate LRU in O(1) per event). New buckets go into the current
// generation; a bucket found in the previous one moves to the current one; when the current
// generation is full it becomes the previous one and the old previous one is dropped whole.
// So a key untouched while maxKeys/2 other keys arrived is forgotten, and an attacker cycling
// through source addresses makes the table churn but never grow. Forgetting a bucket forgets
// that key's history (it starts full again): the price of the bound. (A strict LRU over one
// Map, evicting its first key, was quadratic in V8: every eviction's fresh iterator walks the
// holes earlier deletions left at the front — 119 µs per new key at 100,000 keys.)
// A full bucket carries no information: prune() drops those (the server calls it periodically).
import { parseIPv6 } from "../core/cidr.js";
import { GenerationalMap } from "../core/generational-map.js";

export interface Rate {
  /** Events allowed per window; 0 = no limit. */
  limit: number;
  /** The window, in milliseconds. */
  per: number;
}

export interface RateLimiterSettings<R extends string> {
  rules: Record<R, Rate>;
  /** Buckets kept at most, over every rule (the oldest untouched one is evicted first). */
  maxKeys: number;
}

export type RateDecision = { ok: true } | { ok: false; rule: string; limit: number; per: number; retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter<R extends string> {
  private settings: RateLimiterSettings<R>;
  private readonly buckets: GenerationalMap<Bucket>;
  /** Refused events per rule since start. */
  readonly hits = new Map<R, number>();

  constructor(settings: RateLimiterSettings<R>, private readonly now: () => number) {
    this.settings = settings;
    this.buckets = new GenerationalMap(settings.maxKeys);
    for (const r of Object.keys(settings.rules) as R[]) this.hits.set(r, 0);
  }

  get rules(): Readonly<Record<R, Rate>> {
    return this.settings.rules;
  }

  get maxKeys(): number {
    return this.settings.maxKeys;
  }

  /** Buckets held now (at most maxKeys). */
  get size(): number {
    return this.buckets.size;
  }

  /** Buckets evicted to stay under maxKeys since start. */
  get evictions(): number {
    return this.buckets.evictions;
  }

  /**
   * New limits at run time (configuration reload). Buckets keep their state, capped at the
   * new limit; rules switched off lose theirs lazily; a smaller maxKeys evicts at once.
   */
  setSettings(settings: RateLimiterSettings<R>): void {
    this.settings = settings;
    for (const r of Object.keys(settings.rules) as R[]) if (!this.hits.has(r)) this.hits.set(r, 0);
    this.buckets.setCapacity(settings.maxKeys);
  }

  /** Take one token from `rule`'s bucket for `key`: may the event happen? */
  take(rule: R, key: string): RateDecision {
    const rate = this.settings.rules[rule];
    if (!rate || rate.limit <= 0) return { ok: true };
    const id = `${rule}\u0000${key}`;
    const now = this.now();
    let b = this.buckets.get(id);
    const tokens = b ? refill(b, rate, now) : rate.limit;
    if (!b) {
      b = { tokens, at: now };
      this.buckets.set(id, b);
    }
    b.at = now;
    if (tokens < 1) {
      b.tokens = tokens;
      this.hits.set(rule, (this.hits.get(rule) ?? 0) + 1);
      return { ok: false, rule, limit: rate.limit, per: rate.per, retryAfterMs: Math.ceil(((1 - tokens) * rate.per) / rate.limit) };
    }
    b.tokens = tokens - 1;
    return { ok: true };
  }

  /** Drop buckets that have refilled completely (they say nothing a missing bucket would not). */
  prune(): number {
    const now = this.now();
    let n = 0;
    for (const [id, b] of this.buckets.entries()) {
      const rule = id.slice(0, id.indexOf("\u0000")) as R;
      const rate = this.settings.rules[rule];
      if (!rate || rate.limit <= 0 || refill(b, rate, now) >= rate.limit) {
        this.buckets.delete(id);
        n++;
      }
    }
    return n;
  }
}

function refill(b: Bucket, rate: Rate, now: number): number {
  const elapsed = Math.max(0, now - b.at);
  return Math.min(rate.limit, b.tokens + (elapsed * rate.limit) / rate.per);
}

/**
 * The key a client address is limited under: the IPv4 address, or the /64 an IPv6 address
 * belongs to (one host usually holds a whole /64, so per-address limits would not limit it).
 * IPv4-mapped IPv6 addresses count as their IPv4 address.
 */
export function clientKey(ip: string): string {
  const v6 = ip.includes(":") ? parseIPv6(ip) : undefined;
  if (!v6) return ip;
  if (v6.subarray(0, 10).every((x) => x === 0) && v6[10] === 0xff && v6[11] === 0xff) return [...v6.subarray(12)].join(".");
  const g: string[] = [];
  for (let i = 0; i < 8; i += 2) g.push(((v6[i]! << 8) | v6[i + 1]!).toString(16));
  return `${g.join(":")}::/64`;
}
