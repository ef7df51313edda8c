// Composition root: builds the real I/O and wires the modules. Signals are cli.ts's (the
// process entry point); nothing else in mxd touches process-wide state.
import { holdYoungGeneration, type YoungGenerationHold } from "./io/young-generation.js";
import { resolve } from "node:path";
import { readFileSync } from "node:fs";
import { ConfigError, type Config } from "./config.js";
import { loadTlsCredentials } from "./io/tls-credentials.js";
import { planReload, type ReloadResult } from "./reload-plan.js";
import { parseHostPort } from "./core/host-port.js";
import { systemClock, type Clock } from "./io/clock.js";
import { createLogOutput, lineWriter, type Logger } from "./io/log.js";
import { openSpool } from "./spool/open-spool.js";
import type { JournalSpool } from "./spool/journal-spool.js";
import { SmtpServer } from "./smtp/server.js";
import { QueueManager } from "./queue/worker.js";
import { RoutingCourier } from "./delivery/routing-courier.js";
import { LocalDropCourier } from "./delivery/local-drop.js";
import { ThreadCourier } from "./delivery/thread-courier.js";
import { dnsCacheSettings } from "./io/dns-cache.js";
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
  /** The configuration in force (the last one a reload applied). */
  readonly config: Config;
  /**
   * Re-read the configuration (SIGHUP, `mxd reload`) and apply it; an invalid or unappliable
   * one is refused and the daemon keeps running on the old one. Never throws; logs one line.
   */
  reload(): Promise<ReloadResult>;
  /** Apply an already validated configuration (what reload() does after reading it). */
  applyConfig(next: Config): Promise<ReloadResult>;
  stop(): Promise<void>;
}

export interface DaemonOptions {
  logger?: Logger;
  clock?: Clock;
  /** Where reload() gets the new configuration (the CLI re-reads the config file); throws ConfigError. Default: the start configuration again (certificates are still re-read). */
  loadConfig?: () => Config;
}

export async function startDaemon(config: Config, opts: DaemonOptions = {}): Promise<Daemon> {
  const output = opts.logger ? { logger: opts.logger, reopen: () => undefined, flush: () => undefined } : createLogOutput(config.log);
  const logger = output.logger;
  const clock = opts.clock ?? systemClock;
  const spool = openSpool(config, { now: () => clock.now() });
  const startedAtMs = Date.now();
  const metrics = new MxdMetrics();
  const admin = new AdminServer({ logger, token: config.admin.token, hostnames: adminHostnames(config) });
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
    // Delivery in a thread of its own unless turned off, or unless the caller drives time (a
    // fake clock cannot reach another thread).
    const threaded = config.delivery.thread && !opts.clock;
    return { ...(await wire(config, { logger, clock, spool, admin, metrics, startedAtMs, lock, flushLog: output.flush, dkim, loadConfig: opts.loadConfig, threaded })), reopenLog: output.reopen };
  } catch (e) {
    await admin.close();
    await lock.release();
    throw e;
  }
}

