// node:net / node:tls glue for the inbound SMTP service: listeners, connection limits,
// timeouts, STARTTLS, pipelined input, and streaming DATA into the spool.
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { rateLimitExempt, type Config } from "../config.js";
import { contextFor, type TlsCredentials } from "../io/tls-credentials.js";
import { sameAddress, sameListener } from "../reload-plan.js";
import { newMessage, type MessageMeta } from "../core/envelope.js";
import { formatIPv6, ipInNetworks, parseCidr, type Cidr } from "../core/cidr.js";
import type { Clock } from "../io/clock.js";
import { rejectFields } from "./reject-log.js";
import type { Logger } from "../io/log.js";
import type { Spool, SpoolWriter } from "../spool/spool.js";
import { CommandReader, DataReader } from "./protocol.js";
import { SPOOL_WRITE_ERROR, localReply, smtpReplyFor } from "../core/errors.js";
import { admit, idleTimeout, underStress } from "./admission.js";
import { ServerSession, type AuthVerdict, type RateCheck } from "./server-session.js";
import { AuthLimiter } from "./auth-limiter.js";
import { Authenticator } from "../auth/authenticator.js";
import { UsersStore } from "../io/users-store.js";

export type AuthEvent = "success" | "failure" | "blocked" | "unavailable";

/** SMTP AUTH on submission listeners: who the users are, and the failed-AUTH limits. */
export interface AuthDeps {
  authenticator: Authenticator;
  limiter: AuthLimiter;
  /** Read once at listen() so that the log says at start how many users there are. */
  users?: UsersStore;
}
import { parseProxyHeader, type ProxyHeader } from "./proxy-protocol.js";
import { RateLimiter, clientKey, type Rate, type RateLimiterSettings } from "./rate-limit.js";
import { MessageSigner, type DkimPolicy, type SignOutcome } from "../dkim/message-signer.js";

export interface SmtpServerDeps {
  config: Config;
  spool: Spool;
  logger: Logger;
  clock: Clock;
  /** The inbound certificates (io/tls-credentials.ts) when tls.cert/tls.key are configured. */
  tls?: TlsCredentials;
  /** DKIM signing (config dkim.domains): every accepted message is signed before it is queued. */
  dkim?: DkimPolicy;
  /** Called after a message is durably queued (the delivery side attempts it at once). */
  onQueued?: (meta: MessageMeta) => void;
  /** Override the AUTH machinery (tests); by default built from auth.usersFile. */
  auth?: AuthDeps;
  /** Told about every AUTH verdict (for /metrics). */
  onAuth?: (e: AuthEvent) => void;
}

/** Maximum command line we accept (RFC 5321 §4.5.3.1.4 says 512; extensions need more). */
const MAX_COMMAND_LINE = 2048;
/** Unprocessed input past which we stop reading the socket (the kernel then holds the rest). */
const INBOX_HIGH_WATER = 64 * 1024;
/**
 * Unsent replies (queued here plus in the socket's write buffer) past which we stop processing
 * commands and reading until the client drains them: a client that pipelines without reading
 * must not make us buffer its replies without bound.
 */
const OUTPUT_HIGH_WATER = 32 * 1024;
/** Octets per second a DATA transfer must average once it has lasted limits.dataTimeout (Postfix smtpd_min_data_rate: 500). */
const MIN_DATA_RATE = 500;
/** Implicit TLS: the handshake must be over this long after the connection (or the PROXY header). */
const TLS_HANDSHAKE_TIMEOUT = 30_000;
/** How often buckets that have refilled completely are dropped from the rate limiter. */
const RATE_PRUNE_INTERVAL = 60_000;

/** The rate limiter's rules: rateLimits.perClient.* and rateLimits.perUser.*. */
export type RateRule = "client-connections" | "client-messages" | "client-recipients" | "user-messages" | "user-recipients";

/** The limiter's settings from the config (a reload passes the new config to updateRateLimits). */
export function rateLimiterSettings(c: Config): RateLimiterSettings<RateRule> {
  const r = c.rateLimits;
  return {
    maxKeys: r.maxTrackedKeys,
    rules: {
      "client-connections": r.perClient.connections,
      "client-messages": r.perClient.messages,
      "client-recipients": r.perClient.recipients,
      "user-messages": r.perUser.messages,
      "user-recipients": r.perUser.recipients,
    },
  };
}

/** "1m", "1h", "90s": a window as an operator wrote it, for replies and `mxd status`. */
export function formatWindow(ms: number): string {
  for (const [unit, n] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) if (ms % n === 0) return `${ms / n}${unit}`;
  return `${ms}ms`;
}

/** Why a connection on a PROXY protocol listener was refused (the metrics' reason label). */
export type ProxyRefusal = "untrusted" | "bad-header" | "timeout";

/** A listener's PROXY protocol settings, with the CIDRs parsed. */
interface ListenerProxy {
  trusted: Cidr[];
  timeout: number;
  maxHeaderSize: number;
}

/** Where a connection really comes from: the socket's peer, or the client a PROXY header names. */
interface ClientOrigin {
  ip: string;
  port: number | undefined;
  /** Set when a PROXY header was read: the load balancer's address and what it said. */
  proxy?: { peer: string; version: 1 | 2; command: ProxyHeader["command"] };
}

type ListenConfig = Config["listen"][number];

/** A client as the rate limits see it (SmtpServer.rateCheckFor fills in the exemption). */
export interface RateClient {
  ip: string;
  /** clientKey(ip): the address, an IPv6 client's /64. */
  key: string;
  exempt: boolean;
  /** The exempt networks `exempt` was worked out against; -1: not yet. */
  exemptGeneration: number;
}

