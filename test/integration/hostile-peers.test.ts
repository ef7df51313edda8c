// Hostile remote peers on the outbound side (issue 8 §2 and §4, issue 9 wrong-shape state):
// huge and dirty replies from a scripted MX must cost bounded memory, time and disk; entries the
// spool cannot load go to dead/ with a bounce, a reason and a metric; a blackhole MX shared by
// many domains never stalls a healthy one. Real sockets on loopback; this file owns
// 127.0.0.86-127.0.0.99.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { parseConfig, type ConfigInput } from "../../src/config.js";
import { FakeClock } from "../../src/io/clock.js";
import { createLogger, silentLogger, type Logger } from "../../src/io/log.js";
import { createNodeResolver, type Resolver } from "../../src/io/resolver.js";
import { nodeConnector } from "../../src/io/connector.js";
import { FsSpool } from "../../src/spool/fs-spool.js";
import { QueueManager } from "../../src/queue/worker.js";
import { SmtpCourier } from "../../src/delivery/smtp-courier.js";
import { MxdMetrics } from "../../src/admin/mxd-metrics.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";
import type { Courier, DeliveryRequest } from "../../src/delivery/courier.js";
import { greet, startRawPeer, startSilentPeer, sleep, type PeerConn, type RawPeer } from "../helpers/raw-smtp-peer.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { startDnsServer, type DnsServerHandle } from "../helpers/dns-server.js";

type T = { after: (fn: () => unknown) => void };

const noDns: Resolver = {
  mx: () => Promise.reject(new Error("no DNS in this test")),
  a: () => Promise.reject(new Error("no DNS in this test")),
  aaaa: () => Promise.reject(new Error("no DNS in this test")),
};

const TIMEOUTS = { connect: "2s", greeting: "4s", ehlo: "4s", mail: "4s", rcpt: "4s", data: "4s", dataBlock: "4s", dataEnd: "4s", tls: "2s" };

/** A logger whose every line is kept, to check what reaches the log. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const dest = new Writable({
    write(c: Buffer, _e, cb) {
      for (const l of c.toString("utf8").split("\n")) if (l) lines.push(l);
      cb();
    },
  });
  return { logger: createLogger("debug", dest as unknown as Parameters<typeof createLogger>[1]), lines };
}

async function peer(t: T, host: string, script: (c: PeerConn) => Promise<void>): Promise<RawPeer> {
  const p = await startRawPeer({ host, script });
  t.after(() => p.close());
  return p;
}

const hello = (c: PeerConn) => greet(c, ["8BITMIME"]);

/** Write `chunk` `times` times (or until the client hangs up), yielding between writes. */
async function flood(c: PeerConn, chunk: Buffer, times: number): Promise<number> {
  let sent = 0;
  for (let i = 0; i < times && !c.closed && !c.socket.destroyed; i++) {
    c.write(chunk);
    sent += chunk.length;
    await new Promise((r) => setImmediate(r));
  }
  return sent;
}

const TEN_MB_LINE = Buffer.concat([Buffer.from("451 4.3.0 "), Buffer.alloc(10 * 1024 * 1024, "A"), Buffer.from("\r\n")]);
/** 60 MB: 1,000 lines of 60,000 octets of 0xFF, as the remote sent. */
const FF_LINE = Buffer.concat([Buffer.from("451-"), Buffer.alloc(60_000, 0xff), Buffer.from("\r\n")]);
const DIRTY_550 = Buffer.concat([Buffer.from("550 5.7.1 go away "), Buffer.from([0xff, 0xfe, 0x1b]), Buffer.from("[31mred\x00nul\x07bell "), Buffer.from("é ok\r\n")]);

function courierFor(t: T, routes: Record<string, string[]>, logger: Logger, over: ConfigInput["delivery"] = {}): SmtpCourier {
  const config = parseConfig({ hostname: "mxd.test", routes, delivery: { timeouts: TIMEOUTS, ...over } });
  const c = new SmtpCourier({ config, resolver: noDns, connector: nodeConnector, logger, idleTimeoutMs: 500 });
  t.after(() => c.close());
  return c;
}

