// SMTP replies as the client sees them: parsing (single and multi-line, RFC 5321 §4.2),
// enhanced status codes (RFC 3463, RFC 2034) and transient/permanent classification.
// Pure: no I/O.
import { MxdError } from "./errors.js";

export interface SmtpReply {
  /** Three-digit reply code (RFC 5321 §4.2). */
  code: number;
  /** Enhanced status code "c.sss.ddd" when the server gave one whose class matches the code. */
  enhanced?: string;
  /** Text of each line, without the code, separator and enhanced code. */
  lines: string[];
}

export type ReplyClass = "positive" | "intermediate" | "transient" | "permanent";

export interface ReplyLine {
  code: number;
  /** True on "250-..." continuation lines, false on the last line "250 ...". */
  more: boolean;
  text: string;
}

// RFC 5321 §4.2: Reply-code SP/"-" text. A bare "250" (no separator, no text) is tolerated.
const LINE_RE = /^([2-5][0-5][0-9])(?:([ -])(.*))?$/s;

/** Parse one reply line (without CRLF). Undefined when the line is not a reply line. */
export function parseReplyLine(line: string): ReplyLine | undefined {
  const m = LINE_RE.exec(line);
  if (!m) return undefined;
  return { code: Number(m[1]), more: m[2] === "-", text: m[3] ?? "" };
}

// RFC 3463 §2: class "." subject "." detail; class is 2, 4 or 5, subject and detail 1-3 digits.
const ENHANCED_RE = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/**
 * Split an enhanced status code off the front of a reply text. RFC 2034 §3: it must agree with
 * the class of the reply code; a mismatching one (e.g. "250 5.0.0") is left in the text.
 */
export function splitEnhanced(code: number, text: string): { enhanced?: string; text: string } {
  const m = ENHANCED_RE.exec(text);
  if (!m || Number(m[1]) !== Math.floor(code / 100)) return { text };
  return { enhanced: `${m[1]}.${Number(m[2])}.${Number(m[3])}`, text: text.slice(m[0].length) };
}

/**
 * Bounds on what a remote server may send as one reply (RFC 5321 §4.5.3.1.5: a reply line is
 * at most 512 octets including CRLF; we allow slack for real servers, but never without bound:
 * a hostile MX must not make a message's state, a log line or a bounce grow with its reply).
 */
export interface ReplyLimits {
  /** Octets in one reply line, CRLF excluded. */
  maxLineOctets: number;
  /** Lines in one (multi-line) reply. */
  maxLines: number;
  /** Octets in one reply, all lines and CRLFs included. */
  maxOctets: number;
}

export const REPLY_LIMITS: ReplyLimits = { maxLineOctets: 2048, maxLines: 100, maxOctets: 16 * 1024 };

/**
 * Accumulates reply lines into complete replies. Feed it one line at a time (CRLF removed);
 * it returns the reply once its last line arrives. Throws on a line that is not a reply or
 * whose code differs from the previous lines of the same reply (RFC 5321 §4.2.1), and on a
 * reply beyond the limits (too many lines or octets).
 */
export class ReplyAssembler {
  private pending: ReplyLine[] = [];
  private octets = 0;

  constructor(private readonly limits: ReplyLimits = REPLY_LIMITS) {}

  /** `octets`: the line's size on the wire (default: its length + CRLF). */
  push(line: string, octets = line.length + 2): SmtpReply | undefined {
    if (octets - 2 > this.limits.maxLineOctets) throw new ReplyParseError(`reply line longer than ${this.limits.maxLineOctets} octets`);
    const l = parseReplyLine(line);
    if (!l) throw new ReplyParseError(`malformed SMTP reply line: ${JSON.stringify(line.slice(0, 200))}`);
    if (this.pending.length && this.pending[0]!.code !== l.code) {
      throw new ReplyParseError(`reply code changed inside a multi-line reply (${this.pending[0]!.code} then ${l.code})`);
    }
    this.pending.push(l);
    this.octets += octets;
    if (this.pending.length > this.limits.maxLines) throw new ReplyParseError(`multi-line reply longer than ${this.limits.maxLines} lines`);
    if (this.octets > this.limits.maxOctets) throw new ReplyParseError(`multi-line reply larger than ${this.limits.maxOctets} octets`);
    if (l.more) return undefined;
    const lines = this.pending;
    this.pending = [];
    this.octets = 0;
    return buildReply(lines);
  }

  /** True while a multi-line reply is incomplete. */
  get partial(): boolean {
    return this.pending.length > 0;
  }

  /** Lines of the incomplete reply received so far. */
  get pendingLines(): number {
    return this.pending.length;
  }
}

/**
 * One reply line's octets as text that is safe to keep, log and quote: valid UTF-8 is kept,
 * every control octet (C0, DEL), C1 control and invalid UTF-8 octet becomes "\xNN". A hostile
 * server's bytes can then never reach a log line, a terminal or a bounce raw.
 */