function rateClient(ip: string): RateClient {
  return { ip, key: clientKey(ip), exempt: false, exemptGeneration: -1 };
}

interface Listener {
  config: ListenConfig;
  server: net.Server;
  address: { host: string; port: number; tls: boolean; mode: "relay" | "submission" };
}

export class SmtpServer {
  private listeners: Listener[] = [];
  private conns = new Set<Connection>();
  private perIp = new Map<string, number>();
  private nets: Cidr[];
  private tlsCreds: TlsCredentials | undefined;
  /** Sockets of PROXY protocol listeners still waiting for their header. */
  private readonly pendingProxy = new Set<net.Socket>();
  /** Refused PROXY protocol connections by reason, since start. */
  readonly proxyRefused = new Map<ProxyRefusal, number>();
  readonly rateLimiter: RateLimiter<RateRule>;
  private rateExempt: Cidr[];
  /** Bumped when rateExempt is replaced: a RateClient's cached exemption is then worked out again. */
  private rateExemptGeneration = 0;
  private readonly pruneTimer: NodeJS.Timeout;
  private closing = false;
  /** The configuration new connections get (reconfigure() replaces it; open sessions keep theirs). */
  private cfg: Config;
  /** Present when auth.usersFile is set. */
  readonly auth: AuthDeps | undefined;

  constructor(readonly deps: SmtpServerDeps) {
    this.cfg = deps.config;
    this.nets = deps.config.relay.allowedNetworks.map((c) => parseCidr(c)!);
    this.rateLimiter = new RateLimiter(rateLimiterSettings(deps.config), () => deps.clock.now());
    this.rateExempt = rateLimitExempt(deps.config).map((c) => parseCidr(c)!);
    this.pruneTimer = setInterval(() => this.rateLimiter.prune(), RATE_PRUNE_INTERVAL);
    this.pruneTimer.unref();
    this.tlsCreds = deps.tls;
    this.auth = deps.auth ?? buildAuth(deps);
  }

  get config(): Config {
    return this.cfg;
  }

  get addresses(): { host: string; port: number; tls: boolean; mode: "relay" | "submission" }[] {
    return this.listeners.map((l) => l.address);
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Connections on PROXY protocol listeners still waiting for their header. */
  get pendingProxyCount(): number {
    return this.pendingProxy.size;
  }

  /**
   * New rate limits at run time (configuration reload): the limiter keeps its buckets, the
   * exempt networks are replaced.
   */
  updateRateLimits(config: Config): void {
    this.rateLimiter.setSettings(rateLimiterSettings(config));
    this.rateExempt = rateLimitExempt(config).map((c) => parseCidr(c)!);
    this.rateExemptGeneration++;
  }

  /** The limits in force and their hits, for /metrics and `mxd status`. */
  rateLimitStatus(): { rules: { rule: RateRule; limit: number; per: string; hits: number }[]; exemptNetworks: string[]; trackedKeys: number; maxTrackedKeys: number; evictions: number } {
    const rules = Object.entries(this.rateLimiter.rules) as [RateRule, Rate][];
    return {
      rules: rules.map(([rule, r]) => ({ rule, limit: r.limit, per: formatWindow(r.per), hits: this.rateLimiter.hits.get(rule) ?? 0 })),
      exemptNetworks: this.rateExempt.map((c) => `${c.family === 4 ? [...c.bytes].join(".") : formatIPv6(c.bytes)}/${c.prefix}`),
      trackedKeys: this.rateLimiter.size,
      maxTrackedKeys: this.rateLimiter.maxKeys,
      evictions: this.rateLimiter.evictions,
    };
  }

  /**
   * A MAIL or RCPT under the rate limits: per authenticated user when there is one, else per
   * client address (IPv6 by /64). Returns the refusal reply, or undefined.
   */
  rateCheck(what: "messages" | "recipients", ip: string, user: string | undefined): string | undefined {
    return this.rateCheckFor(what, rateClient(ip), user);
  }

  /**
   * rateCheck for a connection's client: its key and its exemption are worked out once per
   * connection (MAIL and RCPT are asked for every message), the exemption again after a reload
   * replaced the exempt networks.
   */
  rateCheckFor(what: "messages" | "recipients", client: RateClient, user: string | undefined): string | undefined {
    if (client.exemptGeneration !== this.rateExemptGeneration) {
      client.exempt = ipInNetworks(client.ip, this.rateExempt);
      client.exemptGeneration = this.rateExemptGeneration;
    }
    if (client.exempt) return undefined;
    const d = user !== undefined ? this.rateLimiter.take(`user-${what}`, user.toLowerCase()) : this.rateLimiter.take(`client-${what}`, client.key);
    if (d.ok) return undefined;
    const ip = client.ip;
    const who = user !== undefined ? `user ${user.replace(/[^\x21-\x7e]/g, "?").slice(0, 64)}` : ip;
    return `450 4.7.1 Error: too many ${what} from ${who} (limit ${d.limit} per ${formatWindow(d.per)}), try again later`;
  }

  /** The default context (STARTTLS offered when there is one). */
  get secureContext(): tls.SecureContext | undefined {
    return this.tlsCreds?.context;
  }

  /** SNI: the certificate for the name the client asked for (read at each handshake, so a reload applies to the next one). */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    const creds = this.tlsCreds;
    if (!creds) return cb(new Error("no TLS certificate"));
    cb(null, contextFor(creds, servername));
  };

  async listen(): Promise<void> {
    await this.auth?.users?.current();
    for (const l of this.cfg.listen) this.listeners.push(await this.open(l));
  }

