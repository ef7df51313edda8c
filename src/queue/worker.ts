// The queue manager: recovers the spool at start, schedules every message at its due time,
// delivers each due message's pending recipients grouped by domain (p-queue: a global limit
// and a per-domain limit), persists every outcome, reschedules, bounces and removes.
//
// Operator controls (docs/operations.md): pause/resume all delivery or one destination domain
// (persisted through a ControlStore), hold/release, flush, delete, bounce now. Every change to
// one message — a delivery run or an operator action — runs exclusively for that message id,
// so an operator action never races a delivery that would write the old state back.
// With `offline: true` (the CLI while the daemon is down) the same operations edit the spool,
// and nothing is ever delivered or scheduled.
import type { Config } from "../config.js";
import { deliverySize, groupByDomain, hasPending, newMessage, newRecipient, pendingRecipients, type MessageMeta, type RecipientState } from "../core/envelope.js";
import type { Clock } from "../io/clock.js";
import type { Logger } from "../io/log.js";
import type { Spool } from "../spool/spool.js";
import type { Courier, RecipientResult } from "../delivery/courier.js";
import { Scheduler } from "./scheduler.js";
import { afterRun, expireRecipient, recordResult } from "./outcome.js";
import { faultResults } from "./delivery-fault.js";
import { orderedHosts } from "../delivery/host-report.js";
import { deliveryLogFields, messageIdOf, type DeliveryLogFields, type LogStatus } from "./delivery-log.js";
import { expiresAt, shouldWarnDelay } from "./retry-policy.js";
import { buildDsn, dsnRecipientsFor, headerBlockFrom, mayReturnBody } from "../bounce/dsn.js";
import { excerpt } from "../core/smtp-reply.js";
import { DeliverySlots, type SlotLimits } from "./delivery-slots.js";
import { Coalesced, MessageRuns } from "./message-runs.js";
import { planAction, type OperatorAction, type OpResult } from "./operator-actions.js";
import { deliveredMessage, locateDelivered } from "./delivered-message.js";
import { signBuffer, type DkimPolicy } from "../dkim/message-signer.js";
import { INITIAL_CONTROL, isPausedFor, messageState, pendingDomains, withPause, withResume, type ControlState, type ControlStore, type MessageState } from "./state.js";

/** What the queue reports as it works (metrics are built from these in main.ts). */
export interface QueueEvents {
  /** One recipient's attempt result; an expiry counts as "bounced". */
  result?(e: { outcome: "delivered" | "deferred" | "bounced"; domain: string; sinceReceivedMs: number }): void;
  /** An entry was moved to dead/. */
  dead?(id: string, reason: string): void;
  /** A spool entry could not be loaded (not JSON, wrong shape, too large); it goes to dead/. */
  badEntry?(id: string, reason: string): void;
  /** The log line of one recipient's attempt (the live status page is fed from it). */
  delivery?(qid: string, f: DeliveryLogFields): void;
}

/** One destination as the live status page shows it. */
export interface DestinationView {
  domain: string;
  /** Queued messages with a pending recipient there (held ones included). */
  messages: number;
  held: number;
  /** Deliveries to it in progress or waiting for a slot. */
  inFlight: number;
  /** The earliest scheduled attempt (ms), if any. */
  nextAttemptMs?: number;
  paused: boolean;
}

export interface LastError {
  at: string;
  qid: string;
  rcpt: string;
  reply: string;
}

export type { OpResult } from "./operator-actions.js";

interface IndexEntry {
  readonly domains: string[];
  readonly state: MessageState;
}

export interface QueueManagerDeps {
  config: Config;
  spool: Spool;
  courier: Courier;
  clock: Clock;
  logger: Logger;
  random?: () => number;
  /** Where pause state is kept; without one it lives in memory only. */
  control?: ControlStore;
  events?: QueueEvents;
  /** Operate on the spool without delivering (the CLI while the daemon is down). */
  offline?: boolean;
  /** Most messages loaded for delivery at once (default max(1000, 10 × delivery.concurrency)). */
  maxActive?: number;
  /** Signs bounces (From: MAILER-DAEMON@hostname) when a key for that domain is configured. */
  dkim?: DkimPolicy;
}

function isNotFound(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code;
  return code === "ENOENT" || code === "MXD_SPOOL_NOT_FOUND";
}

export { HISTORY_MAX } from "./outcome.js";

/** Largest original message returned whole in a RET=FULL bounce; bigger ones get headers only. */
const RET_FULL_MAX = 1024 * 1024;

