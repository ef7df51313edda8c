// node:net / node:tls glue for the inbound SMTP service: listeners, connection limits,
// timeouts, STARTTLS, pipelined input, and streaming DATA into the spool.
import net from "node:net";
import tls from "node:tls";
import type { Config } from "../config.js";
import { contextFor, type TlsCredentials } from "../io/tls-credentials.js";
import { sameAddress, sameListener } from "../reload-plan.js";
import { newMessage, type MessageMeta } from "../core/envelope.js";
import { ipInNetworks, parseCidr, type Cidr } from "../core/cidr.js";
import type { Clock } from "../io/clock.js";
import { rejectFields } from "./reject-log.js";
import type { Logger } from "../io/log.js";
import type { Spool, SpoolWriter } from "../spool/spool.js";
import { CommandReader, DataReader } from "./protocol.js";
import { smtpReplyFor } from "../core/errors.js";
import { admit, idleTimeout, underStress } from "./admission.js";
import { ServerSession } from "./server-session.js";

export interface SmtpServerDeps {
  config: Config;
  spool: Spool;
  logger: Logger;
  clock: Clock;
  /** The inbound certificates (io/tls-credentials.ts) when tls.cert/tls.key are configured. */
  tls?: TlsCredentials;
  /** Called after a message is durably queued (the delivery side attempts it at once). */
  onQueued?: (meta: MessageMeta) => void;
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

type ListenConfig = Config["listen"][number];

interface Listener {
  config: ListenConfig;
  server: net.Server;
  address: { host: string; port: number; tls: boolean };
}

export class SmtpServer {
  private listeners: Listener[] = [];
  private conns = new Set<Connection>();
  private perIp = new Map<string, number>();
  private nets: Cidr[];
  private tlsCreds: TlsCredentials | undefined;
  private closing = false;
  /** The configuration new connections get (reconfigure() replaces it; open sessions keep theirs). */
  private cfg: Config;

  constructor(readonly deps: SmtpServerDeps) {
    this.cfg = deps.config;
    this.nets = deps.config.relay.allowedNetworks.map((c) => parseCidr(c)!);
    this.tlsCreds = deps.tls;
  }

  get config(): Config {
    return this.cfg;
  }

  get addresses(): { host: string; port: number; tls: boolean }[] {
    return this.listeners.map((l) => l.address);
  }

  get connectionCount(): number {
    return this.conns.size;
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
    for (const l of this.cfg.listen) this.listeners.push(await this.open(l));
  }

  private async open(l: ListenConfig): Promise<Listener> {
    const srv = l.tls
      ? tls.createServer({ ...this.tlsCreds!.options, SNICallback: this.sniCallback, handshakeTimeout: 30_000, allowHalfOpen: true }, (s) => this.accept(s, true))
      : // allowHalfOpen: a client may pipeline a whole transaction and shut down its side;
        // it must still get every reply (and its message queued).
        net.createServer({ allowHalfOpen: true }, (s) => this.accept(s, false));
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
    return { config: l, server: srv, address: { host: a.address, port: a.port, tls: l.tls } };
  }

