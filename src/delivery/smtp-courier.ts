// The SMTP Courier: delivers one domain's recipients of one message by trying the destinations
// from the Router in order over our SMTP client, and reports per recipient what happened.
// Remote failures are data, never exceptions (design.md).
//
// Per destination (one address):
//  - connect refused/timeout/reset, non-220 greeting, EHLO/HELO refused, connection lost before
//    the end of data → next address (RFC 5321 §5.1 "try the next", notes: Postfix does too);
//  - TLS handshake failure → the same address once more without STARTTLS (Postfix level "may");
//  - MAIL refused with 4xx, or no RCPT accepted and some refused with 4xx → those recipients move
//    to the next address (a 4xx there is about this host, not the recipient); 5xx are final;
//  - once a RCPT is accepted the transaction's replies are final for this attempt: RCPT 4xx/5xx
//    per recipient, the DATA / end-of-data reply for every accepted recipient;
//  - a 421 (the server is closing) before the end of data → next address, its reply kept as the
//    last error; on a reused connection, first one fresh connection to the same address;
//  - the connection lost after the final "." was handed to the socket → transient, and no other
//    host is tried in this attempt: the message may have been delivered (avoid duplicates,
//    RFC 5321 §6.1 / Haraka #2325); recipients refused at RCPT keep their own answer.
// When every MX failed temporarily, delivery.fallbackRelays are tried the same way.
// TLS (delivery/tls-policy.ts): each host gets a requirement from the domain's level
// (delivery.tls.policy), its MTA-STS policy and DANE. A host the policy rules out (MTA-STS
// enforce and not in its mx list, DANE lookup failed) is skipped like a failed host; where TLS
// is required, no STARTTLS, a refused STARTTLS, a failed handshake or a certificate the policy
// does not accept gives the host up (4.7.4 / 4.7.5) — never a plain-text retry, which is only
// for level "may".
// Before any connection the host must be admitted (delivery/host-health.ts): a host with
// delivery.perHostConcurrency deliveries in progress, or one that was refused, timed out or did
// not greet within delivery.deadHostTime, is skipped like a host that failed (next address;
// transient when none is left), so one dead MX shared by many domains cannot take every slot.
import type { Config } from "../config.js";
import type { Resolver } from "../io/resolver.js";
import { ConnectError, TlsHandshakeError, tlsPeer, type Connector } from "../io/connector.js";
import type { Logger } from "../io/log.js";
import { classifyReply, formatReply, statusOf, type SmtpReply } from "../core/smtp-reply.js";
import { SessionError, SmtpClientSession, type ClientTimeouts, type TlsInfo } from "../smtp/client.js";
import type { Courier, DeliveryRequest, RecipientResult } from "./courier.js";
import { Router, type Destination } from "./router.js";
import { mostInformative, type HostReply } from "./host-report.js";
import { HostHealth } from "./host-health.js";
import { LOCAL_STATUS, localReply, localStatusOf } from "../core/errors.js";
import type { Dane } from "./dane-types.js";
import type { MtaStsPolicies, StsLookup } from "./mta-sts-policies.js";
import { findRoute } from "../core/routes.js";
import { hostTls, isSkip, levelFor, policyLabel, verifyPeer, type AppliedSts, type DomainLevel, type HostTls } from "./tls-policy.js";

export interface SmtpCourierDeps {
  config: Config;
  resolver: Resolver;
  connector: Connector;
  logger: Logger;
  /** For shuffling equal-preference MX records (tests inject a deterministic one). */
  random?: () => number;
  /** This host's addresses, for the MX loop check (RFC 5321 §5.1). */
  localAddresses?: string[];
  /** How long an idle connection is kept for reuse (default 5 s). */
  idleTimeoutMs?: number;
  /** The clock for remembering failed hosts (default Date.now). */
  now?: () => number;
  /** DANE (RFC 7672) for levels dane / dane-only; absent = no DNSSEC resolver (the insecure case). */
  dane?: Dane;
  /** MTA-STS policies (RFC 8461); absent = MTA-STS off. */
  mtaSts?: MtaStsPolicies;
}

