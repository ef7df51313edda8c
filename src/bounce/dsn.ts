// Delivery status notifications: RFC 3464 reports inside an RFC 3462 (now RFC 6522)
// multipart/report, sent from the null sender to the original envelope sender.
//
// Pure: no I/O, no clock, no randomness. The caller passes "now", reads the original header block
// (headerBlockFrom on the first 64 KB of the spooled file) and, for RET=FULL, the whole message.
// The same input always renders the same bytes, which is what the golden files in test/fixtures/
// rely on.
//
// What leaves here is 7-bit clean and fit for any SMTP hop, except where the original itself
// forces otherwise (8-bit original content attached, or a non-ASCII sender address that can only
// be written in UTF-8): the result says so in `eightBit` / `smtputf8` so the spool entry for the
// bounce asks for 8BITMIME / SMTPUTF8 on the way out.
import type { AttemptRecord, MessageMeta, RecipientState } from "../core/envelope.js";
import { rfc5322Date } from "../core/date.js";
import { EXCERPT_MAX } from "../core/smtp-reply.js";
import { sevenBitXtext } from "../core/esmtp-params.js";

/** A remote reply is quoted at most EXCERPT_MAX characters long (controls are dropped where it is used). */
function cut(s: string): string {
  return s.length > EXCERPT_MAX ? `${s.slice(0, EXCERPT_MAX)}...` : s;
}

export type DsnAction = "failed" | "delayed";

export interface DsnInput {
  /** Our host name (config hostname): Reporting-MTA and the MAILER-DAEMON address. */
  reportingMta: string;
  /** The message being reported on. */
  original: MessageMeta;
  /** The recipients to report (normally the result of dsnRecipientsFor), with their history. */
  recipients: readonly RecipientState[];
  action: DsnAction;
  /** Injected clock: Date and Message-ID of the report. */
  now: Date;
  /** The original message's header block (headerBlockFrom), attached when the body is not. */
  originalHeaders: Buffer;
  /**
   * The whole original message (header block included), when RET=FULL and the caller judged it
   * small enough to return. A buffer that does not begin with `originalHeaders` is taken to be the
   * body alone and is attached after them. Ignored unless mayReturnBody(original) (RET=FULL from a client with relay rights).
   */
  originalBody?: Buffer | undefined;
  /** MIME boundary; fixed in golden tests. Default: derived from the queue id, time and host. */
  boundary?: string;
  /** Right-hand side of the report's Message-ID. */
  messageIdDomain: string;
  /** For action "delayed": when the queue gives up (receivedAt + delivery.maxQueueTime). */
  willRetryUntil?: Date;
}

export interface DsnMessage {
  /** Envelope sender of a DSN: always the null sender <> (RFC 3461 §6.2, RFC 5321 §4.5.5). */
  sender: "";
  /** Envelope recipient: the original envelope sender. */
  recipient: string;
  /** The complete message, CRLF line ends, no line longer than 998 octets. */
  body: Buffer;
  /** The attached original carries 8-bit octets: deliver with BODY=8BITMIME. */
  eightBit: boolean;
  /** The sender's address is non-ASCII: the To: header is UTF-8 and delivery needs SMTPUTF8. */
  smtputf8: boolean;
  /** The Message-ID of the report, angle brackets included, for logs. */
  messageId: string;
}

const CRLF = "\r\n";
/** RFC 5322 §2.1.1: SHOULD keep lines within 78 characters; MUST within 998. */
const SOFT_LINE = 78;
const HARD_LINE = 998;

// ---------------------------------------------------------------------------------------------
// Who gets a report

/**
 * The recipients that must appear in a DSN of the given kind.
 *
 * - Never a DSN about a message whose envelope sender is <> (RFC 5321 §4.5.5; RFC 3461 §6.2),
 *   nor about one of our own bounces (kind "bounce"): that is how bounce loops are avoided.
 * - RFC 3461 §4.1 NOTIFY: NEVER suppresses every report for that recipient; a list without
 *   FAILURE suppresses the failure report; a delay warning goes only to recipients whose list
 *   includes DELAY. Without NOTIFY the MTA may pick FAILURE or FAILURE,DELAY: mxd reports
 *   failures and, when delivery.delayWarningAfter is set, delays.
 * - Only recipients in the matching state: "failed" for failure reports, still "pending" for
 *   delay warnings.
 */