  /**
   * A reloaded configuration: new connections get its limits, relay networks, local domains and
   * certificates; open sessions keep the settings they started with and are not interrupted.
   */
  reconfigure(config: Config, creds: TlsCredentials | undefined): void {
    this.cfg = config;
    this.nets = config.relay.allowedNetworks.map((c) => parseCidr(c)!);
    this.tlsCreds = creds;
    for (const l of this.listeners) {
      l.server.maxConnections = config.limits.connections * 2;
      // The default certificate of implicit TLS listeners; SNI reads this.tlsCreds itself.
      if (l.config.tls && creds) (l.server as tls.Server).setSecureContext(creds.options);
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

  private accept(socket: net.Socket, implicitTls: boolean): void {
    const ip = socket.remoteAddress ?? "unknown";
    const { cfg: config } = this;
    const { logger } = this.deps;
    socket.on("error", () => undefined);
    if (this.closing) {
      socket.end(`421 4.3.2 ${config.hostname} Service shutting down\r\n`);
      return;
    }
    const perIp = this.perIp.get(ip) ?? 0;
    const relayAllowed = this.relayAllowed(ip);
    const admission = admit({ total: this.conns.size, perClient: perIp, relayAllowed, limits: config.limits });
    if (!admission.accept) {
      logger.warn({ client: ip, total: this.conns.size, perIp, limit: admission.reason }, "connection limit reached");
      socket.end(`421 4.7.0 ${config.hostname} Error: too many connections, try again later\r\n`);
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    this.perIp.set(ip, perIp + 1);
    const conn = new Connection(this, socket, ip, relayAllowed, implicitTls);
    this.conns.add(conn);
    conn.onClose = () => {
      this.conns.delete(conn);
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, n);
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
    for (const l of this.listeners) l.server.close();
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

  constructor(private readonly server: SmtpServer, private socket: net.Socket, private readonly ip: string, private readonly relayAllowed: boolean, implicitTls: boolean) {
    this.cfg = server.config;
    this.started = server.deps.clock.now();
    this.log = server.deps.logger.child({ client: ip, port: socket.remotePort });
    this.session = new ServerSession({
      config: this.cfg,
      clientIp: ip,
      relayAllowed,
      tlsAvailable: !implicitTls && !!server.secureContext,
      secure: implicitTls,
    });
  }

  start(): void {
    this.attach(this.socket);
    this.send([this.session.greeting()]);
    this.armCommandDeadline();
  }

  /**
   * A complete command must arrive within limits.commandTimeout of the previous one. The
   * socket's idle timer alone is reset by every byte, so a client trickling one byte at a time
   * (slowloris) would hold its connection slot forever (cf. Postfix smtpd_per_record_deadline).
   */
  private commandDeadline: NodeJS.Timeout | undefined;
  private armCommandDeadline(): void {
    clearTimeout(this.commandDeadline);
    if (this.closed) return;
    this.commandDeadline = setTimeout(() => {
      if (!this.data && !this.busy && !this.upgrading) this.onTimeout();
      else this.armCommandDeadline();
    }, this.commandTimeout());
    this.commandDeadline.unref();
  }

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
    this.send([`421 4.4.2 ${this.cfg.hostname} Error: timeout exceeded`]);
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
      this.send(["421 4.3.0 Error: internal error, closing connection"]);
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
    this.session.errors++;
    if (this.session.errors >= this.cfg.limits.maxErrors) {
      this.closeAfterFlush = true;
      return [reply, `421 4.7.0 ${this.cfg.hostname} Error: too many errors`];
    }
    return [reply];
  }
  private closeAfterFlush = false;

  private async command(line: string, invalidUtf8: boolean): Promise<void> {
    const res = this.session.handle(line, { invalidUtf8 });
    const refused = rejectFields(line, res.replies, { helo: this.session.helo, sender: this.session.tx ? (this.session.tx.sender?.address ?? "") : undefined });
    if (refused) this.log.info(refused, "NOQUEUE: reject");
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
        this.data = { reader: new DataReader(1000), writer, bytes: 0, received: 0, tooBig: false, startedAt: this.server.deps.clock.now() };
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
      return this.reply(["451 4.3.0 Error: queue file write error, try again later"]);
    }
    try {
      const meta = await d.writer.commit(
        newMessage({
          sender: tx.sender?.address ?? "",
          recipients: tx.recipients,
          nowMs: this.server.deps.clock.now(),
          client: { ip: this.ip, port: this.socket.remotePort, helo: this.session.helo, tls: this.session.secure, relayAllowed: this.relayAllowed },
          params: tx.params,
          eightBit: d.reader.eightBit,
        }),
      );
      this.session.messages++;
      this.log.info(
        { qid: meta.id, from: meta.sender, nrcpt: meta.recipients.length, size: meta.size, tls: this.session.secure },
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
      { helo: this.session.helo, tls: this.session.secure, messages: this.session.messages, errors: this.session.errors, ms: this.server.deps.clock.now() - this.started },
      "connection closed",
    );
    this.onClose();
  }
}
