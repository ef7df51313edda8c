import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeClock } from "../../src/io/clock.js";
import { Scheduler } from "../../src/queue/scheduler.js";

test("fires in due order; rescheduling replaces the old time; remove cancels", () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  const s = new Scheduler(clock, (id) => fired.push(`${id}@${clock.now()}`));
  s.schedule("b", 200);
  s.schedule("a", 100);
  s.schedule("c", 300);
  s.schedule("b", 50); // moved earlier
  s.remove("c");
  clock.advance(1000);
  assert.deepEqual(fired, ["b@50", "a@100"]);
  assert.equal(s.size, 0);
});

test("held while the spool is recovered: nothing fires until release, then every due entry at once", () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  const s = new Scheduler(clock, (id) => fired.push(id));
  s.hold();
  s.schedule("due-now", 0);
  s.schedule("due-soon", 100);
  s.schedule("later", 5000);
  clock.advance(200);
  assert.deepEqual(fired, [], "no attempt during recovery");
  s.release();
  assert.deepEqual(fired, ["due-now", "due-soon"]);
  clock.advance(5000);
  assert.deepEqual(fired, ["due-now", "due-soon", "later"]);
});
