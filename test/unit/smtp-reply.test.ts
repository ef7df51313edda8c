import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ReplyAssembler,
  ReplyParseError,
  classifyReply,
  formatReply,
  parseReply,
  parseReplyLine,
  splitEnhanced,
  statusOf,
} from "../../src/core/smtp-reply.js";
import { DotStuffer, parseExtensions, xtext } from "../../src/smtp/client.js";

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

test("xtext (RFC 3461 §4)", () => {
  assert.equal(xtext("abc123"), "abc123");
  assert.equal(xtext("a=b c"), "a+3Db+20c");
  // The queue stores decoded values: a literal "+" is always encoded, never taken as xtext.
  assert.equal(xtext("a+2Bb"), "a+2B2Bb");
  assert.equal(xtext("a+41"), "a+2B41");
  assert.equal(xtext("é"), "+C3+A9");
});
