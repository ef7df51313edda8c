// Interop, delivery side: mxd finds MX records through dnsmasq and delivers to a real Postfix
// (private instance, virtual maildir), to Postfix's smtp-sink and to aiosmtpd. What Postfix
// stores is compared byte for byte with what was submitted (after mxd's Received header).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import {
  ADDR,
  postfixReceivedBytes,
  requirePeers,
  skipUnless,
  startAiosmtpd,
  startDnsmasq,
  startMxd,
  startPostfix,
  startSmtpSink,
  stopAllPeers,
  tempDir,
  waitFor,
  type AioPeer,
  type DnsPeer,
  type MxdPeer,
  type PostfixPeer,
  type SinkPeer,
} from "../helpers/peers.js";
import { sendMessage, splitFirstHeader } from "./wire.js";

const HOST = "127.0.0.205";
const skip = skipUnless("dnsmasq", "postfix", "smtp-sink", "aiosmtpd") || (process.getuid?.() !== 0 ? "needs root (port 25, Postfix)" : false);
let base: string;
let dns: DnsPeer;
let pf: PostfixPeer;
let sink: SinkPeer;
let aio: AioPeer;
let mxd: MxdPeer;

before(async () => {
  if (skip) return;
  requirePeers("dnsmasq", "postfix", "smtp-sink", "aiosmtpd");
  base = tempDir("mxd-interop-dlv-");
  dns = await startDnsmasq({
    mx: {
      "pf.test": [{ host: "mx.pf.test", pref: 10 }],
      "sink.test": [{ host: "mx.sink.test", pref: 10 }],
      "aio.test": [{ host: "mx.aio.test", pref: 10 }],
      // Preference 5 points at nothing: mxd must fall through to the working MX at 20.
      "backup.test": [
        { host: "dead.backup.test", pref: 5 },
        { host: "mx.pf.test", pref: 20 },
      ],
    },
    a: { "mx.pf.test": [ADDR.postfix], "mx.sink.test": [ADDR.smtpSink], "mx.aio.test": [ADDR.aiosmtpd], "dead.backup.test": ["127.0.0.248"] },
  });
  [pf, sink, aio] = await Promise.all([startPostfix({ domains: ["pf.test", "backup.test"] }), startSmtpSink(), startAiosmtpd()]);
  mxd = await startMxd({
    hostname: "mxd.test",
    listen: [{ host: HOST, port: 0 }],
    spoolDir: join(base, "spool"),
    dns: { servers: [dns.address], timeout: "2s", tries: 1 },
    delivery: { retry: { minDelay: "1s", maxDelay: "2s", jitter: 0 }, timeouts: { connect: "2s" } },
  });
});

after(async () => {
  await mxd?.stop();
  await Promise.all([pf?.stop(), sink?.stop(), aio?.stop(), dns?.stop()]);
  const left = await stopAllPeers();
  if (base) rmSync(base, { recursive: true, force: true });
  if (left.length) console.log(`# stopped leftover peers: ${left.join(", ")}`);
});

function msg(subject: string, body: string | Buffer, extra = ""): Buffer {
  return Buffer.concat([
    Buffer.from(`From: Alice <alice@aio.test>\r\nTo: someone\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W+/g, "-")}@interop.test>\r\nDate: Wed, 25 Nov 2026 15:00:00 +0000\r\n${extra}\r\n`, "latin1"),
    typeof body === "string" ? Buffer.from(body, "latin1") : body,
  ]);
}

/** Drop mxd's Received header (checked) and return the rest. */
function afterMxdReceived(raw: Buffer, id: string): Buffer {
  const { first, rest } = splitFirstHeader(raw);
  assert.match(first, /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mxd\.test \(mxd\) with ESMTP id /);
  assert.ok(first.includes(` id ${id}`), `Received names queue id ${id}: ${first}`);
  return rest;
}