/** The TLS facts of one delivery, shared by its hosts. */
interface TlsContext {
  level: DomainLevel;
  sts?: AppliedSts;
  /** The MX RRset was DNSSEC-validated (for DANE's lookup). */
  secureMx: boolean;
}

/** Why the last destination was given up, for the final transient result. */
interface HostFailure {
  dest: Destination;
  /** A remote reply (then it goes into the result as the remote's words) … */
  reply?: SmtpReply;
  /** … or a local diagnostic like "connection refused". */
  detail?: string;
  status: string;
  /** The host was only busy (its slots taken by our own deliveries): no attempt was made. */
  busy?: boolean;
  /** The TLS policy of that host (policyLabel). */
  tlsPolicy?: string;
  /** The TLS handshake's outcome when one took place (a certificate the policy refused). */
  tls?: TlsInfo;
}

interface AttemptResult {
  /** Results that are final for this delivery, by recipient index. */
  final: Map<number, RecipientResult>;
  /** Set when the destination failed as a whole for the recipients still pending. */
  error?: HostFailure;
  /** Stop trying other destinations (message may have been delivered, or a local fault). */
  stop?: boolean;
}

interface Idle {
  session: SmtpClientSession;
  timer: NodeJS.Timeout;
}

const DEFAULT_IDLE_MS = 5_000;

function clientTimeouts(config: Config): ClientTimeouts {
  const t = config.delivery.timeouts;
  return { greeting: t.greeting, ehlo: t.ehlo, mail: t.mail, rcpt: t.rcpt, data: t.data, dataBlock: t.dataBlock, dataEnd: t.dataEnd, tls: t.tls };
}

export class SmtpCourier implements Courier {
  private config: Config;
  private readonly connector: Connector;
  private readonly logger: Logger;
  private router: Router;
  private readonly idleMs: number;
  private timeouts: ClientTimeouts;
  private readonly idle = new Map<string, Idle[]>();
  private readonly health: HostHealth;
  private readonly dane: Dane | undefined;
  private readonly mtaSts: MtaStsPolicies | undefined;
  private closed = false;

  constructor(private readonly deps: SmtpCourierDeps) {
    this.config = deps.config;
    this.connector = deps.connector;
    this.logger = deps.logger;
    this.idleMs = deps.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    this.dane = deps.dane;
    this.mtaSts = deps.mtaSts;
    this.router = this.routerFor(deps.config, deps.localAddresses);
    this.health = new HostHealth({
      perHostConcurrency: deps.config.delivery.perHostConcurrency,
      // Never skipped longer than the shortest retry interval: the retry policy stays in charge.
      deadHostTime: Math.min(deps.config.delivery.deadHostTime, deps.config.delivery.retry.minDelay),
      now: deps.now ?? Date.now,
    });
    this.timeouts = clientTimeouts(deps.config);
  }

  private routerFor(config: Config, localAddresses: readonly string[] | undefined): Router {
    return new Router({
      config,
      resolver: this.deps.resolver,
      ...(this.deps.random ? { random: this.deps.random } : {}),
      ...(localAddresses ? { localAddresses } : {}),
    });
  }