async function wire(
  config: Config,
  { logger, clock, spool, admin, metrics, startedAtMs, lock, flushLog, dkim, loadConfig, threaded }: { logger: Logger; clock: Clock; spool: JournalSpool; admin: AdminServer; metrics: MxdMetrics; startedAtMs: number; lock: PidLock; flushLog: () => void; dkim: DkimPolicy | undefined; loadConfig: (() => Config) | undefined; threaded: boolean },
): Promise<Omit<Daemon, "reopenLog">> {
  /** The configuration in force; a reload replaces it. */
  let current = config;
  const { cleaned } = await spool.init();
  if (cleaned) logger.info({ cleaned }, "removed leftovers of interrupted spool writes");

  // Unreadable or mismatched certificates stop the start here (exit 1, the message names the file).
  let tls = loadTlsCredentials(config.tls);
  // Remote delivery either in the delivery thread (its resolver and DNS cache live there) or here.
  const thread = threaded ? new ThreadCourier({ config, logger, writeLog: lineWriter(logger), onStarted: () => young?.reassert() }) : undefined;
  // The SMTP courier's modules (DNS, TLS policy, MTA-STS, DANE) are loaded here only when
  // delivery runs on this thread: the delivery thread loads its own, and this one stays smaller.
  const factory = thread ? undefined : await import("./delivery/factory.js");
  const resolver = factory?.createDeliveryResolver(config, () => clock.now());
  const courier = thread ? new RoutingCourier(config.localDomains, new LocalDropCourier({ config }), thread) : factory!.createCourier({ config, logger, clock, resolver });
  let young: YoungGenerationHold | undefined;
  const dnsCacheStats = thread ? (dnsCacheSettings(config.dns.cache) ? () => thread.dnsStats ?? { hits: 0, shared: 0, queries: 0, entries: 0 } : undefined) : resolver?.stats?.bind(resolver);
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
    ...(tls ? { tls } : {}),
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
    ...(dnsCacheStats ? { dnsCache: dnsCacheStats } : {}),
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
      snapshot = { at: now, value: buildSnapshot({ nowMs: now, hostname: current.hostname, startedAtMs, live, counts: q.counts(), dead, oldestId: q.oldestId(), paused: q.pauseState.paused, destinations: q.destinations() }) };
    }
    return snapshot.value;
  };
  // ---------------------------------------------------------------- reload (SIGHUP, mxd reload)
  let stopping: Promise<void> | undefined;
  /**
   * The steps of a reload, in order, after the plan (reload-plan.ts) accepted the new config and
   * its certificates loaded. A subsystem with run-time settings adds its step here (users file,
   * rate limiters…); a step must not fail on a validated config, except the listeners (first,
   * undone when they cannot be bound).
   */
  const applySteps = (next: Config): void => {
    admin.reconfigure({ token: next.admin.token, hostnames: adminHostnames(next) });
    // The level first: the delivery thread takes the logger's level with its new settings.
    if (logger.level !== next.log.level) logger.level = next.log.level;
    courier.reconfigure(next); // routes, fallback relays, localDomains, timeouts, hostname
    q.reconfigure(next); // retry policy, limits, bounces
  };
  let reloading: Promise<unknown> = Promise.resolve();
  const applyConfig = (next: Config): Promise<ReloadResult> => {
    const run = async (): Promise<ReloadResult> => {
      const refuse = (errors: string[]): ReloadResult => {
        logger.error({ errors }, "reload refused; still running on the previous configuration");
        return { applied: false, errors };
      };
      if (stopping) return refuse(["mxd is stopping"]);
      const plan = planReload(current, next);
      if (!plan.ok) return refuse(plan.errors);
      let nextTls: typeof tls;
      try {
        nextTls = loadTlsCredentials(next.tls);
      } catch (e) {
        return refuse([(e as Error).message]);
      }
      const certificates = nextTls?.fingerprint !== tls?.fingerprint;
      const before = { config: current, tls };
      server.reconfigure(next, nextTls); // relay networks, limits, localDomains, certificates: new connections
      try {
        await server.changeListeners(plan.listen.open, plan.listen.close);
      } catch (e) {
        server.reconfigure(before.config, before.tls);
        return refuse([`listener not opened: ${(e as Error).message}`]);
      }
      applySteps(next);
      current = next;
      tls = nextTls;
      // Certificate files replaced under the same names: the config diff cannot see it.
      const changed = certificates && !plan.changed.some((p) => p === "tls" || p.startsWith("tls.")) ? [...plan.changed, "certificates"] : plan.changed;
      logger.info(
        {
          changed,
          ...(plan.listen.open.length ? { listenersOpened: plan.listen.open.map(listenName) } : {}),
          ...(plan.listen.close.length ? { listenersClosed: plan.listen.close.map(listenName) } : {}),
        },
        changed.length ? `config reloaded: ${changed.join(", ")} changed` : "config reloaded: nothing changed",
      );
      return { applied: true, changed };
    };
    // A bug in a step must not become an unhandled rejection (that would end the daemon).
    const guarded = (): Promise<ReloadResult> =>
      run().catch((e: unknown) => {
        logger.error({ err: (e as Error).stack ?? String(e) }, "reload failed");
        return { applied: false, errors: [`reload failed: ${(e as Error).message}`] };
      });
    const counted = (): Promise<ReloadResult> =>
      guarded().then((res) => {
        metrics.reloads.inc({ result: res.applied ? "applied" : "refused" });
        return res;
      });
    // One reload at a time: a second SIGHUP waits for the first.
    const r = reloading.then(counted, counted);
    reloading = r.catch(() => undefined);
    return r;
  };
  const reload = async (): Promise<ReloadResult> => {
    let next: Config;
    try {
      next = loadConfig ? loadConfig() : current;
    } catch (e) {
      // The same words as `mxd check-config` (ConfigError's message).
      const errors = [e instanceof ConfigError ? e.message : `cannot read the configuration: ${(e as Error).message}`];
      logger.error({ errors }, "reload refused; still running on the previous configuration");
      metrics.reloads.inc({ result: "refused" });
      return { applied: false, errors };
    }
    return applyConfig(next);
  };

  admin.attach({
    reload: () => reload(),
    live: currentSnapshot,
    queue: q,
    spool,
    metrics: () => metrics.registry.render(),
    status: async () => ({
      pid: process.pid,
      hostname: current.hostname,
      startedAt: new Date(startedAtMs).toISOString(),
      uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000),
      listen: server.addresses,
      admin: admin.addresses,
      spoolDir: resolve(config.spoolDir),
      delivery: { enabled: current.delivery.enabled, outbound: courier.remoteActive },
      queue: { ...q.counts(), dead: await countDead(spool) },
      paused: q.pauseState.paused,
      pausedDomains: q.pauseState.pausedDomains,
      lastErrors: q.lastErrors,
      rateLimits: server.rateLimitStatus(),
      proxyProtocol: { listeners: current.listen.filter((l) => l.proxyProtocol).length, refused: Object.fromEntries(server.proxyRefused) },
    }),
  });
  await server.listen();
  logger.info({ listen: server.addresses, admin: admin.addresses, hostname: config.hostname, spoolDir: config.spoolDir, paused: q.pauseState }, "ready");
  // The young generation stays small while the journal is replayed (io/young-generation.ts);
  // a thread that starts meanwhile resets V8's flags, so the hold is set again once it runs.
  young = holdYoungGeneration();
  // The delivery thread starts beside the replay, not at the first delivery.
  if (current.delivery.enabled) thread?.start();
  const recovering = q
    .start()
    .catch((e) => logger.fatal({ err: e }, "queue recovery failed"))
    .finally(() => young?.release());

  return {
    get config() {
      return current;
    },
    reload,
    applyConfig,
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
        const deadline = Date.now() + current.shutdownTimeout;
        await server.close(current.shutdownTimeout);
        // The timer is cleared: a pending one would keep an embedding process alive for shutdownTimeout.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([recovering, new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
        clearTimeout(timer);
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

function listenName(l: Config["listen"][number]): string {
  return `${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}${l.tls ? " (tls)" : ""}`;
}

/** Names the admin TCP listener answers to in Host (besides IP literals and localhost): hostname, admin.hosts, admin.listen's own host name. */
function adminHostnames(c: Config): string[] {
  const l = c.admin.listen ? parseHostPort(c.admin.listen, { defaultPort: 8025, minPort: 0 }) : undefined;
  return [c.hostname, ...c.admin.hosts, ...(l?.ok && l.value.kind === "name" ? [l.value.host] : [])];
}
