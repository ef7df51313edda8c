// "Wait for one event, unless an error, a close or a deadline comes first" — the shape of a
// TCP connect, a TLS handshake and a write that waits for drain. Every listener and the timer
// are removed whichever way it ends, so a long-lived socket collects no stale handlers.
import type { EventEmitter } from "node:events";

export interface WaitEventOptions {
  timeoutMs: number;
  /** The rejection when the deadline passes first. */
  timeout: () => Error;
  /** Events that end the wait with a rejection ("error", "close"), from the event's argument. */
  fail: Readonly<Record<string, (arg: never) => Error>>;
  /** Called before rejecting (destroy the socket, say). */
  onFail?: () => void;
}

/** Resolves when `emitter` emits `event`; rejects on a `fail` event or the deadline. */
export function waitForEvent(emitter: EventEmitter, event: string, opts: WaitEventOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const handlers = new Map<string, (arg?: unknown) => void>();
    const finish = (err?: Error) => {
      clearTimeout(timer);
      for (const [ev, h] of handlers) emitter.off(ev, h);
      if (!err) return resolve();
      opts.onFail?.();
      reject(err);
    };
    const timer = setTimeout(() => finish(opts.timeout()), opts.timeoutMs);
    handlers.set(event, () => finish());
    for (const [ev, f] of Object.entries(opts.fail)) handlers.set(ev, (arg?: unknown) => finish(f(arg as never)));
    for (const [ev, h] of handlers) emitter.on(ev, h);
  });
}