  /**
   * A reload: routes, fallback relays, timeouts, hostname and the MX loop check's own addresses
   * (`localAddresses`, from the new listeners) for the deliveries that start from now on. Idle
   * cached connections are closed: they greeted with the old hostname and settings.
   */
  reconfigure(config: Config, localAddresses?: readonly string[]): void {
    this.config = config;
    this.router = this.routerFor(config, localAddresses ?? this.deps.localAddresses);
    this.timeouts = clientTimeouts(config);
    void this.dropIdle();
  }

  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    const log = this.logger.child({ qid: req.id, domain: req.domain });
    // The MTA-STS lookup (a TXT query, maybe a fetch) runs beside the MX resolution rather than
    // after it, for domains that will be delivered by MX (no route, not an address literal).
    const sts = this.mtaSts && !req.domain.startsWith("[") && findRoute(this.config.routes, req.domain) === undefined ? this.mtaSts.policyFor(req.domain, log) : undefined;
    const plan = await this.router.plan(req.domain);
    if (!plan.ok) {
      log.info({ outcome: plan.failure.outcome, reply: plan.failure.reply }, "no delivery route");
      return req.recipients.map((r) => ({ recipient: r.address, outcome: plan.failure.outcome, reply: plan.failure.reply, status: plan.failure.status, remote: false }));
    }

    const tlsCtx = await this.tlsContext(req.domain, plan.via, log, sts);
    const results = new Map<number, RecipientResult>();
    // Every host's failure is kept (host-report.ts): the MX's own reply must not be lost when a
    // fallback relay is tried after it.
    const errors: HostFailure[] = [];
    let stopped = false;
    // Was every destination only busy (its slots taken by our own deliveries)? Then nothing
    // was attempted: the recipients are retried soon, without counting an attempt.
    let onlyBusy = true;
    const run = async (dests: readonly Destination[]) => {
      for (const dest of dests) {
        const pending = req.recipients.map((_, i) => i).filter((i) => !results.has(i));
        if (pending.length === 0 || stopped) return;
        const r = await this.attempt(dest, req, pending, log, tlsCtx);
        for (const [i, res] of r.final) results.set(i, res);
        if (r.final.size || !r.error?.busy) onlyBusy = false;
        if (r.error) errors.push(r.error);
        if (r.stop) stopped = true;
      }
    };
    await run(plan.destinations);
    // Fallback relays only for MX delivery, and only after every MX failed temporarily.
    if (!stopped && results.size < req.recipients.length && (plan.via === "mx" || plan.via === "implicit-mx")) {
      const fallbacks = await this.router.fallbacks();
      if (fallbacks.length) log.info({ relays: fallbacks.map((d) => `${d.host}[${d.ip}]:${d.port}`) }, "all MX hosts failed; trying fallback relays");
      await run(fallbacks);
    }