const CASES: { name: string; body: Buffer }[] = [
  { name: "plain text", body: msg("plain", "hello Postfix\r\n") },
  { name: "dot lines", body: msg("dots", ".\r\n..\r\n.leading\r\n...three\r\nend .\r\n") },
  { name: "8-bit utf-8", body: msg("eightbit", Buffer.from("Grüße aus dem Test — ünïcödé ✓\r\n", "utf8"), "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n") },
  { name: "998-octet line", body: msg("longline", "y".repeat(998) + "\r\nshort\r\n") },
  { name: "empty body", body: msg("empty", "") },
  { name: "trailing whitespace and tabs", body: msg("whitespace", "tab\there \r\n  indented\r\n\r\n\r\n") },
  { name: "1 MB body", body: msg("big", ("0123456789abcdef".repeat(4) + "\r\n").repeat(16_000)) },
];

test("real Postfix as MX (via dnsmasq): every message stored byte for byte as submitted", { skip }, async () => {
  const sent: { id: string; body: Buffer; rcpt: string }[] = [];
  for (const [i, c] of CASES.entries()) {
    const rcpt = `user${i}@pf.test`;
    const r = await sendMessage(mxd.port, HOST, { from: "alice@aio.test", to: [rcpt] }, c.body);
    assert.equal(r.reply.code, 250, `${c.name}: ${r.reply.text}`);
    sent.push({ id: r.id!, body: c.body, rcpt });
  }
  const stored = await pf.waitForMessages(CASES.length, 30_000);
  const byRcpt = new Map(stored.map((s) => [/^X-Original-To: (\S+)$/m.exec(s.toString("latin1"))?.[1], s]));
  for (const [i, s] of sent.entries()) {
    const raw = byRcpt.get(s.rcpt);
    assert.ok(raw, `Postfix stored nothing for ${s.rcpt} (${CASES[i]!.name})`);
    assert.match(raw.toString("latin1"), /^Return-Path: <alice@aio\.test>\n/);
    const got = afterMxdReceived(postfixReceivedBytes(raw), s.id);
    // Postfix's maildir copy ends each line with LF; a body without a final line end gets one.
    const want = s.body.length === 0 || s.body.subarray(-2).toString() === "\r\n" ? s.body : Buffer.concat([s.body, Buffer.from("\r\n")]);
    assert.ok(got.equals(want), `${CASES[i]!.name}: bytes differ (got ${got.length}, want ${want.length})\n${firstDiff(got, want)}`);
  }
  await waitFor(() => pf.log().includes("status=sent"), 5000, "Postfix log");
  assert.doesNotMatch(pf.log(), /status=(bounced|deferred)/);
});

test("SMTPUTF8 and 8BITMIME reach Postfix: a UTF-8 recipient is delivered", { skip }, async () => {
  // Wire writes strings as latin1: pass the address's UTF-8 octets (mxd refuses invalid UTF-8).
  const rcpt = Buffer.from("jörg@pf.test", "utf8").toString("latin1");
  const body = msg("utf8-rcpt", Buffer.from("für Jörg\r\n", "utf8"));
  const r = await sendMessage(mxd.port, HOST, { from: "alice@aio.test", to: [rcpt], mailParams: "SMTPUTF8 BODY=8BITMIME" }, body);
  assert.equal(r.reply.code, 250, r.reply.text);
  await waitFor(() => /to=<jörg@pf\.test>.*status=sent/.test(pf.log()), 20_000, "Postfix to deliver to jörg@pf.test");
  const log = pf.log();
  assert.match(log, /smtputf8|SMTPUTF8|status=sent/);
});

