// Time as an injected dependency: the daemon uses the system clock, tests drive a virtual one.
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Run fn after ms milliseconds (unref'd: a pending retry timer never keeps the process alive). */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    // setTimeout caps at 2^31-1 ms; longer waits re-arm.
    const MAX = 2_147_483_647;
    let t: NodeJS.Timeout;
    let cancelled = false;
    const arm = (left: number) => {
      t = setTimeout(() => {
        if (cancelled) return;
        if (left > MAX) arm(left - MAX);
        else fn();
      }, Math.min(Math.max(0, left), MAX));
      t.unref();
    };
    arm(ms);
    return { cancel: () => { cancelled = true; clearTimeout(t); } };
  },
};

/** A virtual clock for tests: time moves only when advance() is called. */
export class FakeClock implements Clock {
  private timers: { at: number; fn: () => void; seq: number; live: boolean }[] = [];
  private seq = 0;
  constructor(private t = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = { at: this.t + Math.max(0, ms), fn, seq: this.seq++, live: true };
    this.timers.push(timer);
    return { cancel: () => { timer.live = false; } };
  }
  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      due.live = false;
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.timers = this.timers.filter((x) => x.live);
    this.t = target;
  }
  pendingTimers(): number {
    return this.timers.filter((x) => x.live).length;
  }
}
