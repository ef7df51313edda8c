import { test } from "node:test";
import assert from "node:assert/strict";
import { parseMailbox, parsePath, type Mailbox, type ParsedPath, type PathError } from "../../src/core/address.js";
import { decodeXtext, encodeXtext } from "../../src/core/esmtp-params.js";

function ok(r: ParsedPath | PathError, what: string): ParsedPath {
  if ("error" in r) assert.fail(`${what}: unexpected error ${r.error}`);
  return r;
}
function err(r: ParsedPath | PathError | Mailbox, what: string): string {
  if (!("error" in r)) assert.fail(`${what}: expected an error, got ${JSON.stringify(r)}`);
  return r.error;
}

test("parsePath: plain addresses, parameters after the path", () => {
  const p = ok(parsePath("<user@example.com> SIZE=100 BODY=8BITMIME", false, true), "plain");
  assert.deepEqual(p.mailbox, { local: "user", domain: "example.com", address: "user@example.com", utf8: false });
  assert.equal(p.rest, "SIZE=100 BODY=8BITMIME");
  // leading space tolerated ("MAIL FROM: <a@b>")
  assert.equal(ok(parsePath(" <a@b.example>", false, false), "space").mailbox?.address, "a@b.example");
  // dot-atoms with all atext specials
  const special = "a.b+c!#$%&'*-/=?^_`{|}~@sub-1.example.org";
  assert.equal(ok(parsePath(`<${special}>`, false, false), "atext").mailbox?.address, special);
});

test("parsePath: the null reverse-path <> only where allowed", () => {
  const p = ok(parsePath("<> RET=HDRS", false, true), "null sender");
  assert.equal(p.mailbox, null);
  assert.equal(p.rest, "RET=HDRS");
  err(parsePath("<>", false, false), "null recipient");
});

test("parsePath: quoted local parts", () => {
  for (const q of ['"john doe"', '"a@b"', '"a\\"b"', '"a\\\\b"', '""', '"x>y"']) {
    const p = ok(parsePath(`<${q}@example.com> NOTIFY=NEVER`, false, false), q);
    assert.equal(p.mailbox?.local, q, q);
    assert.equal(p.mailbox?.domain, "example.com", q);
    assert.equal(p.rest, "NOTIFY=NEVER", q);
  }
  err(parsePath('<"unterminated@example.com>', false, false), "unterminated quote");
  err(parsePath('<"a"b"@example.com>', false, false), "quote inside quoted string");
  err(parsePath('<"a\x01b"@example.com>', false, false), "control char in quoted string");
});

test("parsePath: source routes are accepted and ignored", () => {
  const p = ok(parsePath("<@relay1.example,@relay2.example:user@example.com>", false, false), "route");
  assert.equal(p.mailbox?.address, "user@example.com");
  assert.equal(ok(parsePath("<@one.example:u@d.example>", false, false), "one hop").mailbox?.address, "u@d.example");
  err(parsePath("<@relay.example user@example.com>", false, false), "route without colon");
  err(parsePath("<@bad_domain!:user@example.com>", false, false), "bad route domain");
});

test("parsePath: address literals", () => {
  assert.equal(ok(parsePath("<u@[192.0.2.1]>", false, false), "v4").mailbox?.domain, "[192.0.2.1]");
  assert.equal(ok(parsePath("<u@[IPv6:2001:db8::1]>", false, false), "v6").mailbox?.domain, "[IPv6:2001:db8::1]");
  err(parsePath("<u@[192.0.2.256]>", false, false), "octet > 255");
  err(parsePath("<u@[hello]>", false, false), "general literal");
});

test("parsePath/parseMailbox: UTF-8 needs SMTPUTF8", () => {
  const addr = "j\u00f6rg@ex\u00e4mple.de";
  assert.match(err(parsePath(`<${addr}>`, false, false), "utf8 without SMTPUTF8"), /SMTPUTF8/);
  assert.match(err(parseMailbox(addr, false), "mailbox"), /SMTPUTF8/);
  const p = ok(parsePath(`<${addr}> SMTPUTF8`, true, true), "utf8 with SMTPUTF8");
  assert.equal(p.mailbox?.utf8, true);
  assert.equal(p.mailbox?.address, addr);
  assert.equal(p.rest, "SMTPUTF8");
  // UTF-8 in the local part only, and in the domain only
  assert.equal(ok(parsePath("<\u7528\u6237@example.com>", true, false), "cjk local").mailbox?.utf8, true);
  assert.equal(ok(parsePath("<user@\u4f8b\u3048.jp>", true, false), "idn").mailbox?.utf8, true);
  assert.equal(ok(parsePath("<user@example.com>", true, false), "ascii with utf8 allowed").mailbox?.utf8, false);
});

