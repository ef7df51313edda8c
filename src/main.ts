// Composition root: builds the real I/O and wires the modules. Signals are cli.ts's (the
// process entry point); nothing else in mxd touches process-wide state.
import { holdYoungGeneration } from "./io/young-generation.js";
import { resolve } from "node:path";
import { readFileSync } from "node:fs";
import type { Config } from "./config.js";
import { systemClock, type Clock } from "./io/clock.js";
import { createLogOutput, type Logger } from "./io/log.js";
import { createNodeResolver } from "./io/resolver.js";
import { openSpool } from "./spool/open-spool.js";
import type { JournalSpool } from "./spool/journal-spool.js";
import { SmtpServer } from "./smtp/server.js";
import { QueueManager } from "./queue/worker.js";
import { createCourier } from "./delivery/factory.js";
import { AdminServer } from "./admin/server.js";
import { ControlFile } from "./queue/control-file.js";
import { acquirePidLock, type PidLock } from "./io/pid-lock.js";
import { MxdMetrics } from "./admin/mxd-metrics.js";
import { countDead } from "./spool/dead-letters.js";
import { LiveStats } from "./admin/live-stats.js";
import { buildSnapshot, type LiveSnapshot } from "./admin/status-page.js";
import type { QueueEvents } from "./queue/worker.js";
import { loadDkimPolicy } from "./dkim/policy.js";
import type { DkimPolicy } from "./dkim/message-signer.js";

export interface Daemon {
  smtp: SmtpServer;
  queue: QueueManager;
  spool: JournalSpool;
  admin: AdminServer;
  metrics: MxdMetrics;
  logger: Logger;
  /** Reopen log.file (SIGUSR1, after logrotate). */
  reopenLog(): void;
  stop(): Promise<void>;
}

export async function startDaemon(config: Config, opts: { logger?: Logger; clock?: Clock } = {}): Promise<Daemon> {
  const output = opts.logger ? { logger: opts.logger, reopen: () => undefined, flush: () => undefined } : createLogOutput(config.log);
  const logger = output.logger;
  const clock = opts.clock ?? systemClock;
  const spool = openSpool(config, { now: () => clock.now() });
  const startedAtMs = Date.now();
  const metrics = new MxdMetrics();
  const admin = new AdminServer({ logger, token: config.admin.token });
  // First, before touching the spool: a second daemon on the same spool would deliver twice.
  // The pid lock answers even when someone deleted the admin socket.
  // A broken DKIM key is a config error (exit 2, naming the file) before anything starts.
  const dkim = loadDkimPolicy(config.dkim, (p) => readFileSync(p));
  if (dkim) logger.info({ domains: Object.entries(config.dkim.domains).map(([d, e]) => `${d}: ${e.keys.map((k) => `${k.selector}/${k.algorithm}`).join(", ")}`) }, "DKIM signing");
  const lock = await acquirePidLock(config.spoolDir);
  try {
    await admin.listen(config.spoolDir, config.admin.listen);
  } catch (e) {
    // The spool socket may already be bound: a failed start must not leave it serving.
    await admin.close();
    await lock.release();
    throw e;
  }
  try {
    return { ...(await wire(config, { logger, clock, spool, admin, metrics, startedAtMs, lock, flushLog: output.flush, dkim })), reopenLog: output.reopen };
  } catch (e) {
    await admin.close();
    await lock.release();
    throw e;
  }
}