export class QueueManager {
  private readonly scheduler: Scheduler;
  /** Admission (messages loaded at once, globally and per domain) and delivery slots. */
  private readonly slots: DeliverySlots;
  /** One change at a time per message: delivery runs and operator actions. */
  private readonly runs: MessageRuns;
  /** Messages to run again when their current run ends (flushed, released, new results). */
  private readonly rerun = new Set<string>();
  private stopped = false;
  private readonly random: () => number;
  readonly stats = { delivered: 0, deferred: 0, bounced: 0, attempts: 0 };
  /** Every queued message (held ones included): pending domains and state. Ids only, no bodies. */
  private readonly index = new Map<string, IndexEntry>();
  /** Due messages whose every pending recipient waits for a paused destination. */
  private readonly parked = new Set<string>();
  private control: ControlState = { ...INITIAL_CONTROL, pausedDomains: [] };
  private readonly errors: LastError[] = [];
  /** States that could not be recorded (full disk): the truth for these messages until they are. */
  private readonly unsaved = new Map<string, MessageMeta>();

  constructor(private deps: QueueManagerDeps) {
    this.scheduler = new Scheduler(deps.clock, (id) => this.kick(id));
    this.explicitMaxActive = deps.maxActive;
    this.slots = new DeliverySlots(slotLimits(deps.config, deps.maxActive));
    this.runs = new MessageRuns((id) => this.idle(id));
    this.random = deps.random ?? Math.random;
  }

  /**
   * A reload: retry policy, queue lifetime, bounce settings, hostname and concurrency limits for
   * what happens from now on. Deliveries in progress finish; the courier is reconfigured by its
   * owner (main.ts).
   */
  reconfigure(config: Config): void {
    this.deps = { ...this.deps, config };
    this.slots.setLimits(slotLimits(config, this.explicitMaxActive));
  }
  private readonly explicitMaxActive: number | undefined;

  /** Working on the spool for the CLI while the daemon is down (never delivering). */
  get isOffline(): boolean {
    return !!this.deps.offline;
  }

  /** Messages in the queue (held ones included). */
  get size(): number {
    return this.index.size;
  }

  /** Outbound deliveries in progress (each holds one outbound connection). */
  get deliveriesInFlight(): number {
    return this.slots.inFlight;
  }

  get pauseState(): ControlState {
    return { ...this.control, pausedDomains: [...this.control.pausedDomains] };
  }

  /** The most recent delivery errors, newest first. */
  get lastErrors(): LastError[] {
    return [...this.errors].reverse();
  }

  /** Messages by state; parked (waiting for a paused destination) ones also count in their state. */
  counts(): Record<MessageState | "total" | "active" | "parked", number> {
    const c = { queued: 0, deferred: 0, held: 0, total: this.index.size, active: this.runs.size, parked: this.parked.size };
    for (const e of this.index.values()) c[e.state]++;
    return c;
  }

  private controlLoaded = false;

  /** Load the persisted pause state (before any message is accepted). */
  async loadControl(): Promise<void> {
    if (this.deps.control) this.control = await this.deps.control.load();
    this.controlLoaded = true;
  }

  /** Recover the whole spool: every queued message is scheduled at its saved due time. */
  async start(): Promise<void> {
    const { spool, logger } = this.deps;
    if (!this.controlLoaded) await this.loadControl();
    if (this.deps.offline) return;
    let n = 0;
    // Deliveries start once the first part of the queue is indexed (first attempt within a
    // second or two whatever the queue size); the rest is scheduled as the scan goes on.
    // Held that long so that the first due messages are attempted in arrival order.
    this.scheduler.hold();
    const t0 = this.deps.clock.now();
    let released = false;
    const release = () => {
      if (released || !this.deps.config.delivery.enabled) return;
      released = true;
      this.scheduler.release();
    };
    for await (const meta of spool.scan((p) => void this.buryBroken(p.id, p.reason))) {
      if (this.stopped) return;
      if (!released && (n >= 1000 || this.deps.clock.now() - t0 > 300)) release();
      if (!hasPending(meta) && !meta.recipients.some((r) => r.dsnOwed)) {
        // Finished but not yet removed when we stopped.
        await spool.remove(meta.id);
        continue;
      }
      this.indexSet(meta);
      if (meta.held) continue;
      this.scheduler.schedule(meta.id, Date.parse(meta.nextAttemptAt));
      n++;
    }
    const { paused, pausedDomains } = this.control;
    logger.info({ recovered: n, held: this.counts().held, paused, pausedDomains, ms: this.deps.clock.now() - t0, ...memoryMB() }, "queue recovered");
    release();
  }

