// DKIM canonicalisation (RFC 6376 §3.4): the RFC's own example (§3.4.5), the end-of-body rules
// as a table, and streaming: any chunking gives the same octets as one push.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BodyCanonicalizer, canonHeader, splitHeaderFields, type Canon } from "../../src/dkim/canonicalize.js";

function body(input: string | string[], canon: Canon): string {
  const out: Buffer[] = [];
  const c = new BodyCanonicalizer(canon, (b) => out.push(Buffer.from(b)));
  for (const part of Array.isArray(input) ? input : [input]) c.push(Buffer.from(part, "latin1"));
  c.end();
  return Buffer.concat(out).toString("latin1");
}

// RFC 6376 §3.4.5
const HEADER = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
const BODY = " C \r\nD \t E\r\n\r\n\r\n";

test("RFC 6376 §3.4.5 example, relaxed", () => {
  assert.equal(splitHeaderFields(HEADER).map((f) => canonHeader(f, "relaxed")).join(""), "a:X\r\nb:Y Z\r\n");
  assert.equal(body(BODY, "relaxed"), " C\r\nD E\r\n");
});

test("RFC 6376 §3.4.5 example, simple", () => {
  assert.equal(splitHeaderFields(HEADER).map((f) => canonHeader(f, "simple")).join(""), HEADER);
  assert.equal(body(BODY, "simple"), " C \r\nD \t E\r\n");
});

test("end of body: empty bodies, trailing empty lines, missing final CRLF, WSP-only lines", () => {
  const cases: [string, string, string][] = [
    // input, simple, relaxed
    ["", "\r\n", ""],
    ["\r\n", "\r\n", ""],
    ["\r\n\r\n\r\n", "\r\n", ""],
    ["abc", "abc\r\n", "abc\r\n"],
    ["abc\r\n\r\n", "abc\r\n", "abc\r\n"],
    ["abc  \r\n \t \r\n", "abc  \r\n \t \r\n", "abc\r\n"],
    ["\r\n\r\nabc\r\n", "\r\n\r\nabc\r\n", "\r\n\r\nabc\r\n"],
    ["a\rb\r\n", "a\rb\r\n", "a\rb\r\n"],
    ["a\nb\r\n", "a\nb\r\n", "a\nb\r\n"],
    ["x\r", "x\r\r\n", "x\r\r\n"],
    ["  lead\t\tin  the middle \r\n", "  lead\t\tin  the middle \r\n", " lead in the middle\r\n"],
  ];
  for (const [input, simple, relaxed] of cases) {
    assert.equal(body(input, "simple"), simple, `simple ${JSON.stringify(input)}`);
    assert.equal(body(input, "relaxed"), relaxed, `relaxed ${JSON.stringify(input)}`);
  }
});

test("streaming: every split point of a tricky body gives the same result", () => {
  const input = " a \t\r\n\r\n.b\r\r\n\r\n  \r\nc\t\r\n\r\n\r\n";
  for (const canon of ["simple", "relaxed"] as const) {
    const whole = body(input, canon);
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j += 3) {
        assert.equal(body([input.slice(0, i), input.slice(i, j), input.slice(j)], canon), whole, `${canon} split at ${i},${j}`);
      }
    }
    assert.equal(body(input.split(""), canon), whole, `${canon} byte by byte`);
  }
});

test("header fields: folding kept with its field, lines without a colon dropped, names as written", () => {
  const fields = splitHeaderFields("Subject: a\r\n\tb\r\nnot a header\r\nX-Y :z\r\n");
  assert.deepEqual(fields, [
    { name: "Subject", raw: "Subject: a\r\n\tb\r\n" },
    { name: "X-Y", raw: "X-Y :z\r\n" },
  ]);
  assert.equal(canonHeader(fields[0]!, "relaxed"), "subject:a b\r\n");
  assert.equal(canonHeader(fields[1]!, "relaxed"), "x-y:z\r\n");
});
