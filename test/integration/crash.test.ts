// Crash safety of the mxd daemon (a child process): under steady load it is SIGKILLed at random
// moments and restarted, while the destination is sometimes down (or answers 4xx half the
// time); then it drains. Every message that got a 250 must reach the sink or produce a bounce;
// none may be missing; duplicates (deliveries interrupted by a kill) are counted and reported.
// The spool must never hold an unreadable entry. Then: a full disk (a small tmpfs) answers
// 451 4.3.0, loses nothing already accepted, and recovers when space returns.
//
// MXD_STRESS=1: 2,000 messages and 10 kills per scenario (npm test: a few hundred, 4 kills).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { sleep, startMxd, stopAllPeers, tempDir, waitFor, type MxdPeer } from "../helpers/peers.js";
import { startMxSink, type MxSink, type SinkOptions } from "../helpers/mx-sink.js";
import { Wire, sendMessage } from "../interop/wire.js";
import { queuedIdsSync, spoolSnapshot } from "../helpers/spool-snapshot.js";
import { MXD_CLI } from "../helpers/paths.js";

const STRESS = !!process.env.MXD_STRESS;
const MESSAGES = STRESS ? 2000 : 300;
const KILLS = STRESS ? 10 : 4;
const HOST = "127.0.0.208";
const PORT = 2528;
const SINK = "127.0.0.210";
const BOUNCE_SINK = "127.0.0.211";
const cleanups: (() => Promise<void> | void)[] = [];

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await stopAllPeers();
});

function config(spoolDir: string, extra: Record<string, unknown> = {}) {
  return {
    hostname: "mxd.test",
    listen: [{ host: HOST, port: PORT }],
    spoolDir,
    routes: { "crash.test": [`${SINK}:25`], "sender.test": [`${BOUNCE_SINK}:25`] },
    limits: { connectionsPerClient: 50 },
    delivery: { concurrency: 10, perDomainConcurrency: 10, retry: { minDelay: "200ms", maxDelay: "1s", jitter: 0 }, timeouts: { connect: "1s", greeting: "3s", data: "3s", dataEnd: "3s" } },
    shutdownTimeout: "2s",
    log: { level: "info" },
    ...extra,
  };
}

/** The queue id mxd put in its Received header ("... (mxd) with ESMTP id <QID>"). */
function qidOf(raw: Buffer): string | undefined {
  return /\(mxd\) with \w+ id ([0-9A-Z]{16})/.exec(raw.subarray(0, 400).toString("latin1"))?.[1];
}

/** Every current state in the journal must parse (a crash mid-append must not leave garbage). */
function assertSpoolReadable(spoolDir: string): void {
  assert.doesNotThrow(() => spoolSnapshot(spoolDir), "the journal's current states are readable JSON");
}

interface Scenario {
  name: string;
  sink: SinkOptions;
  /** Take the sink down and up again during the load. */
  flapSink: boolean;
}

async function crashScenario(s: Scenario): Promise<void> {
  const base = tempDir("mxd-crash-");
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  const spoolDir = join(base, "spool");
  let sink: MxSink | undefined = await startMxSink(s.sink);
  const bounces = await startMxSink({ host: BOUNCE_SINK });
  try {
    await runScenario(s, spoolDir, () => sink, (x) => (sink = x), bounces);
  } finally {
    await sink?.close();
    await bounces.close();
  }
}