  /**
   * A spool entry that cannot be loaded is never buried silently: the sender gets a bounce when
   * its envelope can still be read, the entry goes to dead/ with the reason, it is logged at
   * error level and counted (QueueEvents.badEntry, .dead).
   */
  private async buryBroken(id: string, reason: string): Promise<void> {
    const log = this.deps.logger.child({ qid: id });
    const why = excerpt(reason, 300);
    log.error({ reason: why }, "unreadable spool entry moved to dead/");
    this.forget(id);
    this.deps.events?.badEntry?.(id, why);
    try {
      await this.bounceUnreadable(id, log);
    } catch (e) {
      log.error({ err: excerpt((e as Error).message, 300) }, "cannot bounce the unreadable spool entry");
    }
    try {
      await this.deps.spool.bury(id, `unreadable spool entry: ${why}`);
      this.deps.events?.dead?.(id, why);
    } catch (e) {
      log.error({ err: (e as Error).message }, "cannot move entry to dead/");
    }
  }

  /** Bounce the recipients of an unloadable entry that were not final yet (before it is buried: the DSN quotes its headers). */
  private async bounceUnreadable(id: string, log: Logger): Promise<void> {
    const env = await this.deps.spool.salvage(id);
    if (!env) {
      log.error("envelope of the unreadable spool entry is unreadable too: nobody can be told");
      return;
    }
    if (env.kind === "bounce") return; // one of our own bounces: never bounced again
    const nowIso = new Date(this.deps.clock.now()).toISOString();
    const rcpts: RecipientState[] = env.recipients
      .filter((r) => r.status !== "delivered" && r.status !== "failed")
      .map((r) => ({
        ...newRecipient(r.address),
        status: "failed",
        finalAt: nowIso,
        history: [{ at: nowIso, outcome: "permanent", status: "5.3.0", reply: `the queue state of message ${id} could not be read; delivery abandoned (details for the postmaster in spoolDir/dead/${id}.reason)` }],
      }));
    if (!rcpts.length) return;
    const receivedAt = env.receivedAt && !Number.isNaN(Date.parse(env.receivedAt)) ? env.receivedAt : nowIso;
    const meta: MessageMeta = { version: 1, id, sender: env.sender, recipients: rcpts, receivedAt, client: { ip: "unknown" }, params: {}, size: 0, eightBit: false, nextAttemptAt: nowIso, kind: "message" };
    log.warn({ sender: env.sender, rcpts: rcpts.map((r) => r.address) }, "bouncing the recipients of an unreadable spool entry");
    await this.sendDsn(meta, rcpts, "failed", log);
  }

  private indexSet(meta: MessageMeta): void {
    if (this.deps.offline) return;
    this.index.set(meta.id, this.indexEntry(pendingDomains(meta), messageState(meta)));
  }

  /**
   * One index entry per queued message, so it is kept small: entries are shared by every
   * message with the same pending domains and state (most messages have one destination, and
   * a queue has far fewer destinations than messages), frozen, and bounded in number.
   */
  private indexEntry(domains: string[], state: MessageState): IndexEntry {
    const key = `${state} ${domains.join(" ")}`;
    let e = this.entries.get(key);
    if (!e) {
      e = Object.freeze({ domains: Object.freeze(domains) as string[], state });
      if (this.entries.size < 100_000) this.entries.set(key, e);
    }
    return e;
  }

  /** Interned index entries (see indexEntry), bounded. */
  private readonly entries = new Map<string, IndexEntry>();

  private forget(id: string): void {
    this.unsaved.delete(id);
    this.index.delete(id);
    this.parked.delete(id);
    this.slots.unwait(id);
    this.scheduler.remove(id);
  }

  /** A newly queued message: attempt at once (no polling delay). */
  enqueue(meta: MessageMeta): void {
    if (this.stopped || this.deps.offline) return;
    this.indexSet(meta);
    if (!this.deps.config.delivery.enabled) {
      this.scheduler.schedule(meta.id, Date.parse(meta.nextAttemptAt));
      return;
    }
    // The state just accepted is the one on disk: the first attempt, when it starts now (in
    // this call, before anything else can change the message), takes it instead of reading
    // and validating it again.
    this.fresh = meta;
    try {
      this.kick(meta.id);
    } finally {
      this.fresh = undefined;
    }
  }

  /** The message enqueue() is handing to its first attempt (only during that call). */
  private fresh: MessageMeta | undefined;

  private kick(id: string): void {
    // delivery.enabled=false: mail is accepted and kept, and attempted after a restart with delivery on.
    if (this.stopped || this.deps.offline || !this.deps.config.delivery.enabled) return;
    if (this.runs.has(id)) {
      this.rerun.add(id);
      return;
    }
    const domains = (this.index.get(id)?.domains ?? []).filter((d) => !this.isPaused(d));
    if (this.slots.admit(id, domains, this.runs.size) === "wait") return;
    this.parked.delete(id);
    this.runs.track(
      id,
      this.attempt(id)
        .catch((e) => this.deps.logger.error({ qid: id, err: (e as Error).stack }, "delivery run failed; retrying later"))
        .finally(() => {
          for (const next of this.slots.done(domains)) this.kick(next);
        }),
    );
  }

