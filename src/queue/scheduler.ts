// Due-time ordered index of queued message ids. Holds only (id, due) pairs — never message
// bodies — so a large deferred queue costs little memory. One timer, armed for the earliest
// entry, on the injected clock.
import type { Clock, TimerHandle } from "../io/clock.js";

interface Entry {
  due: number;
  id: string;
}

export class Scheduler {
  private heap: Entry[] = [];
  /**
   * The current heap entry per id: a heap entry that is not the current one of its id
   * (rescheduled or removed) is skipped lazily. One map, one object per queued message.
   */
  private current = new Map<string, Entry>();
  private timer: TimerHandle | undefined;
  private timerAt = Infinity;
  private stopped = false;
  /** While held, entries are indexed but no timer fires (spool recovery at start). */
  private held = false;

  constructor(private readonly clock: Clock, private readonly onDue: (id: string) => void) {}

  get size(): number {
    return this.current.size;
  }

  has(id: string): boolean {
    return this.current.has(id);
  }

  dueAt(id: string): number | undefined {
    return this.current.get(id)?.due;
  }

  /** Schedule (or reschedule) id at time `due` (ms). */
  schedule(id: string, due: number): void {
    const e = { due, id };
    this.current.set(id, e);
    this.push(e);
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

  /** Fire everything due now (also called by the timer). */
  runDue(): void {
    if (this.stopped || this.held) return;
    const now = this.clock.now();
    while (this.heap.length) {
      const top = this.heap[0]!;
      if (this.current.get(top.id) !== top) {
        this.pop();
        continue;
      }
      if (top.due > now) break;
      this.pop();
      this.current.delete(top.id);
      this.onDue(top.id);
    }
    this.timerAt = Infinity;
    this.timer?.cancel();
    this.timer = undefined;
    this.arm();
  }

  private arm(): void {
    if (this.stopped || this.held) return;
    while (this.heap.length && this.current.get(this.heap[0]!.id) !== this.heap[0]!) this.pop();
    const top = this.heap[0];
    if (!top) return;
    if (top.due >= this.timerAt && this.timer) return;
    this.timer?.cancel();
    this.timerAt = top.due;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.runDue();
    }, Math.max(0, top.due - this.clock.now()));
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.due <= h[i]!.due) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.due < h[m]!.due) m = l;
        if (r < h.length && h[r]!.due < h[m]!.due) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
