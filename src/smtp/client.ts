// Our outbound SMTP client: one session over a socket the caller connected (RFC 5321, with
// RFC 3207 STARTTLS, RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531
// SMTPUTF8, RFC 3461 DSN). It reports the server's replies as data; it throws SessionError
// only when the conversation itself broke (timeout, connection lost, garbage from the server).
// It never touches node:net / node:tls directly: the TLS upgrade is injected.
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Readable } from "node:stream";
import { REPLY_LIMITS, ReplyAssembler, ReplyParseError, classifyReply, decodeReplyLine, formatReply, makeReply, type SmtpReply } from "../core/smtp-reply.js";
import { encodeXtext, notifyParam, orcptParam } from "../core/esmtp-params.js";
import { DotStuffer } from "./protocol.js";
import { waitForEvent } from "../io/wait-event.js";
import { MxdError } from "../core/errors.js";

/** Client timeouts in ms, RFC 5321 §4.5.3.2 (from delivery.timeouts). */
export interface ClientTimeouts {
  greeting: number;
  ehlo: number;
  mail: number;
  rcpt: number;
  data: number;
  dataBlock: number;
  dataEnd: number;
  tls: number;
}

export type SessionPhase =
  | "greeting" | "ehlo" | "helo" | "starttls" | "tls" | "mail" | "rcpt" | "data" | "body" | "dataEnd" | "rset" | "quit";

export type SessionErrorKind = "timeout" | "closed" | "protocol" | "local";

/** What the RCPT phase decided before a transaction broke (same order as the request). */
export interface RcptOutcome {
  replies: SmtpReply[];
  remote: boolean[];
  accepted: boolean[];
}

/**
 * The conversation broke. `dotSent`: the final "." was handed to the socket, so the message may
 * have been delivered. `reply`: the server's own reply that ended the session (a 421).
 * `rcpt`: set when the break came after the RCPT replies were known.
 */
export class SessionError extends MxdError {
  rcpt?: RcptOutcome;
  /**
   * A 421 in the middle of a pipelined group: the RCPT replies read before it, by recipient
   * index (absent = not answered). A 5xx among them is that recipient's answer for good.
   */
  refusedBefore?: (SmtpReply | undefined)[];
  constructor(
    readonly kind: SessionErrorKind,
    readonly phase: SessionPhase,
    message: string,
    readonly dotSent = false,
    readonly reply?: SmtpReply,
  ) {
    super("MXD_SMTP_SESSION", message);
    this.name = "SessionError";
  }
}

/** Service extensions from the EHLO reply (RFC 5321 §4.1.1.1). */
export interface Extensions {
  /** False when we fell back to HELO. */
  esmtp: boolean;
  pipelining: boolean;
  starttls: boolean;
  eightBitMime: boolean;
  smtputf8: boolean;
  dsn: boolean;
  enhancedStatusCodes: boolean;
  /** RFC 1870: undefined = SIZE not offered; 0 = offered without a fixed limit. */
  size?: number;
  /** Every keyword (upper case) with its parameters. */
  keywords: Map<string, string>;
}

export function parseExtensions(reply: SmtpReply | undefined): Extensions {
  const keywords = new Map<string, string>();
  // The first line is the server's domain and greeting; each following line is one keyword.
  for (const line of reply ? reply.lines.slice(1) : []) {
    const [kw, ...params] = line.trim().split(/\s+/);
    if (kw) keywords.set(kw.toUpperCase(), params.join(" "));
  }
  const sizeParam = keywords.get("SIZE");
  const sizeNum = sizeParam !== undefined && /^\d+$/.test(sizeParam) ? Number(sizeParam) : 0;
  return {
    esmtp: reply !== undefined,
    pipelining: keywords.has("PIPELINING"),
    starttls: keywords.has("STARTTLS"),
    eightBitMime: keywords.has("8BITMIME"),
    smtputf8: keywords.has("SMTPUTF8"),
    dsn: keywords.has("DSN"),
    enhancedStatusCodes: keywords.has("ENHANCEDSTATUSCODES"),
    ...(sizeParam !== undefined ? { size: sizeNum } : {}),
    keywords,
  };
}