test("parsePath: length limits (local part 64, domain 255, path 256 octets)", () => {
  const label = "a".repeat(63);
  const local64 = "l".repeat(64);
  assert.equal(ok(parsePath(`<${local64}@example.com>`, false, false), "local 64").mailbox?.local, local64);
  assert.match(err(parsePath(`<${"l".repeat(65)}@example.com>`, false, false), "local 65"), /64/);
  // octets, not characters: 22 three-octet characters = 66 octets
  err(parsePath(`<${"\u4e2d".repeat(22)}@example.com>`, true, false), "local 66 octets");
  err(parsePath(`<u@${"a".repeat(64)}.example>`, false, false), "label 64");
  assert.ok(ok(parsePath(`<u@${label}.example>`, false, false), "label 63").mailbox);
  // 4 labels of 63 + 3 dots = 255: a legal domain, but the path "<u@...>" is 259 octets.
  err(parsePath(`<u@${[label, label, label, label].join(".")}>`, false, false), "path 259");
  // RFC 5321 §4.5.3.1.3: the path is at most 256 octets *including* the angle brackets.
  // Build a path of exactly 256 octets: "<" + local(64) + "@" + domain(189) + ">".
  const d189 = [label, label, "a".repeat(61)].join("."); // 63+1+63+1+61 = 189
  assert.equal(`<${local64}@${d189}>`.length, 256);
  assert.ok(ok(parsePath(`<${local64}@${d189}>`, false, false), "path 256").mailbox);
  const d190 = [label, label, "a".repeat(62)].join("."); // 190
  assert.equal(`<${local64}@${d190}>`.length, 257);
  err(parsePath(`<${local64}@${d190}>`, false, false), "path of 257 octets including <> (RFC 5321 §4.5.3.1.3)");
});

test("parsePath: malformed input is an error, never an exception", () => {
  const bad = [
    "user@example.com", // no brackets
    "<user@example.com", // no closing bracket
    "<user@example.com>x", // garbage glued to the path
    "<user>", // no domain
    "<@example.com>", // no local part (looks like a route)
    "<user@>",
    "<user@@example.com>",
    "<.user@example.com>",
    "<user.@example.com>",
    "<us..er@example.com>",
    "<user@-example.com>",
    "<user@example-.com>",
    "<user@exa mple.com>",
    "<user@example..com>",
    "<user@example.com.>",
    "<us er@example.com>",
    "<user@exam_ple.com>",
    "<user(comment)@example.com>",
    "",
    "<",
    ">",
  ];
  for (const s of bad) {
    let r: ParsedPath | PathError;
    assert.doesNotThrow(() => {
      r = parsePath(s, true, true);
    }, s);
    assert.ok("error" in r!, `${JSON.stringify(s)} should be refused, got ${JSON.stringify(r!)}`);
  }
});

test("parseMailbox: the last unquoted @ separates the domain", () => {
  const m = parseMailbox('"a@b"@example.com', false);
  assert.ok(!("error" in m));
  assert.equal((m as Mailbox).local, '"a@b"');
  err(parseMailbox("a@b@example.com", false), "two @");
});

test("xtext (RFC 3461 §4) round trip and malformed input", () => {
  assert.equal(decodeXtext("rfc822;a+2Bb@example.com"), "rfc822;a+b@example.com");
  assert.equal(decodeXtext("abc+3Ddef"), "abc=def");
  assert.equal(decodeXtext("+2b"), undefined, "lower-case hex is not xtext");
  assert.equal(decodeXtext("a=b"), undefined);
  assert.equal(decodeXtext("a+4"), undefined);
  for (const s of ["plain", "a+b=c d", "rfc822;x@y"]) assert.equal(decodeXtext(encodeXtext(s)), s);
  assert.equal(encodeXtext("a+b=c d"), "a+2Bb+3Dc+20d");
});
