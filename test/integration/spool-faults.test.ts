// Faults of the spool and the worker found by a hostile review (issue 9), each reproduced
// against the real QueueManager and JournalSpool:
// - a bounce owed for a failed recipient survives a SIGKILL while another domain of the same
//   message is still being delivered (the failure and the owed DSN are one record);
// - when results cannot be recorded (disk full), a recipient already delivered is never sent
//   to again; the results are recorded once space returns.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, readdirSync, openSync, writeSync, closeSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { FakeClock } from "../../src/io/clock.js";
import { silentLogger } from "../../src/io/log.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { QueueManager } from "../../src/queue/worker.js";
import type { Courier, DeliveryRequest, RecipientResult } from "../../src/delivery/courier.js";
import { newMessage, newRecipient } from "../../src/core/envelope.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { startDaemonProcess, writeConfig, until, type DaemonProcess } from "../helpers/daemon-process.js";
import { sendMessage } from "../interop/wire.js";
import { spoolSnapshot } from "../helpers/spool-snapshot.js";

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test("owed bounce: SIGKILL while another domain is in flight; after the restart the sender gets the bounce", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-owed-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const sinks: MxSink[] = [];
  const sink = async (o: Parameters<typeof startMxSink>[0]) => {
    const s = await startMxSink(o);
    sinks.push(s);
    cleanups.push(() => s.close());
    return s;
  };
  await sink({ host: "127.0.0.131", rcpt: () => ({ code: 550, message: "5.1.1 no such user" }) });
  let slow = await sink({ host: "127.0.0.132", dataDelayMs: 60_000 });
  const bounces = await sink({ host: "127.0.0.133" });
  const cfg = writeConfig(dir, {
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.130", port: 0 }],
    spoolDir: join(dir, "spool"),
    admin: { listen: null },
    routes: { "bad.test": ["127.0.0.131:25"], "slow.test": ["127.0.0.132:25"], "sender.test": ["127.0.0.133:25"] },
    delivery: { retry: { minDelay: "1s", maxDelay: "1s", jitter: 0 }, timeouts: { dataEnd: "2m" } },
    log: { level: "info" },
  });
  let d: DaemonProcess = await startDaemonProcess(cfg);
  cleanups.push(() => d.stop());
  const r = await sendMessage(d.smtpPort, "127.0.0.130", { from: "alice@sender.test", to: ["r1@bad.test", "u1@slow.test"] }, "Subject: two domains\r\n\r\nbody\r\n");
  assert.equal(r.reply.code, 250, r.reply.text);
  // bad.test has answered 550 and its result is recorded; slow.test is stuck after the dot.
  await until(() => spoolSnapshot(join(dir, "spool")).get(r.id!)?.meta.recipients.find((x) => x.address === "r1@bad.test")?.status === "failed", 10_000, "r1's failure recorded");
  d.child.kill("SIGKILL");
  await new Promise((ok) => d.child.once("exit", ok));
  assert.equal(bounces.messages.length, 0, "no bounce before the kill");
  // slow.test recovers; mxd restarts on the same spool.
  await slow.close();
  slow = await sink({ host: "127.0.0.132" });
  d = await startDaemonProcess(cfg);
  await bounces.waitForMessages(1, 15_000);
  const raw = bounces.messages[0]!.raw!.toString("latin1");
  assert.equal(bounces.messages[0]!.from, "");
  assert.match(raw, /Final-Recipient: rfc822; ?r1@bad\.test/i);
  await slow.waitForMessages(1, 15_000);
  await new Promise((ok) => setTimeout(ok, 1500));
  assert.equal(bounces.messages.length, 1, "exactly one bounce");
  await d.stop();
});