export interface TlsInfo {
  version: string;
  cipher: string;
  /** The certificate passed the policy's check (PKIX for the MX name, or DANE); absent: false. */
  verified?: boolean;
  /** Why it did not (or what was checked). */
  verifyReason?: string;
}

/** The TLS policy's demands on one session (delivery/tls-policy.ts decides them). */
export interface SessionTlsPolicy {
  /** No STARTTLS offered, or STARTTLS refused: the session is given up (no plain text). */
  require: boolean;
  /** Judges the peer after the handshake; its verdict is recorded in TlsInfo.verified. */
  verify?: (secure: TLSSocket) => { ok: boolean; reason: string };
  /** A failed verify ends the session before anything is sent. */
  enforce: boolean;
}

export interface SessionOptions {
  /** Our name for EHLO/HELO (config.hostname). */
  hostname: string;
  /** The server's name, for SNI and diagnostics. */
  serverName: string;
  timeouts: ClientTimeouts;
  /** Attempt STARTTLS when the server offers it. */
  startTls: boolean;
  upgradeTls: (socket: Socket, opts: { servername?: string; timeoutMs: number }) => Promise<TLSSocket>;
  /** Unset: opportunistic (use STARTTLS when offered, accept any certificate). */
  tlsPolicy?: SessionTlsPolicy;
}

export type OpenResult =
  | { ok: true; session: SmtpClientSession }
  /** The server refused to talk: non-220 greeting, or EHLO and HELO refused. */
  | { ok: false; reply: SmtpReply; phase: SessionPhase; tlsFailure?: undefined }
  /** The TLS policy was not met (no STARTTLS, STARTTLS refused, certificate not accepted); nothing was sent. */
  | { ok: false; tlsFailure: string; phase: SessionPhase; reply?: SmtpReply; /** The handshake's outcome when one took place (a refused certificate). */ tls?: TlsInfo };

export interface TransactionRecipient {
  address: string;
  notify?: string[];
  orcpt?: string;
}

/** What MAIL FROM tells the next hop about the message (a delivery request carries the same). */
export interface MessageParams {
  size: number;
  /** The message has 8-bit octets. */
  eightBit: boolean;
  /** The envelope or headers need SMTPUTF8. */
  smtputf8: boolean;
  /** RFC 3461 parameters to pass on when the remote offers DSN. */
  ret?: "FULL" | "HDRS";
  envid?: string;
  /** RFC 4954 §5: the AUTH= mailbox ("" = <>) to pass on when the server offers AUTH. */
  auth?: string;
}

export interface TransactionRequest extends MessageParams {
  /** "" = null sender. */
  sender: string;
  recipients: TransactionRecipient[];
  /** Opens the message bytes; called only once the server has said 354 to DATA. */
  body: () => Readable;
}

export interface TransactionResult {
  /** Per recipient (same order as the request): the reply that decides its fate. */
  replies: SmtpReply[];
  /** Per recipient: true when the reply came from the server, false for a local decision. */
  remote: boolean[];
  /** The transaction was refused before any recipient was accepted (MAIL refused, or every RCPT refused). */
  noneAccepted: boolean;
  /** The reply to MAIL FROM, when it was sent. */
  mail?: SmtpReply;
  /** The final reply after the message data, when it was sent. */
  final?: SmtpReply;
}

/**
 * Octets of complete replies kept while nobody asked for them (PIPELINING answers, or a server
 * that floods an idle pooled connection). Our largest pipelined batch is MAIL plus one RCPT per
 * recipient; past this the server is hostile or broken.
 */
const MAX_QUEUED_OCTETS = 256 * 1024;
const QUIT_TIMEOUT_MS = 5_000;

/**
 * Receives socket data, splits it into lines and assembles replies. Replies arriving before
 * anyone asks are queued (PIPELINING, or an unsolicited 421 on an idle connection).
 */
class ReplyReader {
  private buf: Buffer = Buffer.alloc(0);
  private asm = new ReplyAssembler();
  private queue: { reply: SmtpReply; octets: number }[] = [];
  /** Octets of the replies in `queue`, and of the reply being assembled. */
  private queuedOctets = 0;
  private replyOctets = 0;
  private failure: SessionError | undefined;
  private waiter: { resolve: (r: SmtpReply) => void; reject: (e: SessionError) => void; timer: NodeJS.Timeout; phase: SessionPhase } | undefined;
  private socket: Socket | undefined;

