// Per-message exclusion: every change to one message — a delivery run or an operator action —
// runs alone for that message id, in arrival order, so an operator action never races a
// delivery that would write the old state back.
export class MessageRuns {
  private readonly running = new Map<string, Promise<void>>();
  /** Work waiting for the run in progress on the same message, in order. */
  private readonly queued = new Map<string, (() => void)[]>();

  /** `idle(id)` is called when a run ends and nothing else waits for that message. */
  constructor(private readonly idle: (id: string) => void) {}

  has(id: string): boolean {
    return this.running.has(id);
  }

  /** Messages with a run in progress. */
  get size(): number {
    return this.running.size;
  }

  /** Every run in progress (to wait for them at shutdown). */
  all(): Promise<void>[] {
    return [...this.running.values()];
  }

  /** Mark `id` busy until p settles; then start what waited for it, else call idle(id). */
  track(id: string, p: Promise<void>): void {
    this.running.set(
      id,
      p.finally(() => {
        this.running.delete(id);
        const list = this.queued.get(id);
        const next = list?.shift();
        if (list?.length === 0) this.queued.delete(id);
        if (next) return next();
        this.idle(id);
      }),
    );
  }

  /** Run fn with exclusive access to message `id` (after the run in progress, if any). */
  exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = () => this.track(id, fn().then(resolve, reject));
      if (this.running.has(id)) {
        const list = this.queued.get(id) ?? [];
        list.push(run);
        this.queued.set(id, list);
      } else run();
    });
  }
}

/**
 * Runs `fn` at most once at a time; a call made while it runs is answered by the next run,
 * which starts when the current one ends (and serves every call made meanwhile). Each call's
 * promise settles after a run that started after the call. (One message's state writes: at
 * most one in flight, later domain results go into the next.)
 */
export class Coalesced {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  constructor(private readonly fn: () => Promise<void>) {}

  run(): Promise<void> {
    if (!this.running) {
      this.running = this.fn().finally(() => (this.running = undefined));
      return this.running;
    }
    const again = () => {
      this.next = undefined;
      return this.run();
    };
    this.next ??= this.running.then(again, again);
    return this.next;
  }
}
