// `mxd queue retry ID` of a dead letter whose earlier retry was cut short by a crash: the MSG
// record had been written (the message is queued, and may have been attempted since), dead/
// still held the old copy. The retry must go on from the queued state — the first attempt of a
// requeued message takes its state straight from enqueue() (worker.ts `fresh`), so a stale
// copy there would be sent to recipients already delivered. Real JournalSpool, QueueManager and
// admin action; a recording courier; virtual time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { FakeClock } from "../../src/io/clock.js";
import { silentLogger } from "../../src/io/log.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { QueueManager } from "../../src/queue/worker.js";
import { runAction } from "../../src/admin/queue-actions.js";
import { recordResult } from "../../src/queue/outcome.js";
import type { Courier } from "../../src/delivery/courier.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";

async function settle(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("retry of a dead letter that a crash left queued as well: the queued state is attempted, never the dead copy", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-requeue-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.UTC(2026, 0, 5, 12, 0, 0));
  const config = parseConfig({ hostname: "mxd.test", spoolDir: dir });
  const spool = new JournalSpool({ dir, now: () => clock.now(), noSync: true, minFree: 0 });
  await spool.init();
  const sent: string[] = [];
  const courier: Courier = {
    async deliver(req) {
      sent.push(...req.recipients.map((r) => r.address));
      return req.recipients.map((r) => ({ recipient: r.address, outcome: "delivered" as const, reply: "250 2.0.0 ok", status: "2.0.0", remote: true }));
    },
    async close() {},
  };
  const body = Buffer.from("Subject: r\r\n\r\nr\r\n");
  const meta = await spool.put(newMessage({ sender: "a@origin.test", recipients: [newRecipient("x@one.test"), newRecipient("y@two.test")], nowMs: clock.now(), client: { ip: "127.0.0.1" } }), body);
  // The dead copy, as bury() wrote it before the first retry: both recipients failed.
  const copy = JSON.parse(JSON.stringify(meta)) as MessageMeta;
  for (const r of copy.recipients) recordResult(r, { recipient: r.address, outcome: "permanent", reply: "550 5.0.0 no", status: "5.0.0", remote: true }, new Date(clock.now()).toISOString());
  mkdirSync(join(dir, "dead"), { recursive: true });
  writeFileSync(join(dir, "dead", `${meta.id}.json`), JSON.stringify(copy));
  writeFileSync(join(dir, "dead", `${meta.id}.eml`), body);
  writeFileSync(join(dir, "dead", `${meta.id}.reason`), "2026-01-05T11:00:00.000Z bounce could not be delivered\n");
  // Since the first retry, x@one.test was delivered; y@two.test waits for its next attempt.
  const queued = await spool.load(meta.id);
  recordResult(queued.recipients[0]!, { recipient: "x@one.test", outcome: "delivered", reply: "250 2.0.0 ok", status: "2.0.0", remote: true }, new Date(clock.now()).toISOString());
  queued.nextAttemptAt = new Date(clock.now() + 3_600_000).toISOString();
  await spool.update(queued);

  const qm = new QueueManager({ config, spool, courier, clock, logger: silentLogger(), random: () => 0.5 });
  t.after(async () => {
    await qm.stop(1000);
    await spool.close();
  });
  await qm.start();
  const r = await runAction(qm, spool, "retry", { id: meta.id, dead: true });
  assert.equal(r.ok, true, r.status);
  await settle(() => !spool.has(meta.id), "the message finished");
  assert.deepEqual(sent, ["y@two.test"], "x@one.test, delivered before, is not sent to again");
});