export function dsnRecipientsFor(meta: MessageMeta, recipients: readonly RecipientState[], action: DsnAction): RecipientState[] {
  if (meta.sender === "" || meta.kind === "bounce") return [];
  const want = action === "failed" ? "FAILURE" : "DELAY";
  const state = action === "failed" ? "failed" : "pending";
  return recipients.filter((r) => {
    if (r.status !== state) return false;
    const notify = r.notify?.map((n) => n.trim().toUpperCase());
    if (!notify || notify.length === 0) return true;
    if (notify.includes("NEVER")) return false;
    return notify.includes(want);
  });
}

// ---------------------------------------------------------------------------------------------
// Header block of the original

/**
 * The header block at the start of a message: every complete line up to (not including) the
 * empty line that ends the header section (RFC 5322 §2.1). When there is no empty line (a
 * message without a body, or a header section longer than the buffer the caller read), the
 * complete lines present are returned; a trailing partial line is dropped. Bare LF line ends are
 * accepted here; buildDsn normalises them.
 */
export function headerBlockFrom(buf: Buffer): Buffer {
  let start = 0;
  while (start < buf.length) {
    const lf = buf.indexOf(0x0a, start);
    if (lf < 0) break; // partial last line
    const lineLen = lf - start;
    if (lineLen === 0 || (lineLen === 1 && buf[start] === 0x0d)) return buf.subarray(0, start);
    start = lf + 1;
  }
  return buf.subarray(0, start);
}

// ---------------------------------------------------------------------------------------------
// The report

/**
 * May a DSN about `original` carry its body (message/rfc822)? Only when the sender asked for it
 * (RFC 3461 §4.3 RET=FULL) and the message came from a client with relay rights: a stranger's
 * envelope sender is unverified, and returning the body to it would let anyone deliver any text
 * to any address through mxd's bounces (backscatter). Such mail gets the headers at most.
 */
export function mayReturnBody(original: Pick<MessageMeta, "params" | "client">): boolean {
  return original.params.ret === "FULL" && original.client?.relayAllowed !== false;
}