async function runScenario(s: Scenario, spoolDir: string, getSink: () => MxSink | undefined, setSink: (x: MxSink | undefined) => void, bounces: MxSink): Promise<void> {
  let sink = getSink();
  const put = (x: MxSink | undefined) => {
    sink = x;
    setSink(x);
  };
  const delivered: MxSink["messages"] = [];
  const collect = () => {
    if (sink) delivered.push(...sink.messages.splice(0));
  };
  let mxd: MxdPeer = await startMxd(config(spoolDir));
  cleanups.push(() => mxd.stop(3000).then(() => undefined));

  // --- load: tracked submissions (each 250 and its queue id recorded), retried until accepted
  const accepted = new Map<string, number>(); // qid → message number
  const acceptedSeq = new Set<number>();
  let next = 0;
  let refusedOrCut = 0;
  const submitter = async () => {
    for (;;) {
      const n = next++;
      if (n >= MESSAGES) return;
      for (let attempt = 0; ; attempt++) {
        const r = await sendMessage(PORT, HOST, { from: "load@sender.test", to: [`rcpt${n % 7}@crash.test`] }, `Subject: crash ${n}\r\nX-Seq: ${n}-${attempt}\r\n\r\n${"payload line\r\n".repeat(20)}`).catch(() => undefined);
        if (r?.reply.code === 250 && r.id) {
          accepted.set(r.id, n);
          acceptedSeq.add(n);
          await sleep(Math.random() * 40); // steady load, spread over the kills
          break;
        }
        refusedOrCut++;
        await sleep(50 + Math.random() * 150);
        assert.ok(attempt < 400, `message ${n} never accepted`);
      }
    }
  };
  const load = Promise.all(Array.from({ length: 8 }, submitter));

  // --- chaos: SIGKILL at random moments, restart; flap the sink
  let kills = 0;
  let done = false;
  void load.then(() => (done = true));
  const chaos = (async () => {
    while (kills < KILLS) {
      await sleep(100 + Math.random() * 400);
      mxd.kill("SIGKILL");
      await mxd.proc.exited;
      kills++;
      assertSpoolReadable(spoolDir);
      if (s.flapSink && Math.random() < 0.6) {
        collect();
        if (sink) {
          await sink.close();
          put(undefined);
        } else {
          put(await startMxSink(s.sink));
        }
      }
      mxd = await startMxd(config(spoolDir));
    }
  })();
  await chaos;
  await load;
  assert.ok(done);

  // --- drain: destination up, wait for an empty queue
  collect();
  if (!sink) put(await startMxSink(s.sink));
  const queueEmpty = () => queuedIdsSync(spoolDir).length === 0;
  await waitFor(queueEmpty, STRESS ? 240_000 : 60_000, "the queue to drain");
  collect();

  // --- account
  const deliveries = new Map<string, number>();
  for (const m of delivered) {
    const q = qidOf(m.raw ?? Buffer.alloc(0));
    if (q) deliveries.set(q, (deliveries.get(q) ?? 0) + 1);
  }
  const bounced = new Set<string>();
  for (const b of bounces.messages) for (const q of accepted.keys()) if (b.raw?.toString("latin1").includes(q)) bounced.add(q);
  const missing = [...accepted.keys()].filter((q) => !deliveries.has(q) && !bounced.has(q));
  const duplicates = [...deliveries.values()].reduce((a, c) => a + (c - 1), 0);
  const unknown = [...deliveries.keys()].filter((q) => !accepted.has(q)).length;
  const dead = existsSync(join(spoolDir, "dead")) ? readdirSync(join(spoolDir, "dead")) : [];
  console.log(
    `# ${s.name}: ${MESSAGES} messages, ${accepted.size} acknowledged (${refusedOrCut} attempts refused or cut by a kill), ${kills} SIGKILLs, ` +
      `${delivered.length} deliveries: ${deliveries.size} distinct, ${duplicates} duplicates, ${unknown} never acknowledged (250 lost in a kill), ${bounced.size} bounced, ${missing.length} missing, dead/: ${dead.length}`,
  );
  assert.equal(acceptedSeq.size, MESSAGES, "every message was eventually acknowledged");
  assert.deepEqual(missing, [], "every acknowledged message was delivered or bounced");
  // A duplicate needs a delivery in flight at the moment of a kill: bounded by kills × concurrency.
  assert.ok(duplicates <= kills * 10, `duplicates (${duplicates}) only from deliveries interrupted by the ${kills} kills`);
  assert.deepEqual(dead, [], "no unreadable entry was moved to dead/");
  assert.deepEqual(readdirSync(join(spoolDir, "bodies")), [], "bodies/ is clean after restart and drain");
  await mxd.stop(5000);
}

test(`crash: ${MESSAGES} messages, ${KILLS}× SIGKILL + restart, destination sometimes down`, { timeout: STRESS ? 600_000 : 150_000 }, async () => {
  await crashScenario({ name: "destination flapping", sink: { host: SINK }, flapSink: true });
});

test(`crash: ${MESSAGES} messages, ${KILLS}× SIGKILL + restart, destination answers 4xx half the time`, { timeout: STRESS ? 600_000 : 150_000 }, async () => {
  await crashScenario({
    name: "destination 4xx 50%",
    sink: { host: SINK, rcpt: () => (Math.random() < 0.5 ? { code: 451, message: "4.3.0 try again later" } : undefined) },
    flapSink: false,
  });
});

// ---------------------------------------------------------------------------------------------
// Full disk