  private async open(l: ListenConfig): Promise<Listener> {
    const proxy: ListenerProxy | undefined = l.proxyProtocol && {
      trusted: l.proxyProtocol.trustedNetworks.map((c) => parseCidr(c)!),
      timeout: l.proxyProtocol.timeout,
      maxHeaderSize: l.proxyProtocol.maxHeaderSize,
    };
    // A PROXY protocol listener is plain TCP even with tls: the header precedes the handshake.
    const srv =
      l.tls && !proxy
        ? tls.createServer({ ...this.tlsCreds!.options, SNICallback: this.sniCallback, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT, allowHalfOpen: true }, (s) => this.accept(s, true, l.mode))
        : // allowHalfOpen: a client may pipeline a whole transaction and shut down its side;
          // it must still get every reply (and its message queued).
          net.createServer({ allowHalfOpen: true }, (s) => (proxy ? this.acceptProxied(s, proxy, l.tls, l.mode) : this.accept(s, false, l.mode)));
    srv.maxConnections = this.cfg.limits.connections * 2; // hard cap; the soft limit answers 421 below
    srv.on("error", (e) => this.deps.logger.error({ err: e, listen: l }, "listener error"));
    if (l.tls) srv.on("tlsClientError", (e: Error) => this.deps.logger.info({ err: e.message }, "TLS handshake failed"));
    await new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen({ host: l.host, port: l.port }, () => {
        srv.off("error", reject);
        resolve();
      });
    });
    const a = srv.address() as net.AddressInfo;
    return { config: l, server: srv, address: { host: a.address, port: a.port, tls: l.tls, mode: l.mode } };
  }

  /**
   * A reloaded configuration: new connections get its limits, relay networks, local domains and
   * certificates; open sessions keep the settings they started with and are not interrupted.
   */
  reconfigure(config: Config, creds: TlsCredentials | undefined): void {
    this.cfg = config;
    this.nets = config.relay.allowedNetworks.map((c) => parseCidr(c)!);
    this.tlsCreds = creds;
    this.updateRateLimits(config);
    for (const l of this.listeners) {
      l.server.maxConnections = config.limits.connections * 2;
      // The default certificate of implicit TLS listeners; SNI reads this.tlsCreds itself. An
      // implicit TLS listener behind the PROXY protocol is a net.Server: its handshakes take
      // this.tlsCreds at each connection (tlsAfterProxy).
      if (creds && l.server instanceof tls.Server) l.server.setSecureContext(creds.options);
    }
    this.updateStress();
  }

  /**
   * Listener changes of a reload: open `add` first (if one cannot be bound, the ones opened
   * here are closed again and the error is thrown: nothing changed), then stop accepting on
   * `remove`. Connections accepted there before go on to the end of their session.
   */
  async changeListeners(add: readonly ListenConfig[], remove: readonly ListenConfig[]): Promise<void> {
    const gone = this.listeners.filter((l) => remove.some((r) => sameListener(r, l.config)));
    // An entry changed in place (same address, another setting) must give up its port first.
    const first = gone.filter((g) => add.some((a) => sameAddress(a, g.config)));
    for (const g of first) await closeListening(g.server);
    const opened: Listener[] = [];
    try {
      for (const l of add) opened.push(await this.open(l));
    } catch (e) {
      for (const o of opened) await closeListening(o.server);
      // Put back what was closed for the change (its port is free again: nothing else took it).
      const back: Listener[] = [];
      for (const g of first) back.push(await this.open(g.config).catch(() => g));
      this.listeners = this.listeners.map((l) => back.find((b) => b.config === l.config) ?? l);
      throw e;
    }
    for (const g of gone) if (!first.includes(g)) g.server.close();
    this.listeners = [...this.listeners.filter((l) => !gone.includes(l)), ...opened];
  }

  relayAllowed(ip: string): boolean {
    return ipInNetworks(ip, this.nets);
  }

  /** Most connection slots are in use: idle timeouts are limits.stressTimeout (admission.ts). */
  stressed = false;

  private updateStress(): void {
    const now = underStress(this.conns.size, this.cfg.limits.connections);
    if (now === this.stressed) return;
    this.stressed = now;
    if (now) {
      this.deps.logger.warn({ connections: this.conns.size, stressTimeout: this.cfg.limits.stressTimeout }, "overload: short idle timeouts");
      // Connections already open get the short timeouts too: they are the ones holding slots.
      for (const c of this.conns) c.timeoutsChanged();
    } else this.deps.logger.info({ connections: this.conns.size }, "overload over");
  }

  /**
   * A connection on a PROXY protocol listener: only from a trusted load balancer, and only
   * with a valid header within the timeout (the specification forbids guessing whether one is
   * there). The client address the header carries is the one every later decision uses.
   */
  private acceptProxied(socket: net.Socket, p: ListenerProxy, implicitTls: boolean, mode: "relay" | "submission"): void {
    const peer = socket.remoteAddress ?? "unknown";
    const { cfg: config } = this;
    const { logger } = this.deps;
    socket.on("error", () => undefined);
    const refuse = (reason: ProxyRefusal, detail: string, text: string) => {
      this.proxyRefused.set(reason, (this.proxyRefused.get(reason) ?? 0) + 1);
      logger.warn({ proxy: peer, port: socket.remotePort, reason, detail }, "PROXY protocol: connection refused");
      socket.end(`421 4.7.0 ${config.hostname} Error: ${text}\r\n`);
      setTimeout(() => socket.destroy(), 2000).unref();
    };
    if (this.closing) {
      socket.end(`421 4.3.2 ${config.hostname} Service shutting down\r\n`);
      return;
    }
    if (!ipInNetworks(peer, p.trusted)) return refuse("untrusted", "not in proxyProtocol.trustedNetworks", "connection refused");
    this.pendingProxy.add(socket);
    let buf: Buffer = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", done);
      this.pendingProxy.delete(socket);
    };
    const timer = setTimeout(() => {
      done();
      refuse("timeout", `no complete header after ${p.timeout} ms (${buf.length} octets)`, "PROXY protocol header expected");
    }, p.timeout);
    timer.unref();
    // Bounded: the parser answers need-more only below max(107, maxHeaderSize) octets.
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = parseProxyHeader(buf, p.maxHeaderSize);
      if (r.status === "need-more") return;
      done();
      if (r.status === "error") return refuse("bad-header", r.reason, "PROXY protocol header expected");
      // LOCAL (health checks) and UNKNOWN/AF_UNSPEC: the real endpoints, as the spec says.
      const h = r.header;
      const origin: ClientOrigin =
        h.command === "proxy"
          ? { ip: h.source.address, port: h.source.port, proxy: { peer, version: h.version, command: h.command } }
          : { ip: peer, port: socket.remotePort, proxy: { peer, version: h.version, command: h.command } };
      logger.debug({ proxy: peer, client: origin.ip, version: h.version, command: h.command }, "PROXY protocol header");
      // Synchronously, in this same "data" event: the connection's own listener takes over
      // before the next chunk, and what followed the header is its first input.
      if (implicitTls) this.tlsAfterProxy(socket, origin, r.rest, mode);
      else this.accept(socket, false, mode, origin, r.rest);
    };
    socket.on("data", onData);
    socket.once("close", done);
  }

  /**
   * Implicit TLS behind a PROXY header: the handshake starts with the octets that followed the
   * header (often in the same segment, already read). A TLSSocket over a net.Socket reads the
   * socket's handle, so it runs over a stream that replays those octets first (the test
   * "ClientHello in the same segment" fails when they are lost).
   */
  private tlsAfterProxy(raw: net.Socket, origin: ClientOrigin, first: Buffer, mode: "relay" | "submission"): void {
    this.pendingProxy.add(raw);
    const secure = new tls.TLSSocket(replayFirst(raw, first), { isServer: true, secureContext: this.secureContext!, SNICallback: this.sniCallback });
    const timer = setTimeout(() => secure.destroy(), TLS_HANDSHAKE_TIMEOUT);
    timer.unref();
    const settle = () => {
      clearTimeout(timer);
      this.pendingProxy.delete(raw);
    };
    secure.on("error", () => undefined);
    secure.once("secure", () => {
      settle();
      this.accept(secure, true, mode, origin);
    });
    secure.once("error", (e) => {
      settle();
      this.deps.logger.info({ client: origin.ip, proxy: origin.proxy?.peer, err: e.message }, "TLS handshake failed");
      raw.destroy();
    });
    secure.once("close", () => {
      settle();
      raw.destroy();
    });
  }

  private accept(socket: net.Socket, implicitTls: boolean, mode: "relay" | "submission", origin?: ClientOrigin, initial?: Buffer): void {
    const ip = origin?.ip ?? socket.remoteAddress ?? "unknown";
    const { cfg: config } = this;
    const { logger } = this.deps;
    socket.on("error", () => undefined);
    if (this.closing) {
      socket.end(`421 4.3.2 ${config.hostname} Service shutting down\r\n`);
      return;
    }
    // Connection rate (Postfix anvil's smtpd_client_connection_rate_limit): every attempt counts,
    // except a trusted balancer's own v2 LOCAL connections (its health checks, every few
    // seconds per backend: counted, they would get 421 and take mxd out of the pool). What
    // such a connection sends is still limited by the balancer's address.
    if (!ipInNetworks(ip, this.rateExempt) && origin?.proxy?.command !== "local") {
      const d = this.rateLimiter.take("client-connections", clientKey(ip));
      if (!d.ok) {
        logger.warn({ client: ip, limit: d.limit, per: formatWindow(d.per), rule: d.rule }, "connection rate limit reached");
        socket.end(`421 4.7.0 ${config.hostname} Error: too many connections from ${ip} (limit ${d.limit} per ${formatWindow(d.per)}), try again later\r\n`);
        setTimeout(() => socket.destroy(), 2000).unref();
        return;
      }
    }
    // Slots per client: an IPv6 client by its /64 (one host usually holds a whole /64), an
    // IPv4-mapped address as IPv4 — as the rate limits and the failed-AUTH back-off count it.
    const who = clientKey(ip);
    const perIp = this.perIp.get(who) ?? 0;
    const relayAllowed = this.relayAllowed(ip);
    const admission = admit({ total: this.conns.size, perClient: perIp, relayAllowed, limits: config.limits });
    if (!admission.accept) {
      logger.warn({ client: ip, total: this.conns.size, perIp, limit: admission.reason }, "connection limit reached");
      socket.end(`421 4.7.0 ${config.hostname} Error: too many connections, try again later\r\n`);
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    this.perIp.set(who, perIp + 1);
    const conn = new Connection(this, socket, { ip, port: origin?.port ?? socket.remotePort, proxy: origin?.proxy }, relayAllowed, implicitTls, mode, initial);
    this.conns.add(conn);
    conn.onClose = () => {
      this.conns.delete(conn);
      const n = (this.perIp.get(who) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(who);
      else this.perIp.set(who, n);
      this.updateStress();
      if (this.closing && this.conns.size === 0) this.drained?.();
    };
    this.updateStress();
    conn.start();
  }

  private drained?: () => void;

  /** Stop listening; idle sessions get 421 now, busy ones after their transaction; force-close at the bound. */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    clearInterval(this.pruneTimer);
    for (const l of this.listeners) l.server.close();
    for (const s of this.pendingProxy) s.destroy();
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
      if (this.conns.size === 0) resolve();
    });
    for (const c of this.conns) c.shutdown();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([done, timeout]);
    clearTimeout(timer);
    for (const c of this.conns) c.destroy();
  }
}

