// Recipient deltas in the journal (RCPTS records; docs/spool.md "Recipient deltas"): written
// instead of whole states when the caller names the changed recipients, folded by every
// reader, replayed after a reopen, torn or orphaned deltas ignored and reported, compaction
// copying the folded state, a failed delta followed by a whole state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, appendFileSync, openSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JournalSpool, type JournalSpoolOptions } from "../../src/spool/journal-spool.js";
import { newMessage, newRecipient, type MessageMeta, type RecipientState } from "../../src/core/envelope.js";
import { encodeRecord, sealRecord, RecordType, HEADER_SIZE, MAX_STATE, segmentName, segmentNumber } from "../../src/spool/journal-format.js";
import { replaySegment } from "../../src/spool/journal-replay.js";
import { recordResult } from "../../src/queue/outcome.js";
import { isMxdError } from "../../src/core/errors.js";

function tmp(t: { after: (fn: () => unknown) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "mxd-journal-delta-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const NOW = Date.UTC(2026, 11, 1, 12);
const fanout = (n: number) =>
  newMessage({ sender: "a@x.test", recipients: Array.from({ length: n }, (_, i) => newRecipient(`r${i}@d${i % 10}.test`)), nowMs: NOW, client: { ip: "127.0.0.1" } });

async function open(dir: string, o: Partial<JournalSpoolOptions> = {}): Promise<JournalSpool> {
  const s = new JournalSpool({ dir, noSync: true, ...o });
  await s.init();
  await s.recover();
  return s;
}

/** What a domain's results do: recipients `at` get `outcome` (the worker's apply in small). */
function result(m: MessageMeta, at: number[], outcome: "delivered" | "transient" | "permanent", step: number): RecipientState[] {
  const reply = { delivered: "250 2.0.0 ok", transient: "451 4.3.0 later", permanent: "550 5.1.1 no" }[outcome];
  for (const i of at) recordResult(m.recipients[i]!, { recipient: m.recipients[i]!.address, outcome, reply, status: reply.slice(4, 9), remote: true }, new Date(NOW + step * 1000).toISOString());
  m.nextAttemptAt = new Date(NOW + step * 60_000).toISOString();
  return at.map((i) => m.recipients[i]!);
}

interface Rec {
  seg: string;
  type: RecordType;
  off: number;
  size: number;
}
async function records(dir: string): Promise<Rec[]> {
  const out: Rec[] = [];
  for (const seg of readdirSync(join(dir, "journal")).sort()) {
    // A segment the spool collects meanwhile (its deletion is asynchronous) holds nothing current.
    await replaySegment(join(dir, "journal", seg), (r) => out.push({ seg, type: r.head.type, off: r.off, size: r.size })).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  }
  return out;
}
const types = (rs: Rec[]) => rs.map((r) => ({ 1: "MSG", 2: "STATE", 3: "DONE", 4: "RCPTS" })[r.type]).join(" ");
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** The state of `id` as a new spool on `dir` reads it back. */
async function reloaded(dir: string, id: string, o: Partial<JournalSpoolOptions> = {}): Promise<MessageMeta> {
  const r = await open(dir, o);
  try {
    return await r.load(id);
  } finally {
    await r.close();
  }
}

async function scanAll(s: JournalSpool, problems: string[] = []): Promise<MessageMeta[]> {
  const out: MessageMeta[] = [];
  for await (const m of s.scan((p) => problems.push(`${p.id}: ${p.reason}`))) out.push(m);
  return out;
}

test("deltas: only the changed recipients are appended; load, scan and a reopen see the folded state", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  const { id } = await s.put(fanout(100), Buffer.from("Subject: f\r\n\r\nx\r\n"));
  const m = await s.load(id);
  m.messageId = "<f@x.test>";
  await s.update(m, result(m, [0, 10, 20], "delivered", 1));
  await s.update(m, result(m, [1, 11], "transient", 2));
  await s.update(m, result(m, [2], "permanent", 3));
  m.delayWarned = true;
  await s.update(m, []); // only message fields moved
  const recs = await records(dir);
  assert.equal(types(recs), "MSG RCPTS RCPTS RCPTS RCPTS");
  const full = recs[0]!.size;
  for (const r of recs.slice(1)) assert.ok(r.size < full / 5, `a delta (${r.size} octets) is much smaller than the state (${full})`);
  assert.deepEqual(await s.load(id), m);
  assert.deepEqual(await scanAll(s), [m]);
  await s.close();
  const r = await open(dir, { readOnly: true });
  assert.deepEqual(await r.load(id), m, "replayed");
  assert.deepEqual(await scanAll(r), [m]);
  const report = await r.check();
  assert.deepEqual(report.problems, []);
  assert.equal(report.messages, 1);
  await r.close();
});

test("a whole state resets the chain; deltas go on from the new base", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  const { id } = await s.put(fanout(100), Buffer.from("Subject: f\r\n\r\nx\r\n"));
  const m = await s.load(id);
  await s.update(m, result(m, [0], "delivered", 1));
  m.held = true; // an operator action: a whole state
  await s.update(m);
  await s.update(m, result(m, [5], "delivered", 2));
  assert.equal(types(await records(dir)), "MSG RCPTS STATE RCPTS");
  await s.close();
  assert.deepEqual(await reloaded(dir, id), m);
});