function canMountTmpfs(): boolean {
  return process.getuid?.() === 0 && existsSync("/bin/mount");
}

test("full disk: 452 4.3.1 at the free-space reserve, 451 4.3.0 at ENOSPC, nothing accepted is lost, recovery when space returns", { skip: canMountTmpfs() ? false : "needs root to mount a small tmpfs" }, async () => {
  const base = tempDir("mxd-disk-");
  const mnt = join(base, "mnt");
  mkdirSync(mnt);
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], { encoding: "utf8", timeout: 10_000 });
  if (m.status !== 0) {
    rmSync(base, { recursive: true, force: true });
    assert.fail(`cannot mount tmpfs: ${m.stderr}`);
  }
  cleanups.push(() => {
    spawnSync("umount", ["-l", mnt], { timeout: 10_000 });
    rmSync(base, { recursive: true, force: true });
  });
  const spoolDir = join(mnt, "spool");
  // Something else on the same file system takes 1.5 MB; the operator frees it later.
  const ballast = join(mnt, "ballast");
  writeFileSync(ballast, Buffer.alloc(1536 * 1024));
  // Delivery goes nowhere (closed port, retry in an hour): the queue only grows.
  const cfg = (minFree: string | number) => ({
    ...config(spoolDir, { routes: { ".test": ["127.0.0.249:9"] }, delivery: { retry: { minDelay: "1h", maxDelay: "1h" } } }),
    listen: [{ host: "127.0.0.209", port: 0 }],
    spool: { minFree, segmentSize: "16MB" },
  });
  const body = (n: number) => `Subject: fill ${n}\r\n\r\n${("z".repeat(98) + "\r\n").repeat(1000)}`; // ~100 KB
  const accepted: string[] = [];
  const fill = async (port: number): Promise<string> => {
    for (let n = 0; n < 80; n++) {
      const r = await sendMessage(port, "127.0.0.209", { from: "a@sender.test", to: ["b@crash.test"] }, body(n));
      if (r.reply.code === 250) accepted.push(r.id!);
      else return r.reply.text;
      // The reserve is checked at most once a second.
      await new Promise((ok) => setTimeout(ok, 50));
    }
    return "";
  };
  // 1. With a 1 MB reserve: refused with 452 4.3.1 while state changes still have room.
  let d = await startMxd(cfg("1MB"));
  cleanups.push(() => d.stop(3000).then(() => undefined));
  const reserve = await fill(d.port);
  assert.match(reserve, /^452 4\.3\.1/, `the reserve answers 452 4.3.1: ${reserve}`);
  // Still serving: a session works, not a crash.
  const w = await Wire.connect(d.port, "127.0.0.209");
  assert.equal((await w.reply()).code, 220);
  assert.equal((await w.cmd("EHLO still.here")).code, 250);
  assert.equal((await w.cmd("NOOP")).code, 250);
  w.destroy();
  assert.ok(d.proc.proc.exitCode === null, "mxd is alive");
  // An operator action needs a state record: it fits in the reserve.
  const held = spawnSync(process.execPath, [MXD_CLI, "queue", "hold", accepted[0]!, "--config", d.configFile], { encoding: "utf8", timeout: 15_000 });
  assert.equal(held.status, 0, held.stderr);
  await d.stop(3000);
  // 2. No reserve: the disk really fills; the failed batch is answered 451 4.3.0 and never queued.
  d = await startMxd(cfg(0));
  const enospc = await fill(d.port);
  assert.match(enospc, /^451 4\.3\.0/, `ENOSPC answers 451 4.3.0: ${enospc}`);
  // Nothing acknowledged is lost or damaged.
  const snap = spoolSnapshot(spoolDir);
  for (const id of accepted) {
    const e = snap.get(id);
    assert.ok(e, `${id} still queued`);
    assert.equal(e.meta.size, e.eml.length, `${id} intact`);
  }
  assert.equal(snap.size, accepted.length, "nothing queued that was not acknowledged");
  assert.equal(snap.get(accepted[0]!)?.meta.held, true, "the hold made in the reserve is kept");
  // Space returns: the other data goes away.
  rmSync(ballast);
  const r = await sendMessage(d.port, "127.0.0.209", { from: "a@sender.test", to: ["b@crash.test"] }, "Subject: after\r\n\r\nspace is back\r\n");
  assert.equal(r.reply.code, 250, `recovers when space returns: ${r.reply.text}`);
  await d.stop(3000);
  writeFileSync(join(base, "done"), "");
});
