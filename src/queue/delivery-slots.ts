// Admission of due messages to delivery: how many messages are loaded at once, globally and
// per destination domain, and the connection slots (p-queue: one global limit, one per domain).
//
// A recovered queue of 100,000 due messages must not mean 100,000 states in memory: at most
// `maxActive` messages are loaded; the rest wait as bare ids, in order. The bound is kept per
// destination too (`perDomainBacklog`), so one dead domain's backlog never fills every slot:
// a message whose every destination is at its bound waits for the first of them.
import PQueue from "p-queue";

export interface SlotLimits {
  /** Messages loaded for delivery at once. */
  maxActive: number;
  /** Messages loaded at once with a pending recipient at one domain. */
  perDomainBacklog: number;
  /** Deliveries (outbound transactions) in progress at once. */
  concurrency: number;
  /** Deliveries to one domain at once. */
  perDomainConcurrency: number;
}

export type Admit = "run" | "wait";

export class DeliverySlots {
  /** Due ids waiting for a free message slot (any destination). */
  private readonly waiting = new Set<string>();
  /** Due ids waiting because every destination they have is at its backlog bound. */
  private readonly waitingByDomain = new Map<string, Set<string>>();
  private readonly loadedPerDomain = new Map<string, number>();
  private readonly global: PQueue;
  private readonly perDomain = new Map<string, PQueue>();

  constructor(private limits: SlotLimits) {
    this.global = new PQueue({ concurrency: limits.concurrency });
  }

  /** New limits (a reload): for what is admitted from now on; deliveries in progress finish. */
  setLimits(limits: SlotLimits): void {
    this.limits = limits;
    this.global.concurrency = limits.concurrency;
    for (const q of this.perDomain.values()) q.concurrency = limits.perDomainConcurrency;
  }

  /**
   * May message `id` (pending at `domains`, paused ones left out) be loaded now, with `active`
   * messages loaded? "run" counts it as loaded until `done(domains)`; "wait" keeps it in line.
   */
  admit(id: string, domains: readonly string[], active: number): Admit {
    this.unwait(id);
    if (domains.length && domains.every((d) => (this.loadedPerDomain.get(d) ?? 0) >= this.limits.perDomainBacklog)) {
      const d = domains[0]!;
      const set = this.waitingByDomain.get(d) ?? new Set<string>();
      set.add(id);
      this.waitingByDomain.set(d, set);
      return "wait";
    }
    if (active >= this.limits.maxActive) {
      this.waiting.add(id);
      return "wait";
    }
    for (const d of domains) this.loadedPerDomain.set(d, (this.loadedPerDomain.get(d) ?? 0) + 1);
    return "run";
  }

  /** A message admitted with `domains` is no longer loaded: the ids now admissible, in order. */
  done(domains: readonly string[]): string[] {
    const next: string[] = [];
    for (const d of domains) {
      const n = (this.loadedPerDomain.get(d) ?? 1) - 1;
      if (n > 0) this.loadedPerDomain.set(d, n);
      else this.loadedPerDomain.delete(d);
      const set = this.waitingByDomain.get(d);
      if (!set || (this.loadedPerDomain.get(d) ?? 0) >= this.limits.perDomainBacklog) continue;
      const first = set.values().next();
      if (first.done) continue;
      set.delete(first.value);
      if (!set.size) this.waitingByDomain.delete(d);
      next.push(first.value);
    }
    return next;
  }

  /** The first id waiting for a message slot, if any (it stays in line until admitted). */
  nextWaiting(): string | undefined {
    const w = this.waiting.values().next();
    return w.done ? undefined : w.value;
  }

  isWaiting(id: string): boolean {
    if (this.waiting.has(id)) return true;
    for (const set of this.waitingByDomain.values()) if (set.has(id)) return true;
    return false;
  }

  unwait(id: string): void {
    this.waiting.delete(id);
    for (const [d, set] of this.waitingByDomain) {
      if (set.delete(id) && !set.size) this.waitingByDomain.delete(d);
    }
  }

  /** Run one delivery to `domain` when both a domain slot and a global slot are free. */
  deliver<T>(domain: string, fn: () => Promise<T>): Promise<T> {
    return this.domainQueue(domain).add(() => this.global.add(fn) as Promise<T>) as Promise<T>;
  }

  /** Deliveries in progress. */
  get inFlight(): number {
    return this.global.pending;
  }

  /** Deliveries in progress or waiting for a slot, per domain (the live status page). */
  domainLoad(): Map<string, number> {
    const m = new Map<string, number>();
    for (const [d, q] of this.perDomain) m.set(d, q.pending + q.size);
    return m;
  }

  private domainQueue(domain: string): PQueue {
    let q = this.perDomain.get(domain);
    if (!q) {
      const created = new PQueue({ concurrency: this.limits.perDomainConcurrency });
      created.on("idle", () => {
        if (created.size === 0 && created.pending === 0) this.perDomain.delete(domain);
      });
      this.perDomain.set(domain, created);
      q = created;
    }
    return q;
  }
}
