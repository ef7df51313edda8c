import { test } from "node:test";
import assert from "node:assert/strict";
import { CommandReader, DataReader, isValidUtf8 } from "../../src/smtp/protocol.js";

const b = (s: string) => Buffer.from(s, "latin1");

interface DataOutcome {
  out: string;
  done: boolean;
  rest: string;
  bare: boolean;
  long: boolean;
  eight: boolean;
}

/** Feed chunks to a fresh DataReader until done; returns the decoded message, the rest and flags. */
function runData(chunks: Buffer[], maxLine = 1000): DataOutcome {
  const r = new DataReader(maxLine);
  const out: Buffer[] = [];
  let rest: Buffer[] = [];
  let done = false;
  for (const c of chunks) {
    if (done) {
      rest.push(c);
      continue;
    }
    const res = r.feed(c);
    out.push(res.out);
    if (res.done) {
      done = true;
      rest = [res.rest ?? Buffer.alloc(0)];
    }
  }
  return { out: Buffer.concat(out).toString("latin1"), done, rest: Buffer.concat(rest).toString("latin1"), bare: r.bareLineEnd, long: r.longLine, eight: r.eightBit };
}

/** Every way of cutting `s` into 1, 2 and 3 pieces, plus byte by byte. */
function splits(s: string): Buffer[][] {
  const buf = b(s);
  const out: Buffer[][] = [[buf], [...buf].map((x) => Buffer.from([x]))];
  for (let i = 0; i <= buf.length; i++) {
    out.push([buf.subarray(0, i), buf.subarray(i)]);
    if (buf.length <= 80) for (let j = i; j <= buf.length; j++) out.push([buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)]);
  }
  return out;
}

function dataEverySplit(input: string, expected: Omit<DataOutcome, "long" | "eight"> & Partial<DataOutcome>, maxLine = 1000): void {
  for (const chunks of splits(input)) {
    const got = runData(chunks, maxLine);
    const where = `input ${JSON.stringify(input)} split as ${JSON.stringify(chunks.map((c) => c.toString("latin1")))}`;
    assert.equal(got.done, expected.done, `done: ${where}`);
    assert.equal(got.out, expected.out, `out: ${where}`);
    assert.equal(got.rest, expected.rest, `rest: ${where}`);
    assert.equal(got.bare, expected.bare, `bareLineEnd: ${where}`);
    if (expected.long !== undefined) assert.equal(got.long, expected.long, `longLine: ${where}`);
    if (expected.eight !== undefined) assert.equal(got.eight, expected.eight, `eightBit: ${where}`);
  }
}

test("DataReader: plain message ends at CRLF.CRLF, the CRLF before the dot is message data", () => {
  dataEverySplit("Subject: x\r\n\r\nhello\r\n.\r\n", { out: "Subject: x\r\n\r\nhello\r\n", done: true, rest: "", bare: false, long: false, eight: false });
});

test("DataReader: empty message (the DATA command's CRLF counts as the preceding line end)", () => {
  dataEverySplit(".\r\n", { out: "", done: true, rest: "", bare: false });
  dataEverySplit("\r\n.\r\n", { out: "\r\n", done: true, rest: "", bare: false });
});

test("DataReader: dot-unstuffing of every line that starts with a dot, including the first", () => {
  dataEverySplit("..first\r\nmid\r\n..\r\n...\r\n.x.\r\n\r\n..\r\n.\r\n", {
    out: ".first\r\nmid\r\n.\r\n..\r\nx.\r\n\r\n.\r\n",
    done: true,
    rest: "",
    bare: false,
  });
});

test("DataReader: a dot that is not at a line start is kept", () => {
  dataEverySplit("a.b\r\n a\r\nx.\r\n.\r\n", { out: "a.b\r\n a\r\nx.\r\n", done: true, rest: "", bare: false });
});

test("DataReader: bytes after the terminator are returned as rest (pipelined commands), across every split", () => {
  dataEverySplit("body\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", {
    out: "body\r\n",
    done: true,
    rest: "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
    bare: false,
  });
  // A second terminator in the rest is not consumed by this reader.
  dataEverySplit("x\r\n.\r\n.\r\n", { out: "x\r\n", done: true, rest: ".\r\n", bare: false });
});

test("DataReader: not done without the terminator", () => {
  dataEverySplit("abc\r\n.", { out: "abc\r\n", done: false, rest: "", bare: false });
  dataEverySplit("abc\r\n.\r", { out: "abc\r\n", done: false, rest: "", bare: false });
  dataEverySplit("abc\r\n..\r\n", { out: "abc\r\n.\r\n", done: false, rest: "", bare: false });
  dataEverySplit("abc\r\n. \r\n", { out: "abc\r\n \r\n", done: false, rest: "", bare: false });
});

