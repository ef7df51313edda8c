// A fan-out through the real queue worker and journal spool (no network): the worker names the
// recipients each domain's results changed, the spool appends recipient deltas instead of the
// whole 300-recipient state, and what a reopen reads back is exactly the worker's last state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runFanout, type FanoutOutcome } from "../helpers/fanout-run.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";

// Recipient i is at domain d(i % 30): d0–d19 accept, d20–d24 defer, d25–d29 refuse.
const outcome: FanoutOutcome = (address) => {
  const d = Number(/@d(\d+)\.test$/.exec(address)?.[1] ?? -1);
  if (d < 0) return "delivered"; // the bounce to the sender
  return d < 20 ? "delivered" : d < 25 ? "transient" : "permanent";
};

test("fan-out: deltas per finished domain; the state read back after a reopen is the worker's", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-fanout-journal-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const run = await runFanout({ dir, rcpts: 300, domains: 30, outcome, delayMs: [1, 20] });
  await run.qm.stop(1000);
  const m = await run.spool.load(run.id);
  await run.spool.close();
  assert.ok(run.records.rcpts.n >= 1, `recipient deltas written (${JSON.stringify(run.records)})`);
  // Each chain of deltas stays within the size of the full record it applies to.
  assert.ok(run.records.state.n < run.records.rcpts.n && run.records.rcpts.bytes <= run.records.msg.bytes + run.records.state.bytes, JSON.stringify(run.records));
  const want = m.recipients.map((_, i) => ((i % 30) < 20 ? "delivered" : (i % 30) < 25 ? "pending" : "failed"));
  assert.deepEqual(m.recipients.map((r) => r.status), want);
  assert.ok(m.recipients.every((r) => r.attempts === 1 && r.history.length === 1 && !r.dsnOwed), "one attempt each; the bounce is queued, so no DSN is owed");
  assert.ok(Date.parse(m.nextAttemptAt) > Date.now() + 30 * 60_000, "retry in about an hour");
  assert.equal(typeof m.messageId, "string");
  const r = new JournalSpool({ dir, readOnly: true });
  await r.recover();
  assert.deepEqual(await r.load(run.id), m);
  const report = await r.check();
  assert.deepEqual(report.problems, []);
  await r.close();
});
