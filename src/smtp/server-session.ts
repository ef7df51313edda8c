// Inbound SMTP state machine (RFC 5321, with ESMTP extensions PIPELINING, SIZE, 8BITMIME,
// SMTPUTF8, DSN, ENHANCEDSTATUSCODES, STARTTLS, AUTH). Takes command lines, returns replies and
// an action for the socket layer; no sockets, no files here. AUTH: the SASL exchange runs here
// (smtp/sasl.ts); checking the password is asynchronous, so the session hands the credentials
// out with the action "auth" and takes the verdict back in authResult().
import type { Config } from "../config.js";
import { newRecipient, type EsmtpParams, type RecipientState } from "../core/envelope.js";
import { parseMailbox, parsePath, type Mailbox } from "../core/address.js";
import { decodeXtext, parseEnvid, parseNotify, parseOrcpt } from "../core/esmtp-params.js";
import { isLocalDomain, localMailbox } from "../core/local-domains.js";
import { senderAllowed } from "../auth/users-file.js";
import { LINE_TOO_LONG, saslContinue, saslStart, type Credentials, type SaslState, type SaslStep } from "./sasl.js";
import { rfc5322Date } from "../core/date.js";
import { unmapIPv4 } from "../core/cidr.js";

export type SessionAction = "none" | "close" | "starttls" | "data" | "auth";

export interface CommandResult {
  replies: string[];
  action: SessionAction;
}

export interface Transaction {
  sender: Mailbox | null;
  params: EsmtpParams;
  recipients: RecipientState[];
  /** Lower-cased addresses of `recipients` (duplicates are accepted once; O(1) per RCPT). */
  seen?: Set<string>;
}

/**
 * Asks the rate limits (smtp/rate-limit.ts, applied by smtp/server.ts) whether one more
 * message (at MAIL) or recipient (at RCPT) may come from this client or user; returns the
 * refusal reply, or undefined to go on.
 */
export type RateCheck = (what: "messages" | "recipients", authUser: string | undefined) => string | undefined;

export interface SessionEnv {
  config: Config;
  clientIp: string;
  /** Client may relay (address inside relay.allowedNetworks). */
  relayAllowed: boolean;
  /** STARTTLS can be offered on this connection (cert configured, not yet TLS). */
  tlsAvailable: boolean;
  secure: boolean;
  /**
   * The listener's mode: "relay" (relay.allowedNetworks, no AUTH: port 25) or "submission"
   * (AUTH under TLS required before MAIL: ports 587 and 465). Default "relay".
   */
  mode?: "relay" | "submission";
  /** Milliseconds the client IP stays in its failed-AUTH back-off (0: none); asked at AUTH. */
  authBlockedFor?: () => number;
  rateLimit?: RateCheck;
}

/** What the socket layer found when it checked the credentials of an "auth" action. */
export type AuthVerdict =
  | { ok: true; user: string; senders: readonly string[] }
  | { ok: false }
  /** The client IP is in its failed-AUTH back-off (smtp/auth-limiter.ts): not checked. */
  | { ok: false; blockedForMs: number }
  /** Wrong, and this failure started the IP's back-off. */
  | { ok: false; nowBlockedForMs: number }
  /** Could not check (users file unreadable): try later. */
  | { ok: false; temporary: true };

const r = (code: number, enh: string, text: string) => `${code} ${enh} ${text}`;

export class ServerSession {
  helo: string | undefined;
  esmtp = false;
  secure: boolean;
  tx: Transaction | undefined;
  errors = 0;
  messages = 0;
  /** The user name that authenticated (AUTH), undefined before. Read by rate limits and logs. */
  authUser: string | undefined;
  /** The senders authUser may use (users-file.ts senderAllowed). */
  private authSenders: readonly string[] = [];

  /** For DKIM signing: the From addresses the authenticated user may use; undefined before AUTH. */
  fromOwner(): { user: string; allowed(address: string): boolean } | undefined {
    const user = this.authUser;
    if (user === undefined) return undefined;
    const senders = this.authSenders;
    return { user, allowed: (address) => senderAllowed(senders, address) };
  }
  /** A SASL exchange in progress: the next line is a response, not a command. */
  private sasl: SaslState | undefined;
  /** Credentials handed out with the action "auth", until authResult(). */
  pendingAuth: Credentials | undefined;
  /** Failed AUTH in this connection. */
  authFailures = 0;

  constructor(private readonly env: SessionEnv) {
    this.secure = env.secure;
  }

  get host(): string {
    return this.env.config.hostname;
  }

  get submission(): boolean {
    return this.env.mode === "submission";
  }

