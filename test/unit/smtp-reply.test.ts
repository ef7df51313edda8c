import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EXCERPT_MAX,
  REPLY_LIMITS,
  ReplyAssembler,
  decodeReplyLine,
  excerpt,
  ReplyParseError,
  classifyReply,
  formatReply,
  parseReply,
  parseReplyLine,
  splitEnhanced,
  statusOf,
} from "../../src/core/smtp-reply.js";
import { parseExtensions } from "../../src/smtp/client.js";
import { DotStuffer } from "../../src/smtp/protocol.js";
import { encodeXtext as xtext } from "../../src/core/esmtp-params.js";

test("parseReplyLine: code, continuation flag and text", () => {
  const cases: [string, ReturnType<typeof parseReplyLine>][] = [
    ["250 OK", { code: 250, more: false, text: "OK" }],
    ["250-mx.example.com Hello", { code: 250, more: true, text: "mx.example.com Hello" }],
    ["354", { code: 354, more: false, text: "" }],
    ["421 ", { code: 421, more: false, text: "" }],
    ["hello", undefined],
    ["25 OK", undefined],
    ["650 nope", undefined],
    ["250_x", undefined],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseReplyLine(line), want, line);
});

test("splitEnhanced: RFC 3463 code must match the reply class", () => {
  assert.deepEqual(splitEnhanced(550, "5.1.1 <a@b>: no such user"), { enhanced: "5.1.1", text: "<a@b>: no such user" });
  assert.deepEqual(splitEnhanced(451, "4.7.1 greylisted"), { enhanced: "4.7.1", text: "greylisted" });
  assert.deepEqual(splitEnhanced(550, "5.1.10 null MX"), { enhanced: "5.1.10", text: "null MX" });
  assert.deepEqual(splitEnhanced(250, "2.0.0"), { enhanced: "2.0.0", text: "" });
  // class mismatch: left in the text
  assert.deepEqual(splitEnhanced(250, "5.0.0 odd"), { text: "5.0.0 odd" });
  // not a code: a version number, a date
  assert.deepEqual(splitEnhanced(220, "2.0.0beta ready"), { text: "2.0.0beta ready" });
  assert.deepEqual(splitEnhanced(550, "5.1 short"), { text: "5.1 short" });
  assert.deepEqual(splitEnhanced(550, "5.1234.1 long"), { text: "5.1234.1 long" });
});

test("ReplyAssembler: multi-line replies complete on the last line", () => {
  const a = new ReplyAssembler();
  assert.equal(a.push("250-mx.example.com greets you"), undefined);
  assert.equal(a.partial, true);
  assert.equal(a.push("250-PIPELINING"), undefined);
  const r = a.push("250 SIZE 1000");
  assert.deepEqual(r, { code: 250, lines: ["mx.example.com greets you", "PIPELINING", "SIZE 1000"] });
  assert.equal(a.partial, false);
});

test("ReplyAssembler: enhanced code taken from the first line, repeated ones stripped", () => {
  const r = parseReply("550-5.7.1 Message rejected\r\n550-5.7.1 see https://example/x\r\n550 5.7.1 bye\r\n");
  assert.equal(r.code, 550);
  assert.equal(r.enhanced, "5.7.1");
  assert.deepEqual(r.lines, ["Message rejected", "see https://example/x", "bye"]);
  assert.equal(formatReply(r), "550 5.7.1 Message rejected see https://example/x bye");
});

test("ReplyAssembler: code change inside a multi-line reply and garbage are errors", () => {
  const a = new ReplyAssembler();
  a.push("250-first");
  assert.throws(() => a.push("251 second"), ReplyParseError);
  assert.throws(() => new ReplyAssembler().push("+OK pop3"), ReplyParseError);
  assert.throws(() => parseReply("250-incomplete"), ReplyParseError);
});

test("classifyReply and statusOf", () => {
  assert.equal(classifyReply(250), "positive");
  assert.equal(classifyReply(354), "intermediate");
  assert.equal(classifyReply(421), "transient");
  assert.equal(classifyReply(452), "transient");
  assert.equal(classifyReply(550), "permanent");
  assert.equal(classifyReply(554), "permanent");
  assert.equal(statusOf(parseReply("452 4.5.3 too many recipients")), "4.5.3");
  assert.equal(statusOf(parseReply("450 mailbox busy")), "4.0.0");
  assert.equal(statusOf(parseReply("550 no")), "5.0.0");
  assert.equal(formatReply(parseReply("250 2.0.0 Ok: queued as ABC")), "250 2.0.0 Ok: queued as ABC");
  assert.equal(formatReply(parseReply("354")), "354");
});

