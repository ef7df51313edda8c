// core/generational-map.ts: bounded in two generations; a hit in the older one moves it;
// evictions counted; a smaller capacity evicts at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GenerationalMap } from "../../src/core/generational-map.js";

test("GenerationalMap: never more than its capacity; the older generation goes whole; evictions counted", () => {
  const m = new GenerationalMap<number>(4);
  for (let i = 0; i < 1000; i++) {
    m.set(`k${i}`, i);
    assert.ok(m.size <= 4, `size ${m.size} at ${i}`);
  }
  assert.equal(m.evictions, 1000 - m.size);
  assert.equal(m.get("k999"), 999);
  assert.equal(m.get("k0"), undefined);
});

test("GenerationalMap: an entry used again survives the rotation that drops the untouched ones", () => {
  const m = new GenerationalMap<string>(4); // generations of 2
  m.set("a", "A");
  m.set("b", "B");
  m.set("c", "C"); // rotates: {a, b} become the previous generation
  assert.equal(m.get("a"), "A", "moved into the current generation");
  m.set("d", "D"); // rotates again: {c, a} previous, b dropped
  assert.equal(m.get("b"), undefined);
  assert.equal(m.get("a"), "A");
  assert.equal(m.get("c"), "C");
  m.set("a", "A2");
  assert.equal(m.get("a"), "A2", "set replaces in place");
  assert.equal(m.delete("a"), true);
  assert.equal(m.delete("a"), false);
  assert.deepEqual([...m.entries()].map(([k]) => k).sort(), ["c", "d"]);
});

test("GenerationalMap: setCapacity to less evicts at once; entries() allows deleting while visiting", () => {
  const m = new GenerationalMap<number>(100);
  for (let i = 0; i < 80; i++) m.set(`k${i}`, i);
  assert.equal(m.size, 80);
  m.setCapacity(10);
  assert.ok(m.size <= 10, `size ${m.size}`);
  assert.equal(m.evictions, 80 - m.size);
  assert.equal(m.capacity, 10);
  for (const [k, v] of m.entries()) if (v % 2 === 0) m.delete(k);
  for (const [, v] of m.entries()) assert.equal(v % 2, 1);
});
