// DKIM signing against the published examples: RFC 8463 Appendix A (one message signed with
// Ed25519 and with RSA; both algorithms are deterministic, so our b= must equal the RFC's
// byte for byte), and the signer's choices (signed fields, over-signing, skips) as tables.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, verify, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { BodyCanonicalizer, splitHeaderFields } from "../../src/dkim/canonicalize.js";
import { headerHashInput, signatureValue, signedHeaderNames, type SigningKey } from "../../src/dkim/sign.js";
import { MessageSigner, fromDomain, signBuffer, type DkimPolicy, type DomainSigning } from "../../src/dkim/message-signer.js";

const FIXTURES = new URL("../../../test/fixtures/dkim/", import.meta.url).pathname;

// RFC 8463 A.1: the Ed25519 private key is the 32-octet seed; wrap it in PKCS#8.
const ED_SEED = Buffer.from("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=", "base64");
const edKey = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), ED_SEED]), format: "der", type: "pkcs8" });
const rsaKey = createPrivateKey(readFileSync(FIXTURES + "rfc8463-rsa.pem"));

// RFC 8463 A.3, the message without its two signatures.
const HEADER = [
  "From: Joe SixPack <joe@football.example.com>",
  "To: Suzie Q <suzie@shopping.example.net>",
  "Subject: Is dinner ready?",
  "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)",
  "Message-ID: <20030712040037.46341.5F8J@football.example.com>",
].join("\r\n") + "\r\n";
const BODY = "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";

const ED_FIELD =
  "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n" +
  " d=football.example.com; i=@football.example.com;\r\n" +
  " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n" +
  " subject : date : message-id : from : subject : date;\r\n" +
  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n" +
  " b=";
const ED_B = "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";
const RSA_FIELD =
  "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n" +
  " d=football.example.com; i=@football.example.com;\r\n" +
  " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n" +
  " date : message-id : from : subject : date;\r\n" +
  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n" +
  " b=";
const RSA_B = "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=";
const RFC_H = ["from", "to", "subject", "date", "message-id", "from", "subject", "date"];

function bodyHash(body: Buffer | string, canon: "simple" | "relaxed"): string {
  const h = createHash("sha256");
  const c = new BodyCanonicalizer(canon, (b) => h.update(b));
  c.push(Buffer.from(body));
  c.end();
  return h.digest("base64");
}

