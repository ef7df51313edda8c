// Inbound SMTP state machine (RFC 5321, with ESMTP extensions PIPELINING, SIZE, 8BITMIME,
// SMTPUTF8, DSN, ENHANCEDSTATUSCODES, STARTTLS). Takes command lines, returns replies and an
// action for the socket layer; no sockets, no files here.
import type { Config } from "../config.js";
import { newRecipient, type EsmtpParams, type RecipientState } from "../core/envelope.js";
import { decodeXtext, parsePath, type Mailbox } from "../core/address.js";
import { isLocalDomain, localMailbox } from "../delivery/local-drop.js";
import { rfc5322Date } from "../core/date.js";

export type SessionAction = "none" | "close" | "starttls" | "data";

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
  rateLimit?: RateCheck;
}

const r = (code: number, enh: string, text: string) => `${code} ${enh} ${text}`;

export class ServerSession {
  helo: string | undefined;
  esmtp = false;
  secure: boolean;
  tx: Transaction | undefined;
  errors = 0;
  messages = 0;
  /** The user authenticated with AUTH (RFC 4954), if any: per-user rate limits key on it. */
  authUser: string | undefined;

  constructor(private readonly env: SessionEnv) {
    this.secure = env.secure;
  }

  get host(): string {
    return this.env.config.hostname;
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
  }

  resetTransaction(): void {
    this.tx = undefined;
  }

  private error(reply: string): CommandResult {
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
          "214-2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP" + (this.env.tlsAvailable ? " STARTTLS" : ""),
          "214 2.0.0 See RFC 5321",
        ]);
      case "STARTTLS":
        return this.starttls(arg);
      case "BDAT":
      case "AUTH":
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

  private mail(arg: string): CommandResult {
    if (!this.helo) return this.error(r(503, "5.5.1", "Error: send HELO/EHLO first"));
    if (this.tx) return this.error(r(503, "5.5.1", "Error: nested MAIL command"));
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
        case "ENVID": {
          const envid = v === undefined ? undefined : decodeXtext(v);
          if (envid === undefined || envid.length > 100) return this.error(r(501, "5.5.4", "Bad ENVID= value"));
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
        const vals = (v ?? "").toUpperCase().split(",");
        const okVals = vals.every((x) => ["NEVER", "SUCCESS", "FAILURE", "DELAY"].includes(x));
        // RFC 3461 §4.1: NEVER must appear alone.
        if (!v || !okVals || (vals.includes("NEVER") && vals.length > 1)) return this.error(r(501, "5.5.4", "Bad NOTIFY= value"));
        notify = vals;
      } else if (k === "ORCPT") {
        const dec = v === undefined ? undefined : decodeXtext(v);
        if (!dec || !/^[A-Za-z0-9-]+;.+/.test(dec) || dec.length > 500) return this.error(r(501, "5.5.4", "Bad ORCPT= value"));
        orcpt = dec;
      } else return this.error(r(555, "5.5.4", `Unsupported option: ${p.slice(0, 40)}`));
    }
    // Local drop domains take mail from anyone, but only for known mailboxes (or a catch-all).
    const local = isLocalDomain(this.env.config.localDomains, mb.domain);
    if (local && localMailbox(this.env.config.localDomains, mb.address) === undefined) {
      return this.error(r(550, "5.1.1", `<${mb.address}>: Recipient address rejected: no such user here`));
    }
    // Relay control: only allowed networks may send anywhere. Never an open relay by default.
    if (!local && !postmaster && !this.env.relayAllowed) {
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
    const ip = this.env.clientIp.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
    const lit = ip.includes(":") ? `IPv6:${ip}` : ip;
    const helo = (this.helo ?? "unknown").replace(/[^\x21-\x7e]/g, "?").slice(0, 100);
    // RFC 3848 / RFC 6531 §3.7.3: ESMTP, ESMTPS; UTF8SMTP, UTF8SMTPS with SMTPUTF8.
    const proto = !this.esmtp ? "SMTP" : `${this.tx?.params.smtputf8 ? "UTF8SMTP" : "ESMTP"}${this.secure ? "S" : ""}`;
    const rc = this.tx?.recipients.length === 1 ? `\r\n\tfor <${this.tx.recipients[0]!.address}>` : "";
    return `Received: from ${helo} ([${lit}])\r\n\tby ${this.host} (mxd) with ${proto} id ${id}${rc};\r\n\t${rfc5322Date(date)}\r\n`;
  }
}

function splitParam(p: string): [string, string | undefined] {
  const eq = p.indexOf("=");
  return eq < 0 ? [p.toUpperCase(), undefined] : [p.slice(0, eq).toUpperCase(), p.slice(eq + 1)];
}