  private readonly onData = (chunk: Buffer) => this.data(chunk);
  private readonly onEnd = () => this.fail(new SessionError("closed", this.waiter?.phase ?? "quit", "connection closed by server"));
  private readonly onError = (e: Error) => this.fail(new SessionError("closed", this.waiter?.phase ?? "quit", `connection error: ${e.message}`));

  attach(socket: Socket): void {
    this.socket = socket;
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onError);
  }

  /**
   * Stop reading from the current socket and forget anything buffered: after a STARTTLS 220
   * whatever arrived in clear text must not be taken as a reply inside TLS (CVE-2011-0411,
   * RFC 3207 §4.2 "the client MUST discard any knowledge obtained from the server").
   */
  detach(): void {
    const s = this.socket;
    if (!s) return;
    s.off("data", this.onData);
    s.off("end", this.onEnd);
    s.off("close", this.onEnd);
    s.off("error", this.onError);
    this.socket = undefined;
    this.buf = Buffer.alloc(0);
    this.asm = new ReplyAssembler();
    this.queue = [];
    this.queuedOctets = 0;
    this.replyOctets = 0;
  }

  get failed(): SessionError | undefined {
    return this.failure;
  }

  get hasQueued(): boolean {
    return this.queue.length > 0 || this.buf.length > 0 || this.asm.partial;
  }

  /** A complete reply is waiting (e.g. an early reply while we are still sending data). */
  get hasReply(): boolean {
    return this.queue.length > 0;
  }

  next(timeoutMs: number, phase: SessionPhase, opts: { unref?: boolean } = {}): Promise<SmtpReply> {
    const q = this.queue.shift();
    if (q) {
      this.queuedOctets -= q.octets;
      return Promise.resolve(q.reply);
    }
    if (this.failure) return Promise.reject(new SessionError(this.failure.kind, phase, this.failure.message));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        const e = new SessionError("timeout", phase, `timeout after ${timeoutMs} ms waiting for the reply (${phase})`);
        this.failure = e;
        reject(e);
      }, timeoutMs);
      if (opts.unref) timer.unref();
      this.waiter = { resolve, reject, timer, phase };
    });
  }

  private data(chunk: Buffer): void {
    // Memory stays bounded whatever the server sends: an unfinished line is kept only up to
    // the line limit, a reply only up to its limits (ReplyAssembler), queued replies up to
    // MAX_QUEUED_OCTETS. Past any of them the host is broken: protocol error, connection dropped.
    const maxLine = REPLY_LIMITS.maxLineOctets;
    if (this.failure) return; // nothing more is read from a session that broke
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl < 0) break;
      const end = nl > 0 && this.buf[nl - 1] === 13 ? nl - 1 : nl;
      if (end > maxLine) return this.protocolError(`reply line longer than ${maxLine} octets`);
      const line = decodeReplyLine(this.buf.subarray(0, end));
      const octets = nl + 1;
      this.buf = this.buf.subarray(nl + 1);
      let reply: SmtpReply | undefined;
      try {
        reply = this.asm.push(line, octets);
      } catch (e) {
        return this.protocolError((e as ReplyParseError).message);
      }
      this.replyOctets += octets;
      if (reply) {
        const size = this.replyOctets;
        this.replyOctets = 0;
        if (!this.waiter && this.queuedOctets + size > MAX_QUEUED_OCTETS) return this.protocolError(`more than ${MAX_QUEUED_OCTETS} octets of replies nobody asked for`);
        this.deliver(reply, size);
      }
    }
    if (this.buf.length > maxLine) this.protocolError(`reply line longer than ${maxLine} octets`);
  }

  private protocolError(message: string): void {
    this.buf = Buffer.alloc(0);
    this.fail(new SessionError("protocol", this.waiter?.phase ?? "quit", message));
  }

  private deliver(r: SmtpReply, octets: number): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(r);
    } else {
      this.queue.push({ reply: r, octets });
      this.queuedOctets += octets;
    }
  }

  private fail(e: SessionError): void {
    if (!this.failure) this.failure = e;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(new SessionError(e.kind, w.phase, e.message));
    }
    if (e.kind === "protocol") this.socket?.destroy();
  }
}

