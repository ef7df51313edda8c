// SMTP replies as the client sees them: parsing (single and multi-line, RFC 5321 §4.2),
// enhanced status codes (RFC 3463, RFC 2034) and transient/permanent classification.
// Pure: no I/O.

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
 * Accumulates reply lines into complete replies. Feed it one line at a time (CRLF removed);
 * it returns the reply once its last line arrives. Throws on a line that is not a reply or
 * whose code differs from the previous lines of the same reply (RFC 5321 §4.2.1).
 */
export class ReplyAssembler {
  private pending: ReplyLine[] = [];

  push(line: string): SmtpReply | undefined {
    const l = parseReplyLine(line);
    if (!l) throw new ReplyParseError(`malformed SMTP reply line: ${JSON.stringify(line.slice(0, 200))}`);
    if (this.pending.length && this.pending[0]!.code !== l.code) {
      throw new ReplyParseError(`reply code changed inside a multi-line reply (${this.pending[0]!.code} then ${l.code})`);
    }
    this.pending.push(l);
    if (l.more) return undefined;
    const lines = this.pending;
    this.pending = [];
    return buildReply(lines);
  }

  /** True while a multi-line reply is incomplete. */
  get partial(): boolean {
    return this.pending.length > 0;
  }

  /** Lines of the incomplete reply received so far (for bounding a hostile server). */
  get pendingLines(): number {
    return this.pending.length;
  }
}

export class ReplyParseError extends Error {
  constructor(message: string) {
    super(message);
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

export function isTransient(r: SmtpReply): boolean {
  return classifyReply(r.code) === "transient";
}

export function isPermanent(r: SmtpReply): boolean {
  return classifyReply(r.code) === "permanent";
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
 * "550 5.1.1 <x@example.com>: no such user". Lines of a multi-line reply are joined by a space.
 */
export function formatReply(r: SmtpReply): string {
  const text = r.lines.map((l) => l.trim()).filter((l) => l.length > 0).join(" ");
  return [String(r.code), r.enhanced, text].filter((p) => p !== undefined && p !== "").join(" ");
}

/** Build a reply value (for locally generated outcomes and tests). */
export function makeReply(code: number, enhanced: string | undefined, text: string): SmtpReply {
  return enhanced === undefined ? { code, lines: [text] } : { code, enhanced, lines: [text] };
}