  /** A message's run ended and nothing waits for it: admit the next waiting one; run it again if asked. */
  private idle(id: string): void {
    const w = this.slots.nextWaiting();
    if (w !== undefined) this.kick(w);
    if (this.rerun.delete(id)) this.kick(id);
    else this.ensureScheduled(id);
  }

  /** A run that failed locally (disk error) must not forget the message. */
  private ensureScheduled(id: string): void {
    const busy = () => this.stopped || this.scheduler.has(id) || this.parked.has(id) || this.runs.has(id) || this.slots.isWaiting(id);
    // Not indexed: finished (removed) or never loaded; nothing to keep scheduled.
    if (this.deps.offline || busy() || !this.index.has(id)) return;
    void this.deps.spool
      .load(id)
      .then((m) => {
        if (hasPending(m) && !m.held && !busy()) {
          this.scheduler.schedule(id, Math.max(Date.parse(m.nextAttemptAt), this.deps.clock.now() + this.deps.config.delivery.retry.minDelay));
        }
      })
      .catch(() => undefined);
  }

  private isPaused(domain: string): boolean {
    return isPausedFor(this.control, domain);
  }

  // ------------------------------------------------------------------ operator actions

  /** Ids of queued messages with a pending recipient at `domain` (all when undefined). */
  async select(domain?: string, opts: { skipHeld?: boolean } = {}): Promise<string[]> {
    const d = domain?.toLowerCase();
    const want = (domains: string[], held: boolean) => (d === undefined || domains.includes(d)) && !(opts.skipHeld && held);
    if (!this.deps.offline) return [...this.index].filter(([, e]) => want(e.domains, e.state === "held")).map(([id]) => id);
    const ids: string[] = [];
    for await (const m of this.deps.spool.scan()) if (want(pendingDomains(m), !!m.held)) ids.push(m.id);
    return ids;
  }

  private loadForOp(id: string): Promise<MessageMeta | OpResult> {
    // Results not yet recorded (disk full) are the truth: an action must not write older ones back.
    const unsaved = this.unsaved.get(id);
    if (unsaved) return Promise.resolve(unsaved);
    return this.deps.spool.load(id).catch((e: NodeJS.ErrnoException) => ({ id, ok: false, status: isNotFound(e) ? "no such message" : `unreadable: ${e.message}` }));
  }

  /** Attempt now. A held message is not attempted; a paused destination stays paused. */
  flush(id: string): Promise<OpResult> {
    return this.act("flush", id);
  }

  hold(id: string): Promise<OpResult> {
    return this.act("hold", id);
  }

  release(id: string): Promise<OpResult> {
    return this.act("release", id);
  }

  /** Remove without a bounce (postsuper -d). An unreadable entry can be deleted too. */
  delete(id: string): Promise<OpResult> {
    return this.act("delete", id);
  }

  /**
   * Remove the recipients at `domain` from message `id` without a bounce; the message itself
   * goes when nothing else is pending (like removing one destination's queue in Exchange).
   */
  deleteRecipients(id: string, domain: string): Promise<OpResult> {
    return this.act("deleteRecipients", id, domain.toLowerCase());
  }

  /** Fail every pending recipient now, with a DSN to the sender (and bounce.copyTo). */
  bounce(id: string): Promise<OpResult> {
    return this.act("bounce", id);
  }

  /** Carry out an operator action (operator-actions.ts decides) with exclusive access to the message. */
  private act(action: OperatorAction, id: string, domain?: string): Promise<OpResult> {
    return this.runs.exclusive(id, async () => {
      const loaded = await this.loadForOp(id);
      if (!("version" in loaded)) {
        // An unreadable entry can still be deleted.
        if (action !== "delete" || loaded.status === "no such message") return loaded;
      }
      const m = "version" in loaded ? loaded : undefined;
      const now = this.deps.clock.now();
      const plan = m ? planAction(action, m, { nowMs: now, offline: !!this.deps.offline, isPaused: (d) => this.isPaused(d), domain }) : ({ kind: "remove", result: { id, ok: true, status: "deleted" } } as const);
      const log = this.deps.logger.child({ qid: id });
      switch (plan.kind) {
        case "refuse":
          return plan.result;
        case "attempt":
          this.scheduler.remove(id);
          this.parked.delete(id);
          if (this.deps.config.delivery.enabled) this.rerun.add(id);
          log.info("flush requested by the operator");
          return plan.result;
        case "remove":
          await this.deps.spool.remove(id);
          this.forget(id);
          this.rerun.delete(id);
          log.info(domain ? { domain } : {}, "message deleted by the operator");
          log.info({ event: "removed", reason: "deleted by the operator" }, "removed");
          return plan.result;
        case "update":
          await this.deps.spool.update(m!);
          this.indexSet(m!);
          if (plan.then === "hold") {
            this.scheduler.remove(id);
            this.parked.delete(id);
            this.slots.unwait(id);
            this.rerun.delete(id);
            log.info("message held by the operator");
          } else if (plan.then === "release") {
            if (!this.deps.offline) {
              if (this.deps.config.delivery.enabled) this.rerun.add(id);
              else this.scheduler.schedule(id, Date.parse(m!.nextAttemptAt));
            }
            log.info("message released by the operator");
          } else if (plan.changed) {
            log.info({ domain, rcpts: plan.changed.map((r) => r.address) }, "recipients deleted by the operator");
          }
          return plan.result;
        case "bounce":
          for (const r of plan.failed) this.deps.events?.result?.({ outcome: "bounced", domain: r.domain, sinceReceivedMs: now - Date.parse(m!.receivedAt) });
          log.info({ rcpts: plan.failed.map((r) => r.address) }, "message bounced by the operator");
          this.rerun.delete(id);
          await this.sendDsn(m!, plan.failed, "failed", log);
          await this.finish(m!, log);
          return plan.result;
      }
    });
  }

