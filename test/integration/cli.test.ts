// The queue CLI as a postmaster uses it: `mxd serve` as a child process on a real spool, the
// CLI as separate processes, a real DNS server (dns2) and smtp-server sinks on 127.0.0.150-159.
// Pause/resume and hold/release are checked by what reaches the sinks.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, existsSync, renameSync, mkdirSync } from "node:fs";
import { createServer as netCreateServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { startDnsServer, type DnsServerHandle } from "../helpers/dns-server.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { mxd, startDaemonProcess, until, writeConfig, type DaemonProcess } from "../helpers/daemon-process.js";
import { queuedIdsSync, spoolSnapshot } from "../helpers/spool-snapshot.js";

let dns: DnsServerHandle;
const sinks: Record<string, MxSink> = {};
const cleanups: (() => Promise<unknown> | unknown)[] = [];
let deferCalls = 0;

before(async () => {
  dns = await startDnsServer({
    host: "127.0.0.150",
    zone: {
      "a.test": { mx: [{ exchange: "mx.a.test", priority: 10 }] },
      "mx.a.test": { a: ["127.0.0.151"] },
      "b.test": { mx: [{ exchange: "mx.b.test", priority: 10 }] },
      "mx.b.test": { a: ["127.0.0.152"] },
      "slow.test": { mx: [{ exchange: "mx.slow.test", priority: 10 }] },
      "mx.slow.test": { a: ["127.0.0.153"] },
      "sender.test": { mx: [{ exchange: "mx.sender.test", priority: 10 }] },
      "mx.sender.test": { a: ["127.0.0.154"] },
      "admin.test": { mx: [{ exchange: "mx.admin.test", priority: 10 }] },
      "mx.admin.test": { a: ["127.0.0.155"] },
      "busy.test": { mx: [{ exchange: "mx.busy.test", priority: 10 }] },
      "mx.busy.test": { a: ["127.0.0.156"] },
    },
  });
  sinks.a = await startMxSink({ host: "127.0.0.151" });
  sinks.b = await startMxSink({ host: "127.0.0.152" });
  sinks.slow = await startMxSink({ host: "127.0.0.153", rcpt: () => (deferCalls++, { code: 451, message: "4.2.1 mailbox busy, try later" }) });
  sinks.sender = await startMxSink({ host: "127.0.0.154", rcpt: { "gone@sender.test": { code: 550, message: "5.1.1 no such user" } } });
  sinks.admin = await startMxSink({ host: "127.0.0.155" });
  // Slow to answer the data, then a temporary failure: a delivery that is in progress for 1.5 s.
  sinks.busy = await startMxSink({ host: "127.0.0.156", dataDelayMs: 1500, data: { code: 451, message: "4.3.0 try again" } });
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const s of Object.values(sinks)) await s.close();
  await dns?.close();
});

