// Failed-AUTH limits per client IP (credential stuffing, password guessing). Pure: a keyed
// structure with an injected clock; server.ts consults it around every AUTH.
//
// Each IP may fail `max` times within `window`; the failure that reaches the limit blocks the
// IP for `backoff`, and every further failure (after a block ended, before the counts are
// forgotten) doubles the block, up to `maxBackoff`. While blocked, AUTH is refused with
// 454 4.7.0 before any password is checked, so a blocked client learns nothing. A success
// does not erase the failures: an attacker holding one valid account must not be able to
// reset its counter between guesses at others. An entry is forgotten once it has been quiet
// for `window` plus its last block (then the back-off starts again from `backoff`).
// Memory is bounded: at most `maxEntries` IPs are remembered; the least recently failed go first.

export interface AuthLimits {
  max: number;
  window: number;
  backoff: number;
  maxBackoff: number;
  maxEntries?: number;
}

interface Entry {
  /** Failures inside the current window. */
  count: number;
  windowStart: number;
  /** Blocks so far (the next one lasts backoff × 2^strikes). */
  strikes: number;
  blockedUntil: number;
  lastBlock: number;
  lastFailure: number;
}

export type FailureOutcome = { blocked: false; failures: number } | { blocked: true; failures: number; forMs: number };

export class AuthLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;

  constructor(private readonly limits: AuthLimits, private readonly now: () => number) {
    this.maxEntries = limits.maxEntries ?? 100_000;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds this IP stays blocked, or 0. */
  blockedFor(ip: string): number {
    const e = this.live(ip);
    if (!e) return 0;
    return Math.max(0, e.blockedUntil - this.now());
  }

  /** IPs blocked now (for /metrics). Walks the map: scrape-time only. */
  blockedCount(): number {
    const t = this.now();
    let n = 0;
    for (const e of this.entries.values()) if (e.blockedUntil > t) n++;
    return n;
  }

  /** Record a failed AUTH from ip; says whether the IP is now blocked, and for how long. */
  fail(ip: string): FailureOutcome {
    const t = this.now();
    let e = this.live(ip);
    if (!e) e = { count: 0, windowStart: t, strikes: 0, blockedUntil: 0, lastBlock: 0, lastFailure: t };
    if (t - e.windowStart > this.limits.window) {
      e.count = 0;
      e.windowStart = t;
    }
    e.count++;
    e.lastFailure = t;
    let out: FailureOutcome = { blocked: false, failures: e.count };
    // The limit reached, or any failure while a back-off is remembered (strikes > 0 and a
    // block just ended): block again, twice as long.
    if (e.count >= this.limits.max || (e.strikes > 0 && t >= e.blockedUntil)) {
      const forMs = Math.min(this.limits.maxBackoff, this.limits.backoff * 2 ** Math.min(e.strikes, 30));
      e.strikes++;
      e.blockedUntil = t + forMs;
      e.lastBlock = forMs;
      e.count = 0;
      e.windowStart = t;
      out = { blocked: true, failures: this.limits.max, forMs };
    }
    // Re-insert: Map order is then least recently failed first, which is what eviction takes.
    this.entries.delete(ip);
    this.entries.set(ip, e);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return out;
  }

  /** The entry, unless it has been quiet long enough to be forgotten (then it is dropped). */
  private live(ip: string): Entry | undefined {
    const e = this.entries.get(ip);
    if (!e) return undefined;
    const t = this.now();
    if (t >= e.blockedUntil && t - e.lastFailure > this.limits.window + e.lastBlock) {
      this.entries.delete(ip);
      return undefined;
    }
    return e;
  }

  /** Drop forgotten entries (call now and then; lookups drop them too). */
  sweep(): void {
    for (const ip of [...this.entries.keys()]) this.live(ip);
  }
}
