// Log lines handed to the file writer (a SonicBoom: pino.destination) in batches, one string
// per turn of the event loop instead of one write() per line. SonicBoom measures the byte
// length of its last pending chunk (up to 16 KB) on every write, so a line cost a few µs of
// main-thread CPU before it reached the disk; a batch costs that once (docs/performance.md,
// session 10). Lines stay in order; what is pending is written by flushSync() and at exit.

/** What a batch is written to: pino.destination()'s SonicBoom, or a test double. */
export interface LineSink {
  write(data: string): unknown;
  flushSync(): void;
}

/** A batch is handed over at once when it reaches this many characters (bounded memory). */
const MAX_PENDING_CHARS = 1024 * 1024;

const live = new Set<WeakRef<BatchedDestination>>();
let exitHooked = false;

export class BatchedDestination {
  private lines: string[] = [];
  private chars = 0;
  private scheduled = false;
  private readonly ref = new WeakRef(this);

  constructor(
    private readonly sink: LineSink,
    /** Runs the hand-over later in the same process (setImmediate; tests step it). */
    private readonly later: (fn: () => void) => void = (fn) => void setImmediate(fn),
  ) {
    live.add(this.ref);
    if (!exitHooked) {
      exitHooked = true;
      // At exit (a fatal error included) what is pending is written synchronously.
      process.on("exit", () => {
        for (const r of live) {
          const d = r.deref();
          if (d) d.flushSync();
          else live.delete(r);
        }
      });
    }
  }

  write(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= MAX_PENDING_CHARS) this.drain();
    else if (!this.scheduled) {
      this.scheduled = true;
      this.later(() => {
        this.scheduled = false;
        this.drain();
      });
    }
  }

  /** Hand what is pending to the sink (asynchronous write). */
  drain(): void {
    if (!this.lines.length) return;
    const batch = this.lines.length === 1 ? this.lines[0]! : this.lines.join("");
    this.lines = [];
    this.chars = 0;
    try {
      this.sink.write(batch);
    } catch {
      // The writer is closed (ended at exit): the lines cannot be written anywhere. Logging
      // must not take the daemon down from a later turn of the event loop, where nobody
      // would catch it.
      this.failed++;
    }
  }

  /** Batches a closed writer refused (dropped). */
  failed = 0;

  /** Write everything pending now (before exit). */
  flushSync(): void {
    this.drain();
    try {
      this.sink.flushSync();
    } catch {
      // Not open yet (the file is still being opened) or already closed: nothing to do here.
    }
  }

  /** Stop flushing this destination at exit (it is no longer used). */
  close(): void {
    live.delete(this.ref);
  }
}
