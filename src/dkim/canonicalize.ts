// DKIM canonicalisation (RFC 6376 §3.4), pure and streaming: header fields are canonicalised
// one at a time, bodies byte by byte as they arrive, in constant memory (no line buffer: a
// body is never held, whatever its line lengths).

export type Canon = "simple" | "relaxed";

/** One header field as it appears in the message: its name and the raw bytes, CRLFs included. */
export interface HeaderField {
  /** The field name as written (without the colon, trailing WSP removed). */
  name: string;
  /** The whole field, folding and the final CRLF included (latin1 string: one char per octet). */
  raw: string;
}

const WSP_RUN = /[ \t]+/g;

/**
 * RFC 6376 §3.4.2 "relaxed": lower-case the name, unfold, reduce every WSP run to one SP,
 * drop WSP at the end of the value and around the colon. §3.4.1 "simple": the field unchanged.
 */
export function canonHeader(field: HeaderField, canon: Canon): string {
  if (canon === "simple") return field.raw;
  const colon = field.raw.indexOf(":");
  const name = field.raw.slice(0, colon).replace(/[ \t]+$/, "").toLowerCase();
  const value = field.raw
    .slice(colon + 1)
    .replace(/\r\n/g, "")
    .replace(WSP_RUN, " ")
    .replace(/^ /, "")
    .replace(/ $/, "");
  return `${name}:${value}\r\n`;
}

/**
 * Split a header section (the octets before the empty line, as a latin1 string) into fields.
 * A line starting with WSP continues the previous field (RFC 5322 §2.2.3). Lines without a
 * colon are not header fields; they are kept out (a verifier ignores them too).
 */
export function splitHeaderFields(section: string): HeaderField[] {
  const fields: HeaderField[] = [];
  let start = 0;
  const lines: string[] = [];
  while (start < section.length) {
    let end = section.indexOf("\r\n", start);
    end = end < 0 ? section.length : end + 2;
    lines.push(section.slice(start, end));
    start = end;
  }
  for (const line of lines) {
    if ((line[0] === " " || line[0] === "\t") && fields.length) {
      fields[fields.length - 1]!.raw += line;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    fields.push({ name: line.slice(0, colon).replace(/[ \t]+$/, ""), raw: line });
  }
  return fields;
}

const CRLF = Buffer.from("\r\n");
const SP = Buffer.from(" ");
const CR = Buffer.from("\r");

/**
 * Body canonicalisation (RFC 6376 §3.4.3 simple, §3.4.4 relaxed) as a stream: push() the body
 * octets in any chunking, end() once; the canonical octets go to `out` (a hash's update; it
 * must not keep the buffer it is given).
 * State is a few counters: line ends are held back (empty lines at the end of the body are
 * ignored), and in relaxed mode a WSP run until it is known not to end its line.
 */
export class BodyCanonicalizer {
  /** CRLFs seen but not yet emitted (they may turn out to be trailing empty lines). */
  private pendingCrlf = 0;
  /** Relaxed: a WSP run seen in the current line and not emitted yet. */
  private pendingWsp = false;
  /** The previous chunk ended with CR: the line end may complete in this one. */
  private pendingCr = false;
  /** Some octet other than a line end has been emitted (the body is not empty). */
  private any = false;
  /** Canonical octets emitted so far. */
  length = 0;
  /**
   * Output is gathered here and handed on once per push(): relaxed text is many short runs
   * between WSP, and one hash update per run costs more than copying them.
   */
  private readonly scratch = Buffer.allocUnsafe(16 * 1024);
  private used = 0;

  constructor(private readonly canon: Canon, private readonly out: (b: Buffer) => void) {}

  private emit(b: Buffer): void {
    this.length += b.length;
    if (b.length > this.scratch.length - this.used) {
      this.flush();
      if (b.length > this.scratch.length) return this.out(b);
    }
    b.copy(this.scratch, this.used);
    this.used += b.length;
  }

  private flush(): void {
    if (!this.used) return;
    // `out` must consume the octets at once (a hash update does): the buffer is reused.
    this.out(this.scratch.subarray(0, this.used));
    this.used = 0;
  }

  /** Emit held line ends and WSP before content. */
  private beforeContent(): void {
    for (; this.pendingCrlf > 0; this.pendingCrlf--) this.emit(CRLF);
    if (this.pendingWsp) {
      this.emit(SP);
      this.pendingWsp = false;
    }
    this.any = true;
  }

  push(chunk: Buffer): void {
    this.scan(chunk);
    this.flush();
  }

  private scan(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    if (n === 0) return;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] === 0x0a) {
        this.lineEnd();
        i = 1;
      } else this.content(CR);
    }
    const relaxed = this.canon === "relaxed";
    while (i < n) {
      const c = chunk[i]!;
      if (c === 0x0d) {
        if (i + 1 === n) {
          this.pendingCr = true;
          return;
        }
        if (chunk[i + 1] === 0x0a) {
          this.lineEnd();
          i += 2;
          continue;
        }
        this.content(CR); // a bare CR is an ordinary octet
        i++;
        continue;
      }
      if (relaxed && (c === 0x20 || c === 0x09)) {
        this.pendingWsp = true;
        i++;
        continue;
      }
      // A run of ordinary octets goes out as one slice.
      let j = i + 1;
      while (j < n) {
        const d = chunk[j]!;
        if (d === 0x0d || (relaxed && (d === 0x20 || d === 0x09))) break;
        j++;
      }
      this.content(chunk.subarray(i, j));
      i = j;
    }
  }

  private content(b: Buffer): void {
    this.beforeContent();
    this.emit(b);
  }

  private lineEnd(): void {
    this.pendingWsp = false; // relaxed: WSP at the end of a line is ignored
    this.pendingCrlf++;
  }

  /** The body is complete: emit its final line end (RFC 6376 §3.4.3/§3.4.4 rules for the end). */
  end(): void {
    if (this.pendingCr) {
      this.pendingCr = false;
      this.content(CR);
    }
    // simple: trailing empty lines become one CRLF, and an empty body is one CRLF.
    // relaxed: trailing empty lines vanish; a non-empty body ends with CRLF; an empty body stays empty.
    if (this.canon === "simple" || this.any) this.emit(CRLF);
    this.flush();
  }
}
