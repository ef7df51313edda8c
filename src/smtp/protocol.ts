// Streaming pieces of the SMTP wire protocol, pure (no sockets):
// - CommandReader splits the command stream into lines without unbounded buffering.
// - DataReader turns DATA bytes into message bytes: dot-unstuffing, end-of-data detection
//   only at <CRLF>.<CRLF>, and flags for bare CR/LF, overlong lines and 8-bit octets.
// - DotStuffer is the other direction (our client's DATA): dot-stuffing and line-end hygiene.

import { isAscii } from "node:buffer";

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

export interface CommandLine {
  /** The line without its line end. */
  line: string;
  /** The line exceeded the maximum length; its content was discarded. */
  tooLong: boolean;
  /**
   * The line's octets are not valid UTF-8 (`line` then holds U+FFFD in their place, so it must
   * not be stored: an address is refused, never altered).
   */
  invalidUtf8?: boolean;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** RFC 3629 well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)? */
export function isValidUtf8(bytes: Uint8Array): boolean {
  if (isAscii(bytes)) return true;
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * Splits the incoming command stream on LF (a trailing CR is removed). Lines longer than
 * `maxLine` octets are reported as tooLong and their bytes are dropped as they arrive, so a
 * client can't make us buffer without bound.
 */
export class CommandReader {
  private buf: Buffer = Buffer.alloc(0);
  private discarding = false;
  constructor(private readonly maxLine: number) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
  }

  /** Next complete line, or undefined when more input is needed. */
  next(): CommandLine | undefined {
    for (;;) {
      const nl = this.buf.indexOf(LF);
      if (nl < 0) {
        // A pending CR may be the first half of the line's CRLF: don't count it yet.
        const pending = this.buf.length && this.buf[this.buf.length - 1] === CR ? this.buf.length - 1 : this.buf.length;
        if (pending > this.maxLine) {
          // Keep discarding until the line ends; report once at its end.
          this.discarding = true;
          this.buf = Buffer.alloc(0);
        }
        return undefined;
      }
      let end = nl;
      if (end > 0 && this.buf[end - 1] === CR) end--;
      const raw = this.buf.subarray(0, end);
      this.buf = this.buf.subarray(nl + 1);
      if (this.discarding || raw.length > this.maxLine) {
        this.discarding = false;
        return { line: "", tooLong: true };
      }
      return isValidUtf8(raw) ? { line: raw.toString("utf8"), tooLong: false } : { line: raw.toString("utf8"), tooLong: false, invalidUtf8: true };
    }
  }

  /** Take whatever is buffered (used when switching to DATA mode or to drop bytes after STARTTLS). */
  takeRest(): Buffer {
    const r = this.buf;
    this.buf = Buffer.alloc(0);
    this.discarding = false;
    return r;
  }

  get buffered(): number {
    return this.buf.length;
  }
}

export interface DataResult {
  /** Message bytes decoded from this chunk (dots unstuffed). */
  out: Buffer;
  /** End of data seen: `rest` holds the bytes after the terminating <CRLF>.<CRLF>. */
  done: boolean;
  rest?: Buffer;
}

/**
 * RFC 5321 §4.1.1.4 / §4.5.2: the data ends only at <CRLF>.<CRLF>; a line starting with a dot
 * has that dot removed. A bare CR or bare LF is never a line end (§2.3.8) — this is what stops
 * SMTP smuggling (`\n.\n`, `\r.\r`, `\r\n.\r`, `\n.\r\n` all stay message data) — and is
 * flagged so the server can refuse the message.
 */
export class DataReader {
  private lineStart = true; // the first data line starts right after the DATA command's CRLF
  private crPending = false;
  private dotLine = false;
  private lineLen = 0;
  bareLineEnd = false;
  longLine = false;
  eightBit = false;
  constructor(private readonly maxLine = 1000) {}

