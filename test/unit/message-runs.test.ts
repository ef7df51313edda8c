// queue/message-runs.ts: one change at a time per message, in arrival order; coalesced writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Coalesced, MessageRuns } from "../../src/queue/message-runs.js";

const tick = () => new Promise((r) => setImmediate(r));

test("exclusive: work on one message runs one at a time, in order; other messages are not held up; idle once all ended", async () => {
  const order: string[] = [];
  const idle: string[] = [];
  const runs = new MessageRuns((id) => idle.push(id));
  let release!: () => void;
  runs.track("m1", new Promise<void>((r) => (release = r)).then(() => void order.push("delivery m1")));
  const a = runs.exclusive("m1", async () => (order.push("hold m1"), "held"));
  const b = runs.exclusive("m1", async () => (order.push("bounce m1"), "bounced"));
  const c = runs.exclusive("m2", async () => (order.push("hold m2"), "held"));
  assert.equal(await c, "held");
  assert.deepEqual(order, ["hold m2"], "m1's actions wait for its delivery");
  assert.equal(runs.has("m1"), true);
  release();
  assert.deepEqual(await Promise.all([a, b]), ["held", "bounced"]);
  await tick();
  assert.deepEqual(order, ["hold m2", "delivery m1", "hold m1", "bounce m1"]);
  assert.deepEqual(idle, ["m2", "m1"], "idle once per message, after the last of its work");
  assert.equal(runs.size, 0);
});

test("exclusive: a failing action rejects its caller and does not block the next one", async () => {
  const runs = new MessageRuns(() => undefined);
  const a = runs.exclusive("m", async () => {
    throw new Error("disk full");
  });
  const b = runs.exclusive("m", async () => "ok");
  await assert.rejects(a, /disk full/);
  assert.equal(await b, "ok");
});

test("Coalesced: one run at a time; calls made meanwhile share the next run", async () => {
  let runs = 0;
  let release: (() => void)[] = [];
  const c = new Coalesced(() => {
    runs++;
    return new Promise<void>((r) => release.push(r));
  });
  const p1 = c.run();
  const p2 = c.run();
  const p3 = c.run();
  assert.equal(runs, 1);
  release.shift()!();
  await p1;
  await tick();
  assert.equal(runs, 2, "p2 and p3 are served by one second run");
  release.shift()!();
  await Promise.all([p2, p3]);
  assert.equal(runs, 2);
  const p4 = c.run();
  assert.equal(runs, 3);
  release.shift()!();
  await p4;
  release = [];
});
