// queue/delivery-slots.ts: how many messages are loaded at once, globally and per destination,
// who waits, and in which order waiting messages are admitted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DeliverySlots } from "../../src/queue/delivery-slots.js";

const slots = (maxActive: number, perDomainBacklog: number) => new DeliverySlots({ maxActive, perDomainBacklog, concurrency: 2, perDomainConcurrency: 1 });

test("admit: the global bound makes messages wait in arrival order", () => {
  const s = slots(2, 10);
  assert.equal(s.admit("a", ["x"], 0), "run");
  assert.equal(s.admit("b", ["y"], 1), "run");
  assert.equal(s.admit("c", ["z"], 2), "wait");
  assert.equal(s.admit("d", ["z"], 2), "wait");
  assert.equal(s.isWaiting("c"), true);
  assert.equal(s.nextWaiting(), "c");
  // Admitted once a slot is free: no longer waiting.
  assert.equal(s.admit("c", ["z"], 1), "run");
  assert.equal(s.isWaiting("c"), false);
  assert.equal(s.nextWaiting(), "d");
});

test("admit: one destination's backlog cannot take every slot; done() wakes its waiters one by one", () => {
  const s = slots(100, 2);
  assert.equal(s.admit("a", ["dead.test"], 0), "run");
  assert.equal(s.admit("b", ["dead.test"], 1), "run");
  assert.equal(s.admit("c", ["dead.test"], 2), "wait");
  assert.equal(s.admit("d", ["dead.test"], 2), "wait");
  // Another destination is not held up by it.
  assert.equal(s.admit("e", ["ok.test"], 2), "run");
  // A message with one destination at its bound and one free is admitted.
  assert.equal(s.admit("f", ["dead.test", "ok.test"], 3), "run");
  assert.equal(s.nextWaiting(), undefined, "per-domain waiters are not in the global line");
  assert.deepEqual(s.done(["dead.test"]), [], "still at the bound (a, b, f loaded, one done)");
  assert.deepEqual(s.done(["dead.test"]), ["c"]);
  assert.equal(s.isWaiting("c"), false, "handed out");
  assert.deepEqual(s.done(["dead.test", "ok.test"]), ["d"]);
  assert.deepEqual(s.done(["ok.test"]), []);
});

test("unwait: a held or deleted message leaves every line", () => {
  const s = slots(1, 1);
  s.admit("a", ["x"], 0);
  assert.equal(s.admit("b", ["x"], 1), "wait");
  assert.equal(s.admit("c", ["y"], 1), "wait");
  s.unwait("b");
  s.unwait("c");
  assert.equal(s.isWaiting("b") || s.isWaiting("c"), false);
  assert.deepEqual(s.done(["x"]), []);
  assert.equal(s.nextWaiting(), undefined);
});

test("deliver: at most perDomainConcurrency at once per domain, concurrency in all", async () => {
  const s = slots(10, 10);
  let now = 0;
  let peak = 0;
  const perDomainPeak = new Map<string, number>();
  const perDomainNow = new Map<string, number>();
  const job = (d: string) =>
    s.deliver(d, async () => {
      now++;
      perDomainNow.set(d, (perDomainNow.get(d) ?? 0) + 1);
      peak = Math.max(peak, now);
      perDomainPeak.set(d, Math.max(perDomainPeak.get(d) ?? 0, perDomainNow.get(d)!));
      assert.equal(s.domainLoad().get(d)! >= 1, true);
      await new Promise((r) => setImmediate(r));
      now--;
      perDomainNow.set(d, perDomainNow.get(d)! - 1);
      return d;
    });
  const out = await Promise.all(["a", "a", "a", "b", "b", "c"].map(job));
  assert.deepEqual(out, ["a", "a", "a", "b", "b", "c"]);
  assert.equal(peak, 2);
  for (const d of ["a", "b", "c"]) assert.equal(perDomainPeak.get(d), 1, d);
  assert.equal(s.inFlight, 0);
});