  /** AUTH is advertised and accepted: submission listeners, under TLS only (RFC 4954 §4, §14). */
  get authOffered(): boolean {
    return this.submission && this.secure;
  }

  /** The next line belongs to a SASL exchange (the socket layer must not treat it as a command). */
  get inSasl(): boolean {
    return this.sasl !== undefined;
  }

  greeting(): string {
    return `220 ${this.host} ESMTP mxd`;
  }

  /** RFC 3207 §4.2: after TLS the client must start over (EHLO), all state is forgotten. */
  tlsStarted(): void {
    this.secure = true;
    this.env.tlsAvailable = false;
    this.helo = undefined;
    this.esmtp = false;
    this.tx = undefined;
    this.authUser = undefined;
    this.authSenders = [];
    this.sasl = undefined;
  }

  resetTransaction(): void {
    this.tx = undefined;
  }

  /** A refused command: counted, and the connection closes at limits.maxErrors (the socket layer's refusals count too). */
  error(reply: string): CommandResult {
    this.errors++;
    if (this.errors >= this.env.config.limits.maxErrors) {
      return { replies: [reply, `421 4.7.0 ${this.host} Error: too many errors`], action: "close" };
    }
    return { replies: [reply], action: "none" };
  }

  private ok(reply: string | string[], action: SessionAction = "none"): CommandResult {
    return { replies: Array.isArray(reply) ? reply : [reply], action };
  }