// SEC Consult SMTP smuggling: none of these may end the data; all are bare CR/LF and flagged.
const SMUGGLING = ["\n.\n", "\r.\r", "\r\n.\r", "\n.\r\n", "\r.\r\n", "\n.\r"];
const FORGED = "MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n";

for (const seq of SMUGGLING) {
  test(`DataReader: smuggling sequence ${JSON.stringify(seq)} does not end the data and is flagged`, () => {
    const input = `Subject: s\r\n\r\nreal${seq}${FORGED}.\r\n`;
    for (const chunks of splits(input)) {
      const got = runData(chunks);
      const where = `split ${JSON.stringify(chunks.map((c) => c.toString("latin1")))}`;
      // The only real terminator is the last "\r\n.\r\n"; everything before it is data.
      assert.equal(got.done, true, where);
      assert.equal(got.rest, "", where);
      assert.equal(got.bare, true, `bare line end must be flagged: ${where}`);
      assert.ok(got.out.includes("MAIL FROM:<evil@x>"), `forged commands stay message data: ${where}`);
      assert.ok(got.out.endsWith("forged\r\n"), where);
    }
  });
}

test("DataReader: bare CR and bare LF are flagged, CRLF is not", () => {
  assert.equal(runData([b("a\rb\r\n.\r\n")]).bare, true);
  assert.equal(runData([b("a\nb\r\n.\r\n")]).bare, true);
  assert.equal(runData([b("a\r\r\n.\r\n")]).bare, true);
  assert.equal(runData([b("a\r\n\r\n.\r\n")]).bare, false);
  // A CR at the very end of one chunk and the LF at the start of the next is a CRLF.
  assert.equal(runData([b("a\r"), b("\nb\r\n.\r\n")]).bare, false);
});

test("DataReader: line length limit is 1000 octets including CRLF", () => {
  const ok = "x".repeat(998);
  dataEverySplit(`${ok}\r\n.\r\n`, { out: `${ok}\r\n`, done: true, rest: "", bare: false, long: false }, 1000);
  const bad = "x".repeat(999);
  assert.equal(runData([b(`${bad}\r\n.\r\n`)]).long, true);
  assert.equal(runData([b(`${bad}\r`), b(`\n.\r\n`)]).long, true);
  // A 2000-octet line without a line end is flagged before its end arrives.
  assert.equal(runData([b("y".repeat(2000))]).long, true);
  // Short limit, every split: 8 octets + CRLF = 10 is fine, 9 + CRLF = 11 is not.
  dataEverySplit("12345678\r\n.\r\n", { out: "12345678\r\n", done: true, rest: "", bare: false, long: false }, 10);
  dataEverySplit("123456789\r\n.\r\n", { out: "123456789\r\n", done: true, rest: "", bare: false, long: true }, 10);
  // Many short lines never add up to a long one.
  const many = "abc\r\n".repeat(1000);
  assert.equal(runData([b(many + ".\r\n")]).long, false);
});

test("DataReader: eightBit is set by any octet >= 0x80 and only then", () => {
  assert.equal(runData([b("plain ascii ~\x7f\r\n.\r\n")]).eight, false);
  assert.equal(runData([Buffer.from("caf\u00e9\r\n.\r\n", "utf8")]).eight, true);
  assert.equal(runData([Buffer.from([0x61, 0x80, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a])]).eight, true);
  // on a dot-stuffed line too
  assert.equal(runData([Buffer.from("..\u00ff\r\n.\r\n", "latin1")]).eight, true);
});

test("DataReader: output buffer holds a CR carried over from the previous chunk", () => {
  // "\r" ends chunk 1; chunk 2 starts with a non-LF: the CR is emitted as data with the next byte.
  const got = runData([b("a\r"), b("b"), b("\r"), b("\n.\r\n")]);
  assert.equal(got.out, "a\rb\r\n");
  assert.equal(got.done, true);
});

// ---------------------------------------------------------------------------------------------
// CommandReader

function readAllLines(r: CommandReader): { line: string; tooLong: boolean }[] {
  const out: { line: string; tooLong: boolean }[] = [];
  for (;;) {
    const l = r.next();
    if (!l) return out;
    out.push(l);
  }
}

