import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config.js";
import { deliveryLogFields, messageIdOf, viaOf } from "../../src/queue/delivery-log.js";
import { rejectFields } from "../../src/smtp/reject-log.js";
import { textLine } from "../../src/io/log.js";

const config = parseConfig({ routes: { "routed.test": ["smart.example:587"], ".sub.test": ["10.0.0.1"] }, delivery: { fallbackRelays: ["relay.example:2525"] }, localDomains: { "corp.test": { recipients: ["a"] } } });

test("viaOf: local, literal, route, fallback, mx", () => {
  const table: [string, string | undefined, string][] = [
    ["corp.test", undefined, "local"],
    ["[192.0.2.1]", "192.0.2.1", "literal"],
    ["routed.test", "smart.example", "route"],
    ["x.sub.test", "10.0.0.1", "route"],
    ["example.org", "RELAY.example", "fallback"],
    ["example.org", "mx1.example.org", "mx"],
    ["example.org", undefined, "mx"],
  ];
  for (const [domain, relay, want] of table) assert.equal(viaOf(config, domain, relay), want, `${domain} via ${relay}`);
});

test("deliveryLogFields: Postfix status= fields and more", () => {
  const received = Date.UTC(2026, 0, 1, 12, 0, 0);
  const f = deliveryLogFields({
    config,
    meta: { sender: "a@origin.test", receivedAt: new Date(received).toISOString(), size: 1234, messageId: "<m1@origin.test>" },
    rcpt: { address: "b@example.org", domain: "example.org", attempts: 3 },
    result: {
      reply: "451 4.7.1 Greylisted",
      status: "4.7.1",
      mx: "mx1.example.org",
      ip: "192.0.2.7",
      port: 25,
      tls: { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" },
      hosts: [{ host: "mx1.example.org", ip: "192.0.2.7", port: 25, reply: "451 4.7.1 Greylisted" }, { host: "relay.example", ip: "192.0.2.9", port: 2525, reply: "connection refused" }],
    },
    status: "deferred",
    attemptStartMs: received + 3600_000,
    nowMs: received + 3600_250,
  });
  assert.deepEqual(f, {
    event: "delivery",
    status: "deferred",
    from: "a@origin.test",
    to: "b@example.org",
    via: "mx",
    attempt: 3,
    dsn: "4.7.1",
    reply: "451 4.7.1 Greylisted",
    delay: 3600.3,
    delayQueued: 3600,
    delayAttempt: 0.3,
    size: 1234,
    relay: "mx1.example.org",
    ip: "192.0.2.7",
    port: 25,
    tls: { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", verified: false },
    messageId: "<m1@origin.test>",
    hosts: ["mx1.example.org[192.0.2.7]:25 451 4.7.1 Greylisted", "relay.example[192.0.2.9]:2525 connection refused"],
  });
});

test("messageIdOf: folded, case-insensitive, header block only", () => {
  assert.equal(messageIdOf("Subject: x\r\nMESSAGE-ID:\r\n <a@b>\r\n\r\nMessage-ID: <body@x>\r\n"), "<a@b>");
  assert.equal(messageIdOf(Buffer.from("Subject: x\r\n\r\nMessage-ID: <body@x>\r\n")), undefined);
});

test("rejectFields: refused transaction commands only, with helo, sender, recipient, reply", () => {
  assert.deepEqual(rejectFields("RCPT TO:<x@other.test>", ["554 5.7.1 <x@other.test>: Relay access denied"], { helo: "client.example", sender: "a@b.test" }), {
    event: "reject",
    cmd: "RCPT",
    helo: "client.example",
    from: "a@b.test",
    to: "x@other.test",
    reply: "554 5.7.1 <x@other.test>: Relay access denied",
    status: 554,
  });
  assert.deepEqual(rejectFields("MAIL FROM:<bad@@x> SIZE=1", ["501 5.1.7 Bad sender address syntax"], { helo: "h" }), { event: "reject", cmd: "MAIL", helo: "h", from: "bad@@x", reply: "501 5.1.7 Bad sender address syntax", status: 501 });
  assert.equal(rejectFields("RCPT TO:<x@y>", ["250 2.1.5 Ok"], {}), undefined);
  assert.equal(rejectFields("NOOP", ["500 5.5.2 nope"], {}), undefined);
  assert.equal(rejectFields("rcpt to:<\u0000x>", ["501 5.1.3 bad"], {})?.to, "?x", "control characters never reach the log");
  assert.equal(rejectFields("DATA", ["554 5.5.1 Error: no valid recipients"], { sender: "" })?.from, "", "the null sender");
});

test("textLine: one key=value line with the same fields", () => {
  const json = JSON.stringify({ level: "info", time: "2026-01-01T00:00:00.000Z", msg: "deferred", qid: "Q1", reply: "451 4.7.1 later", n: 2, tls: { version: "TLSv1.3" }, to: "a@b" });
  assert.equal(textLine(json), 'level=info time=2026-01-01T00:00:00.000Z msg=deferred qid=Q1 reply="451 4.7.1 later" n=2 tls={"version":"TLSv1.3"} to=a@b');
});

test("deliveryLogFields: TLS verdict, its reason when not verified, and the policy", () => {
  const base = {
    config,
    meta: { sender: "a@origin.test", receivedAt: new Date(0).toISOString(), size: 10 },
    rcpt: { address: "b@example.org", domain: "example.org", attempts: 1 },
    status: "sent" as const,
    attemptStartMs: 0,
    nowMs: 0,
  };
  const table: [Parameters<typeof deliveryLogFields>[0]["result"], unknown, unknown][] = [
    [{ reply: "250 ok", status: "2.0.0", tls: { version: "TLSv1.3", cipher: "C", verified: true, verifyReason: "certificate valid for mx" }, tlsPolicy: "verify (domain)" }, { version: "TLSv1.3", cipher: "C", verified: true }, "verify (domain)"],
    [{ reply: "250 ok", status: "2.0.0", tls: { version: "TLSv1.2", cipher: "C", verified: false, verifyReason: "certificate not trusted: SELF_SIGNED_CERT_IN_CHAIN" }, tlsPolicy: "may (default)" }, { version: "TLSv1.2", cipher: "C", verified: false, verifyError: "certificate not trusted: SELF_SIGNED_CERT_IN_CHAIN" }, "may (default)"],
    [{ reply: "451 4.7.4 no STARTTLS", status: "4.7.4", tlsPolicy: "mta-sts (level may)" }, undefined, "mta-sts (level may)"],
    [{ reply: "250 ok", status: "2.0.0" }, undefined, undefined],
  ];
  for (const [result, tls, policy] of table) {
    const f = deliveryLogFields({ ...base, result });
    assert.deepEqual(f.tls, tls, JSON.stringify(result));
    assert.equal(f.tlsPolicy, policy);
  }
});
