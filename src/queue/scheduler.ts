// Due-time ordered index of queued message ids. Holds only (id, due) pairs — never message
// bodies — so a large deferred queue costs little memory. One timer, armed for the earliest
// entry, on the injected clock.
import type { Clock, TimerHandle } from "../io/clock.js";

export class Scheduler {
  /**
   * A binary min-heap in two parallel arrays (due times, ids), no object per entry. Due times
   * are kept relative to `base` so that they stay small integers (V8 Smis, no boxed number per
   * entry: a queue of 1,000,000 deferred messages costs two array slots and one map entry each).
   */
  private dues: number[] = [];
  private ids: string[] = [];
  /**
   * The current due time (relative) per id: a heap entry whose time is not the current one of
   * its id (rescheduled or removed) is skipped lazily.
   */
  private current = new Map<string, number>();
  private readonly base: number;
  private timer: TimerHandle | undefined;
  private timerAt = Infinity;
  private stopped = false;
  /** While held, entries are indexed but no timer fires (spool recovery at start). */
  private held = false;

  constructor(private readonly clock: Clock, private readonly onDue: (id: string) => void) {
    this.base = clock.now();
  }

  get size(): number {
    return this.current.size;
  }

  has(id: string): boolean {
    return this.current.has(id);
  }

  dueAt(id: string): number | undefined {
    const d = this.current.get(id);
    return d === undefined ? undefined : d + this.base;
  }

  /** Schedule (or reschedule) id at time `due` (ms). */
  schedule(id: string, due: number): void {
    // An unparseable time (NaN) is due now, as it always was.
    const rel = (Number.isNaN(due) ? this.clock.now() : Math.round(due)) - this.base;
    this.current.set(id, rel);
    this.push(rel, id);
    this.arm();
  }

  remove(id: string): void {
    this.current.delete(id);
  }

  /** Index without firing: used while the spool is being recovered. */
  hold(): void {
    this.held = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /** Resume firing; everything already due runs now. */
  release(): void {
    this.held = false;
    this.runDue();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Is the heap's top entry the current one of its id? */
  private topIsCurrent(): boolean {
    return this.current.get(this.ids[0]!) === this.dues[0];
  }

  /** Fire everything due now (also called by the timer). */
  runDue(): void {
    if (this.stopped || this.held) return;
    const now = this.clock.now() - this.base;
    while (this.ids.length) {
      if (!this.topIsCurrent()) {
        this.pop();
        continue;
      }
      if (this.dues[0]! > now) break;
      const id = this.ids[0]!;
      this.pop();
      this.current.delete(id);
      this.onDue(id);
    }
    this.timerAt = Infinity;
    this.timer?.cancel();
    this.timer = undefined;
    this.arm();
  }

  private arm(): void {
    if (this.stopped || this.held) return;
    while (this.ids.length && !this.topIsCurrent()) this.pop();
    if (!this.ids.length) return;
    const due = this.dues[0]! + this.base;
    if (due >= this.timerAt && this.timer) return;
    this.timer?.cancel();
    this.timerAt = due;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.runDue();
    }, Math.max(0, due - this.clock.now()));
  }

  private swap(a: number, b: number): void {
    const d = this.dues[a]!;
    this.dues[a] = this.dues[b]!;
    this.dues[b] = d;
    const i = this.ids[a]!;
    this.ids[a] = this.ids[b]!;
    this.ids[b] = i;
  }

  private push(due: number, id: string): void {
    const h = this.dues;
    h.push(due);
    this.ids.push(id);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= h[i]!) break;
      this.swap(p, i);
      i = p;
    }
  }

  private pop(): void {
    const h = this.dues;
    const lastDue = h.pop()!;
    const lastId = this.ids.pop()!;
    if (!h.length) return;
    h[0] = lastDue;
    this.ids[0] = lastId;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]! < h[m]!) m = l;
      if (r < h.length && h[r]! < h[m]!) m = r;
      if (m === i) break;
      this.swap(m, i);
      i = m;
    }
  }
}
