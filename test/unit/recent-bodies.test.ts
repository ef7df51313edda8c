// RecentBodies (spool/recent-bodies.ts): bounded by held bytes, oldest out first, take forgets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RecentBodies } from "../../src/spool/recent-bodies.js";

const own = (n: number, fill = 1) => Buffer.alloc(n, fill); // its own ArrayBuffer of n bytes

test("put, get, take, drop", () => {
  const r = new RecentBodies(100_000);
  r.put("A", own(10_000));
  assert.equal(r.get("A")?.length, 10_000);
  assert.equal(r.take("A")?.length, 10_000);
  assert.equal(r.get("A"), undefined, "taken means forgotten");
  assert.equal(r.heldBytes, 0);
  r.put("B", own(5000));
  r.drop("B");
  assert.equal(r.size, 0);
  assert.equal(r.heldBytes, 0);
});

test("the oldest go first when the budget is exceeded", () => {
  const r = new RecentBodies(100_000);
  for (const id of ["A", "B", "C", "D", "E"]) r.put(id, own(24_000));
  assert.ok(r.heldBytes <= 100_000);
  assert.equal(r.get("A"), undefined);
  assert.ok(r.get("E"));
  assert.ok(r.get("B"));
});

test("a slice counts its whole backing store; one too big for a quarter of the budget is not kept", () => {
  const r = new RecentBodies(100_000);
  const big = Buffer.alloc(60_000);
  r.put("S", big.subarray(0, 100)); // keeps 60,000 bytes alive
  assert.equal(r.get("S"), undefined);
  r.put("T", own(20_000));
  assert.equal(r.heldBytes, 20_000);
  r.put("T", own(1000)); // replaced, not counted twice
  assert.equal(r.heldBytes, 1000);
});
