// The retry schedule in virtual time: the real QueueManager, Scheduler and JournalSpool driven by a
// FakeClock and a scripted courier. Checks every attempt time of a message that keeps failing
// with 4xx (exponential backoff from minDelay, capped at maxDelay, the last attempt exactly at
// expiry), then the expiry bounce, and that a later success stops the schedule.
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
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";

const MIN = 60_000;

interface Call {
  at: number;
  req: DeliveryRequest;
  body: string;
}

function scriptedCourier(clock: FakeClock, answer: (req: DeliveryRequest, n: number) => RecipientResult["outcome"]): Courier & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    async deliver(req) {
      const chunks: Buffer[] = [];
      for await (const c of req.openBody()) chunks.push(c as Buffer);
      const n = calls.filter((c) => c.req.domain === req.domain).length;
      calls.push({ at: clock.now(), req, body: Buffer.concat(chunks).toString() });
      const outcome = answer(req, n);
      return req.recipients.map((r) => ({
        recipient: r.address,
        outcome,
        reply: outcome === "delivered" ? "250 2.0.0 ok" : outcome === "transient" ? "451 4.7.1 greylisted, try later" : "550 5.1.1 no such user",
        status: outcome === "delivered" ? "2.0.0" : outcome === "transient" ? "4.7.1" : "5.1.1",
        remote: true,
        mx: "mx.remote.test",
        ip: "192.0.2.1",
      }));
    },
    async close() {},
  };
}

/** Let the worker's real I/O (spool files) settle until `cond` holds; bounded in real time. */
async function settle(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * After attempt n: the result is on disk and the next attempt is scheduled (a timer armed on
 * the fake clock). Only then may the test move virtual time, or the timer would be armed
 * after the jump and wait for the next one.
 */
function rescheduled(clock: FakeClock, spool: JournalSpool, id: string, n: number): () => Promise<boolean> {
  return async () => {
    if (clock.pendingTimers() < 1) return false;
    const m = await spool.load(id).catch(() => undefined);
    return !!m && m.recipients[0]!.attempts === n;
  };
}

async function setup(t: { after: (fn: () => unknown) => void }, answer: (req: DeliveryRequest, n: number) => RecipientResult["outcome"], delivery: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "mxd-vt-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 10, 25, 12, 0, 0));
  const config = parseConfig({
    hostname: "mxd.test",
    spoolDir: dir,
    delivery: { retry: { minDelay: "5m", maxDelay: "1h", jitter: 0 }, maxQueueTime: "6h", ...delivery },
  });
  const spool = new JournalSpool({ dir, now: () => clock.now(), noSync: true, minFree: 0 });
  await spool.init();
  const courier = scriptedCourier(clock, answer);
  const qm = new QueueManager({ config, spool, courier, clock, logger: silentLogger(), random: () => 0.5 });
  t.after(() => qm.stop(1000));
  const meta: MessageMeta = await spool.put(
    newMessage({ sender: "alice@origin.test", recipients: [newRecipient("bob@remote.test")], nowMs: clock.now(), client: { ip: "127.0.0.1", helo: "client.test" } }),
    Buffer.from("Subject: virtual time\r\nMessage-ID: <vt@origin.test>\r\n\r\nhello\r\n"),
  );
  return { clock, spool, courier, qm, meta, dir };
}

test("4xx forever: attempts back off 5m, 10m, 20m, 40m, then 1h, the last one at expiry; then one bounce", async (t) => {
  const { clock, courier, qm, spool, meta } = await setup(t, (req) => (req.domain === "remote.test" ? "transient" : "delivered"));
  const t0 = clock.now();
  await qm.start();
  const remote = () => courier.calls.filter((c) => c.req.domain === "remote.test");
  await settle(() => remote().length === 1, "the first attempt at once");
  await settle(rescheduled(clock, spool, meta.id, 1), "attempt 1 recorded and rescheduled");
  const expected = [0, 5, 15, 35, 75, 135, 195, 255, 315, 360]; // minutes after arrival
  for (let i = 1; i < expected.length; i++) {
    // One millisecond early: nothing happens.
    clock.advance(t0 + expected[i]! * MIN - 1 - clock.now());
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(remote().length, i, `no attempt before minute ${expected[i]}`);
    clock.advance(1);
    await settle(() => remote().length === i + 1, `attempt ${i + 1} at minute ${expected[i]}`);
    if (i < expected.length - 1) {
      await settle(rescheduled(clock, spool, meta.id, i + 1), `attempt ${i + 1} recorded and rescheduled`);
      const m = await spool.load(meta.id);
      assert.equal(m.recipients[0]!.attempts, i + 1);
      assert.equal(m.recipients[0]!.history.length, i + 1);
      assert.equal(m.recipients[0]!.history[i]!.reply, "451 4.7.1 greylisted, try later");
    }
  }
  assert.deepEqual(remote().map((c) => (c.at - t0) / MIN), expected);
  // Expired at the attempt at minute 360: a bounce to the sender is queued and sent at once.
  await settle(() => courier.calls.some((c) => c.req.domain === "origin.test"), "the bounce");
  const bounce = courier.calls.find((c) => c.req.domain === "origin.test")!;
  assert.equal(bounce.req.sender, "");
  assert.deepEqual(bounce.req.recipients.map((r) => r.address), ["alice@origin.test"]);
  assert.match(bounce.body, /Status: 4\.4\.7/);
  assert.match(bounce.body, /Diagnostic-Code: smtp; ?451 4\.7\.1 greylisted, try later/);
  await settle(() => qm.size === 0, "an empty queue");
  // Nothing else is ever attempted.
  clock.advance(24 * 60 * MIN);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(remote().length, expected.length);
  assert.equal(courier.calls.filter((c) => c.req.domain === "origin.test").length, 1);
});

test("4xx twice, then delivered: three attempts, no bounce, spool emptied", async (t) => {
  const { clock, courier, qm, spool, meta } = await setup(t, (_req, n) => (n < 2 ? "transient" : "delivered"));
  const t0 = clock.now();
  await qm.start();
  await settle(() => courier.calls.length === 1, "first attempt");
  await settle(rescheduled(clock, spool, meta.id, 1), "attempt 1 recorded and rescheduled");
  clock.advance(5 * MIN);
  await settle(() => courier.calls.length === 2, "second attempt");
  await settle(rescheduled(clock, spool, meta.id, 2), "attempt 2 recorded and rescheduled");
  clock.advance(10 * MIN);
  await settle(() => courier.calls.length === 3, "third attempt");
  assert.deepEqual(courier.calls.map((c) => (c.at - t0) / MIN), [0, 5, 15]);
  await settle(() => qm.size === 0, "an empty queue");
  await assert.rejects(spool.load(meta.id), /no such message/);
  clock.advance(48 * 60 * MIN);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(courier.calls.length, 3);
});

test("a dead destination with a large backlog never stalls delivery to another domain", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-vt-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 10, 25, 12, 0, 0));
  const config = parseConfig({ hostname: "mxd.test", spoolDir: dir, delivery: { concurrency: 10, perDomainConcurrency: 2 } });
  const spool = new JournalSpool({ dir, now: () => clock.now(), noSync: true, minFree: 0 });
  await spool.init();
  // slow.test hangs (a blackholed MX) until released; every other domain answers at once.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let slowInFlight = 0;
  let slowMaxInFlight = 0;
  const delivered: string[] = [];
  const courier: Courier = {
    async deliver(req) {
      if (req.domain === "slow.test") {
        slowInFlight++;
        slowMaxInFlight = Math.max(slowMaxInFlight, slowInFlight);
        await released;
        slowInFlight--;
      } else delivered.push(req.domain);
      return req.recipients.map((r) => ({ recipient: r.address, outcome: "delivered" as const, reply: "250 ok", status: "2.0.0", remote: true }));
    },
    async close() {},
  };
  // Few slots in all, so that the old behaviour (one global cap) would be starved by slow.test.
  const qm = new QueueManager({ config, spool, courier, clock, logger: silentLogger(), maxActive: 20 });
  t.after(async () => {
    release();
    await qm.stop(2000);
  });
  await qm.start();
  const put = async (domain: string) => {
    const m = await spool.put(
      newMessage({ sender: "a@origin.test", recipients: [newRecipient(`x@${domain}`)], nowMs: clock.now(), client: { ip: "127.0.0.1" } }),
      Buffer.from("Subject: x\r\n\r\nx\r\n"),
    );
    qm.enqueue(m);
  };
  for (let i = 0; i < 60; i++) await put("slow.test");
  await settle(() => slowInFlight === 2, "two deliveries to slow.test in flight");
  await put("fast.test");
  await settle(() => delivered.includes("fast.test"), "fast.test delivered while slow.test hangs");
  assert.equal(slowMaxInFlight, 2, "per-domain concurrency respected");
  release();
  await settle(() => qm.size === 0, "the slow backlog drained once released");
});