function req(domain: string, over: Partial<DeliveryRequest> = {}): DeliveryRequest {
  const body = "Subject: t\r\n\r\nhello\r\n";
  return {
    id: "HOSTILE1",
    sender: "s@origin.test",
    domain,
    recipients: [{ address: `u@${domain}` }],
    openBody: () => Readable.from([Buffer.from(body)]),
    size: body.length,
    eightBit: false,
    smtputf8: false,
    ...over,
  };
}

// ------------------------------------------------------------------------------ §2 replies

test("a 10 MB and a 60 MB reply are protocol errors of that host: cut at once, next host tried, nothing big kept", async (t) => {
  const sent: number[] = [];
  const ten = await peer(t, "127.0.0.86", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    sent.push(await flood(c, TEN_MB_LINE, 1));
    await c.waitClose(5000);
  });
  const sixty = await peer(t, "127.0.0.87", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    sent.push(await flood(c, FF_LINE, 1000));
    await c.waitClose(5000);
  });
  const good = await peer(t, "127.0.0.88", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /, "250 ok\r\n");
    await c.expect(/^RCPT /, "250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    c.write("250 2.0.0 queued\r\n");
  });
  const { logger, lines } = capturingLogger();
  const cr = courierFor(t, { "d.test": [ten.address, sixty.address, good.address] }, logger);
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = Date.now();
  const [r] = await cr.deliver(req("d.test"));
  const ms = Date.now() - t0;
  assert.equal(r!.outcome, "delivered", r!.reply);
  assert.equal(r!.ip, "127.0.0.88");
  assert.ok(ms < 3000, `took ${ms} ms`);
  t.diagnostic(`10 MB + 60 MB replies cut, third host delivered in ${ms} ms`);
  await cr.close();
  await ten.allClosed(5000);
  await sixty.allClosed(5000);
  // The client hung up long before the 60 MB were written.
  assert.ok(sent.every((n) => n <= 11 * 1024 * 1024), `sent ${sent.join(", ")}`);
  const longest = Math.max(...lines.map((l) => l.length));
  assert.ok(longest < 4096, `a log line of ${longest} characters`);
  const broke = lines.filter((l) => /session broke/.test(l)).map((l) => JSON.parse(l) as { error: string; qid: string });
  assert.equal(broke.length, 2, lines.join("\n"));
  for (const b of broke) {
    assert.equal(b.qid, "HOSTILE1");
    assert.match(b.error, /reply line longer than 2048 octets/);
  }
  assert.ok(process.memoryUsage().heapUsed - heap0 < 40 * 1024 * 1024, "heap stays small");
});

test("a 60 MB multi-line reply when it is the only host: transient, with a short, escaped excerpt as the reason", async (t) => {
  const sixty = await peer(t, "127.0.0.89", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    // Short lines this time, so the line-count and size bounds are what cuts it.
    await flood(c, Buffer.from("451-\xff\x1b[2J".padEnd(200, "\xff") + "\r\n", "latin1"), 300_000);
    await c.waitClose(5000);
  });
  const { logger, lines } = capturingLogger();
  const cr = courierFor(t, { "d.test": [sixty.address] }, logger);
  const [r] = await cr.deliver(req("d.test"));
  assert.equal(r!.outcome, "transient");
  assert.match(r!.reply, /multi-line reply (longer than 100 lines|larger than 16384 octets)/);
  assert.ok(r!.reply.length <= 600, `${r!.reply.length}`);
  assert.ok(lines.every((l) => l.length < 4096));
  assert.ok(!lines.some((l) => l.includes("\u001b")), "no raw ESC in the log");
});