test("parseExtensions: EHLO keywords", () => {
  const e = parseExtensions(parseReply(["250-mx.example Hello", "250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME", "250-smtputf8", "250-STARTTLS", "250-DSN", "250 ENHANCEDSTATUSCODES"].join("\r\n")));
  assert.equal(e.esmtp, true);
  assert.equal(e.pipelining, true);
  assert.equal(e.size, 10240000);
  assert.equal(e.eightBitMime, true);
  assert.equal(e.smtputf8, true);
  assert.equal(e.starttls, true);
  assert.equal(e.dsn, true);
  assert.equal(e.enhancedStatusCodes, true);
  const bare = parseExtensions(parseReply("250-mx\r\n250 SIZE"));
  assert.equal(bare.size, 0); // offered without a limit
  assert.equal(bare.pipelining, false);
  const helo = parseExtensions(undefined);
  assert.equal(helo.esmtp, false);
  assert.equal(helo.size, undefined);
});

function stuff(parts: string[]): string {
  const s = new DotStuffer();
  return parts.map((p) => s.push(Buffer.from(p, "latin1")).toString("latin1")).join("") + s.end().toString("latin1");
}

test("DotStuffer: transparency and line ends, across chunk boundaries", () => {
  const cases: [string[], string][] = [
    [["a\r\nb\r\n"], "a\r\nb\r\n.\r\n"],
    [[".x\r\n"], "..x\r\n.\r\n"],
    [["a\r\n.\r\nb\r\n"], "a\r\n..\r\nb\r\n.\r\n"],
    [["a\r\n", ".", "b\r\n"], "a\r\n..b\r\n.\r\n"],
    [["no final newline"], "no final newline\r\n.\r\n"],
    [["bare\nlf\n"], "bare\r\nlf\r\n.\r\n"],
    [["a\n.\n"], "a\r\n..\r\n.\r\n"], // <LF>.<LF> smuggling attempt is neutralised
    [["a\r.\rb"], "a\r\n..\r\nb\r\n.\r\n"], // <CR>.<CR>
    [["a\r", "\nb\r", "\n"], "a\r\nb\r\n.\r\n"], // CRLF split across chunks
    [["x\r"], "x\r\n.\r\n"],
    [[""], ".\r\n"],
    [["a.b\r\n"], "a.b\r\n.\r\n"],
  ];
  for (const [input, want] of cases) assert.equal(stuff(input), want, JSON.stringify(input));
});

/** The octet-by-octet rule DotStuffer implements, written plainly (the reference). */
function referenceStuff(input: Buffer): Buffer {
  const out: number[] = [];
  let lineStart = true;
  for (let i = 0; i < input.length; i++) {
    const b = input[i]!;
    if (b === 13 || b === 10) {
      out.push(13, 10);
      lineStart = true;
      if (b === 13 && input[i + 1] === 10) i++;
      continue;
    }
    if (lineStart && b === 46) out.push(46);
    out.push(b);
    lineStart = false;
  }
  if (!lineStart) out.push(13, 10);
  out.push(46, 13, 10);
  return Buffer.from(out);
}

test("DotStuffer: clean chunks pass through unchanged; any input cut anywhere equals the reference", () => {
  const s = new DotStuffer();
  const clean = Buffer.from("Subject: x\r\n\r\nbody line\r\nanother.line\r\n");
  assert.equal(s.push(clean), clean, "a clean chunk is passed on without a copy");
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  const alphabet = [13, 10, 46, 97, 98, 32];
  for (let t = 0; t < 3000; t++) {
    // Mostly CRLF text (the fast path), with some bare CR, bare LF and leading dots.
    const parts: number[] = [];
    const len = rnd(60);
    for (let i = 0; i < len; i++) {
      if (rnd(4) === 0) parts.push(13, 10);
      else parts.push(alphabet[rnd(alphabet.length)]!);
    }
    const input = Buffer.from(parts);
    const st = new DotStuffer();
    const outs: Buffer[] = [];
    for (let i = 0; i < input.length; ) {
      const cut = Math.min(input.length, i + 1 + rnd(12));
      outs.push(Buffer.from(st.push(input.subarray(i, cut))));
      i = cut;
    }
    outs.push(st.end());
    assert.deepEqual(Buffer.concat(outs), referenceStuff(input), JSON.stringify(input.toString("latin1")));
  }
});

test("xtext (RFC 3461 §4)", () => {
  assert.equal(xtext("abc123"), "abc123");
  assert.equal(xtext("a=b c"), "a+3Db+20c");
  // The queue stores decoded values: a literal "+" is always encoded, never taken as xtext.
  assert.equal(xtext("a+2Bb"), "a+2B2Bb");
  assert.equal(xtext("a+41"), "a+2B41");
  assert.equal(xtext("é"), "+C3+A9");
});