  /**
   * The common chunk, without copying: every line in it ends in CRLF, none starts with a dot
   * except the terminator, so the message data is the chunk itself up to the terminator (or
   * all of it). The line ends are found by string search over a latin1 view (about ten times
   * faster than visiting each octet). Returns undefined, with no state changed, as soon as
   * anything else shows up (a bare CR or LF, a dot to unstuff, a CR at the chunk's end): the
   * octet-at-a-time decoder below then takes the whole chunk.
   */
  private feedClean(chunk: Buffer): DataResult | undefined {
    const n = chunk.length;
    const s = chunk.toString("latin1");
    const maxLine = this.maxLine;
    let lineStart = this.lineStart;
    let lineLen = this.lineLen;
    let long = false;
    let lf = -1;
    let i = 0;
    let end = -1; // where the terminator starts, once found
    while (i < n) {
      if (lineStart && s.charCodeAt(i) === DOT) {
        if (!s.startsWith(".\r\n", i)) return undefined;
        end = i;
        break;
      }
      const cr = s.indexOf("\r", i);
      if (lf < i) lf = s.indexOf("\n", i);
      if (cr < 0) {
        // A partial line runs to the end of the chunk: no LF may be in it.
        if (lf >= 0) return undefined;
        lineLen += n - i;
        if (lineLen > maxLine) long = true;
        lineStart = false;
        i = n;
        break;
      }
      // The first LF from here must be the one right after this CR.
      if (lf !== cr + 1) return undefined;
      lineLen += cr + 2 - i;
      if (lineLen > maxLine) long = true;
      lineLen = 0;
      lineStart = true;
      i = cr + 2;
    }
    const data = end < 0 ? chunk : chunk.subarray(0, end);
    if (!isAscii(data)) this.eightBit = true;
    if (long) this.longLine = true;
    if (end >= 0) return { out: data, done: true, rest: chunk.subarray(end + 3) };
    this.lineStart = lineStart;
    this.lineLen = lineLen;
    return { out: data, done: false };
  }

  /**
   * Decode one chunk: feedClean when it can, else octet by octet. The state lives in locals
   * while the chunk is scanned (fields are written back once), and a run of ordinary octets
   * inside a line is copied by a tight inner loop (this loop over every octet of every message
   * was the inbound profile's largest JavaScript function, docs/performance.md).
   */
  feed(chunk: Buffer): DataResult {
    if (!this.crPending && !this.dotLine) {
      const fast = this.feedClean(chunk);
      if (fast) return fast;
    }
    const out = Buffer.allocUnsafe(chunk.length + 1);
    const n = chunk.length;
    const maxLine = this.maxLine;
    let lineStart = this.lineStart;
    let crPending = this.crPending;
    let dotLine = this.dotLine;
    let lineLen = this.lineLen;
    let bare = false;
    let long = false;
    let eight = false;
    let o = 0;
    let i = 0;
    let done = false;
    while (i < n) {
      let b = chunk[i]!;
      if (crPending) {
        crPending = false;
        if (b === LF) {
          i++;
          lineLen++;
          if (dotLine && lineLen === 3) {
            // ".\r\n" after a CRLF: end of data. The CRLF before the dot belongs to the message.
            done = true;
            break;
          }
          out[o++] = CR;
          out[o++] = LF;
          if (lineLen > maxLine) long = true;
          lineStart = true;
          dotLine = false;
          lineLen = 0;
          continue;
        }
        // Bare CR: keep it as data (the message is refused later), never a line end.
        bare = true;
        out[o++] = CR;
      }
      if (b === CR) {
        crPending = true;
        lineStart = false;
        lineLen++;
        i++;
        continue;
      }
      if (b === LF) {
        bare = true;
        lineStart = false;
        out[o++] = b;
        lineLen++;
        i++;
        continue;
      }
      if (lineStart && b === DOT) {
        lineStart = false;
        dotLine = true;
        lineLen++;
        i++;
        continue; // dot-unstuffing (RFC 5321 §4.5.2)
      }
      lineStart = false;
      // Ordinary octets up to the next CR or LF. The line length only grows inside the run,
      // so checking it once after the run sets the flag exactly when a check per octet would.
      const from = i;
      for (;;) {
        if (b >= 0x80) eight = true;
        out[o++] = b;
        if (++i === n) break;
        b = chunk[i]!;
        if (b === CR || b === LF) break;
      }
      lineLen += i - from;
      if (lineLen > maxLine) long = true;
    }
    this.lineStart = lineStart;
    this.crPending = crPending;
    this.dotLine = dotLine;
    this.lineLen = lineLen;
    if (bare) this.bareLineEnd = true;
    if (long) this.longLine = true;
    if (eight) this.eightBit = true;
    return done ? { out: out.subarray(0, o), done: true, rest: chunk.subarray(i) } : { out: out.subarray(0, o), done: false };
  }
}