test("dirty 550 (invalid UTF-8, ESC, NUL, BEL): permanent, reply escaped in the result", async (t) => {
  const p = await peer(t, "127.0.0.90", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /, "250 ok\r\n");
    await c.expect(/^RCPT /);
    c.write(DIRTY_550);
  });
  const { logger, lines } = capturingLogger();
  const cr = courierFor(t, { "d.test": [p.address] }, logger);
  const [r] = await cr.deliver(req("d.test"));
  assert.equal(r!.outcome, "permanent");
  assert.equal(r!.reply, "550 5.7.1 go away \\xFF\\xFE\\x1B[31mred\\x00nul\\x07bell é ok");
  assert.ok(!lines.some((l) => /\\u001b|\\u0000/.test(l)), "no control characters logged, not even JSON-escaped");
});

// ----------------------------------------------------- §2 through the queue: state, history, DSN

async function queueSetup(t: T, courier: Courier, opts: { maxStateBytes?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "mxd-hostile-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 10, 25, 12, 0, 0));
  const config = parseConfig({ hostname: "mxd.test", spoolDir: dir, delivery: { retry: { minDelay: "5m", maxDelay: "1h", jitter: 0 } } });
  const spool = new FsSpool({ dir, now: () => clock.now(), noSync: true, ...opts });
  await spool.init();
  const metrics = new MxdMetrics();
  const { logger, lines } = capturingLogger();
  const qm = new QueueManager({ config, spool, courier, clock, logger, random: () => 0.5, events: metrics.queueEvents });
  t.after(() => qm.stop(1000));
  const put = (rcpt = "bob@remote.test") =>
    spool.put(
      newMessage({ sender: "alice@origin.test", recipients: [newRecipient(rcpt)], nowMs: clock.now(), client: { ip: "127.0.0.1", helo: "client.test" } }),
      Buffer.from("Subject: hostile\r\nMessage-ID: <h@origin.test>\r\n\r\nhello\r\n"),
    );
  return { dir, clock, spool, qm, metrics, lines, put };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function metric(m: MxdMetrics, name: string): number {
  const line = m.registry.render().split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
  return Number(line?.split(" ").pop());
}

test("three attempts against hosts answering 10 MB and 60 MB replies: the state file stays small, history bounded and escaped", async (t) => {
  const ten = await peer(t, "127.0.0.91", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await flood(c, TEN_MB_LINE, 1);
    await c.waitClose(5000);
  });
  const ff = await peer(t, "127.0.0.92", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await flood(c, FF_LINE, 1000);
    await c.waitClose(5000);
  });
  const courier = courierFor(t, { "remote.test": [ten.address, ff.address] }, silentLogger());
  const q = await queueSetup(t, courier);
  await q.qm.start();
  const m = await q.put();
  q.qm.enqueue(m);
  const statePath = join(q.dir, "queue", `${m.id}.json`);
  for (let n = 1; n <= 3; n++) {
    await until(async () => (await q.spool.load(m.id)).recipients[0]!.attempts === n && q.clock.pendingTimers() > 0, `attempt ${n}`);
    q.clock.advance(60 * 60_000);
  }
  await until(async () => (await q.spool.load(m.id)).recipients[0]!.attempts >= 3, "three attempts");
  const size = statSync(statePath).size;
  t.diagnostic(`state file after 3 attempts: ${size} octets`);
  assert.ok(size < 8 * 1024, `state file is ${size} octets`);
  const st = await q.spool.load(m.id);
  for (const h of st.recipients[0]!.history) {
    assert.equal(h.outcome, "transient");
    assert.ok(h.reply.length <= 512, `${h.reply.length}`);
    assert.match(h.reply, /reply line longer than 2048 octets/);
  }
  assert.ok(ten.conns.length >= 3 && ff.conns.length >= 3);
  assert.ok(q.lines.every((l) => l.length < 4096));
});