test("delayWarningAfter: one 'delayed' DSN at the first attempt past it, then the final bounce", async (t) => {
  const { clock, courier, qm, spool, meta } = await setup(t, (req) => (req.domain === "remote.test" ? "transient" : "delivered"), { delayWarningAfter: "30m" });
  const t0 = clock.now();
  await qm.start();
  const remote = () => courier.calls.filter((c) => c.req.domain === "remote.test");
  const dsns = () => courier.calls.filter((c) => c.req.domain === "origin.test");
  await settle(() => remote().length === 1, "first attempt");
  await settle(rescheduled(clock, spool, meta.id, 1), "attempt 1 recorded");
  for (const [minute, n] of [[5, 2], [15, 3]] as const) {
    clock.advance(t0 + minute * MIN - clock.now());
    await settle(() => remote().length === n, `attempt ${n}`);
    await settle(rescheduled(clock, spool, meta.id, n), `attempt ${n} recorded`);
  }
  assert.equal(dsns().length, 0, "no warning before 30 minutes");
  clock.advance(t0 + 35 * MIN - clock.now());
  await settle(() => remote().length === 4 && dsns().length === 1, "attempt 4 (minute 35) and the delay warning");
  const warn = dsns()[0]!;
  assert.equal(warn.req.sender, "");
  assert.match(warn.body, /Action: delayed/);
  assert.match(warn.body, /Will-Retry-Until: /);
  assert.match(warn.body, /Diagnostic-Code: smtp; ?451 4\.7\.1 greylisted, try later/);
  await settle(rescheduled(clock, spool, meta.id, 4), "attempt 4 recorded");
  assert.equal((await spool.load(meta.id)).delayWarned, true);
  // Only one warning, and the final bounce at expiry.
  clock.advance(t0 + 360 * MIN - clock.now());
  for (let i = 0; i < 20 && !dsns().some((c) => /Action: failed/.test(c.body)); i++) {
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(0);
  }
  await settle(() => dsns().some((c) => /Action: failed/.test(c.body)), "the final bounce");
  assert.equal(dsns().filter((c) => /Action: delayed/.test(c.body)).length, 1);
});