  async pause(domain?: string): Promise<ControlState> {
    // Saved first: a change that cannot be recorded (full disk) does not happen at all.
    const next = withPause(this.control, domain);
    await this.deps.control?.save(next);
    this.control = next;
    this.deps.logger.warn({ domain: domain ?? "*" }, "outbound delivery paused");
    return this.pauseState;
  }

  async resume(domain?: string): Promise<ControlState> {
    const next = withResume(this.control, domain);
    await this.deps.control?.save(next);
    this.control = next;
    this.deps.logger.warn({ domain: domain ?? "*", stillPaused: this.control.pausedDomains }, "outbound delivery resumed");
    for (const id of [...this.parked]) {
      const e = this.index.get(id);
      if (!e || e.domains.some((d) => !this.isPaused(d))) this.kick(id);
    }
    return this.pauseState;
  }

  private async attempt(id: string): Promise<void> {
    const { spool, courier, logger, config, clock } = this.deps;
    let meta: MessageMeta;
    const fresh = this.fresh?.id === id ? this.fresh : undefined;
    this.fresh = undefined;
    const unsaved = this.unsaved.get(id);
    if (unsaved) {
      // The last results of this message could not be recorded (disk full): record them
      // before anything else, and never send again to a recipient they say is done.
      if (!(await this.persist(unsaved, logger.child({ qid: id })))) {
        this.scheduler.schedule(id, clock.now() + config.delivery.retry.minDelay);
        return;
      }
    }
    try {
      meta = unsaved ?? fresh ?? (await spool.load(id));
    } catch (e) {
      if (isNotFound(e)) {
        this.forget(id); // removed (delivered or deleted)
        return;
      }
      await this.buryBroken(id, (e as Error).message);
      return;
    }
    this.indexSet(meta);
    if (meta.held) return;
    const log = logger.child({ qid: id });
    // Failures whose DSN was owed when we stopped (recorded with the failure, in one step).
    const failedNow: RecipientState[] = meta.recipients.filter((r) => r.status === "failed" && r.dsnOwed);
    const groups = new Map([...groupByDomain(pendingRecipients(meta))].filter(([d]) => !this.isPaused(d)));
    if (groups.size === 0 && failedNow.length) {
      await this.sendDsn(meta, failedNow, "failed", log);
      if (hasPending(meta)) {
        if (await this.persist(meta, log)) this.parked.add(id);
      } else await this.finish(meta, log);
      return;
    }
    if (groups.size === 0) {
      // Every pending destination is paused: wait for resume, without spending an attempt.
      this.parked.add(id);
      log.debug({ domains: pendingDomains(meta) }, "delivery paused; message parked");
      return;
    }
    // Outcomes of each domain are persisted as soon as that domain finishes (serialised per
    // message), so a crash never re-sends to recipients that were already delivered.
    // Results of each domain are recorded as soon as it finishes, so a crash never re-sends to
    // recipients already delivered. At most one state write per message is in flight; results
    // that arrive meanwhile go into the next one (a message to 500 domains is not rewritten
    // 500 times).
    // The recipients changed since the last state write: the spool records only those (a
    // recipient delta) instead of the whole state of a message to thousands of recipients.
    const changed = new Set<RecipientState>();
    const record = new Coalesced(() => this.persist(meta, log, changed).then(() => undefined));
    const soon = new Set<RecipientState>();
    const startedAt = new Map<string, number>();
    if (meta.messageId === undefined) meta.messageId = messageIdOf(await spool.readHead(id, 16 * 1024).catch(() => Buffer.alloc(0))) ?? "";
    const jobs = [...groups].map(([domain, rcpts]) =>
      this.slots
        .deliver(domain, () =>
            // Paused while this job waited for a slot: leave its recipients untouched.
            this.isPaused(domain) ? Promise.resolve(undefined) : (startedAt.set(domain, clock.now()), courier).deliver({
              id,
              sender: meta.sender,
              domain,
              recipients: rcpts.map((r) => ({ address: r.address, notify: r.notify, orcpt: r.orcpt })),
              openBody: () => deliveredMessage(meta, () => spool.openBody(id)),
              ...(spool.locateBody ? { locate: () => locateDelivered(meta, () => spool.locateBody!(id)) } : {}),
              size: deliverySize(meta),
              eightBit: meta.eightBit,
              smtputf8: !!meta.params.smtputf8,
              ret: meta.params.ret,
              envid: meta.params.envid,
              ...(meta.params.auth !== undefined ? { auth: meta.params.auth } : {}),
            }).catch((e: unknown) => {
              log.error({ domain, err: (e as Error)?.stack ?? String(e) }, "delivery agent failed; recipients deferred");
              return faultResults(rcpts, e);
            }),
        )
        .then(async (results) => {
          if (!results) return;
          this.apply(meta, rcpts, results, { failedNow, soon, changed }, log, startedAt.get(domain));
          // A failure and the DSN it owes are one record; a message with nothing left to do
          // is recorded by its removal instead.
          if (hasPending(meta) || rcpts.some((r) => r.dsnOwed)) await record.run();
        }),
    );
    await Promise.all(jobs);

    const now = clock.now();
    // Recipients at paused destinations were not attempted: they neither retry nor expire now.
    const pending = pendingRecipients(meta).filter((r) => !this.isPaused(r.domain));
    const plan = afterRun({ pending, busy: soon, receivedAtMs: Date.parse(meta.receivedAt), nowMs: now, policy: config.delivery.retry, maxQueueTime: config.delivery.maxQueueTime, random: this.random });
    if (plan.kind === "soon") meta.nextAttemptAt = new Date(plan.at).toISOString();
    else if (plan.kind === "expire") {
      const receivedAt = Date.parse(meta.receivedAt);
      for (const r of pending) {
        const rec = expireRecipient(r, now, config.delivery.maxQueueTime);
        changed.add(r);
        failedNow.push(r);
        this.stats.bounced++;
        this.deps.events?.result?.({ outcome: "bounced", domain: r.domain, sinceReceivedMs: now - receivedAt });
        log.info(this.logged(id, deliveryLogFields({ config, meta, rcpt: r, result: { reply: rec.reply, status: rec.status, mx: rec.mx, ip: rec.ip }, status: "expired", attemptStartMs: now, nowMs: now })), "bounced");
      }
      log.info({ rcpts: pending.map((r) => r.address) }, "message expired");
    } else if (plan.kind === "retry") {
      meta.nextAttemptAt = new Date(plan.at).toISOString();
      if (shouldWarnDelay(meta, now, config.delivery.delayWarningAfter)) {
        await this.sendDsn(meta, pending, "delayed", log);
        meta.delayWarned = true;
      }
    }
    if (failedNow.length) {
      await this.sendDsn(meta, failedNow, "failed", log);
      for (const r of failedNow) changed.add(r); // their dsnOwed is cleared
    }
    if (hasPending(meta)) {
      if (!(await this.persist(meta, log, changed))) {
        this.scheduler.schedule(id, clock.now() + config.delivery.retry.minDelay);
        return;
      }
      this.indexSet(meta);
      if (pendingRecipients(meta).some((r) => !this.isPaused(r.domain))) {
        this.stats.deferred++;
        this.scheduler.schedule(id, Date.parse(meta.nextAttemptAt));
        log.info({ next: meta.nextAttemptAt, pending: pendingRecipients(meta).length }, "message deferred");
      } else {
        this.parked.add(id);
        log.info({ pending: pendingRecipients(meta).length, domains: pendingDomains(meta) }, "message waits for a paused destination");
      }
    } else {
      await this.finish(meta, log);
    }
  }

