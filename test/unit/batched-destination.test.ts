// BatchedDestination (io/batched-destination.ts): lines reach the sink in order, one write per
// turn, at once past the size bound, and everything pending on flushSync().
import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchedDestination } from "../../src/io/batched-destination.js";
import { isoTimeField } from "../../src/io/log.js";

function fakeSink() {
  const writes: string[] = [];
  let flushed = 0;
  return { writes, flushes: () => flushed, sink: { write: (s: string) => void writes.push(s), flushSync: () => void flushed++ } };
}

test("lines of one turn go out as one write, in order", () => {
  const f = fakeSink();
  const steps: (() => void)[] = [];
  const d = new BatchedDestination(f.sink, (fn) => void steps.push(fn));
  d.write("a\n");
  d.write("b\n");
  d.write("c\n");
  assert.deepEqual(f.writes, []);
  assert.equal(steps.length, 1, "one hand-over scheduled, not one per line");
  steps.shift()!();
  assert.deepEqual(f.writes, ["a\nb\nc\n"]);
  d.write("d\n");
  assert.equal(steps.length, 1);
  steps.shift()!();
  assert.deepEqual(f.writes, ["a\nb\nc\n", "d\n"]);
  d.close();
});

test("flushSync writes what is pending and flushes the sink; a later turn writes nothing twice", () => {
  const f = fakeSink();
  const steps: (() => void)[] = [];
  const d = new BatchedDestination(f.sink, (fn) => void steps.push(fn));
  d.write("x\n");
  d.flushSync();
  assert.deepEqual(f.writes, ["x\n"]);
  assert.equal(f.flushes(), 1);
  steps.shift()!();
  assert.deepEqual(f.writes, ["x\n"]);
  d.close();
});

test("a burst past the bound is handed over at once (memory stays bounded within a turn)", () => {
  const f = fakeSink();
  const d = new BatchedDestination(f.sink, () => undefined); // the turn never comes
  const line = "y".repeat(1000) + "\n";
  for (let i = 0; i < 3000; i++) d.write(line);
  assert.ok(f.writes.length >= 2, `handed over ${f.writes.length} times`);
  for (const w of f.writes) assert.ok(w.length <= 1024 * 1024 + line.length, "no batch beyond the bound");
  d.flushSync();
  assert.equal(f.writes.join(""), line.repeat(3000));
  d.close();
});

test("a sink that cannot flush yet (file still opening) does not throw", () => {
  const d = new BatchedDestination({ write: () => undefined, flushSync: () => { throw new Error("sonic boom is not ready yet"); } }, () => undefined);
  d.write("z\n");
  assert.doesNotThrow(() => d.flushSync());
  d.close();
});

test("isoTimeField: pino's time field, made once per millisecond", () => {
  const t = Date.parse("2026-12-02T10:00:00.123Z");
  assert.equal(isoTimeField(t), ',"time":"2026-12-02T10:00:00.123Z"');
  assert.equal(isoTimeField(t), ',"time":"2026-12-02T10:00:00.123Z"');
  assert.equal(isoTimeField(t + 1), ',"time":"2026-12-02T10:00:00.124Z"');
  assert.equal(isoTimeField(t), ',"time":"2026-12-02T10:00:00.123Z"');
});

test("a writer that throws (closed) loses the batch but never throws from a later turn or at flush", () => {
  const steps: (() => void)[] = [];
  const d = new BatchedDestination({ write: () => { throw new Error("SonicBoom destroyed"); }, flushSync: () => undefined }, (fn) => void steps.push(fn));
  d.write("w\n");
  assert.doesNotThrow(() => steps.shift()!());
  assert.equal(d.failed, 1);
  d.write("v\n");
  assert.doesNotThrow(() => d.flushSync());
  assert.equal(d.failed, 2);
  d.close();
});