/** Stop accepting and wait until the listening socket is released (open connections go on). */
function closeListening(srv: net.Server): Promise<void> {
  srv.close();
  return new Promise((resolve) => setImmediate(resolve));
}

interface DataState {
  reader: DataReader;
  writer: SpoolWriter | null;
  bytes: number;
  tooBig: boolean;
  /** Raw octets received during DATA (for the minimum data rate). */
  received: number;
  diskError?: Error;
  startedAt: number;
  /** Hashes the message as it streams in; the signature is stored with it at commit. */
  signer?: MessageSigner;
}

class Connection {
  onClose: () => void = () => undefined;
  private readonly session: ServerSession;
  private readonly cmd = new CommandReader(MAX_COMMAND_LINE);
  private inbox: Buffer[] = [];
  private inboxBytes = 0;
  private out: string[] = [];
  /** Octets in `out` (CRLFs included). */
  private outBytes = 0;
  /** Set while waiting for the socket to drain; finish() releases it. */
  private drainWait: (() => void) | undefined;
  private busy = false;
  private closed = false;
  private shuttingDown = false;
  private data: DataState | undefined;
  private upgrading = false;
  private readonly started: number;
  private readonly log: Logger;
  private readonly cfg: Config;

  private readonly ip: string;
  private readonly port: number | undefined;

