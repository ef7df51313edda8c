// The queue manager: recovers the spool at start, schedules every message at its due time,
// delivers each due message's pending recipients grouped by domain (p-queue: a global limit
// and a per-domain limit), persists every outcome, reschedules, bounces and removes.
import PQueue from "p-queue";
import type { Config } from "../config.js";
import { groupByDomain, pendingRecipients, type AttemptRecord, type MessageMeta, type RecipientState } from "../core/envelope.js";
import type { Clock } from "../io/clock.js";
import type { Logger } from "../io/log.js";
import type { Spool } from "../spool/spool.js";
import type { Courier, RecipientResult } from "../delivery/courier.js";
import { Scheduler } from "./scheduler.js";
import { expiresAt, isExpired, nextAttemptAt, shouldWarnDelay } from "./retry-policy.js";
import { buildDsn, dsnRecipientsFor, headerBlockFrom } from "../bounce/dsn.js";

export interface QueueManagerDeps {
  config: Config;
  spool: Spool;
  courier: Courier;
  clock: Clock;
  logger: Logger;
  random?: () => number;
}

/** Largest original message returned whole in a RET=FULL bounce; bigger ones get headers only. */
const RET_FULL_MAX = 1024 * 1024;

export class QueueManager {
  private readonly scheduler: Scheduler;
  private readonly global: PQueue;
  private readonly perDomain = new Map<string, PQueue>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly rerun = new Set<string>();
  private readonly waiting = new Set<string>();
  private readonly maxActive: number;
  private stopped = false;
  private readonly random: () => number;
  readonly stats = { delivered: 0, deferred: 0, bounced: 0, attempts: 0 };

  constructor(private readonly deps: QueueManagerDeps) {
    this.scheduler = new Scheduler(deps.clock, (id) => this.kick(id));
    this.global = new PQueue({ concurrency: deps.config.delivery.concurrency });
    this.random = deps.random ?? Math.random;
    this.maxActive = Math.max(50, deps.config.delivery.concurrency * 2);
  }

  get size(): number {
    return this.scheduler.size + this.running.size + this.waiting.size;
  }

  /** Recover the whole spool: every queued message is scheduled at its saved due time. */
  async start(): Promise<void> {
    const { spool, logger } = this.deps;
    let n = 0;
    for await (const meta of spool.scan((p) => void this.buryBroken(p.id, p.reason))) {
      if (meta.held) continue;
      if (!pendingRecipients(meta).length) {
        // Finished but not yet removed when we stopped.
        await spool.remove(meta.id);
        continue;
      }
      this.scheduler.schedule(meta.id, Date.parse(meta.nextAttemptAt));
      n++;
    }
    logger.info({ recovered: n }, "queue recovered");
    if (this.deps.config.delivery.enabled) this.scheduler.runDue();
  }

  private async buryBroken(id: string, reason: string): Promise<void> {
    this.deps.logger.error({ qid: id, reason }, "unreadable spool entry moved to dead/");
    await this.deps.spool.bury(id, `unreadable spool entry: ${reason}`).catch((e) => this.deps.logger.error({ qid: id, err: (e as Error).message }, "cannot move entry to dead/"));
  }

  /** A newly queued message: attempt at once (no polling delay). */
  enqueue(meta: MessageMeta): void {
    if (this.stopped) return;
    if (!this.deps.config.delivery.enabled) {
      this.scheduler.schedule(meta.id, Date.parse(meta.nextAttemptAt));
      return;
    }
    this.kick(meta.id);
  }

  /** Attempt a message now (flush). */
  flush(id: string): void {
    this.scheduler.remove(id);
    this.kick(id);
  }

  private kick(id: string): void {
    if (this.stopped) return;
    if (this.running.has(id)) {
      this.rerun.add(id);
      return;
    }
    // Bound the messages loaded at once (a recovered queue of 100,000 due messages must not
    // mean 100,000 states in memory): the rest wait as bare ids, in order.
    if (this.running.size >= this.maxActive) {
      this.waiting.add(id);
      return;
    }
    const p = this.attempt(id)
      .catch((e) => this.deps.logger.error({ qid: id, err: (e as Error).stack }, "delivery run failed; retrying later"))
      .finally(() => {
        this.running.delete(id);
        const next = this.waiting.values().next();
        if (!next.done) {
          this.waiting.delete(next.value);
          this.kick(next.value);
        }
        if (this.rerun.delete(id)) this.kick(id);
        else if (!this.scheduler.has(id) && !this.stopped) {
          // A run that failed locally (disk error) must not forget the message.
          void this.deps.spool
            .load(id)
            .then((m) => {
              if (pendingRecipients(m).length && !m.held && !this.scheduler.has(id)) {
                this.scheduler.schedule(id, Math.max(Date.parse(m.nextAttemptAt), this.deps.clock.now() + this.deps.config.delivery.retry.minDelay));
              }
            })
            .catch(() => undefined);
        }
      });
    this.running.set(id, p);
  }