test("MX fallback: the preference-5 host is down, mxd delivers to the preference-20 Postfix", { skip }, async () => {
  const before = pf.messages().length;
  const body = msg("fallback", "via the backup MX\r\n");
  const r = await sendMessage(mxd.port, HOST, { from: "alice@aio.test", to: ["x@backup.test"] }, body);
  assert.equal(r.reply.code, 250);
  const all = await pf.waitForMessages(before + 1, 20_000);
  const raw = all.find((m) => m.toString("latin1").includes("X-Original-To: x@backup.test"));
  assert.ok(raw);
  assert.ok(afterMxdReceived(postfixReceivedBytes(raw), r.id!).equals(body));
});

test("Postfix's smtp-sink and aiosmtpd as MX: one message to three domains, each gets its copy", { skip }, async () => {
  const pfBefore = pf.messages().length;
  const sinkBefore = sink.dumps().length;
  const aioBefore = aio.messages().length;
  const body = msg("three-peers", "one message, three MTAs\r\n.dot line\r\n");
  const r = await sendMessage(mxd.port, HOST, { from: "alice@aio.test", to: ["a@pf.test", "b@sink.test", "c@aio.test", "d@aio.test"] }, body);
  assert.equal(r.reply.code, 250);
  await Promise.all([pf.waitForMessages(pfBefore + 1, 20_000), sink.waitForMessages(sinkBefore + 1, 20_000), aio.waitForMessages(aioBefore + 1, 20_000)]);

  const a = aio.messages().slice(aioBefore);
  assert.equal(a.length, 1, "one transaction for both aio.test recipients");
  assert.deepEqual(a[0]!.to, ["c@aio.test", "d@aio.test"]);
  assert.equal(a[0]!.from, "alice@aio.test");
  // No single-recipient "for" clause: the message had several recipients.
  assert.ok(afterMxdReceived(a[0]!.raw, r.id!).equals(body), "aiosmtpd got the exact bytes");

  const dump = sink.dumps().slice(sinkBefore)[0]!.toString("latin1");
  assert.match(dump, /^X-Mail-Args: <alice@aio\.test>/m);
  assert.match(dump, /^X-Rcpt-Args: <b@sink\.test>/m);
  assert.match(dump, /^X-Helo-Args: mxd\.test$/m);
  // smtp-sink's dump: X-* envelope lines, its own Received, then the message with LF line ends
  // and one empty separator line after it.
  const content = dump.replace(/^(X-[\w-]+: .*\n)+/, "").replace(/^Received: .*\n(\t.*\n)*/, "").replace(/\n$/, "");
  const got = afterMxdReceived(Buffer.from(content.replace(/\n/g, "\r\n"), "latin1"), r.id!);
  assert.equal(got.toString("latin1"), body.toString("latin1"));
});

test("a permanent failure becomes a DSN that mxd delivers to the sender's MX (aiosmtpd)", { skip }, async () => {
  const aioBefore = aio.messages().length;
  const body = msg("bounce-me", "to a domain that does not exist\r\n");
  const r = await sendMessage(mxd.port, HOST, { from: "alice@aio.test", to: ["nobody@nonexistent.test"] }, body);
  assert.equal(r.reply.code, 250);
  const got = await aio.waitForMessages(aioBefore + 1, 20_000);
  const dsn = got[aioBefore]!;
  assert.equal(dsn.from, "<>", "from the null sender (aiosmtpd shows it as <>)");
  assert.deepEqual(dsn.to, ["alice@aio.test"]);
  const text = dsn.raw.toString("latin1");
  assert.match(text, /multipart\/report; ?report-type=delivery-status/i);
  assert.match(text, /Final-Recipient: rfc822; ?nobody@nonexistent\.test/i);
  assert.match(text, /Action: failed/);
  assert.match(text, /Status: 5\.\d+\.\d+/);
});

function firstDiff(a: Buffer, b: Buffer): string {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return `first difference at octet ${i}: got ${JSON.stringify(a.subarray(Math.max(0, i - 20), i + 20).toString("latin1"))}, want ${JSON.stringify(b.subarray(Math.max(0, i - 20), i + 20).toString("latin1"))}`;
}