test("RFC 8463 A.3: the relaxed body hash is the published bh=", () => {
  assert.equal(bodyHash(BODY, "relaxed"), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
});

test("RFC 8463 A.3: the Ed25519 signature equals the published b=", () => {
  const b = signatureValue({ algorithm: "ed25519-sha256", key: edKey, header: "relaxed", fields: splitHeaderFields(HEADER), signed: RFC_H, unsignedField: ED_FIELD });
  assert.equal(b, ED_B);
});

test("RFC 8463 A.3: the RSA signature (RFC 8463 A.1 key) equals the published b=", () => {
  const b = signatureValue({ algorithm: "rsa-sha256", key: rsaKey, header: "relaxed", fields: splitHeaderFields(HEADER), signed: RFC_H, unsignedField: RSA_FIELD });
  assert.equal(b, RSA_B);
});

test("signed header names: every instance, bottom-up semantics, From over-signed, absent names left out", () => {
  const fields = splitHeaderFields("From: a@x.test\r\nReceived: r1\r\nTo: b@y.test\r\nsubject: one\r\nTo: c@y.test\r\n");
  const cases: { names: string[]; oversign: string[]; want: string[] }[] = [
    { names: ["From", "To", "Subject", "Cc"], oversign: ["From"], want: ["from", "from", "to", "to", "subject"] },
    { names: ["from", "FROM", "Received"], oversign: [], want: ["from", "received"] },
    { names: ["From", "Reply-To"], oversign: ["From", "Reply-To"], want: ["from", "from"] },
  ];
  for (const c of cases) assert.deepEqual(signedHeaderNames(fields, c.names, c.oversign), c.want, JSON.stringify(c));
});

test("header hash input takes repeated fields from the bottom up; an over-signed name adds nothing", () => {
  const fields = splitHeaderFields("To: first\r\nFrom: me@x.test\r\nTo: second\r\n");
  const input = headerHashInput(fields, ["to", "to", "from", "from"], "DKIM-Signature: v=1; b=", "relaxed").toString("latin1");
  assert.equal(input, "to:second\r\nto:first\r\nfrom:me@x.test\r\ndkim-signature:v=1; b=");
});

test("From domain: display names, comments, quoted strings, IDNs; several or no mailboxes → none", () => {
  const cases: [string, string | undefined][] = [
    ["Joe SixPack <joe@football.example.com>", "football.example.com"],
    [" joe@Example.COM ", "example.com"],
    ['"Smith, J <x@evil.test>" <j@good.test>', "good.test"],
    ["j@good.test (Joe <x@evil.test>)", "good.test"],
    ["a@x.test, b@y.test", undefined],
    ["Undisclosed", undefined],
    ["j@bücher.test", "xn--bcher-kva.test"],
    ["\r\n\tJoe <joe@\r\n example.org>", "example.org"],
  ];
  for (const [v, want] of cases) assert.equal(fromDomain(v), want, v);
});

function policy(domains: Record<string, DomainSigning>, maxSize = 1e9): DkimPolicy {
  return { maxSize, lookup: (d) => domains[d] };
}

const ed2 = generateKeyPairSync("ed25519");
const setup = (keys: SigningKey[], over: Partial<DomainSigning> = {}): DomainSigning => ({ keys, header: "relaxed", body: "relaxed", headers: ["From", "To", "Subject"], oversign: ["From"], ...over });
const edSigning: SigningKey = { domain: "x.test", selector: "s1", algorithm: "ed25519-sha256", key: ed2.privateKey };

/** Check one of our DKIM-Signature fields against the message with node:crypto (the integration tests use dkimpy). */
function selfVerify(field: string, message: string, pub: KeyObject): boolean {
  const tags = new Map(field.slice(field.indexOf(":") + 1).replace(/\r\n/g, "").split(";").map((t) => t.trim().split(/=(.*)/s).slice(0, 2) as [string, string]));
  const split = message.indexOf("\r\n\r\n");
  const fields = splitHeaderFields(message.slice(0, split + 2));
  const unsigned = field.replace(/b=[^;]*$/s, "b=").replace(/\r\n$/, "");
  const data = headerHashInput(fields, tags.get("h")!.replace(/\s/g, "").split(":"), unsigned, tags.get("c")!.split("/")[0] as "relaxed");
  if (bodyHash(message.slice(split + 4), tags.get("c")!.split("/")[1] as "relaxed") !== tags.get("bh")) return false;
  return verify(null, createHash("sha256").update(data).digest(), pub, Buffer.from(tags.get("b")!.replace(/\s/g, ""), "base64"));
}

test("a streamed message gets one signature per key, whatever the chunking; t= and x= from the clock", () => {
  const msg = "From: Me <me@X.test>\r\nTo: you@y.test\r\nSubject: a folded\r\n  subject line\r\n\r\nline one  \r\n.dot line\r\n\r\n\r\n";
  const results: string[] = [];
  for (const size of [1, 2, 3, 7, 1000]) {
    const s = new MessageSigner(policy({ "x.test": setup([edSigning], { expireSeconds: 3600 }) }));
    for (let i = 0; i < msg.length; i += size) s.write(Buffer.from(msg.slice(i, i + size), "latin1"));
    const out = s.finish(1_700_000_000_500);
    assert.ok(out.signed, JSON.stringify(out));
    assert.equal(out.fields.length, 1);
    results.push(out.fields[0]!);
  }
  assert.equal(new Set(results).size, 1, "the same signature for every chunking");
  const f = results[0]!;
  assert.match(f, /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=x\.test;\r\n s=s1; t=1700000000; x=1700003600;\r\n h=from:from:to:subject;\r\n/);
  assert.ok(f.split("\r\n").every((l) => l.length <= 78), "folded lines");
  assert.ok(selfVerify(f, msg, ed2.publicKey));
  assert.ok(!selfVerify(f, msg.replace("line one", "line 1"), ed2.publicKey), "a changed body fails");
  assert.ok(!selfVerify(f, msg.replace("To: you", "To: him"), ed2.publicKey), "a changed header fails");
});

test("unsigned: unknown domain, no From, several From, too large, header section too large", () => {
  const p = policy({ "x.test": setup([edSigning]) }, 500);
  const cases: [string, RegExp][] = [
    ["From: a@other.test\r\n\r\nbody\r\n", /no DKIM key for other\.test/],
    ["To: a@x.test\r\n\r\nbody\r\n", /no From field/],
    ["From: a@x.test\r\nFrom: b@x.test\r\n\r\nbody\r\n", /several From/],
    ["From: a@x.test\r\n\r\n" + "x".repeat(600) + "\r\n", /maxSize/],
  ];
  for (const [m, re] of cases) {
    const out = signBuffer(p, Buffer.from(m), 0);
    assert.equal(out.signed, false, m);
    if (!out.signed) assert.match(out.reason, re);
  }
  const big = signBuffer(policy({ "x.test": setup([edSigning]) }), Buffer.from("From: a@x.test\r\nX: " + "y".repeat(300 * 1024) + "\r\n\r\n"), 0);
  assert.equal(big.signed, false);
  if (!big.signed) assert.match(big.reason, /header section larger/);
});

test("header section boundaries: an empty line split over chunks, an empty header section split after CR", () => {
  const p = policy({ "x.test": setup([edSigning]) });
  const one = new MessageSigner(p);
  for (const part of ["From: a@x.test\r", "\n\r", "\n", "body\r\n"]) one.write(Buffer.from(part));
  const whole = signBuffer(p, Buffer.from("From: a@x.test\r\n\r\nbody\r\n"), 0);
  assert.deepEqual(one.finish(0), whole);
  const empty = new MessageSigner(p);
  for (const part of ["\r", "\nFrom: a@x.test\r\n"]) empty.write(Buffer.from(part));
  const out = empty.finish(0);
  assert.equal(out.signed, false);
  if (!out.signed) assert.match(out.reason, /no From/);
  // A header section over the bound, in small chunks and with its end in the last one.
  const big = new MessageSigner(p);
  const text = "From: a@x.test\r\n" + "X-Pad: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n".repeat(6000) + "\r\nbody\r\n";
  for (let i = 0; i < text.length; i += 4096) big.write(Buffer.from(text.slice(i, i + 4096)));
  const r = big.finish(0);
  assert.equal(r.signed, false);
  if (!r.signed) assert.match(r.reason, /header section larger/);
});

test("a message without a body, and one with an empty header section", () => {
  const out = signBuffer(policy({ "x.test": setup([edSigning]) }), Buffer.from("From: a@x.test\r\nSubject: no body\r\n"), 0);
  assert.ok(out.signed);
  if (out.signed) assert.match(out.fields[0]!, /bh=47DEQpj8HBSa\+\/TImW\+5JCeuQeRkm5NMpJWZG3hSuFU=;/); // sha256 of nothing (relaxed, empty body)
  const none = signBuffer(policy({ "x.test": setup([edSigning]) }), Buffer.from("\r\nFrom: a@x.test\r\n"), 0);
  assert.equal(none.signed, false);
});

test("two keys: RSA and Ed25519 signatures over the same hashes", () => {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const out = signBuffer(policy({ "x.test": setup([{ ...edSigning }, { domain: "x.test", selector: "r1", algorithm: "rsa-sha256", key: rsa.privateKey }]) }), Buffer.from("From: a@x.test\r\n\r\nhi\r\n"), 0);
  assert.ok(out.signed);
  if (!out.signed) return;
  assert.equal(out.fields.length, 2);
  assert.match(out.fields[1]!, /a=rsa-sha256/);
  assert.deepEqual(out.keys, ["x.test/s1/ed25519-sha256", "x.test/r1/rsa-sha256"]);
  assert.ok(createPublicKey(rsa.privateKey));
});