test("limits: a chain that would outgrow the state, or too many deltas, is followed by a whole state; small states are always whole", async (t) => {
  const dir = tmp(t);
  const s = await open(dir, { chainLimits: { minFull: 0, maxDeltas: 3, maxRatio: 1 } });
  const { id } = await s.put(fanout(100), Buffer.from("Subject: f\r\n\r\nx\r\n"));
  const m = await s.load(id);
  for (let i = 0; i < 5; i++) await s.update(m, result(m, [i], "delivered", i));
  // Every recipient changed at once: the delta would be as big as the state.
  await s.update(m, result(m, m.recipients.map((_, i) => i), "transient", 9));
  assert.equal(types(await records(dir)), "MSG RCPTS RCPTS RCPTS STATE RCPTS STATE");
  await s.close();
  const d2 = tmp(t);
  const small = await open(d2); // default limits: a 3-recipient state is far below minFull
  const { id: sid } = await small.put(fanout(3), Buffer.from("x"));
  const sm = await small.load(sid);
  await small.update(sm, result(sm, [0], "delivered", 1));
  assert.equal(types(await records(d2)), "MSG STATE");
  await small.close();
  assert.deepEqual(await reloaded(dir, id), m);
});

test("torn delta: cutting the segment anywhere in the deltas keeps every delta before the cut", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  const { id } = await s.put(fanout(60), Buffer.from("Subject: f\r\n\r\nx\r\n"));
  const m = await s.load(id);
  const states: MessageMeta[] = [clone(m)];
  for (let step = 1; step <= 3; step++) {
    await s.update(m, result(m, [step, step + 10, step + 20], step === 2 ? "transient" : "delivered", step));
    states.push(clone(m));
  }
  await s.close();
  const recs = await records(dir);
  assert.equal(types(recs), "MSG RCPTS RCPTS RCPTS");
  const seg = join(dir, "journal", recs[0]!.seg);
  const whole = readFileSync(seg);
  const ends = recs.map((r) => r.off + r.size);
  let tried = 0;
  for (let cut = recs[1]!.off; cut <= whole.length; cut += cut < recs[1]!.off + HEADER_SIZE + 40 ? 1 : 13) {
    writeFileSync(seg, whole.subarray(0, cut));
    const r = await open(dir, { readOnly: true });
    const intact = ends.filter((e) => e <= cut).length - 1; // deltas wholly before the cut
    assert.deepEqual(await r.load(id), states[intact], `cut at ${cut}`);
    await r.close();
    tried++;
  }
  assert.ok(tried > 50);
  writeFileSync(seg, whole);
});