test("disk full: results that cannot be recorded are kept; a delivered recipient is never sent to again", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-enospc-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 11, 1, 12, 0, 0));
  let full = false;
  const spool = new JournalSpool({
    dir,
    now: () => clock.now(),
    noSync: true,
    minFree: 0,
    faultHook: () => {
      if (full) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    },
  });
  await spool.init();
  const calls: string[] = [];
  const courier: Courier = {
    async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
      for await (const c of req.openBody()) void c;
      calls.push(req.domain);
      const ok = req.domain === "ok.test";
      if (ok) full = true; // the disk fills up while this delivery is in progress
      return req.recipients.map((x) => ({ recipient: x.address, outcome: ok ? "delivered" : "transient", reply: ok ? "250 2.0.0 ok" : "451 4.7.1 later", status: ok ? "2.0.0" : "4.7.1", remote: true }));
    },
    async close() {},
  };
  const config = parseConfig({ hostname: "mxd.test", spoolDir: dir, delivery: { perDomainConcurrency: 1, concurrency: 1, retry: { minDelay: "2s", maxDelay: "2s", jitter: 0 } } });
  const qm = new QueueManager({ config, spool, courier, clock, logger: silentLogger(), random: () => 0.5 });
  t.after(() => qm.stop(1000));
  const m = await spool.put(newMessage({ sender: "a@origin.test", recipients: [newRecipient("x@ok.test"), newRecipient("y@later.test")], nowMs: clock.now(), client: { ip: "127.0.0.1" } }), Buffer.from("Subject: s\r\n\r\nb\r\n"));
  await qm.start();
  const settle = async (cond: () => boolean, what: string) => {
    const end = Date.now() + 10_000;
    while (!cond()) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what} (calls: ${calls.join(",")})`);
      await new Promise((ok) => setTimeout(ok, 5));
    }
  };
  await settle(() => calls.length === 2 && clock.pendingTimers() > 0, "the first attempt");
  // Ten retry periods on a full disk: nothing is sent again.
  for (let i = 0; i < 10; i++) {
    clock.advance(2_000);
    await new Promise((ok) => setTimeout(ok, 20));
  }
  assert.deepEqual(calls.filter((c) => c === "ok.test"), ["ok.test"], "the delivered recipient got one copy");
  // Space returns: the results are recorded and only the pending recipient is tried.
  full = false;
  await settle(() => {
    clock.advance(2_000);
    return calls.filter((c) => c === "later.test").length >= 2;
  }, "a retry of later.test");
  assert.deepEqual(calls.filter((c) => c === "ok.test"), ["ok.test"]);
  const saved = await spool.load(m.id);
  assert.equal(saved.recipients.find((x) => x.address === "x@ok.test")!.status, "delivered");
});

test("a full spool disk: mxd still starts (the stale lock is overwritten in place), refuses mail with 4xx, leaves no temporary file", { skip: process.getuid?.() === 0 ? false : "needs root to mount a small tmpfs" }, async () => {
  const base = mkdtempSync(join(tmpdir(), "mxd-fullstart-"));
  const mnt = join(base, "mnt");
  mkdirSync(mnt);
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], { encoding: "utf8", timeout: 10_000 });
  assert.equal(m.status, 0, `cannot mount tmpfs: ${m.stderr}`);
  cleanups.push(() => {
    spawnSync("umount", ["-l", mnt], { timeout: 10_000 });
    rmSync(base, { recursive: true, force: true });
  });
  const spoolDir = join(mnt, "spool");
  mkdirSync(spoolDir);
  writeFileSync(join(spoolDir, "mxd.pid"), "999999\n"); // left by a daemon that crashed
  // Fill the file system to the last byte.
  const fd = openSync(join(mnt, "ballast"), "w");
  try {
    for (;;) writeSync(fd, Buffer.alloc(4096));
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, "ENOSPC");
  } finally {
    closeSync(fd);
  }
  const cfg = writeConfig(base, { hostname: "mxd.test", listen: [{ host: "127.0.0.134", port: 0 }], spoolDir, admin: { listen: null }, spool: { minFree: 0 }, log: { level: "info" } });
  const d = await startDaemonProcess(cfg);
  cleanups.push(() => d.stop());
  assert.equal(Number(readFileSync(join(spoolDir, "mxd.pid"), "utf8").trim()), d.child.pid);
  const r = await sendMessage(d.smtpPort, "127.0.0.134", { from: "a@sender.test", to: ["b@x.test"] }, "Subject: full\r\n\r\nno room\r\n");
  assert.match(`${r.reply.code}`, /^4/, `a full disk refuses with 4xx: ${r.reply.text}`);
  assert.deepEqual(readdirSync(spoolDir).filter((f) => f.endsWith(".tmp")), [], "no temporary lock file left");
  assert.equal(await d.stop(), 0);
});