  /**
   * No recipient is pending: remove the message. One of our own bounces that could not be
   * delivered goes to dead/ instead, with its final state, for the postmaster to see.
   */
  private async finish(meta: MessageMeta, log: Logger): Promise<void> {
    const failed = meta.recipients.filter((r) => r.status === "failed");
    this.forget(meta.id);
    if (meta.kind === "bounce" && failed.length) {
      const reason = "bounce could not be delivered: " + failed.map((r) => `${r.address}: ${r.history[r.history.length - 1]?.reply ?? ""}`).join("; ");
      try {
        await this.deps.spool.update(meta);
        await this.deps.spool.bury(meta.id, reason);
        this.deps.events?.dead?.(meta.id, reason);
        log.warn({ reason }, "undeliverable bounce moved to dead/");
        log.info({ event: "removed", reason: "moved to dead/" }, "removed");
      } catch (e) {
        log.error({ err: (e as Error).message }, "cannot move to dead/");
      }
      return;
    }
    try {
      await this.deps.spool.remove(meta.id);
    } catch (e) {
      // Not recorded: the message would be attempted again from its last saved state. Keep
      // the final state in memory and retry the removal instead of delivering again.
      this.unsaved.set(meta.id, meta);
      this.index.set(meta.id, this.indexEntry([], messageState(meta)));
      this.scheduler.schedule(meta.id, this.deps.clock.now() + this.deps.config.delivery.retry.minDelay);
      log.error({ err: (e as Error).message }, "cannot remove the finished message from the spool; retrying later");
      return;
    }
    this.unsaved.delete(meta.id);
    log.info({ event: "removed", delivered: meta.recipients.filter((r) => r.status === "delivered").length, failed: failed.length }, "removed");
  }