  private domainQueue(domain: string): PQueue {
    let q = this.perDomain.get(domain);
    if (!q) {
      q = new PQueue({ concurrency: this.deps.config.delivery.perDomainConcurrency });
      q.on("idle", () => {
        if (q!.size === 0 && q!.pending === 0) this.perDomain.delete(domain);
      });
      this.perDomain.set(domain, q);
    }
    return q;
  }

  private async attempt(id: string): Promise<void> {
    const { spool, courier, logger, config, clock } = this.deps;
    let meta: MessageMeta;
    try {
      meta = await spool.load(id);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // removed (delivered or deleted)
      await this.buryBroken(id, (e as Error).message);
      return;
    }
    if (meta.held) return;
    const log = logger.child({ qid: id });
    const groups = groupByDomain(pendingRecipients(meta));
    // Outcomes of each domain are persisted as soon as that domain finishes (serialised per
    // message), so a crash never re-sends to recipients that were already delivered.
    let chain = Promise.resolve();
    const failedNow: RecipientState[] = [];
    const jobs = [...groups].map(([domain, rcpts]) =>
      this.domainQueue(domain)
        .add(() =>
          this.global.add(() =>
            courier.deliver({
              id,
              sender: meta.sender,
              domain,
              recipients: rcpts.map((r) => ({ address: r.address, notify: r.notify, orcpt: r.orcpt })),
              openBody: () => spool.openBody(id),
              size: meta.size,
              eightBit: meta.eightBit,
              smtputf8: !!meta.params.smtputf8,
              ret: meta.params.ret,
              envid: meta.params.envid,
            }),
          ),
        )
        .then((results) => {
          chain = chain.then(async () => {
            this.apply(meta, rcpts, results ?? [], failedNow, log);
            if (pendingRecipients(meta).length) await spool.update(meta);
          });
          return chain;
        }),
    );
    await Promise.all(jobs);
    await chain;

    const now = clock.now();
    const pending = pendingRecipients(meta);
    if (pending.length) {
      const receivedAt = Date.parse(meta.receivedAt);
      const attempts = Math.max(...pending.map((r) => r.attempts));
      const next = nextAttemptAt({ attempts, receivedAtMs: receivedAt, nowMs: now, policy: config.delivery.retry, maxQueueTime: config.delivery.maxQueueTime, random: this.random });
      if (next === null || isExpired(receivedAt, now, config.delivery.maxQueueTime)) {
        for (const r of pending) {
          const last = r.history[r.history.length - 1];
          r.status = "failed";
          r.finalAt = new Date(now).toISOString();
          r.history.push({
            at: new Date(now).toISOString(),
            outcome: "permanent",
            status: "4.4.7",
            reply: `delivery time expired after ${Math.round(config.delivery.maxQueueTime / 3_600_000)}h${last ? `; last error: ${last.reply}` : ""}`,
            remote: last?.remote,
            mx: last?.mx,
            ip: last?.ip,
          });
          failedNow.push(r);
        }
        log.info({ rcpts: pending.map((r) => r.address) }, "message expired");
      } else {
        meta.nextAttemptAt = new Date(next).toISOString();
        if (shouldWarnDelay(meta, now, config.delivery.delayWarningAfter)) {
          await this.sendDsn(meta, pending, "delayed", log);
          meta.delayWarned = true;
        }
      }
    }
    if (failedNow.length) await this.sendDsn(meta, failedNow, "failed", log);
    if (pendingRecipients(meta).length) {
      await spool.update(meta);
      this.stats.deferred++;
      this.scheduler.schedule(id, Date.parse(meta.nextAttemptAt));
      log.info({ next: meta.nextAttemptAt, pending: pendingRecipients(meta).length }, "message deferred");
    } else {
      await spool.remove(id);
      log.info({ delivered: meta.recipients.filter((r) => r.status === "delivered").length, failed: meta.recipients.filter((r) => r.status === "failed").length }, "message done, removed from queue");
    }
  }