  constructor(private readonly server: SmtpServer, private socket: net.Socket, origin: ClientOrigin, private readonly relayAllowed: boolean, implicitTls: boolean, mode: "relay" | "submission", private readonly initial?: Buffer) {
    this.cfg = server.config;
    this.started = server.deps.clock.now();
    this.ip = origin.ip;
    this.port = origin.port;
    this.log = server.deps.logger.child(origin.proxy ? { client: origin.ip, port: origin.port, proxy: origin.proxy.peer } : { client: origin.ip, port: origin.port });
    const client = rateClient(origin.ip);
    const rateLimit: RateCheck = (what, user) => server.rateCheckFor(what, client, user);
    this.session = new ServerSession({
      config: this.cfg,
      clientIp: origin.ip,
      relayAllowed,
      tlsAvailable: !implicitTls && !!server.secureContext,
      secure: implicitTls,
      mode,
      authBlockedFor: () => server.auth?.limiter.blockedFor(clientKey(origin.ip)) ?? 0,
      rateLimit,
    });
  }

  start(): void {
    this.attach(this.socket);
    this.send([this.session.greeting()]);
    this.armCommandDeadline();
    // Bytes that came after a PROXY header: the client's first input (after our greeting).
    if (this.initial?.length) this.onData(this.initial);
  }

  /**
   * A complete command must arrive within limits.commandTimeout of the previous one. The
   * socket's idle timer alone is reset by every byte, so a client trickling one byte at a time
   * (slowloris) would hold its connection slot forever (cf. Postfix smtpd_per_record_deadline).
   */
  private commandDeadline: NodeJS.Timeout | undefined;
  /** The duration commandDeadline was set with. */
  private commandDeadlineMs = 0;
  private armCommandDeadline(): void {
    if (this.closed) {
      clearTimeout(this.commandDeadline);
      return;
    }
    const ms = this.commandTimeout();
    // Re-armed at every command: the same timer, restarted (no new timer per command).
    if (this.commandDeadline && ms === this.commandDeadlineMs) {
      this.commandDeadline.refresh();
      return;
    }
    clearTimeout(this.commandDeadline);
    this.commandDeadlineMs = ms;
    this.commandDeadline = setTimeout(this.onCommandDeadline, ms);
    this.commandDeadline.unref();
  }
  private readonly onCommandDeadline = (): void => {
    if (!this.data && !this.busy && !this.upgrading) this.onTimeout();
    else this.armCommandDeadline();
  };

  /** limits.commandTimeout, or limits.stressTimeout while the server is crowded. */
  private commandTimeout(): number {
    return idleTimeout(this.cfg.limits.commandTimeout, this.cfg.limits.stressTimeout, this.server.stressed);
  }

  private dataTimeout(): number {
    return idleTimeout(this.cfg.limits.dataTimeout, this.cfg.limits.stressTimeout, this.server.stressed);
  }

  /** The server entered stress: apply the shorter timeouts from now on. */
  timeoutsChanged(): void {
    if (this.closed) return;
    this.socket.setTimeout(this.data ? this.dataTimeout() : this.commandTimeout());
    if (!this.data) this.armCommandDeadline();
  }

  /**
   * DATA must keep a minimum average rate once it has run for limits.dataTimeout; the idle
   * timer catches silence, this catches trickling.
   */
  private checkDataRate(d: DataState): boolean {
    const elapsed = this.server.deps.clock.now() - d.startedAt;
    if (elapsed <= this.cfg.limits.dataTimeout) return true;
    return d.received / (elapsed / 1000) >= MIN_DATA_RATE;
  }