test("a dirty 550 bounce: the DSN's Diagnostic-Code is a short, escaped excerpt", async (t) => {
  const hostile = await peer(t, "127.0.0.93", async (c) => {
    await hello(c);
    await c.expect(/^MAIL /, "250 ok\r\n");
    await c.expect(/^RCPT /);
    // One long (but in-bounds) multi-line reply with dirt on every line.
    const lines = Array.from({ length: 40 }, (_, i) => Buffer.concat([Buffer.from(`550${i === 39 ? " " : "-"}5.1.1 line ${i} `), Buffer.from([0xc3, 0x28, 0x1b, 0x00]), Buffer.from("y".repeat(300) + "\r\n")]));
    c.write(Buffer.concat(lines));
  });
  const sink: MxSink = await startMxSink({ host: "127.0.0.94" });
  t.after(() => sink.close());
  const courier = courierFor(t, { "remote.test": [hostile.address], "origin.test": ["127.0.0.94:25"] }, silentLogger());
  const q = await queueSetup(t, courier);
  await q.qm.start();
  const m = await q.put();
  q.qm.enqueue(m);
  await until(() => sink.messages.length === 1, "the bounce at the sender's MX");
  const dsn = sink.messages[0]!.raw!.toString("latin1");
  const diag = /Diagnostic-Code: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)/.exec(dsn)![1]!.replace(/\r\n[ \t]+/g, " ");
  assert.match(diag, /^smtp; 550 5\.1\.1 line 0 \\xC3\(\\x1B\\x00y/);
  assert.ok(diag.length < 600, `Diagnostic-Code of ${diag.length} characters`);
  assert.ok(dsn.length < 8 * 1024, `DSN of ${dsn.length} octets`);
  assert.doesNotMatch(dsn, /[\x00\x1b]/);
});

// ------------------------------------------------------------- spool entries that cannot load

function recordingCourier(): Courier & { domains: string[] } {
  const domains: string[] = [];
  return {
    domains,
    async deliver(r) {
      domains.push(r.domain);
      return r.recipients.map((x) => ({ recipient: x.address, outcome: "transient" as const, reply: "451 4.0.0 later", status: "4.0.0", remote: true }));
    },
    async close() {},
  };
}

test("wrong-shape and oversize state files go to dead/ with a reason, are counted, bounced, and never attempted", async (t) => {
  const courier = recordingCourier();
  const q = await queueSetup(t, courier, { maxStateBytes: 256 * 1024 });
  const edit = (m: MessageMeta, f: (j: Record<string, unknown>) => void) => {
    const p = join(q.dir, "queue", `${m.id}.json`);
    const j = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
    f(j);
    writeFileSync(p, JSON.stringify(j, null, 2));
  };
  const notify = await q.put("n@remote.test");
  edit(notify, (j) => ((j.recipients as Record<string, unknown>[])[0]!.notify = "FAILURE"));
  const envid = await q.put("e@remote.test");
  edit(envid, (j) => (j.params = { envid: 42 }));
  // The 539 MB file, scaled down: a valid envelope, then a reply far too big to load.
  const big = await q.put("b@remote.test");
  edit(big, (j) => {
    const r = (j.recipients as Record<string, unknown>[])[0]!;
    r.history = [{ at: new Date(q.clock.now()).toISOString(), outcome: "transient", status: "4.0.0", reply: "\u00ff".repeat(400_000) }];
  });
  const torn = await q.put("t@remote.test");
  writeFileSync(join(q.dir, "queue", `${torn.id}.json`), '{"version": 1, "id": "' + torn.id + '", "sender": "alice@origin.test", "recipients": [{"address": "t@remote.test", "domain": "remote.test", "status": "pending", "attempts": 0, "hist');
  await q.qm.start();
  const ids = [notify.id, envid.id, big.id, torn.id];
  await until(() => metric(q.metrics, "mxd_dead_letters_total") === 4, "four entries in dead/");
  const reason = (id: string) => readFileSync(join(q.dir, "dead", `${id}.reason`), "utf8");
  assert.match(reason(notify.id), /recipients\.0\.notify/);
  assert.match(reason(envid.id), /params\.envid/);
  assert.match(reason(big.id), /state file too large/);
  assert.match(reason(torn.id), /not JSON/);
  for (const id of ids) assert.ok(!readdirSync(join(q.dir, "queue")).some((f) => f.startsWith(id)), `${id} left queue/`);
  assert.equal(metric(q.metrics, "mxd_spool_bad_entries_total"), 4);
  assert.equal(metric(q.metrics, "mxd_dead_letters_total"), 4);
  const errors = q.lines.map((l) => JSON.parse(l) as { level: string; msg: string; qid?: string }).filter((l) => l.level === "error" && l.msg === "unreadable spool entry moved to dead/");
  assert.deepEqual(errors.map((e) => e.qid).sort(), [...ids].sort());
  // The sender is told about each (four bounces to origin.test), nothing goes to remote.test,
  // and nothing loops: virtual hours later still no attempt at remote.test.
  await until(() => courier.domains.filter((d) => d === "origin.test").length === 4, "four bounces");
  q.clock.advance(6 * 60 * 60_000);
  await sleep(100);
  assert.deepEqual(courier.domains.filter((d) => d !== "origin.test"), []);
});