function setup(extra: object = {}): { dir: string; cfg: string; spool: string } {
  const dir = mkdtempSync(join(tmpdir(), "mxd-cli-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const spool = join(dir, "spool");
  const cfg = writeConfig(dir, {
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir: spool,
    dns: { servers: [dns.address], timeout: "2s", tries: 1 },
    // Nothing retries on its own during a test: flush does it.
    delivery: { retry: { minDelay: "1h", maxDelay: "1h", jitter: 0 }, timeouts: { connect: "2s" } },
    bounce: { copyTo: "postmaster@admin.test" },
    log: { level: "info" },
    ...extra,
  });
  return { dir, cfg, spool };
}

async function daemon(cfg: string): Promise<DaemonProcess> {
  const d = await startDaemonProcess(cfg);
  cleanups.push(() => d.stop());
  return d;
}

async function submit(port: number, from: string, to: string[], subject = "cli test"): Promise<string> {
  const t = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
  const info = await t.sendMail({ envelope: { from, to }, from, to, subject, text: "hello\n" });
  const id = /queued as ([0-9A-Z]{16})/.exec(info.response)?.[1];
  assert.ok(id, info.response);
  return id;
}

const q = (cfg: string, ...args: string[]) => mxd(["queue", ...args, "--config", cfg]);

function listJson(stdout: string): { id: string; state: string; paused: boolean; recipients: { address: string; status: string; attempts: number; lastReply?: string }[] }[] {
  return stdout.trim() ? stdout.trim().split("\n").map((l) => JSON.parse(l)) : [];
}

function resetSinks(): void {
  for (const s of Object.values(sinks)) {
    s.messages.length = 0;
    s.rcptSeen.length = 0;
  }
}

test("pause/resume (all and one domain) and hold/release, judged by what reaches the sinks", async () => {
  resetSinks();
  const { cfg } = setup();
  const d = await daemon(cfg);

  // Global pause: mail is accepted and kept.
  let r = await q(cfg, "pause");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /outbound delivery is PAUSED/);
  const idA = await submit(d.smtpPort, "s@sender.test", ["x@a.test"]);
  const idB = await submit(d.smtpPort, "s@sender.test", ["y@b.test"]);
  r = await q(cfg, "list");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${idA}  queued\\*`));
  assert.match(r.stdout, /-- 2 message\(s\): 2 queued, 0 deferred, 0 held/);
  assert.match(r.stdout, /-- outbound delivery is PAUSED/);
  r = await q(cfg, "list", "--json", "--domain", "a.test");
  assert.deepEqual(listJson(r.stdout).map((e) => [e.id, e.state, e.paused]), [[idA, "queued", true]]);

  // Hold B while paused, then resume everything: A goes, B stays.
  r = await q(cfg, "hold", idB);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${idB}: held`));
  r = await q(cfg, "resume");
  assert.equal(r.code, 0, r.stderr);
  await sinks.a!.waitForMessages(1, 10_000);
  assert.deepEqual(sinks.a!.messages[0]!.to, ["x@a.test"]);
  r = await q(cfg, "list", "--state", "held", "--json");
  assert.deepEqual(listJson(r.stdout).map((e) => e.id), [idB]);
  r = await q(cfg, "flush", idB);
  assert.equal(r.code, 1, "flushing a held message fails and says why");
  assert.match(r.stderr, /held \(release it first\)/);
  await new Promise((res) => setTimeout(res, 500));
  assert.equal(sinks.b!.messages.length, 0, "a held message is never attempted");
  r = await q(cfg, "release", idB);
  assert.equal(r.code, 0, r.stderr);
  await sinks.b!.waitForMessages(1, 10_000);

  // Pause one destination: a message for both domains delivers b.test only.
  r = await q(cfg, "pause", "--domain", "A.test");
  assert.match(r.stdout, /paused domains: a\.test/);
  const idAB = await submit(d.smtpPort, "s@sender.test", ["p@a.test", "q@b.test"]);
  await sinks.b!.waitForMessages(2, 10_000);
  assert.deepEqual(sinks.b!.messages[1]!.to, ["q@b.test"]);
  await until(async () => listJson((await q(cfg, "list", "--json")).stdout).some((e) => e.id === idAB && e.paused), 5000, "the a.test part to wait");
  assert.equal(sinks.a!.messages.length, 1, "nothing more reached the paused domain");
  r = await q(cfg, "list", "--json");
  const e = listJson(r.stdout).find((x) => x.id === idAB)!;
  assert.deepEqual(e.recipients.map((x) => [x.address, x.status, x.attempts]), [["p@a.test", "pending", 0], ["q@b.test", "delivered", 1]]);
  r = await q(cfg, "resume", "--domain", "a.test");
  assert.equal(r.code, 0, r.stderr);
  await sinks.a!.waitForMessages(2, 10_000);
  assert.deepEqual(sinks.a!.messages[1]!.to, ["p@a.test"]);
  r = await q(cfg, "list");
  await until(async () => /Mail queue is empty/.test((await q(cfg, "list")).stdout), 5000, "an empty queue");
});