    const last = errors[errors.length - 1];
    return req.recipients.map((r, i) => {
      const res = results.get(i) ?? this.exhausted(r.address, req.domain, plan.destinations.length, errors);
      return onlyBusy && last?.busy && !results.has(i) ? { ...res, retrySoon: true } : res;
    });
  }

  /** The domain's TLS level, its MTA-STS policy (MX delivery only) and whether its MX RRset is DNSSEC-secure. */
  private async tlsContext(domain: string, via: string, log: Logger, sts?: Promise<StsLookup>): Promise<TlsContext> {
    const level = levelFor(this.config.delivery.tls.policy, domain);
    const ctx: TlsContext = { level, secureMx: false };
    const mx = via === "mx" || via === "implicit-mx";
    if (mx && this.mtaSts) {
      const found = await (sts ?? this.mtaSts.policyFor(domain, log));
      if (found.entry && found.entry.policy.mode !== "none") ctx.sts = { policy: found.entry.policy, id: found.entry.id };
      log.debug({ mtaSts: found.entry ? { mode: found.entry.policy.mode, id: found.entry.id, mx: found.entry.policy.mx } : null, how: found.how }, "MTA-STS");
    }
    if (mx && this.dane && (level.level === "dane" || level.level === "dane-only")) {
      ctx.secureMx = await this.dane.mxSecure(domain).catch(() => false);
    }
    return ctx;
  }

  /** The TLS requirement of one destination (may look up TLSA records). */
  private async requirement(dest: Destination, ctx: TlsContext): Promise<ReturnType<typeof hostTls>> {
    const { level } = ctx.level;
    let dane;
    if (this.dane && (level === "dane" || level === "dane-only") && dest.kind !== "literal") {
      dane = await this.dane.lookup(dest.host, dest.port, ctx.secureMx).catch((e: unknown) => ({ kind: "defer" as const, reason: `TLSA lookup failed: ${(e as Error).message}` }));
    }
    return hostTls({ level: ctx.level, host: dest.host, kind: dest.kind, sts: ctx.sts, dane });
  }

  /** The result for a recipient still pending after every destination failed. */
  private exhausted(recipient: string, domain: string, tried: number, errors: readonly HostFailure[]): RecipientResult {
    const hosts: HostReply[] = errors.map((e) => ({
      host: e.dest.host,
      ip: e.dest.ip,
      port: e.dest.port,
      kind: e.dest.kind,
      reply: e.reply ? formatReply(e.reply) : (e.detail ?? ""),
      status: e.status,
      remote: !!e.reply,
    }));
    const best = mostInformative(hosts);
    const last = best ? errors[hosts.indexOf(best)] : undefined;
    if (!last) return { recipient, outcome: "transient", reply: localReply("noAnswer", `no mail host of ${domain} could be tried`), status: LOCAL_STATUS.noAnswer, remote: false };
    return { ...this.reported(recipient, domain, tried, last), ...(hosts.length > 1 ? { hosts } : {}) };
  }

  private reported(recipient: string, domain: string, tried: number, last: HostFailure): RecipientResult {
    const where = { mx: last.dest.host, ip: last.dest.ip, port: last.dest.port, ...(last.tlsPolicy ? { tlsPolicy: last.tlsPolicy } : {}), ...(last.tls ? { tls: last.tls } : {}) };
    if (last.reply) {
      // Give the remote's own words (they end up in the DSN's Diagnostic-Code). A 5xx greeting
      // is still only a host problem here, so the status is downgraded to the transient class.
      const status = last.status.replace(/^[235]\./, "4.");
      return { recipient, outcome: "transient", reply: formatReply(last.reply), status, remote: true, ...where };
    }
    const hosts = tried > 1 ? `all ${tried} addresses of the mail hosts of ${domain}` : `the mail host of ${domain}`;
    return {
      recipient,
      outcome: "transient",
      reply: `451 ${last.status} delivery to ${hosts} failed (last: ${last.dest.host}[${last.dest.ip}]:${last.dest.port}: ${last.detail})`,
      status: last.status,
      remote: false,
      ...where,
    };
  }

  private async attempt(dest: Destination, req: DeliveryRequest, pending: number[], log: Logger, ctx: TlsContext): Promise<AttemptResult> {
    const key = `${dest.ip}|${dest.port}`;
    const at = { mx: dest.host, ip: dest.ip, port: dest.port };
    const tlsReq = await this.requirement(dest, ctx);
    if (isSkip(tlsReq)) {
      const tlsPolicy = policyLabel(tlsReq);
      log.info({ ...at, tlsPolicy, error: tlsReq.skip }, "host skipped by the TLS policy");
      return { final: new Map(), error: { dest, detail: tlsReq.skip, status: tlsReq.status, tlsPolicy } };
    }
    let adm = this.health.admit(key);
    // A busy host: wait in its (bounded) queue for a slot, at most the connect timeout.
    const waitUntil = Date.now() + this.config.delivery.timeouts.connect;
    while (!adm.ok && adm.why === "busy" && Date.now() < waitUntil) {
      const q = this.health.queueFor(key);
      if (!q) break;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([q.wait.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), Math.max(0, waitUntil - Date.now()))))]);
      clearTimeout(timer);
      q.cancel();
      if (timedOut) break;
      adm = this.health.admit(key);
    }
    if (!adm.ok) {
      const detail =
        adm.why === "dead"
          ? `host recently failed: ${adm.reason}, skipped until ${new Date(adm.until).toISOString()}`
          : `host busy: ${adm.inFlight} deliveries in progress (delivery.perHostConcurrency), skipped`;
      log.info({ ...at, error: detail }, "host skipped");
      return { final: new Map(), error: { dest, detail, status: LOCAL_STATUS.noAnswer, busy: adm.why === "busy" } };
    }
    this.health.begin(key);
    try {
      return await this.session(dest, key, req, pending, log, tlsReq);
    } finally {
      this.health.end(key);
    }
  }

  private async session(dest: Destination, key: string, req: DeliveryRequest, pending: number[], log: Logger, tlsReq: HostTls): Promise<AttemptResult> {
    const tlsPolicy = policyLabel(tlsReq);
    const at = { mx: dest.host, ip: dest.ip, port: dest.port, tlsPolicy };
    // A cached connection is only reused under the same TLS requirement (a plain-text session
    // opened for "may" must never carry mail that needs "verify").
    const idleKey = `${key}|${tlsReq.starttls}|${tlsReq.enforce ? tlsReq.verify : "-"}|${tlsReq.names.join(",")}`;
    if (tlsReq.report) log.warn({ ...at, report: tlsReq.report }, "MTA-STS testing: enforce mode would not deliver to this host");
    const caFile = this.config.delivery.tls.caFile;
    const daneVerify = this.dane ? this.dane.verify.bind(this.dane) : undefined;
    let useTls = true;
    let allowReuse = true;
    for (;;) {
      let session = allowReuse ? await this.takeIdle(idleKey) : undefined;
      const reused = session !== undefined;
      if (!session) {
        let socket;
        try {
          socket = await this.connector.connect({
            host: dest.ip,
            port: dest.port,
            timeoutMs: this.config.delivery.timeouts.connect,
            ...(this.config.delivery.sourceAddress ? { localAddress: this.config.delivery.sourceAddress } : {}),
          });
        } catch (e) {
          if (!(e instanceof ConnectError)) throw e;
          const detail = e.kind === "refused" ? "connection refused" : e.kind === "timeout" ? "connection timed out" : e.message;
          log.info({ ...at, error: detail }, "connect failed");
          // "other" may be our own fault (a bad sourceAddress): that says nothing about the host.
          if (e.kind !== "other") this.health.failed(key, detail);
          return { final: new Map(), error: { dest, detail, status: localStatusOf(e) } };
        }
        try {
          const opened = await SmtpClientSession.open(socket, {
            hostname: this.config.hostname,
            serverName: dest.host,
            timeouts: this.timeouts,
            startTls: useTls,
            upgradeTls: (s, o) => this.connector.upgradeTls(s, { ...o, ...(tlsReq.minVersion ? { minVersion: tlsReq.minVersion } : {}), ...(caFile ? { caFile } : {}) }),
            tlsPolicy: { require: tlsReq.starttls === "require", enforce: tlsReq.enforce, verify: (secure) => verifyPeer(tlsReq, tlsPeer(secure), daneVerify) },
          });
          if (!opened.ok && opened.tlsFailure !== undefined) {
            // RFC 3207 §4: "not offered" and "refused" are 4.7.4 (Postfix's code), a rejected certificate 4.7.5.
            const status = opened.phase === "tls" ? "4.7.5" : "4.7.4";
            log.warn({ ...at, phase: opened.phase, error: opened.tlsFailure, ...(opened.tls ? { tls: opened.tls } : {}) }, "TLS policy not met; host given up");
            return { final: new Map(), error: { dest, detail: `${opened.tlsFailure} (TLS policy ${tlsPolicy})`, status, tlsPolicy, ...(opened.tls ? { tls: opened.tls } : {}) } };
          }
          if (!opened.ok) {
            log.info({ ...at, phase: opened.phase, reply: formatReply(opened.reply) }, "host refused the session");
            return { final: new Map(), error: { dest, reply: opened.reply, status: statusOf(opened.reply), tlsPolicy } };
          }
          session = opened.session;
          this.health.succeeded(key);
        } catch (e) {
          if (e instanceof TlsHandshakeError && useTls && tlsReq.plainFallback) {
            // Opportunistic TLS: a broken handshake must not block delivery; retry in clear text.
            log.warn({ ...at, error: e.message }, "TLS handshake failed; retrying without STARTTLS");
            useTls = false;
            continue;
          }
          if (e instanceof TlsHandshakeError || e instanceof SessionError) {
            log.info({ ...at, error: e.message }, "session failed");
            // No greeting (timed out, or closed before one): the host is down for every domain.
            if (e instanceof SessionError && (e.kind === "timeout" || e.kind === "closed") && e.phase === "greeting") {
              this.health.failed(key, e.kind === "timeout" ? "no greeting (timed out)" : "connection closed before the greeting");
            }
            const detail = e instanceof TlsHandshakeError && tlsReq.starttls === "require" ? `${e.message} (TLS policy ${tlsPolicy}: no plain-text retry)` : e.message;
            return { final: new Map(), error: { dest, detail, status: localStatusOf(e), tlsPolicy } };
          }
          throw e;
        }
        if (log.isLevelEnabled("debug")) log.debug({ ...at, ext: [...session.extensions.keywords.keys()], tls: session.tls }, "session open");
        if (session.tls && !session.tls.verified && tlsReq.source === "mta-sts-testing") {
          log.warn({ ...at, error: session.tls.verifyReason }, "MTA-STS testing: enforce mode would refuse this certificate");
        }
      }

      const tls = session.tls;
      let tx;
      try {
        tx = await session.send({
          sender: req.sender,
          recipients: pending.map((i) => req.recipients[i]!),
          body: req.openBody,
          size: req.size,
          eightBit: req.eightBit,
          smtputf8: req.smtputf8,
          ...(req.ret ? { ret: req.ret } : {}),
          ...(req.envid !== undefined ? { envid: req.envid } : {}),
          ...(req.auth !== undefined ? { auth: req.auth } : {}),
        });
      } catch (e) {
        session.destroy();
        if (!(e instanceof SessionError)) throw e;
        log.warn({ ...at, reused, phase: e.phase, error: e.message, tls }, "session broke");
        if (e.dotSent || e.kind === "local") {
          // dotSent — RFC 5321 §6.1 spirit: the message may be delivered; retrying elsewhere now
          // would duplicate it. local — our own fault (spool read), another host won't help.
          // Recipients the server had already refused at RCPT keep that answer.
          const failure = e.dotSent ? "badConnection" : "localError";
          const reply = localReply(failure, e.dotSent ? `connection to ${dest.host}[${dest.ip}] lost after end of data (${e.message})` : `local error: ${e.message}`);
          const status = LOCAL_STATUS[failure];
          const final = this.all(pending, req, { outcome: "transient", reply, status, remote: false, ...at, ...(tls ? { tls } : {}) });
          if (e.rcpt) {
            const rc = e.rcpt;
            pending.forEach((i, j) => {
              if (rc.accepted[j]) return;
              final.set(i, this.fromReply(req.recipients[i]!.address, rc.replies[j]!, rc.remote[j]!, at, tls));
            });
          }
          return { final, stop: true };
        }
        if (reused) {
          // A cached connection may have been closed by the server meanwhile (or said 421 for
          // its own idle/connection limits): one fresh try to the same address.
          allowReuse = false;
          continue;
        }
        if (e.reply) {
          // Recipients refused for good (5xx) before the 421 keep that answer; the rest go on.
          const final = new Map<number, RecipientResult>();
          e.refusedBefore?.forEach((r, j) => {
            if (r && classifyReply(r.code) === "permanent") final.set(pending[j]!, this.fromReply(req.recipients[pending[j]!]!.address, r, true, at, tls));
          });
          return { final, error: { dest, reply: e.reply, status: statusOf(e.reply), tlsPolicy } };
        }
        return { final: new Map(), error: { dest, detail: `${e.message}`, status: localStatusOf(e), tlsPolicy } };
      }

      const final = new Map<number, RecipientResult>();
      let error: HostFailure | undefined;
      tx.replies.forEach((reply, j) => {
        const i = pending[j]!;
        const remote = tx.remote[j]!;
        if (tx.noneAccepted && classifyReply(reply.code) === "transient" && remote) {
          error = { dest, reply, status: statusOf(reply), tlsPolicy }; // try the next host for this one
          return;
        }
        final.set(i, this.fromReply(req.recipients[i]!.address, reply, remote, at, tls));
      });
      log.info(
        {
          ...at,
          reused,
          tls,
          mail: tx.mail ? formatReply(tx.mail) : undefined,
          reply: tx.final ? formatReply(tx.final) : undefined,
          results: [
            ...[...final.values()].map((r) => ({ rcpt: r.recipient, outcome: r.outcome, reply: r.reply })),
            // Refused here with 4xx and tried at the next host: this host's reply is kept too.
            ...(error?.reply ? pending.filter((i) => !final.has(i)).map((i) => ({ rcpt: req.recipients[i]!.address, outcome: "next-host", reply: formatReply(error!.reply!) })) : []),
          ],
          deferredToNextHost: error ? pending.length - final.size : 0,
        },
        "delivery attempt",
      );
      this.release(idleKey, session);
      return error ? { final, error } : { final };
    }
  }

  /** The result a reply decides: 2xx delivered, 5xx permanent, anything else transient. */
  private fromReply(recipient: string, reply: SmtpReply, remote: boolean, at: { mx: string; ip: string; port: number; tlsPolicy?: string }, tls: TlsInfo | undefined): RecipientResult {
    const cls = classifyReply(reply.code);
    const outcome = cls === "positive" ? "delivered" : cls === "permanent" ? "permanent" : "transient";
    return { recipient, outcome, reply: formatReply(reply), status: statusOf(reply), remote, ...at, ...(tls ? { tls } : {}) };
  }

  private all(pending: number[], req: DeliveryRequest, r: Omit<RecipientResult, "recipient">): Map<number, RecipientResult> {
    return new Map(pending.map((i) => [i, { recipient: req.recipients[i]!.address, ...r }]));
  }

  /** A cached connection to this ip/port, reset for a new transaction (RFC 5321 §4.1.1.5 RSET). */
  private async takeIdle(key: string): Promise<SmtpClientSession | undefined> {
    const list = this.idle.get(key);
    while (list && list.length) {
      const { session, timer } = list.pop()!;
      clearTimeout(timer);
      if (list.length === 0) this.idle.delete(key);
      if (!session.usable) {
        session.destroy();
        continue;
      }
      session.setIdle(false);
      if (await session.reset()) return session;
      session.destroy();
    }
    return undefined;
  }

  /** Keep a healthy connection for the next message to the same destination, or QUIT it. */
  private release(key: string, session: SmtpClientSession): void {
    if (this.closed || !session.usable || session.transactions >= this.config.delivery.maxMessagesPerConnection) {
      void session.quit();
      return;
    }
    const list = this.idle.get(key) ?? [];
    const entry: Idle = {
      session,
      timer: setTimeout(() => {
        const l = this.idle.get(key);
        const k = l ? l.indexOf(entry) : -1;
        if (l && k >= 0) l.splice(k, 1);
        if (l && l.length === 0) this.idle.delete(key);
        void session.quit();
      }, this.idleMs),
    };
    entry.timer.unref();
    session.setIdle(true);
    list.push(entry);
    this.idle.set(key, list);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.mtaSts?.stop();
    await this.dropIdle();
  }

  /** QUIT every idle cached connection. */
  private async dropIdle(): Promise<void> {
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(
      all.map(async ({ session, timer }) => {
        clearTimeout(timer);
        session.setIdle(false);
        await session.quit();
      }),
    );
  }
}
