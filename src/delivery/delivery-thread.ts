// The delivery thread (worker_threads; started by thread-courier.ts): owns the SMTP courier of
// remote domains — its resolver and DNS cache, MTA-STS, DANE, host health and cached
// connections — and answers each delivery the main thread posts with its per-recipient results.
// Its log lines are passed to the main thread, which writes them (one writer of the log).
import { parentPort, workerData } from "node:worker_threads";
import { createLogger } from "../io/log.js";
import { systemClock } from "../io/clock.js";
import { openBodyBytes } from "../io/body-bytes.js";
import { createDeliveryResolver, createSmtpCourier } from "./factory.js";
import { ALIVE_INTERVAL_MS, type FromThread, type ThreadStart, type ToThread } from "./thread-protocol.js";

const port = parentPort;
if (!port) throw new Error("delivery-thread.js runs only as a worker thread (thread-courier.ts starts it)");
const { config, level } = workerData as ThreadStart;

// Lines are collected and posted once per turn of the event loop (several per message).
let lines: string[] = [];
const flush = (): void => {
  if (!lines.length) return;
  const out: FromThread = { t: "log", lines };
  lines = [];
  port.postMessage(out);
};
const logger = createLogger(level, {
  write(line: string) {
    if (lines.push(line) === 1) setImmediate(flush);
  },
});
const resolver = createDeliveryResolver(config, () => systemClock.now());
const courier = createSmtpCourier({ config, resolver, logger, clock: systemClock });

// The heartbeat: a thread stuck in a loop stops sending it, and is replaced (thread-courier.ts).
// The first one at once: the main thread learns that the thread runs (thread-courier.ts onStarted).
port.postMessage({ t: "alive" } satisfies FromThread);
setInterval(() => port.postMessage({ t: "alive" } satisfies FromThread), ALIVE_INTERVAL_MS).unref();

port.on("message", (m: ToThread) => {
  switch (m.t) {
    case "deliver": {
      const { n, req } = m;
      const { body, head, ...rest } = req;
      courier
        .deliver({ ...rest, openBody: () => openBodyBytes(body, head) })
        .then(
          (results) => {
            // The delivery's own lines first: the daemon logs its verdict ("delivered", "deferred")
            // when the result arrives, after the attempt it is about (as with delivery on one thread).
            flush();
            port.postMessage({ t: "result", n, results, ...(resolver.stats ? { dns: resolver.stats() } : {}) } satisfies FromThread);
          },
          (e: unknown) => {
            const err = e as { code?: unknown; message?: unknown } | null;
            flush();
            port.postMessage({ t: "fail", n, message: typeof err?.message === "string" ? err.message : String(e), ...(typeof err?.code === "string" ? { code: err.code } : {}) } satisfies FromThread);
          },
        );
      return;
    }
    case "config":
      courier.reconfigure?.(m.config);
      logger.level = m.level;
      return;
    case "close":
      void courier
        .close()
        .catch(() => undefined)
        .then(() => {
          flush();
          port.postMessage({ t: "closed" } satisfies FromThread);
        });
      return;
  }
});