test("a delta whose message record is damaged, or which follows a lost delta, is ignored and reported — never a crash", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  const a = await s.put(fanout(60), Buffer.from("Subject: a\r\n\r\n"));
  const b = await s.put(fanout(60), Buffer.from("Subject: b\r\n\r\n"));
  const ma = await s.load(a.id);
  await s.update(ma, result(ma, [1], "delivered", 1));
  const mb = await s.load(b.id);
  const b1 = clone((await s.update(mb, result(mb, [1], "delivered", 1)), mb));
  await s.update(mb, result(mb, [2], "delivered", 2));
  await s.update(mb, result(mb, [3], "delivered", 3));
  await s.close();
  const recs = await records(dir);
  assert.equal(types(recs), "MSG MSG RCPTS RCPTS RCPTS RCPTS");
  const seg = join(dir, "journal", recs[0]!.seg);
  const fd = openSync(seg, "r+");
  writeSync(fd, Buffer.from("XX"), 0, 2, recs[0]!.off + HEADER_SIZE + 30); // a's MSG record
  writeSync(fd, Buffer.from("XX"), 0, 2, recs[4]!.off + HEADER_SIZE + 30); // b's second delta
  closeSync(fd);
  const r = await open(dir, { readOnly: true });
  assert.equal(r.has(a.id), false, "no message without its MSG record");
  assert.deepEqual(await r.load(b.id), b1, "b: its base and first delta; the third does not apply without the second");
  const report = await r.check();
  assert.equal(report.segments[0]!.damage.length, 2);
  assert.equal(report.problems.length, 2, report.problems.join("\n"));
  assert.match(report.problems.join("\n"), new RegExp(`recipient delta 3 of ${b.id} does not follow`));
  assert.match(report.problems.join("\n"), new RegExp(`recipient delta of ${a.id}, whose message record is missing`));
  await r.close();
});

test("a delta of a removed message is no damage (its DONE follows)", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  const { id } = await s.put(fanout(60), Buffer.from("x"));
  const m = await s.load(id);
  await s.update(m, result(m, [1], "delivered", 1));
  await s.remove(id);
  await s.close();
  // Drop the MSG record as if its segment had been deleted: the delta and the DONE remain.
  const recs = await records(dir);
  const seg = join(dir, "journal", recs[0]!.seg);
  const whole = readFileSync(seg);
  writeFileSync(seg, Buffer.concat([whole.subarray(0, 16), Buffer.alloc(recs[0]!.size), whole.subarray(recs[1]!.off)]));
  const r = await open(dir, { readOnly: true });
  assert.deepEqual((await r.check()).problems, []);
  await r.close();
});

/** Append a hand-made RCPTS record to the segment `seg` (sealed with its salt). */
function appendDelta(seg: string, id: string, delta: unknown): void {
  const salt = readFileSync(seg).subarray(8, 16);
  const rec = encodeRecord(RecordType.Rcpts, id, Buffer.from(JSON.stringify(delta)), null);
  sealRecord(rec, salt);
  appendFileSync(seg, rec);
}

test("a delta whose recipient index does not fit its state: load refuses (MXD_SPOOL_INVALID), scan and check report it", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  const { id } = await s.put(fanout(60), Buffer.from("x"));
  await s.close();
  const recs = await records(dir);
  const seg = join(dir, "journal", recs[0]!.seg);
  appendDelta(seg, id, { base: [1, recs[0]!.off], seq: 1, fields: { nextAttemptAt: new Date(NOW).toISOString() }, rcpts: [[60, newRecipient("x@y.test")]] });
  const r = await open(dir, { readOnly: true });
  await assert.rejects(r.load(id), (e: unknown) => isMxdError(e) && e.code === "MXD_SPOOL_INVALID" && /recipient index 60 outside the 60 recipients/.test(e.message));
  const problems: string[] = [];
  assert.deepEqual(await scanAll(r, problems), []);
  assert.equal(problems.length, 1);
  const report = await r.check();
  assert.match(report.problems.join("\n"), /recipient index 60 outside/);
  await r.close();
});