/** No CR, LF or other controls in a path we put on a command line (command injection). */
function safePath(addr: string): boolean {
  return !/[\x00-\x1f\x7f<>]/.test(addr) && addr.length <= 254;
}

/** Last line of defence: nothing we send as a command may carry CR, LF or NUL. */
function assertCommand(line: string, phase: SessionPhase): void {
  if (/[\r\n\0]/.test(line)) throw new SessionError("local", phase, `refusing to send a command containing CR, LF or NUL: ${JSON.stringify(line.slice(0, 80))}`);
}

/** The policy's verify, never throwing: a verifier that fails counts as "not verified". */
function safeVerdict(verify: NonNullable<SessionTlsPolicy["verify"]>, secure: TLSSocket): { ok: boolean; reason: string } {
  try {
    return verify(secure);
  } catch (e) {
    return { ok: false, reason: `certificate check failed: ${(e as Error).message}` };
  }
}

const NON_ASCII = /[^\x00-\x7f]/;

/** Reply class as a digit: 2 positive, 3 intermediate, 4 transient, 5 permanent. */
const cls = (r: SmtpReply): number => Math.floor(r.code / 100);

export class SmtpClientSession {
  private socket: Socket;
  /** The TCP socket under TLS (same as socket before STARTTLS). */
  private readonly raw: Socket;
  private readonly reader = new ReplyReader();
  private ext: Extensions = parseExtensions(undefined);
  private tlsInfo: TlsInfo | undefined;
  private ended = false;
  /** The server said 421: it is closing the channel; no further command may be sent. */
  private closing = false;
  private idle = false;
  greeting: SmtpReply | undefined;
  /** Completed transactions on this connection (for connection reuse limits). */
  transactions = 0;

  private constructor(socket: Socket, private readonly opts: SessionOptions) {
    this.socket = socket;
    this.raw = socket;
    // Keep an error listener on the raw socket for its whole life, including while TLS wraps it.
    socket.on("error", () => {});
    this.reader.attach(socket);
  }

  /**
   * Greeting, EHLO (HELO fallback), STARTTLS when offered and enabled, EHLO again.
   * Throws SessionError on a broken conversation and TlsHandshakeError (from upgradeTls) when
   * the handshake fails; the socket is destroyed in both cases.
   */
  static async open(socket: Socket, opts: SessionOptions): Promise<OpenResult> {
    const s = new SmtpClientSession(socket, opts);
    try {
      return await s.handshake();
    } catch (e) {
      s.destroy();
      throw e;
    }
  }

  get extensions(): Extensions {
    return this.ext;
  }

  get tls(): TlsInfo | undefined {
    return this.tlsInfo;
  }

  /** Still connected and in a clean state (nothing unsolicited pending). */
  get usable(): boolean {
    return !this.ended && !this.closing && !this.reader.failed && !this.reader.hasQueued && !this.socket.destroyed;
  }

