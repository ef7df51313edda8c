// The courier of remote domains as seen from the main thread when delivery runs in a thread of
// its own (delivery.thread, the default): each delivery is posted to the delivery thread
// (delivery-thread.ts), which owns the SMTP courier — MX resolution and its DNS cache, MTA-STS,
// DANE, host health, the cached connections — and posts the per-recipient results back. The
// main thread keeps the listeners, the spool and the queue, so acceptance and delivery use
// both cores (docs/performance.md).
//
// The thread is started at the first delivery. If it dies (an uncaught exception, out of
// memory), every delivery in flight gets MXD_DELIVERY_THREAD — the queue records a transient
// local error and retries at minDelay (delivery-fault.ts) — and the next delivery starts a new
// one, no sooner than a second after the last start so that a thread that cannot start does
// not spin.
import { Worker } from "node:worker_threads";
import type { Config } from "../config.js";
import type { Logger } from "../io/log.js";
import type { DnsCacheStats } from "../io/dns-cache.js";
import { MxdError } from "../core/errors.js";
import type { BodyBytes, BodyLocation } from "../spool/spool.js";
import type { Courier, DeliveryRequest, RecipientResult } from "./courier.js";
import { STUCK_AFTER_MS, type FromThread, type ThreadStart, type ToThread } from "./thread-protocol.js";

/** The part of a worker_threads Worker used here (tests give a fake). */
export interface ThreadHandle {
  postMessage(message: ToThread, transfer?: ArrayBuffer[]): void;
  on(event: "message", fn: (m: FromThread) => void): unknown;
  on(event: "error", fn: (e: Error) => void): unknown;
  on(event: "exit", fn: (code: number) => void): unknown;
  terminate(): Promise<number>;
  unref(): void;
}

export interface ThreadCourierDeps {
  config: Config;
  logger: Logger;
  /** Writes one log line of the thread's (JSON, newline-terminated) to the daemon's log. */
  writeLog: (line: string) => void;
  /** Starts the thread; default: delivery-thread.js in a worker_threads Worker. */
  spawn?: (start: ThreadStart) => ThreadHandle;
  /** Called when a new thread has started (its first message): main.ts re-sets V8 flags a thread start resets. */
  onStarted?: () => void;
  /** Wall clock (ms), for the restart spacing. */
  now?: () => number;
}

/** A thread is started at most once per this interval (one that dies at once does not spin). */
const RESTART_SPACING_MS = 1_000;
/** How long close() waits for the thread to close its connections before ending it. */
const CLOSE_WAIT_MS = 5_000;
/** The watchdog looks this often. */
const WATCH_EVERY_MS = 5_000;
/**
 * A look later than this after the previous one means this thread did not run meanwhile (the
 * process was stopped — SIGSTOP, a frozen container or VM — or its event loop was blocked): the
 * delivery thread's silence over that gap says nothing about it.
 */
const WATCH_GAP_MS = 3 * WATCH_EVERY_MS;

interface Waiting {
  resolve(results: RecipientResult[]): void;
  reject(e: Error): void;
}

export function spawnDeliveryThread(start: ThreadStart): ThreadHandle {
  return new Worker(new URL("./delivery-thread.js", import.meta.url), { workerData: start });
}

export class ThreadCourier implements Courier {
  private thread: ThreadHandle | undefined;
  private startedAt = -Infinity;
  private seq = 0;
  private readonly waiting = new Map<number, Waiting>();
  private config: Config;
  /** When the thread last showed a sign of life (any message). */
  private lastAlive = 0;
  /** When the watchdog last looked. */
  private lastCheck = 0;
  /** The current thread has sent its first message. */
  private started = false;
  private watchdog: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private onClosed: (() => void) | undefined;
  /** The thread's DNS cache counters, as of its last result (for /metrics). */
  dnsStats: DnsCacheStats | undefined;

  constructor(private readonly deps: ThreadCourierDeps) {
    this.config = deps.config;
  }

  /**
   * Start the thread now rather than at the first delivery (the daemon does, beside the journal
   * replay, so that the first attempt does not wait for the thread's start-up).
   */
  start(): void {
    if (this.closing || this.thread) return;
    try {
      this.running();
    } catch {
      // Started less than a second ago: the next delivery starts it.
    }
  }