  /**
   * Record a message's state. On failure (disk full, I/O error) the state stays in memory as
   * the truth for this message until a later attempt records it: its delivered recipients are
   * never sent to again meanwhile.
   */
  private async persist(meta: MessageMeta, log: Logger, changed?: Set<RecipientState>): Promise<boolean> {
    // The recipients changed since the previous write of this message (the spool writes a
    // whole state after a failed one by itself); later changes go into the next write.
    const delta = changed ? [...changed] : undefined;
    changed?.clear();
    try {
      await this.deps.spool.update(meta, delta);
      this.unsaved.delete(meta.id);
      return true;
    } catch (e) {
      if (isNotFound(e)) {
        this.unsaved.delete(meta.id);
        return false;
      }
      this.unsaved.set(meta.id, meta);
      log.error({ err: (e as Error).message }, "cannot record delivery results; kept in memory, retrying later");
      return false;
    }
  }

  /**
   * Record one domain's results on its recipients. Out: failed ones owe a DSN (failedNow), busy
   * ones retry soon (soon), every recipient whose state changed (changed, for the next write).
   */
  private apply(meta: MessageMeta, rcpts: RecipientState[], results: RecipientResult[], out: { failedNow: RecipientState[]; soon: Set<RecipientState>; changed: Set<RecipientState> }, log: Logger, attemptStartMs = this.deps.clock.now()): void {
    const { failedNow, soon, changed } = out;
    const nowIso = new Date(this.deps.clock.now()).toISOString();
    for (const r of rcpts) {
      const res = results.find((x) => x.recipient === r.address) ?? {
        recipient: r.address,
        outcome: "transient" as const,
        reply: "4.3.0 no result from delivery agent",
        status: "4.3.0",
        remote: false,
      };
      // The state change is outcome.ts's; here: logs, metrics, the DSN list.
      const { event } = recordResult(r, res, nowIso, res.hosts ? orderedHosts(res.hosts) : undefined);
      if (event === "busy") {
        // Not an attempt: the host was busy with our own deliveries. Retried within seconds.
        soon.add(r);
        log.debug({ rcpt: r.address, reply: excerpt(res.reply) }, "destination busy; retrying soon");
        continue;
      }
      changed.add(r);
      const reply = r.history[r.history.length - 1]!.reply;
      this.stats.attempts++;
      const fields = (status: LogStatus) => this.logged(meta.id, deliveryLogFields({ config: this.deps.config, meta, rcpt: r, result: res, status, attemptStartMs, nowMs: this.deps.clock.now() }));
      const sinceReceivedMs = this.deps.clock.now() - Date.parse(meta.receivedAt);
      if (event === "delivered") {
        this.stats.delivered++;
        this.deps.events?.result?.({ outcome: "delivered", domain: r.domain, sinceReceivedMs });
        log.info(fields("sent"), "delivered");
        continue;
      }
      this.errors.push({ at: nowIso, qid: meta.id, rcpt: r.address, reply });
      if (this.errors.length > 20) this.errors.shift();
      if (event === "bounced") {
        failedNow.push(r);
        this.stats.bounced++;
        this.deps.events?.result?.({ outcome: "bounced", domain: r.domain, sinceReceivedMs });
        log.info(fields("bounced"), "bounced");
      } else {
        this.deps.events?.result?.({ outcome: "deferred", domain: r.domain, sinceReceivedMs });
        log.info(fields("deferred"), "deferred");
      }
    }
  }

  private logged(qid: string, f: DeliveryLogFields): DeliveryLogFields {
    this.deps.events?.delivery?.(qid, f);
    return f;
  }