async function wire(
  config: Config,
  { logger, clock, spool, admin, metrics, startedAtMs, lock, flushLog, dkim }: { logger: Logger; clock: Clock; spool: JournalSpool; admin: AdminServer; metrics: MxdMetrics; startedAtMs: number; lock: PidLock; flushLog: () => void; dkim: DkimPolicy | undefined },
): Promise<Omit<Daemon, "reopenLog">> {
  const { cleaned } = await spool.init();
  if (cleaned) logger.info({ cleaned }, "removed leftovers of interrupted spool writes");

  let tlsCredentials: { cert: Buffer; key: Buffer } | undefined;
  if (config.tls.cert && config.tls.key) {
    tlsCredentials = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
  }
  const resolver = createNodeResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeout, tries: config.dns.tries });
  const courier = createCourier({ config, resolver, logger, clock });
  const live = new LiveStats(() => clock.now());
  const events: QueueEvents = { ...metrics.queueEvents, delivery: (qid, f) => live.delivery(qid, f) };
  const q = new QueueManager({ config, spool, courier, clock, logger, control: new ControlFile(config.spoolDir), events, dkim });
  // The control state (pause) is loaded before the first message can be accepted; the journal
  // is replayed after the listeners are open (below), so a large queue never delays them.
  await q.loadControl();
  const server = new SmtpServer({
    config,
    spool,
    logger,
    clock,
    tlsCredentials,
    dkim,
    onQueued: (m) => {
      metrics.accepted.inc();
      live.accepted();
      q.enqueue(m);
    },
    onAuth: (result) => metrics.auth.inc({ result }),
  });
  const limiter = server.auth?.limiter;
  metrics.bind({
    queue: q,
    inbound: () => server.connectionCount,
    outbound: () => courier.remoteActive,
    startedAtMs,
    rateLimits: () => server.rateLimitStatus(),
    proxyRefused: () => server.proxyRefused,
    ...(limiter ? { authBlocked: () => limiter.blockedCount() } : {}),
  });
  // The status page: a ring sample every 10 s (queue counts walk the index, so not more often),
  // and a snapshot built on demand — at most once a second, only while someone looks.
  let dead = await countDead(spool);
  let snapshot: { at: number; value: LiveSnapshot } | undefined;
  const ticker = setInterval(() => {
    if (!live.sampleDue()) return;
    live.tick(q.counts());
    void countDead(spool).then((n) => (dead = n), () => undefined);
  }, 1000);
  ticker.unref();
  live.tick(q.counts());
  const currentSnapshot = (): LiveSnapshot => {
    const now = clock.now();
    if (!snapshot || now - snapshot.at >= 1000) {
      snapshot = { at: now, value: buildSnapshot({ nowMs: now, hostname: config.hostname, startedAtMs, live, counts: q.counts(), dead, oldestId: q.oldestId(), paused: q.pauseState.paused, destinations: q.destinations() }) };
    }
    return snapshot.value;
  };
  admin.attach({
    live: currentSnapshot,
    queue: q,
    spool,
    metrics: () => metrics.registry.render(),
    status: async () => ({
      pid: process.pid,
      hostname: config.hostname,
      startedAt: new Date(startedAtMs).toISOString(),
      uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000),
      listen: server.addresses,
      admin: admin.addresses,
      spoolDir: resolve(config.spoolDir),
      delivery: { enabled: config.delivery.enabled, outbound: courier.remoteActive },
      queue: { ...q.counts(), dead: await countDead(spool) },
      paused: q.pauseState.paused,
      pausedDomains: q.pauseState.pausedDomains,
      lastErrors: q.lastErrors,
      rateLimits: server.rateLimitStatus(),
      proxyProtocol: { listeners: config.listen.filter((l) => l.proxyProtocol).length, refused: Object.fromEntries(server.proxyRefused) },
    }),
  });
  await server.listen();
  logger.info({ listen: server.addresses, admin: admin.addresses, hostname: config.hostname, spoolDir: config.spoolDir, paused: q.pauseState }, "ready");
  // The young generation stays small while the journal is replayed (io/young-generation.ts).
  const releaseYoung = holdYoungGeneration();
  const recovering = q
    .start()
    .catch((e) => logger.fatal({ err: e }, "queue recovery failed"))
    .finally(releaseYoung);

  let stopping: Promise<void> | undefined;
  return {
    smtp: server,
    queue: q,
    spool,
    admin,
    metrics,
    logger,
    stop() {
      stopping ??= (async () => {
        logger.info("shutting down");
        clearInterval(ticker);
        // One deadline for both: inbound transactions and deliveries run meanwhile.
        const deadline = Date.now() + config.shutdownTimeout;
        await server.close(config.shutdownTimeout);
        await Promise.race([recovering, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
        await q.stop(Math.max(0, deadline - Date.now()));
        await courier.close();
        await spool.close();
        await admin.close();
        await lock.release();
        logger.info("stopped");
        flushLog();
      })();
      return stopping;
    },
  };
}