test("deferred mail: show, flush, bounce (with the postmaster copy), delete; status; dead letters", async () => {
  resetSinks();
  deferCalls = 0;
  const { cfg, spool } = setup();
  const d = await daemon(cfg);
  const id1 = await submit(d.smtpPort, "alice@sender.test", ["r1@slow.test"], "first");
  const id2 = await submit(d.smtpPort, "gone@sender.test", ["r2@slow.test"], "second");
  const id3 = await submit(d.smtpPort, "alice@sender.test", ["r3@slow.test"], "third");
  await until(async () => listJson((await q(cfg, "list", "--json", "--state", "deferred")).stdout).length === 3, 10_000, "three deferred messages");

  let r = await q(cfg, "list", "--domain", "slow.test");
  assert.match(r.stdout, new RegExp(`${id1}  deferred`));
  assert.match(r.stdout, /pending {3}<r1@slow\.test> {2}\[1 attempt\] 451 4\.2\.1 mailbox busy, try later/);
  assert.match(r.stdout, /next: in (59|60)m/);
  r = await q(cfg, "show", id1);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /sender: {4}<alice@sender\.test>/);
  assert.match(r.stdout, /recipient  <r1@slow\.test>  pending, 1 attempt\(s\)/);
  assert.match(r.stdout, /transient mx\.slow\.test\[127\.0\.0\.153\] 451 4\.2\.1 mailbox busy/);
  assert.match(r.stdout, /Subject: first/);
  assert.doesNotMatch(r.stdout, /^hello$/m, "no body without --body");
  r = await q(cfg, "show", id1, "--body");
  assert.match(r.stdout, /^hello\r?$/m);
  r = await q(cfg, "show", id1, "--json");
  assert.equal(JSON.parse(r.stdout).recipients[0].history[0].status, "4.2.1");

  // flush: one more attempt now, for that message only.
  const before = deferCalls;
  r = await q(cfg, "flush", id1);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${id1}: flushed`));
  await until(async () => JSON.parse((await q(cfg, "show", id1, "--json")).stdout).recipients[0].attempts === 2, 10_000, "a second attempt");
  assert.equal(deferCalls, before + 1);

  // bounce: the sender gets a DSN now, and bounce.copyTo a copy.
  r = await q(cfg, "bounce", id1);
  assert.equal(r.code, 0, r.stderr);
  await sinks.sender!.waitForMessages(1, 10_000);
  await sinks.admin!.waitForMessages(1, 10_000);
  const dsn = sinks.sender!.messages[0]!;
  assert.equal(dsn.from, "");
  assert.deepEqual(dsn.to, ["alice@sender.test"]);
  assert.match(dsn.raw!.toString(), /Final-Recipient: rfc822; ?r1@slow\.test/);
  assert.match(dsn.raw!.toString(), /Status: 5\.0\.0/);
  assert.deepEqual(sinks.admin!.messages[0]!.to, ["postmaster@admin.test"]);
  assert.equal(sinks.admin!.messages[0]!.sha256, dsn.sha256, "the postmaster gets the same report");

  // A bounce to a sender that refuses it goes to dead/ (and the postmaster still has a copy).
  r = await q(cfg, "bounce", id2);
  assert.equal(r.code, 0, r.stderr);
  await sinks.admin!.waitForMessages(2, 10_000);
  await until(async () => listJson((await q(cfg, "list", "--state", "dead", "--json")).stdout).length === 1, 10_000, "a dead letter");
  r = await q(cfg, "list", "--state", "dead", "--json");
  const dead = listJson(r.stdout)[0] as unknown as { id: string; reason: string; recipients: string[] };
  assert.match(dead.reason, /bounce could not be delivered: gone@sender\.test: 550 5\.1\.1 no such user/);
  assert.deepEqual(dead.recipients, ["gone@sender.test", "postmaster@admin.test"]);
  r = await q(cfg, "show", dead.id);
  assert.match(r.stdout, /DEAD LETTER/);

  // delete: gone without a bounce, never attempted again.
  r = await q(cfg, "delete", id3, "01KB2X7Q9M4F8Z3H");
  assert.equal(r.code, 1, "one id was unknown");
  assert.match(r.stdout, new RegExp(`${id3}: deleted`));
  assert.match(r.stderr, /01KB2X7Q9M4F8Z3H: no such message/);
  assert.equal(queuedIdsSync(spool).includes(id3), false);
  r = await q(cfg, "flush");
  assert.match(r.stdout, /^flushed 0 messages$/m);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(sinks.sender!.messages.length, 1, "delete sends no bounce");

  r = await mxd(["status", "--config", cfg]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /mxd is running: pid \d+/);
  assert.match(r.stdout, new RegExp(`smtp: +127\\.0\\.0\\.1:${d.smtpPort}`));
  assert.match(r.stdout, /queue: +0 message\(s\).*1 dead letter/);
  assert.match(r.stdout, /last errors:\n[\s\S]*<r1@slow\.test> {2}451 4\.2\.1 mailbox busy/);
  assert.equal(await d.stop(), 0);
});

test("with mxd stopped: list, show, hold, release, flush, delete, pause on the spool; the pause survives a restart", async () => {
  resetSinks();
  const { cfg, spool } = setup();
  let d = await daemon(cfg);
  assert.equal((await q(cfg, "pause", "--domain", "b.test")).code, 0);
  const id1 = await submit(d.smtpPort, "alice@sender.test", ["k1@slow.test"]);
  const id2 = await submit(d.smtpPort, "alice@sender.test", ["k2@slow.test", "k3@b.test"]);
  await until(async () => listJson((await q(cfg, "list", "--json", "--state", "deferred")).stdout).length === 2, 10_000, "two deferred messages");
  assert.equal(await d.stop(), 0);

  let r = await mxd(["status", "--config", cfg]);
  assert.equal(r.code, 1, "status fails when mxd is not running");
  assert.match(r.stdout, /mxd is not running/);
  assert.match(r.stdout, /queue: +2 message\(s\): 0 queued, 2 deferred/);
  r = await q(cfg, "list", "--json");
  assert.deepEqual(listJson(r.stdout).map((e) => e.id), [id1, id2]);
  r = await q(cfg, "hold", id1);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /mxd is not running: spool changed directly/);
  assert.equal(spoolSnapshot(spool).get(id1)?.meta.held, true);
  r = await q(cfg, "release", id1);
  assert.equal(r.code, 0);
  r = await q(cfg, "release", id1);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not held/);
  r = await q(cfg, "delete", "--domain", "slow.test");
  assert.equal(r.code, 2, "a bulk delete needs --yes");
  r = await q(cfg, "delete", "--domain", "slow.test", "--yes");
  assert.equal(r.code, 0, r.stderr);
  // id1 had only slow.test: gone; id2 keeps its b.test recipient.
  r = await q(cfg, "list", "--json");
  const left = listJson(r.stdout);
  assert.deepEqual(left.map((e) => e.id), [id2]);
  assert.deepEqual(left[0]!.recipients.map((x) => [x.address, x.status]), [["k2@slow.test", "failed"], ["k3@b.test", "pending"]]);
  r = await q(cfg, "flush", id2);
  assert.match(r.stdout, /due now/);
  r = await q(cfg, "pause");
  assert.match(r.stdout, /saved for its next start/);

  // An unparseable entry in the previous layout: moved to dead/ at start (migration), with a reason.
  mkdirSync(join(spool, "queue"), { recursive: true });
  writeFileSync(join(spool, "queue", "01KB2X7Q9M4F8Z3H.json"), "{ not json");
  writeFileSync(join(spool, "queue", "01KB2X7Q9M4F8Z3H.eml"), "Subject: x\r\n\r\nx\r\n");

  d = await daemon(cfg);
  r = await mxd(["status", "--config", cfg]);
  assert.match(r.stdout, /outbound delivery is PAUSED; paused domains: b\.test/);
  r = await q(cfg, "list");
  assert.match(r.stdout, new RegExp(`${id2}  queued\\* .*destination paused`));
  r = await q(cfg, "list", "--state", "dead");
  assert.match(r.stdout, /01KB2X7Q9M4F8Z3H {2}dead/);
  assert.match(r.stdout, /unreadable spool entry/);
  assert.ok(readdirSync(join(spool, "dead")).includes("01KB2X7Q9M4F8Z3H.reason"));
  r = await q(cfg, "resume");
  assert.match(r.stdout, /outbound delivery is running; paused domains: b\.test/);
  await new Promise((res) => setTimeout(res, 500));
  assert.equal(sinks.b!.messages.length, 0, "b.test is still paused, across the restart too");
  r = await q(cfg, "resume", "--domain", "b.test");
  await sinks.b!.waitForMessages(1, 10_000);
  assert.deepEqual(sinks.b!.messages[0]!.to, ["k3@b.test"]);
  await until(async () => /Mail queue is empty/.test((await q(cfg, "list")).stdout), 5000, "an empty queue");
  // With the daemon running, delete --all goes through it.
  r = await q(cfg, "delete", "--all");
  assert.equal(r.code, 2, "--all needs --yes");
  r = await q(cfg, "delete", "--all", "--yes");
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^deleted 0 messages$/m);
});

test("delete and hold during a delivery in progress wait for it, and the delivery cannot undo them", async () => {
  resetSinks();
  const { cfg, spool } = setup();
  const d = await daemon(cfg);
  const id = await submit(d.smtpPort, "alice@sender.test", ["x@busy.test"]);
  const id2 = await submit(d.smtpPort, "alice@sender.test", ["y@busy.test"]);
  await until(() => sinks.busy!.rcptSeen.length === 2, 10_000, "both deliveries to be in progress");
  const [del, hold] = await Promise.all([q(cfg, "delete", id), q(cfg, "hold", id2)]);
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stdout, new RegExp(`${id}: deleted`));
  assert.equal(hold.code, 0, hold.stderr);
  assert.match(hold.stdout, new RegExp(`${id2}: held`));
  assert.equal(queuedIdsSync(spool).includes(id), false, "the finished delivery did not write the state back");
  const held = spoolSnapshot(spool).get(id2)!.meta;
  assert.equal(held.held, true);
  assert.equal(held.recipients[0].attempts, 1, "the attempt in progress was recorded, then the hold applied");
  const r = await q(cfg, "flush");
  assert.equal(r.code, 0, "a bulk flush skips held messages without failing");
  assert.match(r.stdout, /^flushed 0 messages$/m, "the held message is not flushed");
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(sinks.busy!.rcptSeen.length, 2, "no further attempt");
});

test("usage errors exit 2 and every command has --help", async () => {
  const { cfg } = setup();
  for (const sub of ["list", "show", "flush", "delete", "bounce", "hold", "release", "pause", "resume"]) {
    const r = await q(cfg, sub, "--help");
    assert.equal(r.code, 0, sub);
    assert.match(r.stdout, new RegExp(`^usage: mxd queue ${sub}`), sub);
  }
  assert.equal((await mxd(["status", "--help"])).code, 0);
  assert.equal((await q(cfg, "show")).code, 2);
  assert.equal((await q(cfg, "hold", "not-an-id")).code, 2);
  assert.equal((await q(cfg, "list", "--state", "stuck")).code, 2);
  assert.equal((await q(cfg, "bounce", "--domain", "a.test")).code, 2);
  assert.equal((await q(cfg, "frobnicate")).code, 2);
  assert.equal((await mxd(["queue", "list", "--config", join(tmpdir(), "no-such-mxd.json")])).code, 2);
});

/** A free TCP port on host: bind 0, read it, release it. */
function freePort(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const s = netCreateServer().listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
    s.on("error", rej);
  });
}

test("the CLI reaches the daemon over admin.listen with admin.token when the socket is unusable; a wrong token is exit 1, never the spool", async () => {
  const port = await freePort("127.0.0.185");
  const token = "cli-over-tcp-token-0123";
  const { dir, cfg, spool } = setup({ admin: { listen: `127.0.0.185:${port}`, token } });
  const d = await daemon(cfg);
  assert.equal((await q(cfg, "pause", "--domain", "nowhere.test")).code, 0);
  const id = await submit(d.smtpPort, "s@sender.test", ["x@nowhere.test"]);
  // The socket becomes unusable: gone (moved away), then a plain file in its place.
  const sock = join(spool, "admin.sock");
  renameSync(sock, sock + ".away");
  try {
    let r = await mxd(["status", "--config", cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /mxd is running/);
    r = await q(cfg, "hold", id);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${id}: held`));
    assert.doesNotMatch(r.stdout, /not running/, "it went through the daemon, not the spool");
    writeFileSync(sock, "");
    r = await q(cfg, "release", id);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /not running/);
    r = await q(cfg, "pause");
    assert.match(r.stdout, /^outbound delivery is PAUSED; paused domains: nowhere\.test$/m);
    // The daemon has it: its /status says paused.
    assert.match((await mxd(["status", "--config", cfg])).stdout, /delivery: +outbound delivery is PAUSED/);
    // A wrong token: refused (exit 1), and the CLI does not fall back to editing the spool.
    const bad = writeConfig(dir, { ...JSON.parse(readFileSync(cfg, "utf8")), admin: { listen: `127.0.0.185:${port}`, token: "wrong-token-wrong-token" } }, "bad-token.json");
    const before = JSON.stringify(spoolSnapshot(spool).get(id)!.meta);
    r = await mxd(["queue", "hold", id, "--config", bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /admin API refused the token \(admin\.token\)/);
    assert.equal(JSON.stringify(spoolSnapshot(spool).get(id)!.meta), before, "spool untouched");
    r = await mxd(["status", "--config", bad]);
    assert.equal(r.code, 1);
    assert.equal((await mxd(["queue", "resume", "--config", bad])).code, 1);
  } finally {
    rmSync(sock, { force: true });
    renameSync(sock + ".away", sock);
  }
  assert.equal((await q(cfg, "resume")).code, 0);
  assert.equal(await d.stop(), 0);
});