  /** Destinations of the queued mail, most messages first (the live status page). */
  destinations(limit = 50): DestinationView[] {
    const by = new Map<string, DestinationView>();
    for (const [id, e] of this.index) {
      const due = this.scheduler.dueAt(id);
      for (const d of e.domains) {
        let v = by.get(d);
        if (!v) by.set(d, (v = { domain: d, messages: 0, held: 0, inFlight: 0, paused: this.isPaused(d) }));
        v.messages++;
        if (e.state === "held") v.held++;
        if (due !== undefined && (v.nextAttemptMs === undefined || due < v.nextAttemptMs)) v.nextAttemptMs = due;
      }
    }
    for (const [d, n] of this.slots.domainLoad()) {
      let v = by.get(d);
      if (!v) by.set(d, (v = { domain: d, messages: 0, held: 0, inFlight: 0, paused: this.isPaused(d) }));
      v.inFlight = n;
    }
    return [...by.values()].sort((a, b) => b.messages - a.messages || b.inFlight - a.inFlight || a.domain.localeCompare(b.domain)).slice(0, limit);
  }

  /** The oldest queued message's id (ids sort by arrival), if any. */
  oldestId(): string | undefined {
    let min: string | undefined;
    for (const id of this.index.keys()) if (min === undefined || id < min) min = id;
    return min;
  }

  /** Queue an RFC 3464 report to the sender (never for <> or our own bounces). */
  private async sendDsn(meta: MessageMeta, rcpts: RecipientState[], action: "failed" | "delayed", log: Logger): Promise<void> {
    const { spool, config, clock } = this.deps;
    const who = dsnRecipientsFor(meta, rcpts, action);
    if (!who.length) {
      if (action === "failed") for (const r of rcpts) delete r.dsnOwed; // nobody to tell (NOTIFY, <>)
      // An undeliverable bounce of ours goes to dead/ when the message is finished (finish()).
      if (meta.sender === "" || meta.kind === "bounce") {
        log.warn({ rcpts: rcpts.map((r) => r.address) }, action === "failed" ? "bounce undeliverable, not bounced again" : "no delay warning for <>");
      }
      return;
    }
    const head = await spool.readHead(meta.id, 64 * 1024);
    const full = mayReturnBody(meta) && meta.size <= RET_FULL_MAX ? await spool.readHead(meta.id, RET_FULL_MAX) : undefined;
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
    const to = [meta.sender];
    // bounce.copyTo: the postmaster gets the same report as another envelope recipient (IIS:
    // "send copy of non-delivery report to"); not for delay warnings, which are not bounces.
    const copyTo = config.bounce.copyTo;
    if (action === "failed" && copyTo && copyTo.toLowerCase() !== meta.sender.toLowerCase()) to.push(copyTo);
    const signed = this.deps.dkim && config.dkim.signBounces ? signBuffer(this.deps.dkim, dsn.body, clock.now()) : undefined;
    const bounce = await spool.put(
      newMessage({
        sender: "",
        recipients: to.map(newRecipient),
        nowMs: clock.now(),
        client: { ip: "127.0.0.1", helo: "mxd-dsn" },
        params: dsn.smtputf8 ? { smtputf8: true } : {},
        eightBit: dsn.eightBit,
        kind: "bounce",
        dkim: signed?.signed ? signed.fields : undefined,
      }),
      dsn.body,
    );
    log.info({ dsn: bounce.id, action, to, rcpts: who.map((r) => r.address) }, action === "failed" ? "bounce queued" : "delay warning queued");
    if (action === "failed") for (const r of rcpts) delete r.dsnOwed;
    this.enqueue(bounce);
  }

  /** Stop scheduling; wait (bounded) for deliveries in flight, whose state is then saved. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    this.scheduler.stop();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(this.runs.all()), new Promise((r) => (t = setTimeout(r, timeoutMs)))]);
    clearTimeout(t);
  }
}

/** The delivery slots a configuration asks for (maxActive: the one given to the manager, if any). */
function slotLimits(config: Config, maxActive: number | undefined): SlotLimits {
  const d = config.delivery;
  return {
    maxActive: maxActive ?? Math.max(1000, d.concurrency * 10),
    perDomainBacklog: d.perDomainConcurrency * 2,
    concurrency: d.concurrency,
    perDomainConcurrency: d.perDomainConcurrency,
  };
}

/** Memory in MB, for the log lines that report on a large queue. */
function memoryMB(): { heapMB: number; rssMB: number; externalMB: number } {
  const m = process.memoryUsage();
  return { heapMB: Math.round(m.heapUsed / 1048576), rssMB: Math.round(m.rss / 1048576), externalMB: Math.round((m.external + m.arrayBuffers) / 1048576) };
}
