// Composition root: builds the real I/O, wires the modules, owns signals. Nothing else in
// mxd touches process-wide state.
import { readFileSync } from "node:fs";
import type { Config } from "./config.js";
import { systemClock, type Clock } from "./io/clock.js";
import { createLogger, type Logger } from "./io/log.js";
import { createNodeResolver } from "./io/resolver.js";
import { FsSpool } from "./spool/fs-spool.js";
import { SmtpServer } from "./smtp/server.js";
import { QueueManager } from "./queue/worker.js";
import { createCourier } from "./delivery/factory.js";

export interface Daemon {
  smtp: SmtpServer;
  queue: QueueManager;
  spool: FsSpool;
  logger: Logger;
  stop(): Promise<void>;
}

export async function startDaemon(config: Config, opts: { logger?: Logger; clock?: Clock } = {}): Promise<Daemon> {
  const logger = opts.logger ?? createLogger(config.log.level);
  const clock = opts.clock ?? systemClock;
  const spool = new FsSpool({ dir: config.spoolDir, now: () => clock.now() });
  const { cleaned } = await spool.init();
  if (cleaned) logger.info({ cleaned }, "removed leftovers of interrupted spool writes");

  let tlsCredentials: { cert: Buffer; key: Buffer } | undefined;
  if (config.tls.cert && config.tls.key) {
    tlsCredentials = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
  }
  const resolver = createNodeResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeout, tries: config.dns.tries });
  const courier = createCourier({ config, resolver, logger });
  const queue = new QueueManager({ config, spool, courier, clock, logger });
  await queue.start();
  const smtp = new SmtpServer({ config, spool, logger, clock, tlsCredentials, onQueued: (m) => queue.enqueue(m) });
  await smtp.listen();
  logger.info({ listen: smtp.addresses, hostname: config.hostname, spoolDir: config.spoolDir, queued: queue.size }, "ready");

  let stopping: Promise<void> | undefined;
  return {
    smtp,
    queue,
    spool,
    logger,
    stop() {
      stopping ??= (async () => {
        logger.info("shutting down");
        await smtp.close(config.shutdownTimeout);
        await queue.stop(config.shutdownTimeout);
        await courier.close();
        logger.info("stopped");
      })();
      return stopping;
    },
  };
}
