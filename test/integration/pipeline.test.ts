// End to end: nodemailer submits to the mxd daemon, which resolves MX records from a real DNS
// server on loopback (dns2) and delivers to smtp-server sinks on distinct loopback addresses.
// Retries run on second-scale config; bounces are parsed with mailparser.
import { test, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { simpleParser } from "mailparser";
import { parseConfig, type ConfigInput } from "../../src/config.js";
import { startDaemon, type Daemon } from "../../src/main.js";
import { silentLogger } from "../../src/io/log.js";
import { startDnsServer, type DnsServerHandle } from "../helpers/dns-server.js";
import { startMxSink, type MxSink, type SinkOptions } from "../helpers/mx-sink.js";
import { queuedIdsSync, spoolSnapshot } from "../helpers/spool-snapshot.js";

let dns: DnsServerHandle;
const cleanups: (() => Promise<void> | void)[] = [];

before(async () => {
  dns = await startDnsServer({
    host: "127.0.0.100",
    zone: {
      "one.test": { mx: [{ exchange: "mx.one.test", priority: 10 }] },
      "mx.one.test": { a: ["127.0.0.101"] },
      "two.test": { mx: [{ exchange: "mx.two.test", priority: 10 }] },
      "mx.two.test": { a: ["127.0.0.102"] },
      "sender.test": { mx: [{ exchange: "mx.sender.test", priority: 10 }] },
      "mx.sender.test": { a: ["127.0.0.103"] },
      "down.test": { mx: [{ exchange: "mx.down.test", priority: 10 }] },
      "mx.down.test": { a: ["127.0.0.104"] },
      "nullmx.test": { mx: [{ exchange: "", priority: 0 }] },
    },
  });
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await dns.close();
});

function tmpSpool(): string {
  const d = mkdtempSync(join(tmpdir(), "mxd-e2e-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Per-test resources are released when the test ends (sinks share fixed addresses). */
let testCleanups: (() => Promise<void> | void)[] = [];
function scoped(t: TestContext): void {
  testCleanups = [];
  t.after(async () => {
    for (const c of testCleanups.reverse()) await c();
    testCleanups = [];
  });
}

async function daemon(spoolDir: string, extra: Partial<ConfigInput> = {}): Promise<Daemon> {
  const config = parseConfig({
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir,
    dns: { servers: [dns.address], timeout: "2s", tries: 1 },
    delivery: { retry: { minDelay: "300ms", maxDelay: "600ms", jitter: 0 }, timeouts: { connect: "2s" }, ...(extra.delivery as object) },
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== "delivery")),
  });
  const d = await startDaemon(config, { logger: silentLogger() });
  testCleanups.push(() => d.stop());
  return d;
}

async function sink(o: SinkOptions): Promise<MxSink> {
  const s = await startMxSink(o);
  testCleanups.push(() => s.close());
  return s;
}

function submit(d: Daemon, msg: { from: string; to: string[]; raw?: string; subject?: string; envelopeFrom?: string }) {
  const t = nodemailer.createTransport({ host: "127.0.0.1", port: d.smtp.addresses[0]!.port, secure: false, ignoreTLS: true });
  return t.sendMail({
    envelope: { from: msg.envelopeFrom ?? msg.from, to: msg.to },
    from: msg.from,
    to: msg.to,
    subject: msg.subject ?? "e2e",
    text: "hello from the e2e test\n.leading dot line\n",
  });
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

const queueEmpty = (dir: string) => () => existsSync(join(dir, "journal")) && queuedIdsSync(dir).length === 0;

test("groups recipients by domain: one transaction per domain, N RCPT in one", async (t) => {
  scoped(t);
  const s1 = await sink({ host: "127.0.0.101" });
  const s2 = await sink({ host: "127.0.0.102" });
  const dir = tmpSpool();
  const d = await daemon(dir);
  const info = await submit(d, { from: "a@sender.test", to: ["x@one.test", "y@ONE.test", "z@two.test"] });
  assert.match(info.response, /^250 2\.0\.0 Ok: queued as [0-9A-Z]{16}$/);
  await s1.waitForMessages(1, 10_000);
  await s2.waitForMessages(1, 10_000);
  assert.deepEqual(s1.messages[0]!.to.map((a) => a.toLowerCase()).sort(), ["x@one.test", "y@one.test"]);
  assert.deepEqual(s2.messages[0]!.to, ["z@two.test"]);
  assert.equal(s1.messages.length, 1);
  const raw = s1.messages[0]!.raw!.toString();
  assert.match(raw, /^Received: from \[?[^\s]+\]? \(\[127\.0\.0\.1\]\)\r\n\tby mxd\.test \(mxd\) with ESMTP id /);
  assert.match(raw, /\r\n\.leading dot line\r\n/);
  await until(queueEmpty(dir), 5000, "spool to be emptied");
  s1.messages.length = 0;
});

test("partial 550: one bounce for that recipient only, others delivered", async (t) => {
  scoped(t);
  const s1 = await sink({ host: "127.0.0.101", rcpt: { "bad@one.test": { code: 550, message: "5.1.1 <bad@one.test>: no such user here" } } });
  const sender = await sink({ host: "127.0.0.103" });
  const dir = tmpSpool();
  const d = await daemon(dir);
  await submit(d, { from: "alice@sender.test", to: ["good@one.test", "bad@one.test"], subject: "partial" });
  await s1.waitForMessages(1, 10_000);
  assert.deepEqual(s1.messages[0]!.to, ["good@one.test"]);
  await sender.waitForMessages(1, 10_000);
  const dsn = sender.messages[0]!;
  assert.equal(dsn.from, "", "bounces come from the null sender");
  assert.deepEqual(dsn.to, ["alice@sender.test"]);
  const parsed = await simpleParser(dsn.raw!);
  assert.match(String(parsed.headers.get("content-type") && (parsed.headers.get("content-type") as { value: string; params: Record<string, string> }).params["report-type"]), /delivery-status/);
  const raw = dsn.raw!.toString();
  assert.match(raw, /Final-Recipient: rfc822; ?bad@one\.test/i);
  assert.match(raw, /Action: failed/);
  assert.match(raw, /Status: 5\.1\.1/);
  assert.match(raw, /Diagnostic-Code: smtp; ?550 5\.1\.1 <bad@one\.test>: no such user here/);
  assert.match(raw, /Remote-MTA: dns; ?mx\.one\.test/);
  assert.doesNotMatch(raw, /Final-Recipient: rfc822; ?good@one\.test/);
  assert.match(raw, /Subject: partial/);
  await until(queueEmpty(dir), 5000, "spool to be emptied");
});

test("4xx then success on retry; the history is kept while deferred", async (t) => {
  scoped(t);
  let calls = 0;
  const s1 = await sink({
    host: "127.0.0.101",
    rcpt: (a) => (a === "later@one.test" && calls++ === 0 ? { code: 451, message: "4.2.1 come back later" } : undefined),
  });
  const dir = tmpSpool();
  const d = await daemon(dir);
  await submit(d, { from: "a@sender.test", to: ["later@one.test"] });
  await s1.waitForMessages(1, 10_000);
  assert.equal(calls, 2);
  assert.equal(s1.messages.length, 1);
  await until(queueEmpty(dir), 5000, "spool to be emptied");
  void d;
});

test("max queue time expiry bounces with 4.4.7 and the last remote reply", async (t) => {
  scoped(t);
  const s1 = await sink({ host: "127.0.0.101", rcpt: () => ({ code: 451, message: "4.3.2 system not accepting messages" }) });
  const sender = await sink({ host: "127.0.0.103" });
  const dir = tmpSpool();
  const d = await daemon(dir, { delivery: { maxQueueTime: "1500ms" } });
  await submit(d, { from: "bob@sender.test", to: ["slow@one.test"] });
  await sender.waitForMessages(1, 10_000);
  const raw = sender.messages[0]!.raw!.toString();
  assert.match(raw, /Status: 4\.4\.7/);
  assert.match(raw, /451 4\.3\.2 system not accepting messages/);
  assert.ok(s1.rcptSeen.length >= 2, "retried before expiry");
  await until(queueEmpty(dir), 5000, "spool to be emptied");
});

test("a message from <> that fails is never bounced; null MX fails at once with 5.1.10", async (t) => {
  scoped(t);
  const sender = await sink({ host: "127.0.0.103" });
  const dir = tmpSpool();
  const d = await daemon(dir);
  const tr = nodemailer.createTransport({ host: "127.0.0.1", port: d.smtp.addresses[0]!.port, ignoreTLS: true });
  await tr.sendMail({ envelope: { from: "", to: ["x@nullmx.test"] } as unknown as { from: string; to: string[] }, raw: "Subject: from null\r\n\r\nbody\r\n" });
  await submit(d, { from: "carol@sender.test", to: ["y@nullmx.test"] });
  await sender.waitForMessages(1, 10_000);
  const raw = sender.messages[0]!.raw!.toString();
  assert.match(raw, /Final-Recipient: rfc822; ?y@nullmx\.test/);
  assert.match(raw, /Status: 5\.1\.10/);
  await until(queueEmpty(dir), 5000, "spool to be emptied");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sender.messages.length, 1, "no bounce for the <> message");
});

test("deferred mail survives a restart and is delivered after it", async (t) => {
  scoped(t);
  const dir = tmpSpool();
  const d1 = await daemon(dir, { delivery: { retry: { minDelay: "1s", maxDelay: "1s", jitter: 0 } } });
  await submit(d1, { from: "a@sender.test", to: ["r@down.test"] });
  // Nothing listens on 127.0.0.104: the attempt fails with connection refused → deferred.
  await until(async () => {
    const all = [...spoolSnapshot(dir).values()];
    if (all.length !== 1) return false;
    return all[0]!.meta.recipients[0]!.attempts >= 1;
  }, 10_000, "a deferred attempt");
  await d1.stop();
  const s = await sink({ host: "127.0.0.104" });
  await daemon(dir, { delivery: { retry: { minDelay: "1s", maxDelay: "1s", jitter: 0 } } });
  await s.waitForMessages(1, 10_000);
  assert.deepEqual(s.messages[0]!.to, ["r@down.test"]);
  await until(queueEmpty(dir), 5000, "spool to be emptied");
});