export function decodeReplyLine(b: Uint8Array): string {
  // The common case, a line of printable ASCII only: one decode of the whole line.
  let printable = true;
  for (let k = 0; k < b.length; k++) {
    const c = b[k]!;
    if (c < 0x20 || c >= 0x7f) {
      printable = false;
      break;
    }
  }
  if (printable) return Buffer.from(b.buffer, b.byteOffset, b.length).toString("latin1");
  let out = "";
  let i = 0;
  const hex = (x: number) => "\\x" + x.toString(16).toUpperCase().padStart(2, "0");
  while (i < b.length) {
    const c = b[i]!;
    if (c >= 0x20 && c < 0x7f) {
      // Runs of printable ASCII, the common case, in one step.
      let j = i + 1;
      while (j < b.length && b[j]! >= 0x20 && b[j]! < 0x7f) j++;
      out += Buffer.from(b.buffer, b.byteOffset + i, j - i).toString("latin1");
      i = j;
      continue;
    }
    const n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    let cp = n === 2 ? c & 0x1f : n === 3 ? c & 0x0f : c & 0x07;
    let ok = n > 0 && i + n <= b.length;
    for (let k = 1; ok && k < n; k++) {
      const d = b[i + k]!;
      if ((d & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (d & 0x3f);
    }
    // RFC 3629 §3: no overlong forms, no surrogates, nothing above U+10FFFF.
    if (ok && ((n === 3 && cp < 0x800) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (!ok || (cp >= 0x80 && cp < 0xa0)) {
      if (ok) for (let k = 0; k < n; k++) out += hex(b[i + k]!);
      else out += hex(c);
      i += ok ? n : 1;
      continue;
    }
    out += String.fromCodePoint(cp);
    i += n;
  }
  return out;
}

/** Characters of remote text kept in results, the attempt history, logs and DSNs. */
export const EXCERPT_MAX = 512;

/**
 * A short, cleaned excerpt of a text that may come from a remote server: controls escaped (as
 * in decodeReplyLine), at most `max` characters including a note of how much was cut.
 * Idempotent: an excerpt is its own excerpt.
 */
export function excerpt(s: string, max = EXCERPT_MAX): string {
  const clean = /[\x00-\x1f\x7f-\x9f]/.test(s) ? s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")) : s;
  if (clean.length <= max) return clean;
  // The note is at most 24 characters ("... (+999999999999 cut)").
  let keep = Math.max(0, max - 24);
  // Never end on half a surrogate pair.
  if (keep > 0 && /[\ud800-\udbff]/.test(clean[keep - 1]!)) keep--;
  return `${clean.slice(0, keep)}... (+${clean.length - keep} cut)`;
}

export class ReplyParseError extends MxdError {
  constructor(message: string) {
    super("MXD_REPLY_SYNTAX", message);
    this.name = "ReplyParseError";
  }
}

function buildReply(lines: ReplyLine[]): SmtpReply {
  const code = lines[0]!.code;
  let enhanced: string | undefined;
  const texts = lines.map((l, i) => {
    const s = splitEnhanced(code, l.text);
    if (i === 0) enhanced = s.enhanced;
    // Continuation lines usually repeat the code ("250-2.0.0 ..."); strip it only when equal.
    return s.enhanced !== undefined && s.enhanced === enhanced ? s.text : l.text;
  });
  return enhanced === undefined ? { code, lines: texts } : { code, enhanced, lines: texts };
}

/** Parse a complete reply given as text (lines separated by CRLF or LF). */
export function parseReply(text: string): SmtpReply {
  const a = new ReplyAssembler();
  const lines = text.replace(/\r?\n$/, "").split(/\r?\n/);
  let reply: SmtpReply | undefined;
  for (const line of lines) {
    if (reply) throw new ReplyParseError("text after the last line of a reply");
    reply = a.push(line);
  }
  if (!reply) throw new ReplyParseError("incomplete multi-line reply");
  return reply;
}

/** RFC 5321 §4.2.1: 2yz positive completion, 3yz intermediate, 4yz transient, 5yz permanent. */
export function classifyReply(code: number): ReplyClass {
  if (code >= 500) return "permanent";
  if (code >= 400) return "transient";
  if (code >= 300) return "intermediate";
  return "positive";
}

/**
 * The enhanced status to record: the server's own, else the generic one for the reply class
 * (RFC 3463 §3.1: X.0.0 "other undefined status").
 */
export function statusOf(r: SmtpReply): string {
  if (r.enhanced) return r.enhanced;
  return `${Math.floor(r.code / 100)}.0.0`;
}

/**
 * One-line rendering for logs, results and DSN Diagnostic-Code, e.g.
 * "550 5.1.1 <x@example.com>: no such user". Lines of a multi-line reply are joined by a space;
 * the result is an excerpt of at most EXCERPT_MAX characters (plus a note of what was cut).
 */
export function formatReply(r: SmtpReply): string {
  const text = r.lines.map((l) => l.trim()).filter((l) => l.length > 0).join(" ");
  return excerpt([String(r.code), r.enhanced, text].filter((p) => p !== undefined && p !== "").join(" "));
}

/** Build a reply value (for locally generated outcomes and tests). */
export function makeReply(code: number, enhanced: string | undefined, text: string): SmtpReply {
  return enhanced === undefined ? { code, lines: [text] } : { code, enhanced, lines: [text] };
}