  private async handshake(): Promise<OpenResult> {
    const t = this.opts.timeouts;
    // RFC 5321 §3.1: a 554 (or any non-220) greeting means no service; we still say QUIT.
    const greeting = this.seen(await this.reader.next(t.greeting, "greeting"));
    this.greeting = greeting;
    if (greeting.code !== 220) {
      await this.quit();
      return { ok: false, reply: greeting, phase: "greeting" };
    }
    const hello = await this.hello();
    if (!hello.ok) return hello;
    const policy = this.opts.tlsPolicy;
    if (this.opts.startTls && this.ext.starttls) {
      const r = await this.command("STARTTLS", t.ehlo, "starttls");
      if (r.code === 220) {
        this.reader.detach();
        const secure = await this.opts.upgradeTls(this.socket, { servername: this.opts.serverName, timeoutMs: t.tls });
        this.socket = secure;
        secure.on("error", () => {});
        this.reader.attach(secure);
        const cipher = secure.getCipher();
        const verdict = policy?.verify ? safeVerdict(policy.verify, secure) : undefined;
        this.tlsInfo = {
          version: secure.getProtocol() ?? "unknown",
          cipher: cipher?.standardName ?? cipher?.name ?? "unknown",
          verified: verdict?.ok === true,
          ...(verdict ? { verifyReason: verdict.reason } : {}),
        };
        if (policy?.enforce && verdict && !verdict.ok) {
          // RFC 8461 §5 / RFC 7672 §2.2: an unauthenticated peer gets nothing, not even EHLO.
          await this.quit();
          return { ok: false, tlsFailure: `certificate not accepted: ${verdict.reason}`, phase: "tls", tls: this.tlsInfo };
        }
        // RFC 3207 §4.2: discard what we learned and say EHLO again.
        this.ext = parseExtensions(undefined);
        const again = await this.hello();
        if (!again.ok) return again;
      } else if (r.code === 421) {
        await this.quit();
        return { ok: false, reply: r, phase: "starttls" };
      } else if (policy?.require) {
        // A 454 (or any refusal) where TLS is required: a stripped or broken STARTTLS must not
        // become a plain-text delivery (downgrade, RFC 3207 §6).
        await this.quit();
        return { ok: false, tlsFailure: `STARTTLS refused: ${formatReply(r)}`, reply: r, phase: "starttls" };
      }
      // Any other refusal: opportunistic TLS (Postfix level "may") carries on in clear text.
    } else if (policy?.require) {
      await this.quit();
      return { ok: false, tlsFailure: this.ext.esmtp ? "TLS is required, but the host did not offer STARTTLS" : "TLS is required, but the host does not speak ESMTP (no STARTTLS)", phase: "starttls" };
    }
    return { ok: true, session: this };
  }

  private async hello(): Promise<OpenResult> {
    const t = this.opts.timeouts;
    const ehlo = await this.command(`EHLO ${this.opts.hostname}`, t.ehlo, "ehlo");
    if (ehlo.code === 250) {
      this.ext = parseExtensions(ehlo);
      return { ok: true, session: this };
    }
    // RFC 5321 §3.2: a server that does not know EHLO answers 5xx (500/502); fall back to HELO.
    if (classifyReply(ehlo.code) === "permanent" && ehlo.code !== 554 && ehlo.code !== 521) {
      const helo = await this.command(`HELO ${this.opts.hostname}`, t.ehlo, "helo");
      if (helo.code === 250) {
        this.ext = parseExtensions(undefined);
        return { ok: true, session: this };
      }
      await this.quit();
      return { ok: false, reply: helo, phase: "helo" };
    }
    await this.quit();
    return { ok: false, reply: ehlo, phase: "ehlo" };
  }

