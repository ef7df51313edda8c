// Which remote hosts we may talk to right now: at most `perHostConcurrency` deliveries in
// progress per destination address, and a host that just failed (connection refused or timed
// out, no greeting) is skipped for `deadHostTime`, for every domain that shares it — as
// Postfix's dead-host handling does. A blackhole MX (accepts TCP, never greets) then costs a
// few slots for one greeting timeout, not every slot for as long as its backlog lasts.
//
// Pure state with the clock injected (`now`); the courier asks before it connects and reports
// what happened. Keys are destination addresses ("ip|port"); memory is bounded by the hosts in
// use plus the dead ones, which expire.

export interface HostHealthOptions {
  /** Deliveries in progress at once per destination address. */
  perHostConcurrency: number;
  /** How long a host that failed is skipped (ms); 0 = never skipped. */
  deadHostTime: number;
  now: () => number;
}

export type Admission =
  | { ok: true }
  /** The host failed recently; skipped until `until` (ms). */
  | { ok: false; why: "dead"; reason: string; until: number }
  /** `inFlight` deliveries to it are in progress already. */
  | { ok: false; why: "busy"; inFlight: number };

/** Dead entries kept at most; the oldest go first (a bound against a flood of distinct hosts). */
const MAX_DEAD = 10_000;

export class HostHealth {
  private readonly inFlight = new Map<string, number>();
  /** Deliveries waiting for a slot of a busy host, in arrival order (at most perHostConcurrency). */
  private readonly waiters = new Map<string, (() => void)[]>();
  private readonly dead = new Map<string, { reason: string; until: number }>();

  constructor(private readonly o: HostHealthOptions) {}

  /** May a delivery to `key` start now? */
  admit(key: string): Admission {
    const d = this.dead.get(key);
    if (d) {
      if (d.until > this.o.now()) return { ok: false, why: "dead", reason: d.reason, until: d.until };
      this.dead.delete(key);
    }
    const n = this.inFlight.get(key) ?? 0;
    if (n >= this.o.perHostConcurrency) return { ok: false, why: "busy", inFlight: n };
    return { ok: true };
  }

  /** A delivery to `key` started (after admit said ok). */
  begin(key: string): void {
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
  }

  /** The delivery to `key` is over, whatever its result; the first waiter may go. */
  end(key: string): void {
    const n = (this.inFlight.get(key) ?? 1) - 1;
    if (n > 0) this.inFlight.set(key, n);
    else this.inFlight.delete(key);
    const w = this.waiters.get(key);
    const next = w?.shift();
    if (w && !w.length) this.waiters.delete(key);
    next?.();
  }

  /**
   * Wait (FIFO) for a slot of the busy host `key`. At most perHostConcurrency deliveries wait
   * per host — a healthy host's slots turn over fast and are refilled at once — so waiters of
   * a host that hangs (a blackhole) hold only a bounded number of delivery slots. Returns
   * undefined when the wait queue is full; else `wait` resolves when a slot frees up and
   * `cancel` gives up the place.
   */
  queueFor(key: string): { wait: Promise<void>; cancel: () => void } | undefined {
    const list = this.waiters.get(key) ?? [];
    if (list.length >= this.o.perHostConcurrency) return undefined;
    let wake!: () => void;
    const wait = new Promise<void>((r) => (wake = r));
    list.push(wake);
    this.waiters.set(key, list);
    const cancel = () => {
      const l = this.waiters.get(key);
      if (!l) return;
      const i = l.indexOf(wake);
      if (i >= 0) l.splice(i, 1);
      if (!l.length) this.waiters.delete(key);
    };
    return { wait, cancel };
  }

  /** The host failed as a host (refused, timed out, no greeting): skip it for deadHostTime. */
  failed(key: string, reason: string): void {
    if (this.o.deadHostTime <= 0) return;
    this.dead.delete(key); // re-insert: Map order is then oldest first
    this.dead.set(key, { reason, until: this.o.now() + this.o.deadHostTime });
    while (this.dead.size > MAX_DEAD) this.dead.delete(this.dead.keys().next().value!);
  }

  /** The host answered (greeting and EHLO): it is alive. */
  succeeded(key: string): void {
    this.dead.delete(key);
  }

  /** Deliveries in progress to `key`. */
  active(key: string): number {
    return this.inFlight.get(key) ?? 0;
  }
}
