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
// Memory is bounded: at most `maxKeys` buckets over all rules, in least-recently-used order
// (a Map's insertion order; a touched bucket moves to the end). Inserting past the cap evicts
// the least recently used bucket, so an attacker cycling through source addresses makes the
// table churn but never grow. Evicting a bucket forgets that key's history (it starts full
// again): the price of the bound; it needs `maxKeys` other keys between two of its events.
// A full bucket carries no information: prune() drops those (the server calls it periodically).
import { parseIPv6 } from "../core/cidr.js";

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
  private readonly buckets = new Map<string, Bucket>();
  /** Refused events per rule since start. */
  readonly hits = new Map<R, number>();
  /** Buckets evicted to stay under maxKeys since start. */
  evictions = 0;

  constructor(settings: RateLimiterSettings<R>, private readonly now: () => number) {
    this.settings = settings;
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

  /**
   * New limits at run time (configuration reload). Buckets keep their state, capped at the
   * new limit; rules switched off lose theirs lazily; a smaller maxKeys evicts at once.
   */
  setSettings(settings: RateLimiterSettings<R>): void {
    this.settings = settings;
    for (const r of Object.keys(settings.rules) as R[]) if (!this.hits.has(r)) this.hits.set(r, 0);
    this.trim(settings.maxKeys);
  }

  /** Take one token from `rule`'s bucket for `key`: may the event happen? */
  take(rule: R, key: string): RateDecision {
    const rate = this.settings.rules[rule];
    if (!rate || rate.limit <= 0) return { ok: true };
    const id = `${rule}\u0000${key}`;
    const now = this.now();
    const b = this.buckets.get(id);
    const tokens = b ? refill(b, rate, now) : rate.limit;
    if (b) this.buckets.delete(id); // re-inserted below: most recently used
    if (tokens < 1) {
      this.buckets.set(id, { tokens, at: now });
      this.hits.set(rule, (this.hits.get(rule) ?? 0) + 1);
      return { ok: false, rule, limit: rate.limit, per: rate.per, retryAfterMs: Math.ceil(((1 - tokens) * rate.per) / rate.limit) };
    }
    this.trim(this.settings.maxKeys - 1);
    this.buckets.set(id, { tokens: tokens - 1, at: now });
    return { ok: true };
  }

  /** Evict least recently used buckets until at most `n` remain. */
  private trim(n: number): void {
    for (const id of this.buckets.keys()) {
      if (this.buckets.size <= Math.max(0, n)) return;
      this.buckets.delete(id);
      this.evictions++;
    }
  }

  /** Drop buckets that have refilled completely (they say nothing a missing bucket would not). */
  prune(): number {
    const now = this.now();
    let n = 0;
    for (const [id, b] of this.buckets) {
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