test("salvage and bury of a state that does not validate use the folded recipients", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  const { id } = await s.put(fanout(60), Buffer.from("Subject: s\r\n\r\n"));
  const m = await s.load(id);
  await s.update(m, result(m, [0], "delivered", 1));
  await s.close();
  const recs = await records(dir);
  const bad = { ...clone(m.recipients[1]!), status: "failed", notify: "NEVER" }; // notify must be a list
  appendDelta(join(dir, "journal", recs[0]!.seg), id, { base: [1, recs[0]!.off], seq: 2, fields: { nextAttemptAt: m.nextAttemptAt }, rcpts: [[1, bad]] });
  const r = await open(dir);
  await assert.rejects(r.load(id), /notify/);
  const env = await r.salvage(id);
  assert.deepEqual(env?.recipients.slice(0, 3).map((x) => x.status), ["delivered", "failed", "pending"]);
  await r.bury(id, "unreadable spool entry: test");
  const dead = JSON.parse(readFileSync(join(dir, "dead", `${id}.json`), "utf8")) as MessageMeta;
  assert.deepEqual(dead.recipients.slice(0, 2).map((x) => x.status), ["delivered", "failed"], "dead/<ID>.json holds the folded state");
  assert.equal(dead.recipients.length, 60);
  await r.close();
});

test("compaction copies a message with deltas as one full record; its old segments go; accounting counts the deltas", async (t) => {
  const dir = tmp(t);
  const s = await open(dir, { segmentSize: 16 * 1024, compactAfterSegments: 2, chainLimits: { minFull: 0, maxDeltas: 64, maxRatio: 1 } });
  const { id } = await s.put(fanout(60), Buffer.from("Subject: keep\r\n\r\n"));
  const m = await s.load(id);
  // Deltas of the kept message spread over several segments, among messages that come and go.
  for (let step = 0; step < 30; step++) {
    await s.update(m, result(m, [step], step % 3 ? "delivered" : "transient", step));
    const o = await s.put(fanout(1), Buffer.from("Subject: x\r\n\r\n" + "x".repeat(2000)));
    await s.remove(o.id);
  }
  for (let i = 0; i < 100 && readdirSync(join(dir, "journal")).length > 4; i++) await new Promise((r) => setTimeout(r, 20));
  const segs = readdirSync(join(dir, "journal"));
  assert.ok(segs.length <= 4, `old segments deleted (${segs.length} left)`);
  assert.deepEqual(await s.load(id), m);
  await s.close();
  const recs = (await records(dir)).filter((r) => r.type !== RecordType.Done);
  assert.ok(recs.some((r) => r.type === RecordType.Msg), "the copy");
  const r = await open(dir);
  assert.deepEqual(await r.load(id), m, "the folded state survived compaction and a reopen");
  assert.deepEqual((await r.check()).problems, []);
  await r.remove(id);
  await r.close();
  // Once it is gone, nothing pins any sealed segment: deltas were charged and discharged.
  const z = await open(dir, { segmentSize: 16 * 1024 });
  for (let i = 0; i < 10; i++) {
    const o = await z.put(fanout(1), Buffer.from("y".repeat(4000)));
    await z.remove(o.id);
  }
  await new Promise((res) => setTimeout(res, 50));
  assert.ok(readdirSync(join(dir, "journal")).length <= 2, readdirSync(join(dir, "journal")).join(","));
  await z.close();
});

