// spool/state-delta.ts as tables: encoding and decoding recipient deltas, folding them into a
// state, finding the changed recipients, and the choice between a delta and a full state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";
import { BadStateError, decodeMeta, validateMeta } from "../../src/spool/format.js";
import { DEFAULT_CHAIN_LIMITS, changedIndices, chooseRecord, decodeDelta, deltaHead, encodeDelta, foldDelta, type StateDelta } from "../../src/spool/state-delta.js";
import { recordResult } from "../../src/queue/outcome.js";

const NOW = Date.UTC(2026, 11, 1, 12);
function message(n: number): MessageMeta {
  const rcpts = Array.from({ length: n }, (_, i) => newRecipient(`r${i}@d${i % 7}.test`));
  return { ...newMessage({ sender: "a@x.test", recipients: rcpts, nowMs: NOW, client: { ip: "127.0.0.1" } }), id: "01KB2X7Q9M4F8Z3H", size: 10 } as MessageMeta;
}
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

test("encodeDelta/decodeDelta: base, seq, the changed recipients by index, the run's message fields", () => {
  const m = message(5);
  m.nextAttemptAt = "2026-12-01T13:00:00.000Z";
  m.messageId = "<x@y>";
  recordResult(m.recipients[1]!, { recipient: "r1@d1.test", outcome: "delivered", reply: "250 ok", status: "2.0.0", remote: true }, "2026-12-01T12:00:01.000Z");
  recordResult(m.recipients[3]!, { recipient: "r3@d3.test", outcome: "permanent", reply: "550 no", status: "5.1.1", remote: true }, "2026-12-01T12:00:02.000Z");
  const buf = encodeDelta([3, 1234], 2, m, [1, 3]);
  const d = decodeDelta(buf);
  assert.deepEqual(d, { base: [3, 1234], seq: 2, fields: { nextAttemptAt: "2026-12-01T13:00:00.000Z", messageId: "<x@y>" }, rcpts: [[1, clone(m.recipients[1])], [3, clone(m.recipients[3])]] });
  assert.deepEqual(JSON.parse(buf.toString()), d, "plain JSON");
  assert.deepEqual(deltaHead(buf), { base: [3, 1234], seq: 2 });
  // No changed recipient (only the message fields moved) is a delta too.
  assert.deepEqual(decodeDelta(encodeDelta([1, 16], 1, m, [])).rcpts, []);
});

test("decodeDelta: what is not a delta is a BadStateError, never a crash", () => {
  const rows: [string, RegExp][] = [
    ["{not json", /not JSON/],
    ["null", /not an object/],
    ["[1,2]", /bad base/],
    ['{"base":[1],"seq":1,"fields":{},"rcpts":[]}', /bad base/],
    ['{"base":[1,-2],"seq":1,"fields":{},"rcpts":[]}', /bad base/],
    ['{"base":[1,2],"seq":0,"fields":{},"rcpts":[]}', /bad seq/],
    ['{"base":[1,2],"seq":1.5,"fields":{},"rcpts":[]}', /bad seq/],
    ['{"base":[1,2],"seq":1,"fields":[],"rcpts":[]}', /bad fields/],
    ['{"base":[1,2],"seq":1,"rcpts":[]}', /bad fields/],
    ['{"base":[1,2],"seq":1,"fields":{},"rcpts":{}}', /bad rcpts/],
    ['{"base":[1,2],"seq":1,"fields":{},"rcpts":[[1]]}', /bad rcpts/],
    ['{"base":[1,2],"seq":1,"fields":{},"rcpts":[[-1,{}]]}', /bad rcpts/],
    ['{"base":[1,2],"seq":1,"fields":{},"rcpts":[["1",{}]]}', /bad rcpts/],
    ['{"base":[1,2],"seq":1,"fields":{},"rcpts":[[1,"x"]]}', /bad rcpts/],
    ['{"base":[1,2],"seq":1,"fields":{},"rcpts":[[1,[]]]}', /bad rcpts/],
  ];
  for (const [text, re] of rows) {
    assert.throws(() => decodeDelta(Buffer.from(text)), (e: unknown) => e instanceof BadStateError && re.test((e as Error).message), text);
  }
});

test("deltaHead: the prefix encodeDelta writes, any other key order through a full parse, undefined for garbage", () => {
  assert.deepEqual(deltaHead(Buffer.from('{"base":[12,345],"seq":7,"fields":{},"rcpts":[]}')), { base: [12, 345], seq: 7 });
  assert.deepEqual(deltaHead(Buffer.from('{"seq":7,"rcpts":[],"fields":{},"base":[12,345]}')), { base: [12, 345], seq: 7 });
  assert.equal(deltaHead(Buffer.from("garbage")), undefined);
  assert.equal(deltaHead(Buffer.from('{"base":[1,2],"seq":0,"fields":{},"rcpts":[]}')), undefined, "prefix fine, but not a delta");
});