  private write(data: string | Uint8Array): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(data);
  }

  private async command(line: string, timeoutMs: number, phase: SessionPhase, opts: { unref?: boolean } = {}): Promise<SmtpReply> {
    assertCommand(line, phase);
    if (this.reader.failed) throw new SessionError(this.reader.failed.kind, phase, this.reader.failed.message);
    this.write(line + "\r\n");
    return this.seen(await this.reader.next(timeoutMs, phase, opts));
  }

  /** Notes a 421 (RFC 5321 §3.8: the server is closing the channel). */
  private seen(r: SmtpReply): SmtpReply {
    if (r.code === 421) this.closing = true;
    return r;
  }

  /**
   * A 421 in the middle of a transaction ends the session: no further command is sent, the
   * connection is dropped, and the 421 is what the caller reports.
   */
  private ended421(r: SmtpReply, phase: SessionPhase): SessionError {
    this.destroy();
    return new SessionError("closed", phase, `server closed the session: ${formatReply(r)}`, false, r);
  }

  /** A reply of a class that makes no sense at this point (e.g. 354 to MAIL, 250 to DATA). */
  private unexpected(r: SmtpReply, phase: SessionPhase, dotSent = false): SessionError {
    this.destroy();
    return new SessionError("protocol", phase, `unexpected reply to ${phase.toUpperCase()}: ${formatReply(r)}`, dotSent);
  }

  /**
   * One mail transaction. Replies are data: a refused MAIL/RCPT/DATA is reported per recipient.
   * Local refusals (SIZE over the server's limit, SMTPUTF8 not offered) send nothing.
   * Throws SessionError when the conversation breaks, including a 421 (the server closes).
   */
  async send(req: TransactionRequest): Promise<TransactionResult> {
    const n = req.recipients.length;
    const t = this.opts.timeouts;
    const host = this.opts.serverName;
    const local = (r: SmtpReply): TransactionResult => ({ replies: Array(n).fill(r), remote: Array(n).fill(false), noneAccepted: true });

    // RFC 6531 §3.4: without SMTPUTF8 at the server the message cannot go (no downgrade here).
    // A non-ASCII address needs it whatever the request says: it must never go out raw.
    const utf8 = req.smtputf8 || NON_ASCII.test(req.sender) || req.recipients.some((r) => NON_ASCII.test(r.address));
    if (utf8 && !this.ext.smtputf8) {
      return local(makeReply(553, "5.6.7", `SMTPUTF8 is required, but was not offered by host ${host}`));
    }
    // RFC 1870 §6.1: don't send what the server said it will refuse.
    if (this.ext.size !== undefined && this.ext.size > 0 && req.size > this.ext.size) {
      return local(makeReply(552, "5.3.4", `message size ${req.size} exceeds size limit ${this.ext.size} of host ${host}`));
    }
    if (!safePath(req.sender)) return local(makeReply(553, "5.1.7", "invalid sender address"));

    let mailCmd = `MAIL FROM:<${req.sender}>`;
    if (this.ext.size !== undefined) mailCmd += ` SIZE=${req.size}`;
    // RFC 6152 §3: declare 8-bit bodies when we may. When the server lacks 8BITMIME we send the
    // octets anyway, undeclared, as Postfix/Exim/Sendmail do in practice: nearly every server
    // passes 8-bit data, and a MIME downgrade would alter signed (DKIM) content.
    if ((req.eightBit || utf8) && this.ext.eightBitMime) mailCmd += " BODY=8BITMIME";
    if (utf8) mailCmd += " SMTPUTF8";
    if (this.ext.dsn) {
      // RFC 3461 §4.3, §4.4: only to a server that offers DSN.
      if (req.ret) mailCmd += ` RET=${req.ret}`;
      if (req.envid) mailCmd += ` ENVID=${encodeXtext(req.envid)}`;
    }
    // RFC 4954 §5: pass the AUTH= value on, as received (untrusted values became <>), but
    // only to a server that offers AUTH.
    if (req.auth !== undefined && this.ext.keywords.has("AUTH")) mailCmd += ` AUTH=${req.auth === "" ? "<>" : encodeXtext(req.auth)}`;

    const rcptCmds: (string | undefined)[] = req.recipients.map((r) => {
      if (!safePath(r.address) || r.address === "") return undefined;
      let c = `RCPT TO:<${r.address}>`;
      if (this.ext.dsn) {
        const notify = r.notify ? notifyParam(r.notify) : undefined;
        if (notify) c += ` NOTIFY=${notify}`;
        if (r.orcpt) c += ` ORCPT=${orcptParam(r.orcpt)}`;
      }
      return c;
    });
    const badRcpt = makeReply(553, "5.1.3", "invalid recipient address");
    assertCommand(mailCmd, "mail");
    for (const c of rcptCmds) if (c !== undefined) assertCommand(c, "rcpt");

    const replies: SmtpReply[] = Array(n);
    const remote: boolean[] = Array(n).fill(true);
    // A reply to MAIL or RCPT: 2xx accepted (RFC 5321 §4.2.5; any 2xx, as Postfix), 4xx/5xx
    // refused, 421 ends the session, anything else (3xx) is a protocol error.
    const check = (r: SmtpReply, phase: SessionPhase): SmtpReply => {
      if (r.code === 421) throw this.ended421(r, phase);
      if (cls(r) === 3) throw this.unexpected(r, phase);
      return r;
    };
    let mail: SmtpReply;
    /** The reply to DATA when it went in the same group as MAIL and RCPT. */
    let pipelinedData: SmtpReply | undefined;
    if (this.ext.pipelining) {
      // RFC 2920 §3.1: MAIL, every RCPT and DATA (the last command of a group) in one write,
      // then every reply in order — one round trip less per transaction, as Postfix does. DATA
      // goes only when there is a recipient to send: its reply then tells whether the server
      // took any (354) or none (503/554).
      const cmds = [mailCmd, ...rcptCmds.filter((c): c is string => c !== undefined)];
      const withData = cmds.length > 1;
      const batch = (withData ? [...cmds, "DATA"] : cmds).join("\r\n") + "\r\n";
      if (this.reader.failed) throw new SessionError(this.reader.failed.kind, "mail", this.reader.failed.message);
      this.write(batch);
      mail = check(await this.reader.next(t.mail, "mail"), "mail");
      for (let i = 0; i < n; i++) {
        if (rcptCmds[i] === undefined) {
          replies[i] = badRcpt;
          remote[i] = false;
        } else {
          try {
            replies[i] = check(await this.reader.next(t.rcpt, "rcpt"), "rcpt");
          } catch (e) {
            // A 421 after some RCPT replies (Postfix at its error limit): the refusals read so far stay theirs.
            if (e instanceof SessionError && e.reply && cls(mail) === 2) e.refusedBefore = Array.from({ length: n }, (_, k) => (k < i && remote[k] ? replies[k] : undefined));
            throw e;
          }
        }
      }
      if (cls(mail) !== 2) for (let i = 0; i < n; i++) if (remote[i]) replies[i] = mail;
      if (withData) {
        pipelinedData = this.seen(await this.reader.next(t.data, "data"));
        const anyAccepted = replies.some((r, i) => remote[i]! && cls(mail) === 2 && cls(r) === 2);
        if (!anyAccepted && cls(pipelinedData) === 3) {
          // A server that says 354 with no recipient taken (RFC 2920 §3.1 lets it): end the
          // empty data at once; its reply does not matter, nothing can be delivered.
          this.write(".\r\n");
          this.seen(await this.reader.next(t.dataEnd, "dataEnd"));
        }
        if (pipelinedData.code === 421) {
          // The server closes (Postfix says so once a client reaches smtpd_hard_error_limit:
          // every RCPT refused, then 421 to the DATA behind them). With nobody accepted, the
          // RCPT replies are the transaction's outcome, as they are without DATA in the group:
          // a 550 stays permanent instead of becoming the 421's retry.
          if (!anyAccepted) {
            this.destroy();
            return { replies, remote, noneAccepted: true, mail };
          }
          throw this.ended421(pipelinedData, "data");
        }
      }
    } else {
      mail = check(await this.command(mailCmd, t.mail, "mail"), "mail");
      for (let i = 0; i < n; i++) {
        if (cls(mail) !== 2) replies[i] = mail;
        else if (rcptCmds[i] === undefined) {
          replies[i] = badRcpt;
          remote[i] = false;
        } else replies[i] = check(await this.command(rcptCmds[i]!, t.rcpt, "rcpt"), "rcpt");
      }
    }

    const accepted = replies.map((r, i) => remote[i]! && cls(mail) === 2 && cls(r) === 2);
    if (!accepted.some(Boolean)) {
      await this.reset();
      return { replies, remote, noneAccepted: true, mail };
    }

    const rcpt: RcptOutcome = { replies: [...replies], remote, accepted };
    try {
      const data = pipelinedData ?? (await this.command("DATA", t.data, "data"));
      if (data.code === 421) throw this.ended421(data, "data");
      if (cls(data) === 2) throw this.unexpected(data, "data");
      if (cls(data) !== 3) {
        for (let i = 0; i < n; i++) if (accepted[i]) replies[i] = data;
        await this.reset();
        return { replies, remote, noneAccepted: false, mail };
      }
      const early = await this.sendBody(req.body);
      if (early) {
        // The server answered before our final dot (RFC 5321 §4.1.1.4 does not allow it, but a
        // refusal is a refusal): its verdict applies; the connection is unusable now.
        this.destroy();
        if (cls(early) === 2 || cls(early) === 3) throw this.unexpected(early, "body");
        for (let i = 0; i < n; i++) if (accepted[i]) replies[i] = early;
        return { replies, remote, noneAccepted: false, mail, final: early };
      }
      let final: SmtpReply;
      try {
        final = this.seen(await this.reader.next(t.dataEnd, "dataEnd"));
      } catch (e) {
        const se = e as SessionError;
        throw new SessionError(se.kind, "dataEnd", se.message, true);
      }
      if (cls(final) === 3) throw this.unexpected(final, "dataEnd", true);
      this.transactions++;
      for (let i = 0; i < n; i++) if (accepted[i]) replies[i] = final;
      return { replies, remote, noneAccepted: false, mail, final };
    } catch (e) {
      if (e instanceof SessionError) e.rcpt = rcpt;
      throw e;
    }
  }

  /**
   * Stream the body, honouring back-pressure; each blocked write waits at most dataBlock ms.
   * Returns a reply the server sent before the end of data (then no final dot was sent).
   * Any failure once the final dot was handed to the socket is reported with dotSent.
   */
  private async sendBody(open: () => Readable): Promise<SmtpReply | undefined> {
    const stuffer = new DotStuffer();
    let body: Readable | undefined;
    // The last chunk is held back and written with the final dot: a small message goes out in
    // one write (one syscall, one segment) instead of two.
    let held: Uint8Array | undefined;
    try {
      body = open();
      for await (const chunk of body) {
        const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : (chunk as Uint8Array);
        if (this.reader.hasReply) return this.earlyReply(body);
        if (this.reader.failed) throw new SessionError(this.reader.failed.kind, "body", this.reader.failed.message);
        const out = stuffer.push(buf);
        if (held && !this.write(held)) await this.drain();
        held = out;
      }
    } catch (e) {
      // Never finish the DATA with a dot after a read error: that would deliver a truncated
      // message. Drop the connection instead; the server discards the transaction.
      if (this.reader.hasReply) return this.earlyReply(body);
      this.destroy();
      body?.destroy();
      if (e instanceof SessionError) throw e;
      throw new SessionError("local", "body", `reading the message failed: ${(e as Error).message}`);
    }
    if (this.reader.hasReply) return this.earlyReply(body);
    if (this.reader.failed || this.socket.destroyed) {
      this.destroy();
      throw new SessionError(this.reader.failed?.kind ?? "closed", "body", this.reader.failed?.message ?? "connection closed while sending data");
    }
    // From here on the server may get the whole message: any failure is "after the dot".
    try {
      const end = stuffer.end();
      if (!this.write(held?.length ? Buffer.concat([held, end]) : end)) await this.drain();
    } catch (e) {
      const se = e as SessionError;
      throw new SessionError(se.kind, "dataEnd", se.message, true);
    }
    return undefined;
  }

  private earlyReply(body: Readable | undefined): Promise<SmtpReply> {
    body?.destroy();
    return this.reader.next(0, "body");
  }

  private drain(): Promise<void> {
    const socket = this.socket;
    if (socket.destroyed) return Promise.reject(new SessionError("closed", "body", "connection closed while sending data"));
    return waitForEvent(socket, "drain", {
      timeoutMs: this.opts.timeouts.dataBlock,
      timeout: () => new SessionError("timeout", "body", `timeout after ${this.opts.timeouts.dataBlock} ms sending a data block`),
      fail: { close: () => new SessionError("closed", "body", "connection closed while sending data") },
    });
  }

  /** RSET (RFC 5321 §4.1.1.5). Returns true when the session is clean for a new transaction. */
  async reset(): Promise<boolean> {
    if (!this.usableForCommand()) return false;
    try {
      const r = await this.command("RSET", this.opts.timeouts.mail, "rset");
      if (r.code === 250) return true;
    } catch {
      // fall through
    }
    this.destroy();
    return false;
  }

  /** QUIT politely (bounded wait), then close. Never throws. */
  async quit(): Promise<void> {
    if (this.usableForCommand()) {
      try {
        // An idle pooled connection being retired must not hold the process for the QUIT reply.
        await this.command("QUIT", Math.min(this.opts.timeouts.ehlo, QUIT_TIMEOUT_MS), "quit", { unref: this.idle });
      } catch {
        // the server may close first; nothing to do
      }
    }
    this.ended = true;
    this.socket.end();
    this.destroy();
  }

  /** An idle pooled connection must not keep the process alive; an active one must. */
  setIdle(idle: boolean): void {
    this.idle = idle;
    for (const s of new Set([this.socket, this.raw])) {
      if (idle) s.unref();
      else s.ref();
    }
  }

  destroy(): void {
    this.ended = true;
    this.socket.destroy();
    this.raw.destroy();
  }

  private usableForCommand(): boolean {
    return !this.ended && !this.closing && !this.reader.failed && !this.socket.destroyed;
  }
}