test("a delta that could not be written (disk full) is followed by a whole state, so no change is lost", async (t) => {
  const dir = tmp(t);
  let fail = false;
  const s = await open(dir, {
    faultHook: () => {
      if (fail) throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
    },
  });
  const { id } = await s.put(fanout(60), Buffer.from("x"));
  const m = await s.load(id);
  await s.update(m, result(m, [0], "delivered", 1));
  fail = true;
  await assert.rejects(s.update(m, result(m, [1], "delivered", 2)), /no space/);
  fail = false;
  await s.update(m, result(m, [2], "delivered", 3)); // names only recipient 2
  assert.equal(types(await records(dir)), "MSG RCPTS STATE");
  await s.close();
  assert.deepEqual((await reloaded(dir, id)).recipients.slice(0, 4).map((x) => x.status), ["delivered", "delivered", "delivered", "pending"]);
});

test("a record recovery would not read back (state over MAX_STATE) is refused when written, never acknowledged", () => {
  const id = "01KB2X7Q9M4F8Z3H";
  assert.throws(() => encodeRecord(RecordType.State, id, Buffer.alloc(MAX_STATE + 1), null), (e: unknown) => isMxdError(e) && e.code === "MXD_SPOOL_IO" && /too large/.test(e.message));
  assert.equal(encodeRecord(RecordType.Rcpts, id, Buffer.alloc(10), null).length, HEADER_SIZE + 10);
});

test("a delta that could not be written, then compaction copies the message: the next update is still whole", async (t) => {
  // Compaction copies the state on disk, which lacks the failed delta's changes: the next
  // update() must still carry the whole state, or recipient 1's delivery is in no record and
  // it is sent to again.
  const dir = tmp(t);
  let fail = false;
  const s = await open(dir, {
    compactAfterSegments: 1000,
    faultHook: () => {
      if (fail) throw Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" });
    },
  });
  const { id } = await s.put(fanout(60), Buffer.from("x"));
  const m = await s.load(id);
  await s.update(m, result(m, [0], "delivered", 1));
  fail = true;
  await assert.rejects(s.update(m, result(m, [1], "delivered", 2)), /i\/o error/);
  fail = false;
  const seg = segmentNumber((await records(dir))[0]!.seg)!;
  assert.equal(await s.compact(seg), 1, "the message was copied");
  await s.update(m, result(m, [2], "delivered", 3)); // names only recipient 2
  assert.equal(types(await records(dir)), "MSG RCPTS MSG STATE");
  await s.close();
  assert.deepEqual((await reloaded(dir, id)).recipients.slice(0, 4).map((x) => x.status), ["delivered", "delivered", "delivered", "pending"]);
});

test("a delta left behind in a segment that outlived its message's old copy is no damage after compaction", async (t) => {
  const dir = tmp(t);
  const s = await open(dir, { segmentSize: 16 * 1024, compactAfterSegments: 1000 });
  // Segment 1 holds only A (its record is larger than a segment); A's delta and B go to segment 2.
  const { id } = await s.put(fanout(60), Buffer.from("Subject: a\r\n\r\n" + "a".repeat(17 * 1024)));
  const m = await s.load(id);
  await s.update(m, result(m, [0], "delivered", 1));
  const b = await s.put(fanout(1), Buffer.from("Subject: b\r\n\r\nb\r\n"));
  const first = segmentNumber((await records(dir))[0]!.seg)!;
  assert.equal(await s.compact(first), 1);
  // A put and a remove let the spool collect: segment 1 goes, segment 2 (B) stays.
  const c = await s.put(fanout(1), Buffer.from("c"));
  await s.remove(c.id);
  for (let i = 0; i < 100 && readdirSync(join(dir, "journal")).includes(segmentName(first)); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(!readdirSync(join(dir, "journal")).includes(segmentName(first)), "segment 1 deleted");
  assert.ok((await records(dir)).some((r) => r.type === RecordType.Rcpts), "A's old delta is still in segment 2");
  await s.close();
  const r = await open(dir);
  assert.deepEqual((await r.load(id)).recipients[0]!.status, "delivered");
  assert.equal((await r.load(b.id)).recipients.length, 1);
  assert.deepEqual((await r.check()).problems, []);
  await r.close();
});
