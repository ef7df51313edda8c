// Paused destinations and the queue lifetime, in virtual time (FakeClock drives the real
// QueueManager, Scheduler and JournalSpool): a message whose destination is paused neither spends
// attempts nor expires while it waits (docs/operations.md, "Pause delivery"); it is attempted
// as soon as the destination is resumed, even past delivery.maxQueueTime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { FakeClock } from "../../src/io/clock.js";
import { silentLogger } from "../../src/io/log.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { QueueManager } from "../../src/queue/worker.js";
import type { Courier, DeliveryRequest, RecipientResult } from "../../src/delivery/courier.js";
import { newMessage, newRecipient } from "../../src/core/envelope.js";

const MIN = 60_000;
const HOUR = 60 * MIN;

type Outcome = RecipientResult["outcome"];

async function setup(t: { after: (fn: () => unknown) => void }, answer: (req: DeliveryRequest) => Outcome) {
  const dir = mkdtempSync(join(tmpdir(), "mxd-pause-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 10, 25, 12, 0, 0));
  const config = parseConfig({ hostname: "mxd.test", spoolDir: dir, delivery: { retry: { minDelay: "5m", maxDelay: "1h", jitter: 0 }, maxQueueTime: "6h" } });
  const spool = new JournalSpool({ dir, now: () => clock.now(), noSync: true, minFree: 0 });
  await spool.init();
  const calls: { at: number; domain: string; rcpts: string[] }[] = [];
  const courier: Courier = {
    async deliver(req) {
      for await (const _ of req.openBody()) void _;
      calls.push({ at: clock.now(), domain: req.domain, rcpts: req.recipients.map((r) => r.address) });
      const outcome = answer(req);
      return req.recipients.map((r) => ({
        recipient: r.address,
        outcome,
        reply: outcome === "delivered" ? "250 2.0.0 ok" : "451 4.7.1 try later",
        status: outcome === "delivered" ? "2.0.0" : "4.7.1",
        remote: true,
      }));
    },
    async close() {},
  };
  const qm = new QueueManager({ config, spool, courier, clock, logger: silentLogger(), random: () => 0.5 });
  t.after(() => qm.stop(1000));
  await qm.start();
  const put = async (rcpts: string[]) => {
    const meta = await spool.put(
      newMessage({ sender: "alice@origin.test", recipients: rcpts.map(newRecipient), nowMs: clock.now(), client: { ip: "127.0.0.1", helo: "client.test" } }),
      Buffer.from("Subject: paused\r\n\r\nhello\r\n"),
    );
    qm.enqueue(meta);
    return meta;
  };
  return { clock, spool, qm, calls, put };
}

async function settle(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 20));
}
const quiet = () => new Promise((r) => setTimeout(r, 50));

test("paused from the start: no attempt and no expiry for days; delivered at once on resume", async (t) => {
  const { clock, spool, qm, calls, put } = await setup(t, () => "delivered");
  await qm.pause("remote.test");
  const t0 = clock.now();
  const m = await put(["bob@remote.test"]);
  await settle(() => qm.counts().parked === 1, "the message to park");
  for (let h = 0; h < 72; h++) clock.advance(HOUR); // 12 x maxQueueTime
  await quiet();
  assert.equal(calls.length, 0, "never attempted while paused");
  const saved = await spool.load(m.id);
  assert.deepEqual([saved.recipients[0]!.status, saved.recipients[0]!.attempts], ["pending", 0], "not expired, no attempt spent");
  await qm.resume("remote.test");
  await settle(() => calls.length === 1, "the attempt on resume");
  assert.equal(calls[0]!.at - t0, 72 * HOUR);
  await settle(() => qm.size === 0, "delivered and removed");
  assert.equal(calls.filter((c) => c.domain === "origin.test").length, 0, "no bounce");
});

test("deferred, then paused past maxQueueTime: the due retry waits; resume attempts it (a success delivers)", async (t) => {
  let ok = false;
  const { clock, spool, qm, calls, put } = await setup(t, () => (ok ? "delivered" : "transient"));
  const m = await put(["bob@remote.test"]);
  await settle(() => calls.length === 1, "the first attempt");
  await settle(async () => (await spool.load(m.id)).recipients[0]!.attempts === 1 && clock.pendingTimers() > 0, "the deferral saved and the retry armed");
  await qm.pause(); // everything
  clock.advance(5 * MIN); // the retry falls due while paused
  await settle(() => qm.counts().parked === 1, "the due retry to park");
  clock.advance(10 * HOUR);
  await quiet();
  assert.equal(calls.length, 1, "no attempt while paused");
  assert.equal((await spool.load(m.id)).recipients[0]!.status, "pending", "not expired while paused");
  ok = true;
  await qm.resume();
  await settle(() => qm.size === 0, "delivered on resume");
  assert.equal(calls.length, 2);
  assert.equal(calls.filter((c) => c.domain === "origin.test").length, 0, "no bounce");
});

test("past maxQueueTime, resumed, and the attempt fails temporarily: it bounces then (4.4.7), as documented", async (t) => {
  const { clock, qm, calls, put } = await setup(t, () => "transient");
  await qm.pause("remote.test");
  await put(["bob@remote.test"]);
  await settle(() => qm.counts().parked === 1, "parked");
  clock.advance(7 * HOUR);
  await qm.resume("remote.test");
  await settle(() => calls.some((c) => c.domain === "origin.test"), "the expiry bounce after the one attempt");
  assert.deepEqual(calls.map((c) => c.domain), ["remote.test", "origin.test"]);
});

test("one destination paused, the other failing: the failing one expires on time, the paused one waits", async (t) => {
  const { clock, spool, qm, calls, put } = await setup(t, (req) => (req.domain === "remote.test" ? "transient" : "delivered"));
  await qm.pause("held.test");
  const m = await put(["bob@remote.test", "carol@held.test"]);
  await settle(() => calls.length === 1, "first attempt to remote.test");
  // Step through the whole retry schedule to expiry (6 h), moving time only once the next
  // attempt is armed (bounded: under load an attempt may still be running).
  for (let i = 0; i < 40 && !calls.some((c) => c.domain === "origin.test"); i++) {
    await settle(() => clock.pendingTimers() > 0 || calls.some((c) => c.domain === "origin.test"), "the next retry armed");
    clock.advance(HOUR);
    await quiet();
  }
  await settle(() => calls.some((c) => c.domain === "origin.test"), "the bounce for bob");
  await settle(async () => (await spool.load(m.id)).recipients[0]!.status === "failed", "bob failed");
  const saved = await spool.load(m.id);
  assert.equal(saved.recipients[0]!.history.at(-1)!.status, "4.4.7");
  assert.deepEqual([saved.recipients[1]!.status, saved.recipients[1]!.attempts], ["pending", 0], "carol waits, unexpired");
  assert.ok(calls.every((c) => c.domain !== "held.test"));
  clock.advance(48 * HOUR);
  await quiet();
  const resumedAt = clock.now();
  await qm.resume("held.test");
  await settle(() => calls.some((c) => c.domain === "held.test"), "carol attempted on resume");
  assert.equal(calls.find((c) => c.domain === "held.test")!.at, resumedAt, "at once");
  await settle(() => qm.size === 0, "done");
});