  private attach(s: net.Socket): void {
    s.setNoDelay(true);
    s.setTimeout(this.commandTimeout());
    s.on("data", (chunk: Buffer) => this.onData(chunk));
    s.on("timeout", () => this.onTimeout());
    s.on("error", (e) => this.log.debug({ err: e.message }, "socket error"));
    s.on("close", () => this.finish());
    s.on("end", () => {
      // Half-closed by the client: nothing more will come; answer what is pending, then close.
      if (!this.busy) this.close();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.upgrading) return;
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    if (this.inboxBytes > INBOX_HIGH_WATER || this.unsent() > OUTPUT_HIGH_WATER) this.socket.pause();
    void this.pump();
  }

  /** Replies not yet taken by the peer: ours plus the socket's write buffer. */
  private unsent(): number {
    return this.outBytes + this.socket.writableLength;
  }

  /**
   * Wait until the socket's write buffer drains. A client that does not read within
   * limits.commandTimeout loses its connection (it would otherwise hold its slot forever).
   * Resolves false when the connection is gone.
   */
  private waitForDrain(): Promise<boolean> {
    const sock = this.socket;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        sock.off("drain", onDrain);
        this.drainWait = undefined;
        resolve(ok && !this.closed);
      };
      const onDrain = () => done(true);
      const timer = setTimeout(() => {
        this.log.info({ unsent: sock.writableLength }, "client not reading replies, closing");
        done(false);
        this.destroy();
      }, this.commandTimeout());
      timer.unref();
      sock.on("drain", onDrain);
      this.drainWait = () => done(false);
    });
  }

  /** Read again once both the unprocessed input and the unsent replies are under their bounds. */
  private resumeReading(): void {
    if (this.closed || this.upgrading || this.inboxBytes > INBOX_HIGH_WATER) return;
    if (this.socket.writableLength > OUTPUT_HIGH_WATER) {
      if (!this.drainWait) {
        void this.waitForDrain().then((ok) => {
          if (ok) this.resumeReading();
        });
      }
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
  }

  private onTimeout(): void {
    this.log.info({ phase: this.data ? "data" : "command" }, "timeout");
    this.send([localReply("badConnection", `${this.cfg.hostname} Error: timeout exceeded`, 421)]);
    this.close();
  }

  /** Process buffered input in order; one pump at a time. */
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.closed && !this.upgrading) {
        // Back-pressure: replies pile up while the client does not read; stop until it does.
        if (this.unsent() > OUTPUT_HIGH_WATER) {
          this.flush();
          if (this.socket.writableLength > OUTPUT_HIGH_WATER) {
            this.socket.pause();
            if (!(await this.waitForDrain())) break;
            continue;
          }
        }
        if (this.data) {
          const chunk = this.inbox.shift();
          if (!chunk) break;
          this.inboxBytes -= chunk.length;
          await this.dataChunk(chunk);
          continue;
        }
        // Feed the command reader one chunk at a time, only when it has no complete line left:
        // it then holds at most one partial line plus one chunk.
        let line = this.cmd.next();
        while (!line && this.inbox.length) {
          const c = this.inbox.shift()!;
          this.inboxBytes -= c.length;
          this.cmd.push(c);
          line = this.cmd.next();
        }
        if (!line) break;
        this.armCommandDeadline();
        if (line.tooLong && this.session.inSasl) {
          const res = this.session.saslLineTooLong();
          this.reply(res.replies);
          if (res.action === "close") {
            this.flush();
            this.close();
          }
          continue;
        }
        if (line.tooLong) {
          this.reply(this.errorReply("500 5.5.2 Error: line too long"));
          if (this.closeAfterFlush) {
            this.flush();
            this.close();
          }
          continue;
        }
        await this.command(line.line, line.invalidUtf8 === true);
      }
    } catch (e) {
      this.log.error({ err: e }, "session failure");
      this.send([localReply("localError", "Error: internal error, closing connection", 421)]);
      this.close();
    } finally {
      this.busy = false;
    }
    if (this.closed) return;
    // Input exhausted: flush grouped replies (RFC 2920 §3.1) and read more.
    this.flush();
    this.resumeReading();
    if (this.shuttingDown && !this.data) this.sayGoodbye();
    // The client shut down its side: everything it sent has been answered; a DATA it never
    // finished can't finish now (finish() discards it).
    else if (this.socket.readableEnded && this.inbox.length === 0) this.close();
  }

  private errorReply(reply: string): string[] {
    const res = this.session.error(reply);
    if (res.action === "close") this.closeAfterFlush = true;
    return res.replies;
  }
  private closeAfterFlush = false;

  private async command(line: string, invalidUtf8: boolean): Promise<void> {
    // A line of a SASL exchange holds credentials: never in a log line.
    const sasl = this.session.inSasl;
    let res = this.session.handle(line, { invalidUtf8 });
    const refused = sasl ? undefined : rejectFields(line, res.replies, { helo: this.session.helo, sender: this.session.tx ? (this.session.tx.sender?.address ?? "") : undefined });
    if (refused) this.log.info(refused, "NOQUEUE: reject");
    if (res.action === "auth") {
      res = this.session.authResult(await this.verifyAuth());
      if (this.closed) return;
    } else if (!sasl && res.replies[0]?.startsWith("454") && /^\s*AUTH\b/i.test(line)) {
      this.log.info({ event: "auth", result: "blocked" }, "AUTH refused: client in failed-AUTH back-off");
      this.server.deps.onAuth?.("blocked");
    }
    this.reply(res.replies);
    switch (res.action) {
      case "close":
        this.flush();
        this.close();
        return;
      case "starttls":
        this.flush();
        await this.startTls();
        return;
      case "data": {
        let writer: SpoolWriter | null = null;
        try {
          writer = await this.server.deps.spool.begin();
          if (this.closed) {
            await writer.abort();
            return;
          }
        } catch (e) {
          this.log.error({ err: (e as Error).message }, "spool unavailable");
          this.outBytes -= this.out.pop()!.length + 2; // withdraw the 354
          this.reply([smtpReplyFor(e)]);
          this.session.resetTransaction();
          return;
        }
        // Only clients that may relay (by network or by AUTH) get signatures: mail accepted from anyone (local domains,
        // <Postmaster>) must not make mxd vouch for a From: it did not check.
        const dkim = this.relayAllowed || this.session.authUser !== undefined ? this.server.deps.dkim : undefined;
        this.data = { reader: new DataReader(1000), writer, bytes: 0, received: 0, tooBig: false, startedAt: this.server.deps.clock.now(), signer: dkim && new MessageSigner(dkim, this.session.fromOwner()) };
        this.socket.setTimeout(this.dataTimeout());
        try {
          await writer.write(Buffer.from(this.session.receivedHeader(writer.id, new Date(this.server.deps.clock.now())), "latin1"));
        } catch (e) {
          this.data.diskError = e as Error;
        }
        // Bytes the client sent after DATA (it should have waited for 354) are message data.
        const rest = this.cmd.takeRest();
        if (rest.length) {
          this.inbox.unshift(rest);
          this.inboxBytes += rest.length;
        }
        this.flush();
        return;
      }
      default:
        if (this.closeAfterFlush) {
          this.flush();
          this.close();
        }
    }
  }

  /** Check session.pendingAuth: the failed-AUTH limits, then the users file. */
  private async verifyAuth(): Promise<AuthVerdict> {
    const creds = this.session.pendingAuth!;
    const auth = this.server.auth;
    const onAuth = this.server.deps.onAuth;
    // Bounded, printable: the name as typed may be anything (a password typed in the wrong field).
    const user = creds.authcid.replace(/[^\x21-\x7e]/g, "?").slice(0, 64);
    if (!auth) {
      this.log.error({ event: "auth", user }, "AUTH on a submission listener, but auth.usersFile is not set");
      onAuth?.("unavailable");
      return { ok: false, temporary: true };
    }
    // Another connection from this IP may have started the back-off meanwhile. Keyed as the
    // rate limits are (an IPv6 client by its /64): one host owns a whole /64.
    const blocked = auth.limiter.blockedFor(clientKey(this.ip));
    if (blocked > 0) {
      this.log.info({ event: "auth", result: "blocked", user }, "AUTH refused: client in failed-AUTH back-off");
      onAuth?.("blocked");
      return { ok: false, blockedForMs: blocked };
    }
    const res = await auth.authenticator.check(creds);
    if (res.ok) {
      this.log.info({ event: "auth", result: "success", user: res.user.name }, "AUTH ok");
      onAuth?.("success");
      return { ok: true, user: res.user.name, senders: res.user.senders };
    }
    if (res.reason === "unavailable") {
      this.log.error({ event: "auth", user, err: res.error }, "AUTH could not be checked");
      onAuth?.("unavailable");
      return { ok: false, temporary: true };
    }
    const f = auth.limiter.fail(clientKey(this.ip));
    onAuth?.("failure");
    this.log.info({ event: "auth", result: "failure", user, reason: res.reason, failures: f.failures, ...(f.blocked ? { blockedMs: f.forMs } : {}) }, "AUTH failed");
    return f.blocked ? { ok: false, nowBlockedForMs: f.forMs } : { ok: false };
  }

  private async dataChunk(chunk: Buffer): Promise<void> {
    const d = this.data!;
    d.received += chunk.length;
    if (!this.checkDataRate(d)) {
      this.log.info({ bytes: d.received }, "data too slow");
      this.onTimeout();
      return;
    }
    const res = d.reader.feed(chunk);
    d.bytes += res.out.length;
    if (d.bytes > this.cfg.limits.messageSize) d.tooBig = true;
    const refused = d.tooBig || d.reader.bareLineEnd || d.reader.longLine || d.diskError;
    if (refused && d.writer) {
      // Stop writing as soon as we know the message will be refused; keep reading to the end.
      await d.writer.abort();
      d.writer = null;
    } else if (d.writer && res.out.length) {
      d.signer?.write(res.out);
      try {
        await d.writer.write(res.out);
      } catch (e) {
        d.diskError = e as Error;
        await d.writer.abort();
        d.writer = null;
      }
    }
    if (!res.done) return;
    // End of data: everything after the final dot goes back to the command stream.
    this.data = undefined;
    this.socket.setTimeout(this.commandTimeout());
    this.armCommandDeadline();
    if (res.rest && res.rest.length) {
      this.inbox.unshift(res.rest);
      this.inboxBytes += res.rest.length;
    }
    await this.finishData(d);
  }

  private async finishData(d: DataState): Promise<void> {
    const tx = this.session.tx!;
    this.session.resetTransaction();
    const fail = (reply: string, why: string) => {
      this.log.info({ from: tx.sender?.address ?? "", nrcpt: tx.recipients.length, size: d.bytes, reason: why }, "message refused");
      this.reply([reply]);
    };
    if (d.tooBig) return fail("552 5.3.4 Error: message size exceeds fixed limit", "size");
    if (d.reader.bareLineEnd)
      return fail("550 5.6.11 Error: bare CR or LF in message data; lines must end with CRLF (RFC 5321 §2.3.8)", "bare line end");
    if (d.reader.longLine) return fail("554 5.6.0 Error: message line longer than 1000 octets (RFC 5321 §4.5.3.1.6)", "long line");
    if (d.diskError || !d.writer) {
      this.log.error({ err: d.diskError?.message }, "spool write failed");
      return this.reply([SPOOL_WRITE_ERROR]);
    }
    // Signed once, here, before the message is durable: every delivery sends the same signature.
    const dkim: SignOutcome | undefined = d.signer?.finish(this.server.deps.clock.now());
    try {
      const meta = await d.writer.commit(
        newMessage({
          sender: tx.sender?.address ?? "",
          recipients: tx.recipients,
          nowMs: this.server.deps.clock.now(),
          client: {
            ip: this.ip,
            port: this.port,
            helo: this.session.helo,
            tls: this.session.secure,
            relayAllowed: this.relayAllowed || this.session.authUser !== undefined,
            ...(this.session.authUser !== undefined ? { user: this.session.authUser } : {}),
          },
          params: tx.params,
          eightBit: d.reader.eightBit,
          dkim: dkim?.signed ? dkim.fields : undefined,
        }),
      );
      this.session.messages++;
      this.log.info(
        { qid: meta.id, from: meta.sender, nrcpt: meta.recipients.length, size: meta.size, tls: this.session.secure, ...(this.session.authUser !== undefined ? { user: this.session.authUser } : {}), ...dkimLogFields(dkim) },
        "message queued",
      );
      // The 250 goes out only now: message and envelope are on stable storage.
      this.reply([`250 2.0.0 Ok: queued as ${meta.id}`]);
      this.server.deps.onQueued?.(meta);
    } catch (e) {
      this.log.error({ err: (e as Error).message }, "spool commit failed");
      this.reply([smtpReplyFor(e)]);
    }
  }

  private async startTls(): Promise<void> {
    // RFC 3207 §4.2 / CVE-2011-0411: anything pipelined after STARTTLS is discarded.
    this.cmd.takeRest();
    this.inbox = [];
    this.inboxBytes = 0;
    this.upgrading = true;
    const raw = this.socket;
    const context = this.server.secureContext;
    if (!context) {
      // The certificate was removed by a reload after this session offered STARTTLS.
      this.log.warn("STARTTLS: no certificate any more, closing");
      this.upgrading = false;
      this.destroy();
      return;
    }
    raw.removeAllListeners("data");
    raw.removeAllListeners("timeout");
    raw.removeAllListeners("end");
    raw.removeAllListeners("close");
    raw.on("close", () => this.finish());
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context, SNICallback: this.server.sniCallback });
    const t = setTimeout(() => secure.destroy(), this.commandTimeout());
    await new Promise<void>((resolve) => {
      secure.once("secure", () => resolve());
      secure.once("error", (e) => {
        this.log.info({ err: e.message }, "STARTTLS handshake failed");
        resolve();
      });
      secure.once("close", () => resolve());
    });
    clearTimeout(t);
    if (secure.destroyed || this.closed) {
      this.close();
      return;
    }
    this.socket = secure;
    this.session.tlsStarted();
    this.log.debug({ protocol: secure.getProtocol(), cipher: secure.getCipher()?.name }, "TLS started");
    this.upgrading = false;
    this.attach(secure);
    if (raw.isPaused()) raw.resume();
  }

  private reply(lines: string[]): void {
    for (const l of lines) {
      this.out.push(l);
      this.outBytes += l.length + 2;
    }
  }

  private flush(): void {
    if (!this.out.length || this.closed) return;
    const text = this.out.join("\r\n") + "\r\n";
    this.out = [];
    this.outBytes = 0;
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(text);
  }

  private send(lines: string[]): void {
    this.reply(lines);
    this.flush();
  }

  shutdown(): void {
    this.shuttingDown = true;
    if (!this.busy && !this.data) this.sayGoodbye();
  }

  private sayGoodbye(): void {
    this.send([`421 4.3.2 ${this.cfg.hostname} Service shutting down, closing transmission channel`]);
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 5000).unref();
    this.finish();
  }

  destroy(): void {
    this.socket.destroy();
    this.finish();
  }

  private finished = false;
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.closed = true;
    clearTimeout(this.commandDeadline);
    this.drainWait?.();
    if (this.data?.writer) void this.data.writer.abort();
    this.data = undefined;
    this.log.info(
      { helo: this.session.helo, tls: this.session.secure, ...(this.session.authUser !== undefined ? { user: this.session.authUser } : {}), messages: this.session.messages, errors: this.session.errors, ms: this.server.deps.clock.now() - this.started },
      "connection closed",
    );
    this.onClose();
  }
}