  private apply(meta: MessageMeta, rcpts: RecipientState[], results: RecipientResult[], failedNow: RecipientState[], log: Logger): void {
    const nowIso = new Date(this.deps.clock.now()).toISOString();
    for (const r of rcpts) {
      const res = results.find((x) => x.recipient === r.address) ?? {
        recipient: r.address,
        outcome: "transient" as const,
        reply: "4.3.0 no result from delivery agent",
        status: "4.3.0",
        remote: false,
      };
      const rec: AttemptRecord = { at: nowIso, outcome: res.outcome, reply: res.reply, status: res.status, remote: res.remote };
      if (res.mx) rec.mx = res.mx;
      if (res.ip) rec.ip = res.ip;
      r.attempts++;
      r.history.push(rec);
      // Bound the history so a long-deferred message's state file stays small.
      if (r.history.length > 50) r.history.splice(0, r.history.length - 50);
      this.stats.attempts++;
      const fields = { rcpt: r.address, mx: res.mx, ip: res.ip, reply: res.reply, status: res.status, tls: res.tls };
      if (res.outcome === "delivered") {
        r.status = "delivered";
        r.finalAt = nowIso;
        this.stats.delivered++;
        log.info(fields, "delivered");
      } else if (res.outcome === "permanent") {
        r.status = "failed";
        r.finalAt = nowIso;
        failedNow.push(r);
        this.stats.bounced++;
        log.info(fields, "bounced");
      } else {
        log.info(fields, "deferred");
      }
    }
    void meta;
  }

  /** Queue an RFC 3464 report to the sender (never for <> or our own bounces). */
  private async sendDsn(meta: MessageMeta, rcpts: RecipientState[], action: "failed" | "delayed", log: Logger): Promise<void> {
    const { spool, config, clock } = this.deps;
    const who = dsnRecipientsFor(meta, rcpts, action);
    if (!who.length) {
      if (meta.sender === "" || meta.kind === "bounce") {
        log.warn({ rcpts: rcpts.map((r) => r.address) }, action === "failed" ? "bounce undeliverable, not bounced again" : "no delay warning for <>");
        if (action === "failed" && meta.kind === "bounce") {
          // Keep a copy for the postmaster instead of dropping it silently.
          await this.copyToDead(meta, "bounce could not be delivered: " + rcpts.map((r) => `${r.address}: ${r.history[r.history.length - 1]?.reply ?? ""}`).join("; "));
        }
      }
      return;
    }
    const head = await spool.readHead(meta.id, 64 * 1024);
    const full = meta.params.ret === "FULL" && meta.size <= RET_FULL_MAX ? await spool.readHead(meta.id, RET_FULL_MAX) : undefined;
    const dsn = buildDsn({
      reportingMta: config.hostname,
      original: meta,
      recipients: who,
      action,
      now: new Date(clock.now()),
      originalHeaders: headerBlockFrom(head),
      originalBody: full,
      messageIdDomain: config.hostname,
      willRetryUntil: action === "delayed" ? new Date(expiresAt(Date.parse(meta.receivedAt), config.delivery.maxQueueTime)) : undefined,
    });
    const nowIso = new Date(clock.now()).toISOString();
    const bounce = await spool.put(
      {
        version: 1,
        sender: "",
        recipients: [{ address: meta.sender, domain: meta.sender.slice(meta.sender.lastIndexOf("@") + 1).toLowerCase(), status: "pending", attempts: 0, history: [] }],
        receivedAt: nowIso,
        client: { ip: "127.0.0.1", helo: "mxd-dsn" },
        params: dsn.smtputf8 ? { smtputf8: true } : {},
        eightBit: dsn.eightBit,
        nextAttemptAt: nowIso,
        kind: "bounce",
      },
      dsn.body,
    );
    log.info({ dsn: bounce.id, action, to: meta.sender, rcpts: who.map((r) => r.address) }, action === "failed" ? "bounce queued" : "delay warning queued");
    this.enqueue(bounce);
  }

  private async copyToDead(meta: MessageMeta, reason: string): Promise<void> {
    try {
      await this.deps.spool.bury(meta.id, reason);
    } catch (e) {
      this.deps.logger.error({ qid: meta.id, err: (e as Error).message }, "cannot move to dead/");
    }
  }

  /** Stop scheduling; wait (bounded) for deliveries in flight, whose state is then saved. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    this.scheduler.stop();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.running.values()]), new Promise((r) => (t = setTimeout(r, timeoutMs)))]);
    clearTimeout(t);
  }
}