test("foldDelta: recipients replaced by index; the run's fields set, and deleted when absent", () => {
  const rows: { name: string; before: Partial<MessageMeta>; fields: StateDelta["fields"]; want: Partial<MessageMeta> }[] = [
    { name: "set", before: {}, fields: { nextAttemptAt: "2026-12-02T00:00:00.000Z", delayWarned: true }, want: { nextAttemptAt: "2026-12-02T00:00:00.000Z", delayWarned: true } },
    { name: "absent is deleted", before: { held: false, messageId: "<a@b>" }, fields: { nextAttemptAt: "2026-12-02T00:00:00.000Z" }, want: { held: undefined, messageId: undefined } },
    { name: "other members untouched", before: { kind: "bounce" }, fields: { nextAttemptAt: "2026-12-02T00:00:00.000Z" }, want: { kind: "bounce", sender: "a@x.test" } },
  ];
  for (const row of rows) {
    const s = clone({ ...message(3), ...row.before }) as MessageMeta;
    const r2 = { ...clone(s.recipients[2]!), status: "delivered" as const, attempts: 1 };
    foldDelta(s, { base: [1, 16], seq: 1, fields: row.fields, rcpts: [[2, r2]] });
    assert.deepEqual(s.recipients[2], r2, row.name);
    assert.equal(s.recipients[0]!.status, "pending", row.name);
    for (const [k, v] of Object.entries(row.want)) assert.deepEqual((s as unknown as Record<string, unknown>)[k], v, `${row.name}: ${k}`);
  }
});

test("foldDelta: an index outside the recipients, or a state without recipients, is a BadStateError", () => {
  const s = clone(message(3));
  assert.throws(() => foldDelta(s, { base: [1, 16], seq: 4, fields: {}, rcpts: [[3, clone(s.recipients[0]!)]] }), (e: unknown) => e instanceof BadStateError && /delta 4: recipient index 3 outside the 3 recipients/.test((e as Error).message));
  assert.throws(() => foldDelta({ id: "x" }, { base: [1, 16], seq: 1, fields: {}, rcpts: [] }), BadStateError);
  assert.throws(() => foldDelta("text", { base: [1, 16], seq: 1, fields: {}, rcpts: [] }), BadStateError);
});

test("changedIndices: ascending indices of the changed recipients; undefined when one is not in the message", () => {
  const m = message(6);
  const r = m.recipients;
  assert.deepEqual(changedIndices(r, []), []);
  assert.deepEqual(changedIndices(r, [r[4]!, r[1]!]), [1, 4]);
  assert.deepEqual(changedIndices(r, new Set([r[0]!, r[5]!])), [0, 5]);
  assert.deepEqual(changedIndices(r, [r[2]!, r[2]!]), [2], "named twice");
  assert.equal(changedIndices(r, [r[2]!, newRecipient("r2@d2.test")]), undefined, "an equal copy is not the same recipient");
});

test("chooseRecord: a delta only on a big enough state, with a short chain that stays smaller than the state", () => {
  const L = DEFAULT_CHAIN_LIMITS;
  const rows: [{ fullLen: number; chainCount: number; chainBytes: number; deltaLen: number }, "delta" | "full"][] = [
    [{ fullLen: L.minFull - 1, chainCount: 0, chainBytes: 0, deltaLen: 100 }, "full"],
    [{ fullLen: L.minFull, chainCount: 0, chainBytes: 0, deltaLen: 100 }, "delta"],
    [{ fullLen: 1_000_000, chainCount: L.maxDeltas - 1, chainBytes: 0, deltaLen: 100 }, "delta"],
    [{ fullLen: 1_000_000, chainCount: L.maxDeltas, chainBytes: 0, deltaLen: 100 }, "full"],
    [{ fullLen: 1_000_000, chainCount: 3, chainBytes: 999_900, deltaLen: 100 }, "delta"],
    [{ fullLen: 1_000_000, chainCount: 3, chainBytes: 999_901, deltaLen: 100 }, "full"],
    [{ fullLen: 10_000, chainCount: 0, chainBytes: 0, deltaLen: 10_001 }, "full"],
  ];
  for (const [o, want] of rows) assert.equal(chooseRecord(o), want, JSON.stringify(o));
  assert.equal(chooseRecord({ fullLen: 100, chainCount: 0, chainBytes: 0, deltaLen: 10 }, { minFull: 0, maxDeltas: 1, maxRatio: 1 }), "delta");
  assert.equal(chooseRecord({ fullLen: 100, chainCount: 1, chainBytes: 10, deltaLen: 10 }, { minFull: 0, maxDeltas: 1, maxRatio: 1 }), "full");
});

test("folding: a base and every delta of a random run give exactly the final state (and it validates)", () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let run = 0; run < 20; run++) {
    const m = message(40);
    const base = Buffer.from(JSON.stringify(m));
    const deltas: Buffer[] = [];
    for (let step = 1; step <= 15; step++) {
      const changed = new Set<number>();
      for (let k = Math.floor(rand() * 6); k > 0; k--) {
        const i = Math.floor(rand() * m.recipients.length);
        const outcome = (["delivered", "transient", "permanent"] as const)[Math.floor(rand() * 3)]!;
        recordResult(m.recipients[i]!, { recipient: m.recipients[i]!.address, outcome, reply: `reply ${step}`, status: "2.0.0", remote: true }, new Date(NOW + step * 1000).toISOString());
        changed.add(i);
      }
      m.nextAttemptAt = new Date(NOW + step * 60_000).toISOString();
      if (rand() < 0.3) m.delayWarned = true;
      if (rand() < 0.2) m.messageId = `<${step}@x>`;
      if (rand() < 0.2) delete m.messageId;
      deltas.push(encodeDelta([1, 16], step, m, [...changed].sort((a, b) => a - b)));
    }
    const s = JSON.parse(base.toString()) as unknown;
    for (const d of deltas) foldDelta(s, decodeDelta(d));
    assert.deepEqual(s, clone(m), `run ${run}`);
    assert.deepEqual(validateMeta(s, m.id), decodeMeta(Buffer.from(JSON.stringify(m)), m.id));
  }
});