/** The AUTH machinery from the config: the users file re-read when it changes, the limiter on the clock. */
function buildAuth(deps: SmtpServerDeps): AuthDeps | undefined {
  const { config, logger, clock } = deps;
  const file = config.auth.usersFile;
  if (!file) return undefined;
  const store = new UsersStore(file, (snap) => {
    if (snap.error) logger.error({ usersFile: file, err: snap.error }, "users file unreadable; keeping the previous users");
    else if (snap.missing) logger.warn({ usersFile: file }, "users file does not exist: nobody can authenticate until it is created (mxd user add)");
    else logger.info({ usersFile: file, users: snap.users.size, problems: snap.problems.length ? snap.problems.slice(0, 20) : undefined }, "users file loaded");
  });
  return { users: store, authenticator: new Authenticator(store), limiter: new AuthLimiter(config.auth.failures, () => clock.now()) };
}

/** The queued line's DKIM fields: which keys signed, or why the message went unsigned. */
function dkimLogFields(o: SignOutcome | undefined): Record<string, unknown> {
  if (!o) return {};
  return o.signed ? { dkim: o.keys } : { dkim: "unsigned", dkimReason: o.reason };
}

/** A duplex over `raw` whose readable side yields `first`, then whatever `raw` reads. */
function replayFirst(raw: net.Socket, first: Buffer): Duplex {
  const d = new Duplex({
    allowHalfOpen: true,
    read() {
      raw.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      raw.write(chunk, cb);
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.pause();
  if (first.length) d.push(first);
  raw.on("data", (c: Buffer) => {
    if (!d.push(c)) raw.pause();
  });
  raw.on("end", () => d.push(null));
  raw.on("close", () => d.destroy());
  return d;
}
