// Issue 13, bug 2: a delivery agent that throws (here Node's ERR_SOCKET_BAD_PORT, as a bad relay
// port used to cause) leaves a reason on every recipient and a retry time, and is retried on
// the normal schedule. Real QueueManager and JournalSpool, virtual time.
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
import type { Courier } from "../../src/delivery/courier.js";
import { newMessage, newRecipient } from "../../src/core/envelope.js";
import { faultResults } from "../../src/queue/delivery-fault.js";

async function settle(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("faultResults: every recipient transient 4.3.0 with the error code and a bounded, one-line reason", () => {
  const err = Object.assign(new RangeError('options.port should be >= 0 and < 65536. Received type number (99999).\nat x'), { code: "ERR_SOCKET_BAD_PORT" });
  const r = faultResults([{ address: "a@x.test" }, { address: "b@x.test" }], err);
  assert.deepEqual(r.map((x) => [x.recipient, x.outcome, x.status, x.remote]), [["a@x.test", "transient", "4.3.0", false], ["b@x.test", "transient", "4.3.0", false]]);
  assert.match(r[0]!.reply, /^451 4\.3\.0 local error in delivery: ERR_SOCKET_BAD_PORT: options\.port should be .* at x$/);
  assert.ok(faultResults([{ address: "a@x.test" }], new Error("y".repeat(5000)))[0]!.reply.length < 400);
  assert.match(faultResults([{ address: "a@x.test" }], "a string")[0]!.reply, /a string$/);
});

test("a courier that throws: reason on the message, rescheduled at minDelay, retried and delivered", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-fault-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 0, 5, 12, 0, 0));
  const config = parseConfig({ hostname: "mxd.test", spoolDir: dir, delivery: { retry: { minDelay: "5m", maxDelay: "1h", jitter: 0 } } });
  const spool = new JournalSpool({ dir, now: () => clock.now(), noSync: true, minFree: 0 });
  await spool.init();
  const calls: number[] = [];
  const courier: Courier = {
    async deliver(req) {
      calls.push(clock.now());
      if (calls.length === 1) throw Object.assign(new RangeError("options.port should be >= 0 and < 65536. Received type number (99999)."), { code: "ERR_SOCKET_BAD_PORT" });
      return req.recipients.map((r) => ({ recipient: r.address, outcome: "delivered" as const, reply: "250 2.0.0 ok", status: "2.0.0", remote: true }));
    },
    async close() {},
  };
  const qm = new QueueManager({ config, spool, courier, clock, logger: silentLogger(), random: () => 0.5 });
  t.after(() => qm.stop(1000));
  const t0 = clock.now();
  const meta = await spool.put(newMessage({ sender: "a@origin.test", recipients: [newRecipient("b@remote.test")], nowMs: t0, client: { ip: "127.0.0.1" } }), Buffer.from("Subject: x\r\n\r\nx\r\n"));
  await qm.start();
  await settle(async () => clock.pendingTimers() > 0 && (await spool.load(meta.id)).recipients[0]!.attempts === 1, "the failed attempt recorded and rescheduled");
  const m = await spool.load(meta.id);
  assert.match(m.recipients[0]!.history[0]!.reply, /^451 4\.3\.0 local error in delivery: ERR_SOCKET_BAD_PORT/);
  assert.equal(m.nextAttemptAt, new Date(t0 + 5 * 60_000).toISOString(), "a retry time, not 'now'");
  clock.advance(5 * 60_000);
  await settle(() => qm.size === 0, "the retry delivered it");
  assert.deepEqual(calls.map((c) => (c - t0) / 60_000), [0, 5]);
});