// ------------------------------------------------------------------------ §4 blackhole MX

/** Accepts TCP and never writes a byte: the "blackhole". */
async function blackhole(t: T, host: string): Promise<{ accepted: () => number; maxOpen: () => number }> {
  const p = await startSilentPeer(host, 25);
  t.after(() => p.close());
  return { accepted: () => p.conns.length, maxOpen: () => p.maxOpen };
}

const BH_DOMAINS = Array.from({ length: 7 }, (_, i) => `bh${i}.test`);

async function dnsFor(t: T, host: string, zone: Parameters<typeof startDnsServer>[0]["zone"]): Promise<DnsServerHandle> {
  const d = await startDnsServer({ zone, host });
  t.after(() => d.close());
  return d;
}

test("seven domains whose MX is one blackhole, with a backlog: a healthy domain is still delivered within seconds", async (t) => {
  const bh = await blackhole(t, "127.0.0.95");
  const sink = await startMxSink({ host: "127.0.0.96" });
  t.after(() => sink.close());
  const zone: Record<string, { mx?: { exchange: string; priority: number }[]; a?: string[] }> = {
    "mx.bh.test": { a: ["127.0.0.95"] },
    "healthy.test": { mx: [{ exchange: "mx.healthy.test", priority: 10 }] },
    "mx.healthy.test": { a: ["127.0.0.96"] },
  };
  for (const d of BH_DOMAINS) zone[d] = { mx: [{ exchange: "mx.bh.test", priority: 10 }] };
  const dns = await dnsFor(t, "127.0.0.97", zone);
  const delivery = { concurrency: 20, perDomainConcurrency: 5, perHostConcurrency: 4, timeouts: { ...TIMEOUTS, greeting: "60s" } };
  const config = parseConfig({ hostname: "mxd.test", delivery });
  const courier = new SmtpCourier({ config, resolver: createNodeResolver({ servers: [dns.address], timeoutMs: 1000, tries: 1 }), connector: nodeConnector, logger: silentLogger() });
  t.after(() => courier.close());
  const dir = mkdtempSync(join(tmpdir(), "mxd-bh-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 10, 25, 12, 0, 0));
  const spool = new FsSpool({ dir, now: () => clock.now(), noSync: true });
  await spool.init();
  const qm = new QueueManager({ config: parseConfig({ hostname: "mxd.test", spoolDir: dir, delivery }), spool, courier, clock, logger: silentLogger(), random: () => 0.5 });
  t.after(() => qm.stop(500));
  await qm.start();
  const put = (rcpt: string) =>
    spool.put(newMessage({ sender: "alice@origin.test", recipients: [newRecipient(rcpt)], nowMs: clock.now(), client: { ip: "127.0.0.1" } }), Buffer.from("Subject: bh\r\n\r\nx\r\n"));
  const backlog: MessageMeta[] = [];
  for (const d of BH_DOMAINS) for (let i = 0; i < 8; i++) backlog.push(await put(`u${i}@${d}`));
  for (const m of backlog) qm.enqueue(m);
  await until(() => bh.accepted() >= 4, "the blackhole holding connections");
  const healthy: MessageMeta[] = [];
  for (let i = 0; i < 3; i++) healthy.push(await put(`h${i}@healthy.test`));
  const t0 = Date.now();
  for (const m of healthy) qm.enqueue(m);
  await until(() => sink.messages.length === 3, "3 messages at the healthy domain", 8000);
  const ms = Date.now() - t0;
  t.diagnostic(`healthy domain delivered ${ms} ms after it was queued; blackhole max ${bh.maxOpen()} open connections`);
  assert.ok(ms < 5000, `healthy domain delivered after ${ms} ms`);
  assert.ok(bh.maxOpen() <= 4, `${bh.maxOpen()} connections open at once to the blackhole`);
  // The messages that found the blackhole busy (its slots and its bounded wait queue full) were
  // not attempted: no attempt counted, no history, a retry within seconds — never a backoff.
  await until(async () => {
    const states = await Promise.all(backlog.map((m) => spool.load(m.id)));
    return states.filter((s) => s.recipients[0]!.attempts === 0 && Date.parse(s.nextAttemptAt) > Date.parse(s.receivedAt)).length >= 1;
  }, "busy ones rescheduled soon");
  for (const s of await Promise.all(backlog.map((m) => spool.load(m.id)))) {
    if (s.recipients[0]!.attempts > 0) continue;
    assert.deepEqual(s.recipients[0]!.history, []);
    assert.ok(Date.parse(s.nextAttemptAt) - clock.now() <= 2000, `retried within 2 s, not after a backoff (${s.nextAttemptAt})`);
  }
});

test("a host that did not greet is skipped for every domain sharing it, then tried again after deadHostTime", async (t) => {
  const bh = await blackhole(t, "127.0.0.98");
  const dns = await dnsFor(t, "127.0.0.99", {
    "one.test": { mx: [{ exchange: "mx.shared.test", priority: 10 }] },
    "two.test": { mx: [{ exchange: "mx.shared.test", priority: 10 }] },
    "mx.shared.test": { a: ["127.0.0.98"] },
  });
  let now = Date.UTC(2026, 10, 25, 12, 0, 0);
  const config = parseConfig({ hostname: "mxd.test", delivery: { deadHostTime: "3m", timeouts: { ...TIMEOUTS, greeting: "300ms" } } });
  const { logger, lines } = capturingLogger();
  const courier = new SmtpCourier({ config, resolver: createNodeResolver({ servers: [dns.address], timeoutMs: 1000, tries: 1 }), connector: nodeConnector, logger, now: () => now });
  t.after(() => courier.close());
  const [a] = await courier.deliver(req("one.test"));
  assert.equal(a!.outcome, "transient");
  assert.match(a!.reply, /timeout after 300 ms waiting for the reply \(greeting\)/);
  assert.equal(bh.accepted(), 1);
  const t0 = Date.now();
  const [b] = await courier.deliver(req("two.test"));
  assert.ok(Date.now() - t0 < 250, "skipped without waiting");
  assert.equal(b!.outcome, "transient");
  assert.equal(b!.status, "4.4.1");
  assert.match(b!.reply, /mx\.shared\.test\[127\.0\.0\.98\]:25: host recently failed: no greeting \(timed out\), skipped until 2026-11-25T12:03:00\.000Z/);
  assert.equal(bh.accepted(), 1, "no connection for the second domain");
  assert.ok(lines.some((l) => /"msg":"host skipped"/.test(l) && /"qid":"HOSTILE1"/.test(l)));
  now += 3 * 60_000;
  await courier.deliver(req("two.test"));
  assert.equal(bh.accepted(), 2, "tried again once deadHostTime is over");
});