  /**
   * One command line. `invalidUtf8`: the line's octets were not valid UTF-8, so `line` holds
   * U+FFFD replacements; an address or a HELO name from such a line is refused, never stored
   * altered (RFC 6531 §3.3 allows only UTF-8 there).
   */
  handle(line: string, opts: { invalidUtf8?: boolean } = {}): CommandResult {
    if (this.sasl) return this.saslStep(saslContinue(this.sasl, line));
    const m = /^([A-Za-z]+)(?:[ \t]+(.*))?$/s.exec(line);
    if (!m) return this.error(r(500, "5.5.2", "Error: bad syntax"));
    const verb = m[1]!.toUpperCase();
    const arg = (m[2] ?? "").trim();
    if (opts.invalidUtf8) {
      if (verb === "MAIL") return this.error(r(553, "5.6.7", "Bad sender address syntax: invalid UTF-8"));
      if (verb === "RCPT") return this.error(r(553, "5.6.7", "Bad recipient address syntax: invalid UTF-8"));
      if (verb === "EHLO" || verb === "HELO") return this.error(r(501, "5.5.4", `Syntax: ${verb} hostname (invalid UTF-8)`));
    }
    switch (verb) {
      case "EHLO":
      case "HELO":
        return this.hello(verb, arg);
      case "MAIL":
        return this.mail(arg);
      case "RCPT":
        return this.rcpt(arg);
      case "DATA":
        return this.data(arg);
      case "RSET":
        if (arg) return this.error(r(501, "5.5.4", "Syntax: RSET"));
        this.tx = undefined;
        return this.ok(r(250, "2.0.0", "Ok"));
      case "NOOP":
        return this.ok(r(250, "2.0.0", "Ok"));
      case "QUIT":
        return this.ok(r(221, "2.0.0", "Bye"), "close");
      case "VRFY":
        if (!arg) return this.error(r(501, "5.5.4", "Syntax: VRFY address"));
        // RFC 5321 §3.5.3: 252 when we won't confirm mailboxes (no address harvesting).
        return this.ok(r(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"));
      case "EXPN":
        return this.error(r(502, "5.5.1", "Error: command not implemented"));
      case "HELP":
        return this.ok([
          "214-2.0.0 mxd: commands supported:",
          "214-2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP" + (this.env.tlsAvailable ? " STARTTLS" : "") + (this.authOffered ? " AUTH" : ""),
          "214 2.0.0 See RFC 5321",
        ]);
      case "STARTTLS":
        return this.starttls(arg);
      case "AUTH":
        if (!this.submission) return this.error(r(502, "5.5.1", "Error: command not implemented"));
        return this.auth(arg);
      case "BDAT":
      case "TURN":
      case "ETRN":
        return this.error(r(502, "5.5.1", "Error: command not implemented"));
      default:
        return this.error(r(500, "5.5.2", "Error: command not recognized"));
    }
  }

  private hello(verb: string, arg: string): CommandResult {
    // RFC 5321 §4.1.1.1: a domain or address literal; we accept any single token and record it.
    if (!arg || /\s/.test(arg) || arg.length > 255) return this.error(r(501, "5.5.4", `Syntax: ${verb} hostname`));
    this.helo = arg;
    this.tx = undefined;
    if (verb === "HELO") {
      this.esmtp = false;
      return this.ok(`250 ${this.host}`);
    }
    this.esmtp = true;
    const ext = [
      "PIPELINING",
      `SIZE ${this.env.config.limits.messageSize}`,
      "8BITMIME",
      "SMTPUTF8",
      "ENHANCEDSTATUSCODES",
      "DSN",
    ];
    if (this.env.tlsAvailable) ext.push("STARTTLS");
    if (this.authOffered) ext.push("AUTH PLAIN LOGIN");
    ext.push("HELP");
    const lines = [`250-${this.host}`, ...ext.map((e, i) => (i === ext.length - 1 ? `250 ${e}` : `250-${e}`))];
    return this.ok(lines);
  }

  private starttls(arg: string): CommandResult {
    if (arg) return this.error(r(501, "5.5.4", "Syntax: STARTTLS"));
    if (this.secure) return this.error(r(503, "5.5.1", "Error: TLS already active"));
    if (!this.env.tlsAvailable) return this.error(r(502, "5.5.1", "Error: command not implemented"));
    return this.ok(r(220, "2.0.0", "Ready to start TLS"), "starttls");
  }

  private auth(arg: string): CommandResult {
    // RFC 4954 §4: not before EHLO, not twice, not inside a transaction.
    if (!this.helo || !this.esmtp) return this.error(r(503, "5.5.1", "Error: send EHLO first"));
    if (!this.secure) return this.error(r(538, "5.7.11", "Encryption required for requested authentication mechanism"));
    if (this.authUser !== undefined) return this.error(r(503, "5.5.1", "Error: already authenticated"));
    if (this.tx) return this.error(r(503, "5.5.1", "Error: AUTH not permitted during a mail transaction"));
    const blocked = this.env.authBlockedFor?.() ?? 0;
    if (blocked > 0) return this.authResult({ ok: false, blockedForMs: blocked });
    return this.saslStep(saslStart(arg));
  }

  private saslStep(step: SaslStep): CommandResult {
    this.sasl = undefined;
    switch (step.kind) {
      case "challenge":
        this.sasl = step.state;
        return this.ok(step.reply);
      case "credentials":
        this.pendingAuth = step.credentials;
        return { replies: [], action: "auth" };
      case "refused":
        return this.error(step.reply);
    }
  }

  /** A line over the reader's limit arrived during a SASL exchange: it ends the exchange. */
  saslLineTooLong(): CommandResult {
    this.sasl = undefined;
    return this.error(LINE_TOO_LONG);
  }

  /** The verdict on pendingAuth (RFC 4954 §6 replies). */
  authResult(v: AuthVerdict): CommandResult {
    this.pendingAuth = undefined;
    if (v.ok) {
      this.authUser = v.user;
      this.authSenders = v.senders;
      return this.ok(r(235, "2.7.0", "Authentication successful"));
    }
    const secs = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
    if ("blockedForMs" in v) {
      return this.ok(r(454, "4.7.0", `Too many failed authentications from your address, try again in ${secs(v.blockedForMs)} s`), "close");
    }
    if ("temporary" in v) return this.ok(r(454, "4.7.0", "Temporary authentication failure"));
    this.authFailures++;
    const refused = r(535, "5.7.8", "Authentication credentials invalid");
    if ("nowBlockedForMs" in v) {
      this.errors++;
      return { replies: [refused, `421 4.7.0 ${this.host} Error: too many failed authentications from your address, try again in ${secs(v.nowBlockedForMs)} s`], action: "close" };
    }
    if (this.authFailures >= this.env.config.auth.failures.perConnection) {
      return { replies: [refused, `421 4.7.0 ${this.host} Error: too many failed authentications`], action: "close" };
    }
    return this.error(refused);
  }

  private mail(arg: string): CommandResult {
    if (!this.helo) return this.error(r(503, "5.5.1", "Error: send HELO/EHLO first"));
    if (this.tx) return this.error(r(503, "5.5.1", "Error: nested MAIL command"));
    // RFC 3207 §4 and RFC 4954 §6: a submission listener takes mail only from an
    // authenticated client, and AUTH is offered only under TLS.
    if (this.submission && this.authUser === undefined) {
      return this.error(this.secure ? r(530, "5.7.0", "Authentication required") : r(530, "5.7.0", "Must issue a STARTTLS command first"));
    }
    const m = /^FROM:(.*)$/is.exec(arg);
    if (!m) return this.error(r(501, "5.5.4", "Syntax: MAIL FROM:<address>"));
    // Parse the path first (UTF-8 tolerated) to find where the parameters start; whether
    // UTF-8 was allowed is checked once SMTPUTF8 is known (RFC 6531 §3.4).
    const path = parsePath(m[1]!, true, true);
    if ("error" in path) return this.error(r(501, "5.1.7", `Bad sender address syntax: ${path.error}`));
    const params: EsmtpParams = {};
    for (const p of path.rest.split(/\s+/).filter(Boolean)) {
      if (!this.esmtp) return this.error(r(555, "5.5.4", "Error: parameters need EHLO"));
      const [k, v] = splitParam(p);
      switch (k) {
        case "SIZE": {
          if (!v || !/^\d{1,15}$/.test(v)) return this.error(r(501, "5.5.4", "Bad SIZE= value"));
          params.size = Number(v);
          break;
        }
        case "BODY": {
          const b = (v ?? "").toUpperCase();
          if (b !== "7BIT" && b !== "8BITMIME") return this.error(r(501, "5.5.4", "Unsupported BODY= value"));
          params.body = b;
          break;
        }
        case "SMTPUTF8":
          if (v !== undefined) return this.error(r(501, "5.5.4", "SMTPUTF8 takes no value"));
          params.smtputf8 = true;
          break;
        case "RET": {
          const ret = (v ?? "").toUpperCase();
          if (ret !== "FULL" && ret !== "HDRS") return this.error(r(501, "5.5.4", "Bad RET= value"));
          params.ret = ret;
          break;
        }
        case "AUTH": {
          // RFC 4954 §5: AUTH=<mailbox> (xtext) or AUTH=<>. Trusted only from an authenticated
          // client and for a sender it may use; anything else is kept as AUTH=<>. A relay
          // listener does not offer AUTH, so there it is an unknown parameter as before.
          if (!this.submission) return this.error(r(555, "5.5.4", `Unsupported option: ${p.slice(0, 40)}`));
          const dec = v === undefined ? undefined : decodeXtext(v);
          if (dec === undefined) return this.error(r(501, "5.5.4", "Bad AUTH= value"));
          if (dec === "<>") {
            params.auth = "";
            break;
          }
          const mb = parseMailbox(dec, true);
          if ("error" in mb) return this.error(r(501, "5.5.4", "Bad AUTH= value"));
          params.auth = this.authUser !== undefined && senderAllowed(this.authSenders, mb.address) ? mb.address : "";
          break;
        }
        case "ENVID": {
          const envid = parseEnvid(v);
          if (envid === undefined) return this.error(r(501, "5.5.4", "Bad ENVID= value"));
          params.envid = envid;
          break;
        }
        default:
          return this.error(r(555, "5.5.4", `Unsupported option: ${p.slice(0, 40)}`));
      }
    }
    if (path.mailbox?.utf8 && !params.smtputf8) {
      return this.error(r(553, "5.6.7", "Bad sender address syntax: non-ASCII address needs SMTPUTF8"));
    }
    if (this.authUser !== undefined && !senderAllowed(this.authSenders, path.mailbox?.address ?? "")) {
      return this.error(r(553, "5.7.1", `<${path.mailbox?.address ?? ""}>: Sender address rejected: not owned by user ${this.authUser}`));
    }
    // RFC 1870 §6.2: refuse a declared size over the limit at MAIL.
    if (params.size !== undefined && params.size > this.env.config.limits.messageSize) {
      return this.error(r(552, "5.3.4", "Message size exceeds fixed limit"));
    }
    const limited = this.env.rateLimit?.("messages", this.authUser);
    if (limited) return this.ok(limited);
    this.tx = { sender: path.mailbox, params, recipients: [] };
    return this.ok(r(250, "2.1.0", "Ok"));
  }

  private rcpt(arg: string): CommandResult {
    if (!this.tx) return this.error(r(503, "5.5.1", "Error: need MAIL command"));
    const m = /^TO:(.*)$/is.exec(arg);
    if (!m) return this.error(r(501, "5.5.4", "Syntax: RCPT TO:<address>"));
    // RFC 5321 §4.5.1: <Postmaster> without a domain MUST be accepted, from anyone; it is
    // delivered to the `postmaster` address (default postmaster@<hostname>).
    const pm = /^\s*<postmaster>((?:\s.*)?)$/is.exec(m[1]!);
    const postmaster = pm ? this.env.config.postmaster : undefined;
    const path = pm ? parsePath(`<${postmaster}>${pm[1]}`, false, false) : parsePath(m[1]!, !!this.tx.params.smtputf8, false);
    if ("error" in path) {
      const utf = path.error.includes("SMTPUTF8");
      return this.error(r(utf ? 553 : 501, utf ? "5.6.7" : "5.1.3", `Bad recipient address syntax: ${path.error}`));
    }
    const mb = path.mailbox!;
    let notify: string[] | undefined;
    let orcpt: string | undefined;
    for (const p of path.rest.split(/\s+/).filter(Boolean)) {
      if (!this.esmtp) return this.error(r(555, "5.5.4", "Error: parameters need EHLO"));
      const [k, v] = splitParam(p);
      if (k === "NOTIFY") {
        notify = parseNotify(v);
        if (!notify) return this.error(r(501, "5.5.4", "Bad NOTIFY= value"));
      } else if (k === "ORCPT") {
        orcpt = parseOrcpt(v);
        if (!orcpt) return this.error(r(501, "5.5.4", "Bad ORCPT= value"));
      } else return this.error(r(555, "5.5.4", `Unsupported option: ${p.slice(0, 40)}`));
    }
    // Local drop domains take mail from anyone, but only for known mailboxes (or a catch-all).
    const local = isLocalDomain(this.env.config.localDomains, mb.domain);
    if (local && localMailbox(this.env.config.localDomains, mb.address) === undefined) {
      return this.error(r(550, "5.1.1", `<${mb.address}>: Recipient address rejected: no such user here`));
    }
    // Relay control: only allowed networks may send anywhere. Never an open relay by default.
    if (!local && !postmaster && !this.env.relayAllowed && this.authUser === undefined) {
      return this.error(r(554, "5.7.1", `<${mb.address}>: Relay access denied`));
    }
    if (this.tx.recipients.length >= this.env.config.limits.recipientsPerMessage) {
      return this.ok(r(452, "4.5.3", "Error: too many recipients"));
    }
    const lower = mb.address.toLowerCase();
    const seen = (this.tx.seen ??= new Set(this.tx.recipients.map((x) => x.address.toLowerCase())));
    if (!seen.has(lower)) {
      const limited = this.env.rateLimit?.("recipients", this.authUser);
      if (limited) return this.ok(limited);
      seen.add(lower);
      const st = newRecipient(mb.address);
      if (notify) st.notify = notify;
      if (orcpt) st.orcpt = orcpt;
      this.tx.recipients.push(st);
    }
    return this.ok(r(250, "2.1.5", "Ok"));
  }

  private data(arg: string): CommandResult {
    if (arg) return this.error(r(501, "5.5.4", "Syntax: DATA"));
    if (!this.tx) return this.error(r(503, "5.5.1", "Error: need MAIL command"));
    if (this.tx.recipients.length === 0) return this.error(r(554, "5.5.1", "Error: no valid recipients"));
    return this.ok("354 End data with <CR><LF>.<CR><LF>", "data");
  }

  /** The Received: header this hop adds (RFC 5321 §4.4), CRLF-terminated. */
  receivedHeader(id: string, date: Date): string {
    const ip = unmapIPv4(this.env.clientIp);
    const lit = ip.includes(":") ? `IPv6:${ip}` : ip;
    const helo = (this.helo ?? "unknown").replace(/[^\x21-\x7e]/g, "?").slice(0, 100);
    // RFC 3848 / RFC 6531 §3.7.3: ESMTP, ESMTPS, ESMTPA, ESMTPSA; UTF8SMTP… with SMTPUTF8.
    const auth = this.authUser !== undefined;
    const proto = !this.esmtp ? "SMTP" : `${this.tx?.params.smtputf8 ? "UTF8SMTP" : "ESMTP"}${this.secure ? "S" : ""}${auth ? "A" : ""}`;
    const rc = this.tx?.recipients.length === 1 ? `\r\n\tfor <${this.tx.recipients[0]!.address}>` : "";
    // As Postfix's smtpd_sasl_authenticated_header: the user name, a comment (users-file.ts
    // restricts names to header-safe characters).
    const who = auth ? `\r\n\t(Authenticated sender: ${this.authUser!.replace(/[^\x21-\x7e]|[()\\]/g, "?")})` : "";
    return `Received: from ${helo} ([${lit}])${who}\r\n\tby ${this.host} (mxd) with ${proto} id ${id}${rc};\r\n\t${rfc5322Date(date)}\r\n`;
  }
}

function splitParam(p: string): [string, string | undefined] {
  const eq = p.indexOf("=");
  return eq < 0 ? [p.toUpperCase(), undefined] : [p.slice(0, eq).toUpperCase(), p.slice(eq + 1)];
}

