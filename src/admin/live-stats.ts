// What the live status page (GET / on the admin listener) shows, kept in memory: per-second
// counters of accepted, delivered, deferred and bounced for the rates, a one-hour ring of
// samples (every 10 s) for the plots, and per destination the last reply and TLS outcome.
// Pure apart from the time it is given; bounded: fixed-size rings, at most MAX_DOMAINS
// destinations and MAX_RECENT recent events.
import type { DeliveryLogFields } from "../queue/delivery-log.js";

export const SAMPLE_MS = 10_000;
/** One hour of samples. */
export const RING = 360;
const MAX_DOMAINS = 1000;
const MAX_RECENT = 30;
const MAX_REASONS = 200;

export interface Sample {
  t: number;
  queued: number;
  deferred: number;
  held: number;
  /** Per second over the sample's 10 s. */
  accepted: number;
  delivered: number;
}

export interface DomainLive {
  lastReply: string;
  lastStatus: string;
  lastAt: number;
  tls: { version?: string; cipher?: string; verified?: boolean; used: boolean };
}

export interface RecentEvent {
  at: number;
  qid: string;
  to: string;
  status: string;
  relay?: string;
  reply: string;
}

type Kind = "accepted" | "delivered" | "deferred" | "bounced";

export class LiveStats {
  /** Per-second counts for the last 60 s, by kind. */
  private readonly seconds = new Map<number, Record<Kind, number>>();
  readonly totals: Record<Kind, number> = { accepted: 0, delivered: 0, deferred: 0, bounced: 0 };
  private readonly ring: Sample[] = [];
  private readonly domains = new Map<string, DomainLive>();
  private readonly reasons = new Map<string, number>();
  private readonly recent: RecentEvent[] = [];
  private lastSampleAt = 0;

  constructor(private readonly now: () => number) {}

  private bump(kind: Kind, n = 1): void {
    const sec = Math.floor(this.now() / 1000);
    let c = this.seconds.get(sec);
    if (!c) {
      c = { accepted: 0, delivered: 0, deferred: 0, bounced: 0 };
      this.seconds.set(sec, c);
      for (const k of this.seconds.keys()) if (k < sec - 3600) this.seconds.delete(k);
    }
    c[kind] += n;
    this.totals[kind] += n;
  }

  accepted(): void {
    this.bump("accepted");
  }

  delivery(qid: string, f: DeliveryLogFields): void {
    const kind: Kind = f.status === "sent" ? "delivered" : f.status === "deferred" ? "deferred" : "bounced";
    this.bump(kind);
    const domain = f.to.slice(f.to.lastIndexOf("@") + 1).toLowerCase();
    if (this.domains.has(domain) || this.domains.size < MAX_DOMAINS) {
      this.domains.set(domain, { lastReply: f.reply.slice(0, 200), lastStatus: f.status, lastAt: this.now(), tls: f.tls ? { ...f.tls, used: true } : { used: false } });
    }
    if (kind === "deferred") {
      const k = f.reply.replace(/<[^>]*>/g, "<…>").slice(0, 120);
      if (this.reasons.has(k) || this.reasons.size < MAX_REASONS) this.reasons.set(k, (this.reasons.get(k) ?? 0) + 1);
    }
    this.recent.push({ at: this.now(), qid, to: f.to, status: f.status, reply: f.reply.slice(0, 200), ...(f.relay ? { relay: f.relay } : {}) });
    if (this.recent.length > MAX_RECENT) this.recent.shift();
  }

  /** Sum of a kind over the last `windowS` whole seconds (the current one included). */
  private sum(kind: Kind, windowS: number): number {
    const sec = Math.floor(this.now() / 1000);
    let n = 0;
    for (let s = sec - windowS + 1; s <= sec; s++) n += this.seconds.get(s)?.[kind] ?? 0;
    return n;
  }

  /** Is a ring sample due (SAMPLE_MS since the last)? */
  sampleDue(): boolean {
    return this.now() - this.lastSampleAt >= SAMPLE_MS;
  }

  /** Adds a ring sample when one is due (call about once a second). */
  tick(counts: { queued: number; deferred: number; held: number }): void {
    const t = this.now();
    if (!this.sampleDue()) return;
    this.lastSampleAt = t;
    this.ring.push({ t, ...counts, accepted: this.sum("accepted", 10) / 10, delivered: this.sum("delivered", 10) / 10 });
    if (this.ring.length > RING) this.ring.shift();
  }

  rates(): { acceptedPerSec: number; deliveredPerSec: number; deferredPerMin: number; bouncedPerMin: number } {
    return {
      acceptedPerSec: this.sum("accepted", 10) / 10,
      deliveredPerSec: this.sum("delivered", 10) / 10,
      deferredPerMin: this.sum("deferred", 60),
      bouncedPerMin: this.sum("bounced", 60),
    };
  }

  history(): Sample[] {
    return [...this.ring];
  }

  domain(d: string): DomainLive | undefined {
    return this.domains.get(d);
  }

  /** Destinations with a TLS outcome, newest first. */
  tlsOutcomes(limit = 50): ({ domain: string } & DomainLive["tls"])[] {
    return [...this.domains].sort((a, b) => b[1].lastAt - a[1].lastAt).slice(0, limit).map(([domain, d]) => ({ domain, ...d.tls }));
  }

  topReasons(n = 10): { reason: string; count: number }[] {
    return [...this.reasons].sort((a, b) => b[1] - a[1]).slice(0, n).map(([reason, count]) => ({ reason, count }));
  }

  recentEvents(): RecentEvent[] {
    return [...this.recent].reverse();
  }
}