// ------------------------------------------------------------------ outbound bounds (issue 8 §2)

test("decodeReplyLine: valid UTF-8 kept, controls, C1 and invalid octets escaped", () => {
  const cases: [name: string, bytes: number[] | string, want: string][] = [
    ["ASCII", "250 ok", "250 ok"],
    ["UTF-8 é € 😀", "550 é € 😀", "550 é € 😀"],
    ["0xFF", [0x35, 0x35, 0x30, 0x20, 0xff], "550 \\xFF"],
    ["ESC sequence", "550 \x1b[2J", "550 \\x1B[2J"],
    ["NUL, BEL, TAB, DEL", "5\x00\x07\t\x7f", "5\\x00\\x07\\x09\\x7F"],
    ["C1 control U+0085 in UTF-8", [0xc2, 0x85], "\\xC2\\x85"],
    ["overlong '/'", [0xc0, 0xaf], "\\xC0\\xAF"],
    ["overlong 3-octet", [0xe0, 0x80, 0xaf], "\\xE0\\x80\\xAF"],
    ["surrogate", [0xed, 0xa0, 0x80], "\\xED\\xA0\\x80"],
    ["above U+10FFFF", [0xf4, 0x90, 0x80, 0x80], "\\xF4\\x90\\x80\\x80"],
    ["truncated sequence at the end", [0x41, 0xe2, 0x82], "A\\xE2\\x82"],
    ["lone continuation", [0x80, 0x41], "\\x80A"],
  ];
  for (const [name, bytes, want] of cases) {
    const b = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes);
    assert.equal(decodeReplyLine(b), want, name);
  }
});

test("excerpt: controls escaped, at most max characters with a note, idempotent", () => {
  const cases: [input: string, max: number, want: string][] = [
    ["short", 512, "short"],
    ["a\nb\rc\x00", 512, "a\\x0Ab\\x0Dc\\x00"],
    ["x".repeat(100), 50, "x".repeat(26) + "... (+74 cut)"],
    ["😀".repeat(30), 40, "😀".repeat(8) + "... (+44 cut)"], // never half a surrogate pair
  ];
  for (const [input, max, want] of cases) {
    const e = excerpt(input, max);
    assert.equal(e, want, JSON.stringify(input.slice(0, 20)));
    assert.ok(e.length <= Math.max(max, input.length <= max ? input.length * 4 : 0));
    assert.equal(excerpt(e, max), e, "idempotent");
  }
  assert.equal(excerpt("y".repeat(10 * 1024 * 1024)).length <= EXCERPT_MAX, true);
});

test("formatReply is an excerpt whatever the reply's size", () => {
  const r = { code: 550, enhanced: "5.1.1", lines: Array.from({ length: 100 }, () => "z".repeat(2000)) };
  const s = formatReply(r);
  assert.ok(s.startsWith("550 5.1.1 zzz"));
  assert.ok(s.length <= EXCERPT_MAX, `${s.length}`);
});

test("ReplyAssembler limits: line length, line count, total octets", () => {
  const limits = { maxLineOctets: 20, maxLines: 3, maxOctets: 50 };
  const cases: [name: string, lines: string[], want: string | RegExp][] = [
    ["within every bound", ["250-a", "250-b", "250 c"], "250 a b c"],
    ["a line of exactly maxLineOctets", ["250 " + "x".repeat(16)], "250 " + "x".repeat(16)],
    ["a line one octet too long", ["250 " + "x".repeat(17)], /reply line longer than 20 octets/],
    ["one line too many", ["250-a", "250-b", "250-c", "250 d"], /multi-line reply longer than 3 lines/],
    ["too many octets", ["250-" + "x".repeat(16), "250-" + "x".repeat(16), "250 " + "x".repeat(16)], /multi-line reply larger than 50 octets/],
  ];
  for (const [name, lines, want] of cases) {
    const a = new ReplyAssembler(limits);
    const run = () => {
      let r;
      for (const l of lines) r = a.push(l);
      return r;
    };
    if (typeof want === "string") assert.equal(formatReply(run()!), want, name);
    else assert.throws(run, (e: unknown) => e instanceof ReplyParseError && want.test((e as Error).message), name);
  }
  // The default bounds: a reply of the RFC's size passes with room; the replies do not.
  assert.deepEqual(REPLY_LIMITS, { maxLineOctets: 2048, maxLines: 100, maxOctets: 16384 });
});