  /** New deliveries use this configuration (the thread reconfigures its courier). */
  reconfigure(config: Config): void {
    this.config = config;
    this.thread?.postMessage({ t: "config", config, level: this.deps.logger.level });
  }

  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    if (this.closing) throw new MxdError("MXD_DELIVERY_THREAD", "the delivery thread is closed");
    const located = req.locate ? await req.locate() : await readWhole(req);
    try {
      const thread = this.running();
      const n = ++this.seq;
      const { body, transfer } = transferable(located.body);
      return await new Promise<RecipientResult[]>((resolve, reject) => {
        this.waiting.set(n, { resolve, reject });
        // A request that cannot be cloned (a bug) must not leave its entry waiting forever.
        const post = (m: ToThread, t: ArrayBuffer[]) => {
          try {
            thread.postMessage(m, t);
          } catch (e) {
            this.waiting.delete(n);
            reject(new MxdError("MXD_DELIVERY_THREAD", `the delivery could not be passed to the delivery thread: ${(e as Error).message}`));
          }
        };
        post(
          {
            t: "deliver",
            n,
            req: {
              id: req.id,
              sender: req.sender,
              domain: req.domain,
              recipients: req.recipients,
              size: req.size,
              eightBit: req.eightBit,
              smtputf8: req.smtputf8,
              ...(req.ret !== undefined ? { ret: req.ret } : {}),
              ...(req.envid !== undefined ? { envid: req.envid } : {}),
              ...(req.auth !== undefined ? { auth: req.auth } : {}),
              ...(located.head !== undefined ? { head: located.head } : {}),
              body,
            },
          },
          transfer,
        );
      });
    } finally {
      located.body.release();
    }
  }

  /** Ask the thread to close its cached connections, then end it. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const thread = this.thread;
      if (!thread) return clearInterval(this.watchdog);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onClosed = resolve;
        thread.postMessage({ t: "close" });
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
      });
      clearTimeout(timer);
      clearInterval(this.watchdog);
      this.thread = undefined;
      await thread.terminate();
      this.failAll("the delivery thread was stopped");
    })();
    return this.closing;
  }

  /**
   * The watchdog's check (every few seconds while a thread runs): a thread that has not said it
   * is alive for STUCK_AFTER_MS is stuck — its deliveries would hold their slots forever — so it
   * is ended; its deliveries in flight are retried, the next one starts a new thread.
   */
  checkAlive(): void {
    const thread = this.thread;
    const now = (this.deps.now ?? Date.now)();
    const gap = now - this.lastCheck;
    this.lastCheck = now;
    // Resumed after a pause of the whole process: both threads were stopped, and the clock
    // jumped. The thread gets a full STUCK_AFTER_MS from now (ended then, it would take every
    // delivery in flight with it, some after their final dot: sent twice).
    if (gap > WATCH_GAP_MS) this.lastAlive = Math.max(this.lastAlive, now);
    if (!thread || now - this.lastAlive < STUCK_AFTER_MS) return;
    this.deps.logger.error({ silentMs: now - this.lastAlive }, "delivery thread unresponsive; ended, deliveries in progress are retried");
    this.lost(thread, "the delivery thread stopped responding");
  }

  private running(): ThreadHandle {
    if (this.thread) return this.thread;
    const now = (this.deps.now ?? Date.now)();
    if (now - this.startedAt < RESTART_SPACING_MS) throw new MxdError("MXD_DELIVERY_THREAD", "the delivery thread stopped and is restarted in a moment");
    this.startedAt = now;
    this.lastAlive = now;
    this.lastCheck = now;
    this.started = false;
    if (!this.watchdog) {
      this.watchdog = setInterval(() => this.checkAlive(), WATCH_EVERY_MS);
      this.watchdog.unref();
    }
    const thread = (this.deps.spawn ?? spawnDeliveryThread)({ config: this.config, level: this.deps.logger.level });
    thread.unref();
    thread.on("message", (m) => this.received(m));
    thread.on("error", (e) => {
      this.deps.logger.error({ err: e.stack ?? String(e) }, "delivery thread failed; deliveries in progress are retried");
      this.lost(thread, `the delivery thread failed: ${e.message}`);
    });
    thread.on("exit", (code) => {
      if (this.thread === thread) {
        this.deps.logger.error({ code }, "delivery thread exited; deliveries in progress are retried");
        this.lost(thread, `the delivery thread exited (code ${code})`);
      }
    });
    this.thread = thread;
    return thread;
  }

  private lost(thread: ThreadHandle, why: string): void {
    if (this.thread !== thread) return;
    this.thread = undefined;
    void thread.terminate().catch(() => undefined);
    this.failAll(why);
    // close() waits for the thread's "closed": a dead thread never sends it.
    this.onClosed?.();
  }

  private failAll(why: string): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.reject(new MxdError("MXD_DELIVERY_THREAD", why));
  }

  private received(m: FromThread): void {
    this.lastAlive = (this.deps.now ?? Date.now)();
    if (!this.started) {
      this.started = true;
      this.deps.onStarted?.();
    }
    switch (m.t) {
      case "alive":
        return;
      case "result": {
        if (m.dns) this.dnsStats = m.dns;
        const w = this.waiting.get(m.n);
        this.waiting.delete(m.n);
        w?.resolve(m.results);
        return;
      }
      case "fail": {
        const w = this.waiting.get(m.n);
        this.waiting.delete(m.n);
        w?.reject(new MxdError("MXD_DELIVERY_THREAD", m.code ? `${m.code}: ${m.message}` : m.message));
        return;
      }
      case "log":
        for (const line of m.lines) this.deps.writeLog(line);
        return;
      case "closed":
        this.onClosed?.();
        return;
    }
  }
}

/** The body for postMessage: bytes copied into an ArrayBuffer of their own and transferred (not the pooled slab they may sit in). */
function transferable(b: BodyLocation): { body: BodyBytes; transfer: ArrayBuffer[] } {
  if (b.kind === "file") return { body: { kind: "file", path: b.path, start: b.start, ...(b.end !== undefined ? { end: b.end } : {}) }, transfer: [] };
  const ab = new ArrayBuffer(b.bytes.length);
  const bytes = Buffer.from(ab);
  b.bytes.copy(bytes);
  return { body: { kind: "bytes", bytes }, transfer: [ab] };
}

/** A request without `locate` (a spool that cannot say where its bodies are): its stream, read whole. */
async function readWhole(req: DeliveryRequest): Promise<{ head?: string; body: BodyLocation }> {
  const chunks: Buffer[] = [];
  for await (const c of req.openBody()) chunks.push(c as Buffer);
  return { body: { kind: "bytes", bytes: Buffer.concat(chunks), release: () => undefined } };
}