function commandsEverySplit(input: string, expected: { line: string; tooLong: boolean }[], maxLine: number, rest = ""): void {
  for (const chunks of splits(input)) {
    const r = new CommandReader(maxLine);
    const got: { line: string; tooLong: boolean }[] = [];
    for (const c of chunks) {
      r.push(c);
      got.push(...readAllLines(r));
    }
    const where = `split ${JSON.stringify(chunks.map((c) => c.toString("latin1")))}`;
    assert.deepEqual(got, expected, where);
    assert.equal(r.takeRest().toString("latin1"), rest, `rest: ${where}`);
  }
}

test("CommandReader: splits on CRLF (and LF), keeps a trailing partial line", () => {
  commandsEverySplit(
    "EHLO a\r\nMAIL FROM:<x@y>\r\nNOOP\nRCPT",
    [
      { line: "EHLO a", tooLong: false },
      { line: "MAIL FROM:<x@y>", tooLong: false },
      { line: "NOOP", tooLong: false },
    ],
    100,
    "RCPT",
  );
});

test("CommandReader: UTF-8 command lines decode across chunk boundaries", () => {
  const s = "MAIL FROM:<j\u00f6rg@ex\u00e4mple.de> SMTPUTF8\r\n";
  const buf = Buffer.from(s, "utf8");
  for (let i = 0; i <= buf.length; i++) {
    const r = new CommandReader(100);
    r.push(buf.subarray(0, i));
    const a = readAllLines(r);
    r.push(buf.subarray(i));
    a.push(...readAllLines(r));
    assert.deepEqual(a, [{ line: s.slice(0, -2), tooLong: false }], `split at ${i}`);
  }
});

test("CommandReader: a line of exactly maxLine octets is accepted however it is split", () => {
  // 10 octets + CRLF with maxLine 10. Fails when the CR arrives in a chunk without the LF:
  // the buffer then holds 11 octets, and the reader switches to discarding.
  commandsEverySplit("0123456789\r\nNOOP\r\n", [
    { line: "0123456789", tooLong: false },
    { line: "NOOP", tooLong: false },
  ], 10);
});

test("CommandReader: an overlong line is reported once as tooLong and the next line is intact, across every split", () => {
  commandsEverySplit("01234567890123456789\r\nQUIT\r\n", [
    { line: "", tooLong: true },
    { line: "QUIT", tooLong: false },
  ], 10);
  commandsEverySplit("0123456789X\r\nQUIT\r\n", [
    { line: "", tooLong: true },
    { line: "QUIT", tooLong: false },
  ], 10);
});

test("CommandReader: buffering is bounded while an endless line arrives", () => {
  const r = new CommandReader(2048);
  for (let i = 0; i < 200; i++) {
    r.push(Buffer.alloc(1000, 0x41));
    assert.equal(r.next(), undefined);
    assert.ok(r.buffered <= 2048 + 1000, `buffered ${r.buffered}`);
  }
  r.push(b("\r\nNOOP\r\n"));
  assert.deepEqual(readAllLines(r), [
    { line: "", tooLong: true },
    { line: "NOOP", tooLong: false },
  ]);
});

test("CommandReader: takeRest returns everything after the last complete line (DATA / STARTTLS hand-off)", () => {
  const r = new CommandReader(100);
  r.push(b("DATA\r\nSubject: x\r\n\r\nbody"));
  assert.deepEqual(r.next(), { line: "DATA", tooLong: false });
  assert.equal(r.takeRest().toString("latin1"), "Subject: x\r\n\r\nbody");
  assert.equal(r.buffered, 0);
  assert.equal(r.next(), undefined);
});

test("isValidUtf8: well-formed UTF-8 only (RFC 3629)", () => {
  const cases: [string, number[], boolean][] = [
    ["empty", [], true],
    ["ASCII", [...Buffer.from("MAIL FROM:<a@b>")], true],
    ["2-octet ö", [0xc3, 0xb6], true],
    ["3-octet 用", [0xe7, 0x94, 0xa8], true],
    ["4-octet U+1F600", [0xf0, 0x9f, 0x98, 0x80], true],
    ["lone continuation", [0x80], false],
    ["Latin-1 ö", [0x6a, 0xf6, 0x72, 0x67], false],
    ["truncated 2-octet", [0xc3], false],
    ["truncated 3-octet", [0xe7, 0x94], false],
    ["overlong /", [0xc0, 0xaf], false],
    ["overlong NUL", [0xe0, 0x80, 0x80], false],
    ["surrogate U+D800", [0xed, 0xa0, 0x80], false],
    ["past U+10FFFF", [0xf4, 0x90, 0x80, 0x80], false],
    ["0xFF", [0xff], false],
    ["U+FFFD itself is valid", [0xef, 0xbf, 0xbd], true],
  ];
  for (const [name, bytes, want] of cases) assert.equal(isValidUtf8(Uint8Array.from(bytes)), want, name);
});