test("exit codes 0, 1 and 2 for every queue command, with mxd running and stopped", async () => {
  const { dir, cfg } = setup();
  let d = await daemon(cfg);
  assert.equal((await q(cfg, "pause", "--domain", "nowhere.test")).code, 0);
  const ids = [
    await submit(d.smtpPort, "s@sender.test", ["a@nowhere.test"]),
    await submit(d.smtpPort, "s@sender.test", ["b@nowhere.test"]),
    await submit(d.smtpPort, "s@sender.test", ["c@nowhere.test"]),
    await submit(d.smtpPort, "s@sender.test", ["d@nowhere.test"]),
  ];
  const UNKNOWN = "01KB2X7Q9M4F8Z3H";
  const missing = writeConfig(dir, { ...JSON.parse(readFileSync(cfg, "utf8")), spoolDir: join(dir, "no-spool-here") }, "missing.json");
  const check = async (running: boolean, id: string, bounceId: string) => {
    const where = running ? "running" : "stopped";
    const cases: [string[], number][] = [
      [["list"], 0],
      [["list", "--state", "held"], 0],
      [["list", "--state", "dead"], 0],
      [["list", "--state", "stuck"], 2],
      [["list", id], 2],
      [["show", id], 0],
      [["show", UNKNOWN], 1],
      [["show"], 2],
      [["show", id, UNKNOWN], 2],
      [["flush", id], 0],
      [["flush", "--domain", "nowhere.test"], 0],
      [["flush", UNKNOWN], 1],
      [["flush", id, "--domain", "x.test"], 2],
      [["hold", id], 0],
      [["hold", UNKNOWN], 1],
      [["hold"], 2],
      [["flush", id], 1], // held
      [["release", id], 0],
      [["release", id], 1], // not held
      [["release", "bad-id"], 2],
      [["bounce", bounceId], 0],
      [["bounce", UNKNOWN], 1],
      [["bounce", "--all"], 2],
      [["delete", UNKNOWN], 1],
      [["delete", "--all"], 2],
      [["delete"], 2],
      [["delete", "--domain", "elsewhere.test"], 2], // a bulk delete needs --yes
      [["delete", "--domain", "elsewhere.test", "--yes"], 0], // nothing there: not an error
      [["pause", "--domain", "x.test"], 0],
      [["resume", "--domain", "x.test"], 0],
      [["pause", "x.test"], 2],
      [["resume", "--state", "held"], 2],
    ];
    for (const [args, code] of cases) {
      const r = await q(cfg, ...args);
      assert.equal(r.code, code, `${where}: mxd queue ${args.join(" ")}: ${r.stdout}${r.stderr}`);
      if (code === 1) assert.ok(r.stderr.trim(), `${where}: ${args.join(" ")} says why on stderr`);
      if (code === 2) assert.match(r.stderr, /usage: mxd queue|mxd queue \w+: /, `${where}: ${args.join(" ")} prints usage`);
    }
    // With no spool (a wrong spoolDir), reading and changing fail with 1, naming the path.
    for (const args of [["list"], ["flush"], ["pause"], ["hold", id]]) {
      const r = await mxd(["queue", ...args, "--config", missing]);
      assert.equal(r.code, 1, `${where}: ${args.join(" ")} on a missing spool`);
      assert.match(r.stderr, /no spool at .*no-spool-here/);
    }
  };
  await check(true, ids[0]!, ids[1]!);
  assert.equal((await mxd(["status", "--config", cfg])).code, 0);
  assert.equal((await mxd(["status", "extra", "--config", cfg])).code, 2);
  // The last case: delete by id, while running.
  assert.equal((await q(cfg, "delete", ids[3]!)).code, 0);
  assert.equal(await d.stop(), 0);
  assert.equal((await mxd(["status", "--config", cfg])).code, 1);
  await check(false, ids[0]!, ids[2]!);
  d = await daemon(cfg);
  assert.equal(await d.stop(), 0);
});