export function buildDsn(input: DsnInput): DsnMessage {
  const { original, action, now } = input;
  if (original.sender === "") throw new Error("buildDsn: a message from the null sender is never bounced (RFC 3461 §6.2)");
  if (input.recipients.length === 0) throw new Error("buildDsn: no recipient to report");
  if (Number.isNaN(now.getTime())) throw new RangeError("buildDsn: invalid now");
  const host = checkHostName("reportingMta", input.reportingMta);
  const idDomain = checkHostName("messageIdDomain", input.messageIdDomain);

  const smtputf8 = !isAsciiAddress(original.sender);
  const messageId = `<${now.getTime().toString(36)}.${safeToken(original.id)}.${fnv1a(action + "\0" + input.recipients.map((r) => r.address).join("\0"))}@${idDomain}>`;

  // Part 3: the original, in full only when the sender asked for it (RFC 3461 §4.3 RET=FULL) and
  // the caller supplied it; otherwise its headers (RET=HDRS, or no RET: RFC 3461 §4.3 leaves the
  // default to the MTA, and headers are what nearly every MTA returns).
  const headers = normaliseLines(input.originalHeaders, true);
  let attachment: { type: "message/rfc822" | "text/rfc822-headers"; content: Buffer } | undefined;
  if (mayReturnBody(original) && input.originalBody && input.originalBody.length > 0) {
    const whole = startsWith(input.originalBody, input.originalHeaders)
      ? input.originalBody
      : Buffer.concat([input.originalHeaders, Buffer.from(CRLF), input.originalBody]);
    const full = normaliseLines(whole, false);
    // A line over 998 octets cannot travel inside a 7bit/8bit part (RFC 2045 §2.8, RFC 5322
    // §2.1.1) and message/rfc822 may not be re-encoded (RFC 2046 §5.2.1): fall back to headers.
    if (maxLineLength(full) <= HARD_LINE) attachment = { type: "message/rfc822", content: full };
  }
  if (!attachment && headers.length > 0) attachment = { type: "text/rfc822-headers", content: headers };
  const attachedEightBit = attachment ? hasEightBit(attachment.content) : false;

  const text = humanReadable(input, host, attachment?.type);
  const textPart = encodeTextPart(text);
  const status = deliveryStatus(input, host);

  const partContents = [textPart.body, status, attachment?.content ?? Buffer.alloc(0)];
  const boundary = input.boundary !== undefined ? checkBoundary(input.boundary, partContents) : defaultBoundary(original.id, now, host, partContents);

  const top: string[] = [
    "From: Mail Delivery System <MAILER-DAEMON@" + host + ">",
    // RFC 6532 §3.2: a non-ASCII mailbox can only be written in UTF-8 (there is no 7-bit form of
    // a non-ASCII local part); such a bounce has to travel with SMTPUTF8 anyway.
    ...fold("To", `<${smtputf8 ? original.sender : printable(original.sender)}>`),
    "Subject: " + (action === "failed" ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)"),
    "Date: " + rfc5322Date(now),
    "Message-ID: " + messageId,
    // RFC 3834 §5.1: marks the report as automatic so vacation responders and list software
    // do not answer it (it is not "auto-generated": it answers a specific message).
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status;`,
    `\tboundary="${boundary}"`,
  ];
  // RFC 2045 §6.4: a multipart's encoding must not be more restrictive than its parts'.
  if (attachedEightBit) top.push("Content-Transfer-Encoding: 8bit");

  const out: Buffer[] = [];
  const push = (s: string) => out.push(Buffer.from(s, "utf8"));
  push(top.join(CRLF) + CRLF + CRLF);
  push("This is a MIME-encapsulated message." + CRLF + CRLF);

  push(`--${boundary}${CRLF}`);
  push(["Content-Description: Notification", `Content-Type: text/plain; charset=${textPart.charset}`, `Content-Transfer-Encoding: ${textPart.cte}`].join(CRLF) + CRLF + CRLF);
  out.push(textPart.body);

  push(`${CRLF}--${boundary}${CRLF}`);
  push(["Content-Description: Delivery report", "Content-Type: message/delivery-status"].join(CRLF) + CRLF + CRLF);
  out.push(status);

  if (attachment) {
    const desc =
      attachment.type === "message/rfc822"
        ? action === "failed" ? "Undelivered Message" : "Delayed Message"
        : action === "failed" ? "Undelivered Message Headers" : "Delayed Message Headers";
    const h = [`Content-Description: ${desc}`, `Content-Type: ${attachment.type}`];
    // RFC 2046 §5.2.1: message/rfc822 allows only 7bit, 8bit or binary; say 8bit when it is.
    if (attachedEightBit) h.push("Content-Transfer-Encoding: 8bit");
    push(`${CRLF}--${boundary}${CRLF}`);
    push(h.join(CRLF) + CRLF + CRLF);
    out.push(attachment.content);
  }
  push(`${CRLF}--${boundary}--${CRLF}`);

  return { sender: "", recipient: original.sender, body: Buffer.concat(out), eightBit: attachedEightBit, smtputf8, messageId };
}

// ---------------------------------------------------------------------------------------------
// Part 1: the explanation a person reads. It names every recipient and quotes what the remote
// server said, verbatim, because that is what the sender needs to fix the problem.

function humanReadable(input: DsnInput, host: string, attached: "message/rfc822" | "text/rfc822-headers" | undefined): string {
  const { original, action, now } = input;
  const received = parseDate(original.receivedAt);
  const lines: string[] = [`This is the mail delivery system at ${host}.`, ""];
  if (action === "failed") {
    lines.push(...wrap("Your message could not be delivered to one or more recipients. The reason for each is given below."));
  } else {
    const until = input.willRetryUntil && !Number.isNaN(input.willRetryUntil.getTime()) ? ` until ${rfc5322Date(input.willRetryUntil)}` : "";
    const since = received ? ` for ${formatDuration(now.getTime() - received.getTime())}` : "";
    lines.push(...wrap(`Your message has not yet been delivered to the recipients below. It has been in the queue${since}.`));
    lines.push("");
    // The date on a line of its own: wrapping must not split it.
    lines.push(`The mail system will keep trying${until}.`);
    lines.push("");
    lines.push(...wrap("This is only a warning. You do not need to send the message again; you will be told if it finally fails."));
  }
  lines.push("");
  if (attached === "message/rfc822") lines.push(...wrap("Your message is attached below."));
  else if (attached === "text/rfc822-headers") lines.push(...wrap("The headers of your message are attached below."));
  if (attached) lines.push("");
  lines.push(...wrap(`If you need help, contact the postmaster of ${host} and include this report.`));
  lines.push("");
  lines.push(`Queue ID: ${printable(original.id)}`);
  if (received) lines.push(`Received: ${rfc5322Date(received)}`);

  for (const r of input.recipients) {
    lines.push("");
    const { quoted: last, expired } = reportedAttempt(r, action);
    const who = `<${r.address}>`;
    if (!last) {
      lines.push(`${who}: ${action === "failed" ? "could not be delivered" : "not delivered yet"} (no delivery attempt recorded).`);
      continue;
    }
    const server = last.remote && last.mx ? `host ${last.ip ? `${last.mx}[${last.ip}]` : last.mx} said:` : undefined;
    if (expired || action === "delayed") {
      if (expired) lines.push(`${who}: gave up after ${received ? formatDuration(now.getTime() - received.getTime()) : "the maximum time"} in the queue.`);
      else lines.push(`${who}: not delivered yet.`);
      lines.push(server ? `  The last attempt failed: ${server}` : "  The last attempt failed:");
    } else {
      lines.push(server ? `${who}: ${server}` : `${who}: delivery failed:`);
    }
    // A remote reply is quoted as a short excerpt (a hostile server must not make the bounce big).
    for (const l of replyLines(cut(last.reply))) lines.push("    " + l);
  }
  lines.push("");
  return lines.join(CRLF);
}

/** Reply text as lines (a multi-line SMTP reply keeps its lines), control characters removed. */
function replyLines(reply: string): string[] {
  const ls = reply
    .split(/\r\n|\r|\n/)
    .map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "").replace(/\t/g, " ").trimEnd())
    .filter((l) => l.length > 0);
  return ls.length ? ls : ["(no diagnostic text)"];
}

function encodeTextPart(text: string): { body: Buffer; charset: string; cte: string } {
  if (/^[\x00-\x7f]*$/.test(text)) {
    // Pure ASCII; a pathological line (a server reply of >990 characters) is cut, not wrapped,
    // to honour RFC 5322 §2.1.1 without altering the 7bit encoding.
    const body = text
      .split(CRLF)
      .map((l) => (l.length > HARD_LINE ? l.slice(0, HARD_LINE) : l))
      .join(CRLF);
    return { body: Buffer.from(body, "ascii"), charset: "us-ascii", cte: "7bit" };
  }
  // A non-ASCII address or server reply: UTF-8 in quoted-printable keeps the report 7-bit.
  return { body: Buffer.from(quotedPrintable(text), "ascii"), charset: "utf-8", cte: "quoted-printable" };
}

/** RFC 2045 §6.7 quoted-printable of UTF-8 text whose lines are separated by CRLF. */
function quotedPrintable(text: string): string {
  return text
    .split(CRLF)
    .map((line) => {
      const bytes = Buffer.from(line, "utf8");
      const out: string[] = [];
      let cur = "";
      for (let i = 0; i < bytes.length; i++) {
        const b = bytes[i]!;
        const last = i === bytes.length - 1;
        const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
        const tok = literal ? String.fromCharCode(b) : "=" + b.toString(16).toUpperCase().padStart(2, "0");
        // Rule 5: encoded lines at most 76 characters, counting the "=" of a soft line break.
        if (cur.length + tok.length > 75) {
          out.push(cur + "=");
          cur = "";
        }
        cur += tok;
      }
      out.push(cur);
      return out.join(CRLF);
    })
    .join(CRLF);
}

// ---------------------------------------------------------------------------------------------
// Part 2: message/delivery-status (RFC 3464 §2). US-ASCII fields in header syntax: one
// per-message group, then one group per recipient, groups separated by an empty line.

function deliveryStatus(input: DsnInput, host: string): Buffer {
  const { original, action } = input;
  const groups: string[][] = [];

  // RFC 3464 §2.2: per-message fields.
  const msg: string[] = [];
  if (original.params.envid !== undefined && original.params.envid !== "") {
    // §2.2.1: the ENVID the sender gave, so it can match the report to its own records.
    msg.push(...fold("Original-Envelope-Id", sevenBitXtext(original.params.envid)));
  }
  msg.push(`Reporting-MTA: dns; ${host}`); // §2.2.2, required
  const arrival = parseDate(original.receivedAt);
  if (arrival) msg.push(`Arrival-Date: ${rfc5322Date(arrival)}`); // §2.2.5
  // §2.4 extension fields ("X-" names, after the standard ones): what a postmaster greps for.
  msg.push(...fold("X-Mxd-Queue-ID", printable(original.id)));
  msg.push(...fold("X-Mxd-Sender", typedAddress(original.sender)));
  groups.push(msg);

  // RFC 3464 §2.3: per-recipient fields, in the order the RFC lists them.
  for (const r of input.recipients) {
    const g: string[] = [];
    const { final, quoted: last } = reportedAttempt(r, action);
    // §2.3.1: only when the sender supplied ORCPT (RFC 3461 §4.2); never invented.
    if (r.orcpt) g.push(...fold("Original-Recipient", originalRecipient(r.orcpt)));
    g.push(...fold("Final-Recipient", typedAddress(r.address))); // §2.3.2, required
    g.push(`Action: ${action}`); // §2.3.3, required
    g.push(`Status: ${statusFor(final, action)}`); // §2.3.4, required
    if (last?.remote && last.mx) {
      // §2.3.5 / §2.3.6: name the server that answered and quote its reply; a bounce that hides
      // the remote reply leaves the sender guessing.
      g.push(...fold("Remote-MTA", `dns; ${printable(last.mx)}`));
      g.push(...fold("Diagnostic-Code", `smtp; ${printable(cut(last.reply))}`));
    } else if (last && last.reply.trim() !== "") {
      // No SMTP server answered (DNS failure, connection refused, expired): §2.3.6 allows a
      // non-registered diagnostic-type; like Postfix's "X-Postfix;" this carries our own reason.
      g.push(...fold("Diagnostic-Code", `X-mxd; ${printable(cut(last.reply))}`));
    }
    const lastAt = last ? parseDate(last.at) : undefined;
    if (lastAt) g.push(`Last-Attempt-Date: ${rfc5322Date(lastAt)}`); // §2.3.7
    if (action === "delayed" && input.willRetryUntil && !Number.isNaN(input.willRetryUntil.getTime())) {
      g.push(`Will-Retry-Until: ${rfc5322Date(input.willRetryUntil)}`); // §2.3.9, delayed only
    }
    groups.push(g);
  }
  return Buffer.from(groups.map((g) => g.join(CRLF) + CRLF).join(CRLF), "ascii");
}

/**
 * Which history records a recipient's report is made of. The Status comes from the final record.
 * A failed recipient whose final status is class 4 (or whose last outcome was transient) failed
 * because the queue time ran out; when the worker recorded that as a separate marker record
 * (e.g. "4.4.7 delivery time expired"), the remote reply quoted in Diagnostic-Code, Remote-MTA
 * and Last-Attempt-Date come from the last real attempt before it: the reply is what the sender
 * needs to see.
 */
function reportedAttempt(r: RecipientState, action: DsnAction): { final?: AttemptRecord; quoted?: AttemptRecord; expired: boolean } {
  const h = r.history;
  const final = h.length ? h[h.length - 1] : undefined;
  if (!final) return { expired: false };
  const expired = action === "failed" && (final.outcome === "transient" || /^4\./.test(final.status.trim()));
  let quoted = final;
  if (expired && final.outcome !== "transient") {
    for (let i = h.length - 2; i >= 0; i--) {
      if (h[i]!.outcome === "transient") {
        quoted = h[i]!;
        break;
      }
    }
  }
  return { final, quoted, expired };
}

/**
 * RFC 3464 §2.3.4 / RFC 3463 §2: class 5 (permanent) or 4 (persistent transient). A failed
 * recipient whose last attempt was transient failed by expiry and keeps its 4.x.x code, as Postfix
 * does: it tells the sender the cause was temporary. Without a usable code: 5.0.0 / 4.0.0.
 */
function statusFor(last: AttemptRecord | undefined, action: DsnAction): string {
  const s = last?.status?.trim() ?? "";
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (action === "delayed") return m && m[1] === "4" ? s : "4.0.0";
  return m && (m[1] === "5" || m[1] === "4") ? s : "5.0.0";
}

/**
 * "rfc822; addr" for an ASCII address (RFC 3464 §2.3.2). A non-ASCII (RFC 6531) address has no
 * rfc822 form: RFC 6533 §3 writes it as type utf-8 in its 7-bit xtext form, which is what a
 * message/delivery-status (as opposed to message/global-delivery-status) may carry.
 */
function typedAddress(addr: string): string {
  return isAsciiAddress(addr) ? `rfc822; ${addr}` : `utf-8; ${utf8AddrXtext(addr)}`;
}

/**
 * ORCPT is "addr-type;address" (RFC 3461 §4.2), stored as the server decoded it. Written back as
 * given when it is printable ASCII; otherwise the 7-bit forms above (a raw value still in xtext is
 * printable ASCII and passes unchanged).
 */
function originalRecipient(orcpt: string): string {
  const semi = orcpt.indexOf(";");
  const type = semi >= 0 ? orcpt.slice(0, semi).trim() : "rfc822";
  const addr = semi >= 0 ? orcpt.slice(semi + 1).trim() : orcpt.trim();
  if (/^[A-Za-z0-9-]+$/.test(type) && isAsciiAddress(addr)) return `${type}; ${addr}`;
  return `utf-8; ${utf8AddrXtext(addr)}`;
}

/** RFC 6533 §3 utf-8-addr-xtext: QCHAR as is, anything else as \x{HEX}. */
function utf8AddrXtext(addr: string): string {
  let out = "";
  for (const ch of addr) {
    const cp = ch.codePointAt(0)!;
    const qchar = (cp >= 0x21 && cp <= 0x2a) || (cp >= 0x2c && cp <= 0x3c) || (cp >= 0x3e && cp <= 0x5b) || (cp >= 0x5d && cp <= 0x7e);
    out += qchar ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

function isAsciiAddress(addr: string): boolean {
  return /^[\x21-\x7e]*$/.test(addr);
}

// ---------------------------------------------------------------------------------------------
// Text and header helpers

/** One line of printable US-ASCII: line breaks and tabs become spaces, other octets "?". */
function printable(s: string): string {
  return s
    .replace(/\r\n|\r|\n|\t/g, " ")
    .replace(/[^\x20-\x7e]/g, "?")
    .replace(/ {2,}/g, " ")
    .trim();
}

/**
 * A header-syntax field folded at spaces (RFC 5322 §2.2.3) so lines stay within 78 characters
 * where possible and always within 998. A single unbreakable run longer than that is cut.
 */
function fold(name: string, value: string): string[] {
  const words = value.split(" ").filter((w) => w.length > 0);
  const lines: string[] = [];
  let cur = `${name}:`;
  for (const w of words) {
    if (cur.length + 1 + w.length > SOFT_LINE && cur !== `${name}:` && cur !== "") {
      lines.push(cur);
      cur = "";
    }
    // Room is left for the leading space; an unbreakable run longer than a line is cut.
    cur += " " + w.slice(0, HARD_LINE - cur.length - 1);
  }
  lines.push(cur);
  return lines;
}

/** Wrap prose at 72 columns. */
function wrap(text: string, width = 72): string[] {
  const out: string[] = [];
  let cur = "";
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (cur && cur.length + 1 + w.length > width) {
      out.push(cur);
      cur = w;
    } else cur = cur ? cur + " " + w : w;
  }
  if (cur) out.push(cur);
  return out;
}


function parseDate(iso: string | undefined): Date | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? new Date(t) : undefined;
}

function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 60_000) return "less than a minute";
  const units: [number, string][] = [
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
  ];
  const parts: string[] = [];
  let left = ms;
  for (const [size, name] of units) {
    const n = Math.floor(left / size);
    if (n > 0) parts.push(`${n} ${name}${n === 1 ? "" : "s"}`);
    left -= n * size;
    if (parts.length === 2) break; // "5 days 3 hours" is precise enough
  }
  return parts.join(" ");
}

function checkHostName(what: string, h: string): string {
  // Goes into header fields verbatim: must be an ASCII host name (an IDN in its A-label form).
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(h) && !/^\[[0-9A-Fa-f:.]+\]$/.test(h)) {
    throw new RangeError(`buildDsn: ${what} must be an ASCII host name, got ${JSON.stringify(h)}`);
  }
  return h;
}

/** Characters safe in a Message-ID left-hand side and a boundary. */
function safeToken(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 40) || "x";
}

/** 32-bit FNV-1a as 8 hex digits: keeps Message-IDs of reports issued in the same millisecond apart. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, "utf8")) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

// RFC 2046 §5.1.1: 1-70 characters from bchars, not ending in a space.
const BOUNDARY_RE = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

function checkBoundary(b: string, parts: readonly Buffer[]): string {
  if (!BOUNDARY_RE.test(b)) throw new RangeError(`buildDsn: invalid MIME boundary ${JSON.stringify(b)}`);
  if (parts.some((p) => p.includes(b))) throw new RangeError("buildDsn: the given boundary occurs in the content");
  return b;
}

/**
 * queue-id.time/host, like Postfix's boundaries: readable and deterministic. RFC 2046 §5.1.1
 * requires that it not occur in the encapsulated parts, which are partly attacker-controlled (the
 * original message), so it is checked and varied until it does not.
 */
function defaultBoundary(id: string, now: Date, host: string, parts: readonly Buffer[]): string {
  const base = `${safeToken(id)}.${now.getTime()}/${host}`.slice(0, 60);
  for (let n = 0; ; n++) {
    const b = n === 0 ? base : `${base}=${n}`;
    if (!parts.some((p) => p.includes(b))) return b;
  }
}

// ---------------------------------------------------------------------------------------------
// Byte-level helpers for the attached original

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return prefix.length > 0 && buf.length >= prefix.length && buf.subarray(0, prefix.length).equals(prefix);
}

/**
 * CRLF line ends throughout (a bare CR or LF becomes CRLF: RFC 5322 §2.3 allows them only as a
 * pair) and a final CRLF. With `cutLong`, lines over 998 octets are cut: used for the headers
 * part, which is informative; the full message is never altered that way.
 */
function normaliseLines(buf: Buffer, cutLong: boolean): Buffer {
  const crlf = Buffer.from(CRLF);
  const chunks: Buffer[] = [];
  let start = 0;
  while (start < buf.length) {
    let i = start;
    while (i < buf.length && buf[i] !== 0x0d && buf[i] !== 0x0a) i++;
    const line = buf.subarray(start, i);
    chunks.push(cutLong && line.length > HARD_LINE ? line.subarray(0, HARD_LINE) : line, crlf);
    if (buf[i] === 0x0d && buf[i + 1] === 0x0a) i++;
    start = i + 1;
  }
  return Buffer.concat(chunks);
}

function maxLineLength(buf: Buffer): number {
  let max = 0;
  let start = 0;
  for (;;) {
    const lf = buf.indexOf(0x0a, start);
    const end = lf < 0 ? buf.length : lf;
    const len = end - start - (end > start && buf[end - 1] === 0x0d ? 1 : 0);
    if (len > max) max = len;
    if (lf < 0) return max;
    start = lf + 1;
  }
}

function hasEightBit(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i]! >= 0x80) return true;
  return false;
}