/**
 * Streaming transparency for DATA (RFC 5321 §4.5.2) and line-end hygiene (§2.3.8): every line
 * that starts with "." gets another "."; bare LF and bare CR become CRLF, so the remote can
 * never see an end-of-data sequence we did not mean (SMTP smuggling, CVE-2023-51764..6).
 * State carries across chunks; memory is one output buffer per input chunk.
 */
export class DotStuffer {
  private lineStart = true;
  private pendingCR = false;

  push(chunk: Uint8Array): Buffer {
    const clean = this.pendingCR ? undefined : cleanChunk(chunk, this.lineStart);
    if (clean !== undefined) {
      // Nothing to change (the usual case: a stored message is CRLF throughout): the chunk as is.
      if (chunk.length) this.lineStart = clean;
      return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    }
    // Worst case each octet doubles ("\n" → "\r\n", "." at line start → ".."), plus a pending CR.
    const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
    let o = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.pendingCR) {
        this.pendingCR = false;
        out[o++] = 13;
        out[o++] = 10;
        this.lineStart = true;
        if (b === 10) continue; // a proper CRLF
        // else: a bare CR, written as a line end
      }
      if (b === 13) {
        this.pendingCR = true;
        continue;
      }
      if (b === 10) {
        out[o++] = 13;
        out[o++] = 10;
        this.lineStart = true;
        continue;
      }
      if (this.lineStart && b === 46) out[o++] = 46;
      out[o++] = b;
      this.lineStart = false;
    }
    return out.subarray(0, o);
  }

  /** The tail: a CRLF if the last line was unterminated, then the end-of-data ".\r\n". */
  end(): Buffer {
    let s = "";
    if (this.pendingCR) {
      s += "\r\n";
      this.pendingCR = false;
      this.lineStart = true;
    }
    if (!this.lineStart) s += "\r\n";
    this.lineStart = true;
    return Buffer.from(s + ".\r\n", "latin1");
  }
}

/**
 * Whether a chunk passes DotStuffer unchanged, seen from state `lineStart` (no CR pending): every
 * CR is followed by LF and every LF preceded by CR within the chunk, no line starts with "." and
 * the chunk does not end in a CR. Returns the line-start state after it, or undefined when the
 * chunk needs the octet-by-octet path. Uses indexOf (native) instead of a JavaScript loop per octet.
 */
function cleanChunk(chunk: Uint8Array, lineStart: boolean): boolean | undefined {
  const n = chunk.length;
  if (n === 0) return lineStart;
  if (lineStart && chunk[0] === 46) return undefined;
  const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, n);
  for (let p = b.indexOf(13); p !== -1; p = b.indexOf(13, p + 1)) if (p + 1 >= n || b[p + 1] !== 10) return undefined;
  for (let p = b.indexOf(10); p !== -1; p = b.indexOf(10, p + 1)) {
    if (p === 0 || b[p - 1] !== 13) return undefined;
    if (p + 1 < n && b[p + 1] === 46) return undefined;
  }
  return b[n - 1] === 10;
}
