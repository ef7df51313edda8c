// Delivery in its own thread (delivery.thread): the real delivery-thread.js in a worker_threads
// Worker, the real JournalSpool and QueueManager, smtp-server as the remote MX. Bodies of every
// kind (inline and read whole, inline as a file range, a body file) arrive byte for byte with
// their DKIM fields first; the thread's log lines reach the daemon's log; a thread ended under
// a delivery leaves a transient local error, and the retry (in a new thread) delivers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { systemClock } from "../../src/io/clock.js";
import { createLogger, lineWriter } from "../../src/io/log.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { QueueManager } from "../../src/queue/worker.js";
import { createCourier } from "../../src/delivery/factory.js";
import { spawnDeliveryThread, ThreadCourier, type ThreadHandle } from "../../src/delivery/thread-courier.js";
import { newMessage, newRecipient } from "../../src/core/envelope.js";
import { startMxSink } from "../helpers/mx-sink.js";
import { eventually } from "../helpers/wait.js";

const MX = "127.0.9.10";

function body(size: number, tag: string): Buffer {
  const line = `${tag} ${"x".repeat(70)}\r\n`;
  return Buffer.from(`Subject: ${tag}\r\n\r\n${line.repeat(Math.ceil(size / line.length))}`);
}

async function setup(t: import("node:test").TestContext, sinkOpts: { greetingDelayMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "mxd-thread-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sink = await startMxSink({ host: MX, ...sinkOpts });
  t.after(() => sink.close());
  const config = parseConfig({
    hostname: "mxd.test",
    spoolDir: dir,
    routes: { "thread.test": [`${MX}:25`] },
    delivery: { retry: { minDelay: "1s", maxDelay: "1s", jitter: 0 } },
  });
  const lines: string[] = [];
  const logger = createLogger("info", { write: (l: string) => void lines.push(l) });
  const spool = new JournalSpool({ dir, now: () => Date.now(), noSync: true, minFree: 0 });
  await spool.init();
  const threads: ThreadHandle[] = [];
  const thread = new ThreadCourier({
    config,
    logger,
    writeLog: lineWriter(logger),
    spawn: (start) => {
      const h = spawnDeliveryThread(start);
      threads.push(h);
      return h;
    },
  });
  const courier = createCourier({ config, logger, clock: systemClock, remote: thread });
  const qm = new QueueManager({ config, spool, courier, clock: systemClock, logger });
  t.after(async () => {
    await qm.stop(2000);
    await courier.close();
    await spool.close();
  });
  return { spool, qm, sink, lines, threads };
}

test("bytes, a file range and a body file are delivered from the thread byte for byte, DKIM fields first", async (t) => {
  const { spool, qm, sink, lines } = await setup(t);
  const dkim = "DKIM-Signature: v=1; a=rsa-sha256; d=origin.test; s=t; b=AAAA\r\n";
  const cases = [
    { tag: "small", size: 2_000, dkim: true }, // ≤ 64 KB: read on the main thread, bytes transferred
    { tag: "range", size: 100_000, dkim: false }, // inline, > 64 KB: a range of the segment
    { tag: "file", size: 400_000, dkim: true }, // > inlineMax (256 KB): bodies/<ID>.eml
  ];
  const want = new Map<string, string>();
  for (const c of cases) {
    const b = body(c.size, c.tag);
    const meta = newMessage({ sender: "a@origin.test", recipients: [newRecipient(`${c.tag}@thread.test`)], nowMs: Date.now(), client: { ip: "127.0.0.1" } });
    if (c.dkim) meta.dkim = [dkim];
    await spool.put(meta, b);
    want.set(`${c.tag}@thread.test`, createHash("sha256").update(c.dkim ? Buffer.concat([Buffer.from(dkim), b]) : b).digest("hex"));
  }
  await qm.start();
  await sink.waitForMessages(3, 20_000);
  for (const m of sink.messages) assert.equal(m.sha256, want.get(m.to[0]!), `bytes of ${m.to[0]}`);
  assert.ok(await eventually(() => qm.size === 0, 10_000), "all three removed from the queue");
  const attempts = lines.map((l) => JSON.parse(l) as { msg: string; qid?: string; domain?: string }).filter((l) => l.msg === "delivery attempt");
  assert.equal(attempts.length, 3, "the thread's per-attempt lines are in the daemon's log");
  assert.ok(attempts.every((l) => l.qid && l.domain === "thread.test"), "with the queue id");
  // The thread's attempt line comes before the daemon's verdict on it, as on one thread.
  const parsed = lines.map((l) => JSON.parse(l) as { msg: string; qid?: string });
  for (const a of attempts) {
    const at = parsed.findIndex((l) => l.msg === "delivery attempt" && l.qid === a.qid);
    const verdict = parsed.findIndex((l) => l.msg === "delivered" && l.qid === a.qid);
    assert.ok(verdict >= 0 && at < verdict, `"delivery attempt" (line ${at}) before "delivered" (line ${verdict}) for ${a.qid}`);
  }
});

test("a thread ended under a delivery: transient local error, retried in a new thread and delivered", async (t) => {
  const { spool, qm, sink, threads } = await setup(t, { greetingDelayMs: 800 });
  const meta = await spool.put(newMessage({ sender: "a@origin.test", recipients: [newRecipient("r@thread.test")], nowMs: Date.now(), client: { ip: "127.0.0.1" } }), body(1000, "crash"));
  await qm.start();
  assert.ok(await eventually(() => sink.connections.length === 1, 10_000), "the first attempt connected");
  await threads[0]!.terminate();
  assert.ok(
    await eventually(async () => (await spool.load(meta.id).catch(() => undefined))?.recipients[0]!.attempts === 1, 10_000),
    "the failed attempt is recorded",
  );
  const r = (await spool.load(meta.id)).recipients[0]!;
  assert.equal(r.status, "pending");
  assert.match(r.history[0]!.reply, /^451 4\.3\.0 local error in delivery: MXD_DELIVERY_THREAD: the delivery thread exited/);
  await sink.waitForMessages(1, 15_000);
  assert.equal(threads.length, 2, "the retry ran in a new thread");
  assert.ok(await eventually(() => qm.size === 0, 10_000));
});