test("CommandReader flags lines that are not valid UTF-8, and only those", () => {
  const r = new CommandReader(2048);
  r.push(Buffer.concat([b("MAIL FROM:<j"), Buffer.from([0xf6]), b("rg@x.de> SMTPUTF8\r\n"), Buffer.from("RCPT TO:<jörg@x.de>\r\nNOOP\r\n", "utf8")]));
  const a = r.next()!;
  assert.equal(a.invalidUtf8, true);
  assert.equal(a.line, "MAIL FROM:<j\ufffdrg@x.de> SMTPUTF8");
  const c = r.next()!;
  assert.equal(c.invalidUtf8, undefined);
  assert.equal(c.line, "RCPT TO:<jörg@x.de>");
  assert.equal(r.next()!.invalidUtf8, undefined);
  assert.equal(r.next(), undefined);
});

// ---------------------------------------------------------------------------------------------
// DataReader against a reference: the octet-at-a-time decoder it replaced (docs/performance.md),
// on random inputs made of the octets that matter (CR, LF, dot, 8-bit, ordinary), cut at random.

class ReferenceDataReader {
  private lineStart = true;
  private crPending = false;
  private dotLine = false;
  private lineLen = 0;
  bareLineEnd = false;
  longLine = false;
  eightBit = false;
  constructor(private readonly maxLine: number) {}
  feed(chunk: Buffer): { out: Buffer; done: boolean; rest?: Buffer } {
    const out: number[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.crPending) {
        this.crPending = false;
        if (c === 0x0a) {
          this.lineLen++;
          if (this.dotLine && this.lineLen === 3) return { out: Buffer.from(out), done: true, rest: chunk.subarray(i + 1) };
          out.push(0x0d, 0x0a);
          if (this.lineLen > this.maxLine) this.longLine = true;
          this.lineStart = true;
          this.dotLine = false;
          this.lineLen = 0;
          continue;
        }
        this.bareLineEnd = true;
        out.push(0x0d);
      }
      if (c === 0x0d) {
        this.crPending = true;
        this.lineStart = false;
        this.lineLen++;
        continue;
      }
      if (c === 0x0a) {
        this.bareLineEnd = true;
        this.lineStart = false;
        out.push(c);
        this.lineLen++;
        continue;
      }
      if (this.lineStart && c === 0x2e) {
        this.lineStart = false;
        this.dotLine = true;
        this.lineLen++;
        continue;
      }
      if (c >= 0x80) this.eightBit = true;
      this.lineStart = false;
      out.push(c);
      this.lineLen++;
      if (this.lineLen > this.maxLine) this.longLine = true;
    }
    return { out: Buffer.from(out), done: false };
  }
}

test("DataReader: same output, rest and flags as the octet-at-a-time reference, after every chunk (random inputs)", () => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  // Half the inputs use only clean pieces (CRLF line ends, the terminator): the zero-copy path;
  // the others bare CRs and LFs and dot-stuffed lines too: the octet-at-a-time path.
  const clean = ["a", "bc", "\u00e9", " ", "\r\n", "\r\n", "\r\n", "\r\n.\r\n", "xyz"];
  const dirty = [...clean, ".", "\r", "\n", "\r\n.", ".."];
  for (let round = 0; round < 6000; round++) {
    const pieces = round % 2 ? clean : dirty;
    const bytes = Buffer.from(Array.from({ length: rnd(30) }, () => pieces[rnd(pieces.length)]!).join(""), "latin1");
    const maxLine = 3 + rnd(10);
    const a = new DataReader(maxLine);
    const ref = new ReferenceDataReader(maxLine);
    let pos = 0;
    while (pos < bytes.length) {
      const cut = Math.min(bytes.length, pos + 1 + rnd(20));
      const chunk = bytes.subarray(pos, cut);
      pos = cut;
      const got = a.feed(chunk);
      const want = ref.feed(chunk);
      const where = `input ${JSON.stringify(bytes.toString("latin1"))} maxLine ${maxLine}, chunk ending at ${cut}`;
      assert.equal(got.out.toString("latin1"), want.out.toString("latin1"), `out: ${where}`);
      assert.equal(got.done, want.done, `done: ${where}`);
      assert.equal(got.rest?.toString("latin1"), want.rest?.toString("latin1"), `rest: ${where}`);
      assert.deepEqual([a.bareLineEnd, a.longLine, a.eightBit], [ref.bareLineEnd, ref.longLine, ref.eightBit], `flags: ${where}`);
      if (got.done) break;
    }
  }
});
