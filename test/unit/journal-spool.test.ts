// The journal spool's contract (docs/spool.md): durable on commit, replayed on open, torn tails
// ignored, failed batches never acknowledged nor recovered, old segments compacted and
// deleted, the previous per-message layout migrated.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, truncateSync, statSync, openSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { FsSpool } from "../../src/spool/fs-spool.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";
import { isMxdError } from "../../src/core/errors.js";
import { encodeRecord, readFrame, sealRecord, RecordType } from "../../src/spool/journal-format.js";

function tmp(t: { after: (fn: () => unknown) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "mxd-journal-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const meta = (rcpt = "b@y.test") => newMessage({ sender: "a@x.test", recipients: [newRecipient(rcpt)], nowMs: Date.UTC(2026, 11, 1), client: { ip: "127.0.0.1" } });

async function open(dir: string, o: Partial<ConstructorParameters<typeof JournalSpool>[0]> = {}): Promise<JournalSpool> {
  const s = new JournalSpool({ dir, ...o });
  await s.init();
  return s;
}

async function all(s: JournalSpool): Promise<MessageMeta[]> {
  const out: MessageMeta[] = [];
  for await (const m of s.scan()) out.push(m);
  return out;
}

async function bodyOf(s: JournalSpool, id: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of s.openBody(id)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("latin1");
}

test("record framing: checksum covers the salt; a changed byte or another salt fails", () => {
  const salt = Buffer.from("12345678");
  const rec = encodeRecord(RecordType.Msg, "01KB2X7Q9M4F8Z3H", Buffer.from('{"a":1}'), Buffer.from("body"));
  sealRecord(rec, salt);
  const ok = readFrame(rec, 0, salt);
  assert.ok(ok.ok && ok.head.id === "01KB2X7Q9M4F8Z3H" && ok.head.stateLen === 7 && ok.head.bodyLen === 4);
  assert.equal(readFrame(rec, 0, Buffer.from("87654321")).ok, false, "a record forged without the salt does not verify");
  const bad = Buffer.from(rec);
  bad[bad.length - 1] ^= 1;
  assert.deepEqual(readFrame(bad, 0, salt), { ok: false, bad: "checksum mismatch" });
  assert.ok("need" in (readFrame(rec.subarray(0, rec.length - 1), 0, salt) as object), "a short buffer asks for more");
});

test("put/begin/update/remove survive a reopen; bodies stream back byte for byte", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  await s.recover();
  const a = await s.put(meta(), Buffer.from("Subject: a\r\n\r\nA\r\n"));
  const w = await s.begin();
  await w.write(Buffer.from("Subject: b\r\n\r\n"));
  await w.write(Buffer.from("B\r\n"));
  const b = await w.commit(meta("c@z.test"));
  const c = await s.put(meta(), Buffer.from("Subject: c\r\n\r\nC\r\n"));
  const la = await s.load(a.id);
  la.recipients[0]!.attempts = 2;
  la.nextAttemptAt = new Date(Date.UTC(2027, 0, 1)).toISOString();
  await s.update(la);
  await s.remove(c.id);
  await s.close();

  const r = await open(dir);
  const got = await all(r);
  assert.deepEqual(got.map((m) => m.id).sort(), [a.id, b.id].sort());
  assert.equal((await r.load(a.id)).recipients[0]!.attempts, 2);
  assert.equal((await r.load(a.id)).nextAttemptAt, la.nextAttemptAt);
  assert.equal(await bodyOf(r, b.id), "Subject: b\r\n\r\nB\r\n");
  assert.equal((await r.readHead(b.id, 10)).toString(), "Subject: b");
  await assert.rejects(r.load(c.id), (e) => isMxdError(e, "MXD_SPOOL_NOT_FOUND"));
  await r.close();
});

test("a large body goes to bodies/ and is removed with its message", async (t) => {
  const dir = tmp(t);
  const s = await open(dir, { inlineMax: 1024 });
  await s.recover();
  const w = await s.begin();
  const big = Buffer.alloc(5000, "x");
  await w.write(Buffer.from("Subject: big\r\n\r\n"));
  await w.write(big);
  const m = await w.commit(meta());
  assert.deepEqual(readdirSync(join(dir, "bodies")), [`${m.id}.eml`]);
  await s.close();
  const r = await open(dir, { inlineMax: 1024 });
  assert.equal((await all(r)).length, 1);
  assert.equal((await bodyOf(r, m.id)).length, 16 + 5000);
  await r.remove(m.id);
  assert.deepEqual(readdirSync(join(dir, "bodies")), []);
  await r.close();
});

test("torn tail: cutting the last segment anywhere keeps every record before the cut", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  await s.recover();
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await s.put(meta(), Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`))).id);
  await s.close();
  const seg = join(dir, "journal", readdirSync(join(dir, "journal"))[0]!);
  const whole = readFileSync(seg);
  // Record boundaries: the offsets where each record ends.
  const ends: number[] = [];
  {
    const r = await open(dir, { readOnly: true });
    await r.recover();
    await r.close();
  }
  let off = 16;
  const salt = whole.subarray(8, 16);
  while (off < whole.length) {
    const f = readFrame(whole, off, salt);
    assert.ok(f.ok);
    off += f.size;
    ends.push(off);
  }
  for (let cut = 16; cut <= whole.length; cut += 7) {
    writeFileSync(seg, whole.subarray(0, cut));
    const r = await open(dir, { readOnly: true });
    const kept = (await all(r)).map((m) => m.id);
    const expect = ends.filter((e) => e <= cut).length;
    assert.deepEqual(kept, ids.slice(0, expect), `cut at ${cut}`);
    await r.close();
  }
  writeFileSync(seg, whole);
});

test("damage in the middle is skipped: records after it are recovered", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  await s.recover();
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await s.put(meta(), Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`))).id);
  await s.close();
  const seg = join(dir, "journal", readdirSync(join(dir, "journal"))[0]!);
  const fd = openSync(seg, "r+");
  writeSync(fd, Buffer.from("XX"), 0, 2, 16 + 40); // inside the first record's state
  closeSync(fd);
  const r = await open(dir, { readOnly: true });
  assert.deepEqual((await all(r)).map((m) => m.id), ids.slice(1));
  const checker = new JournalSpool({ dir, readOnly: true });
  const report = await checker.check();
  await checker.close();
  assert.equal(report.segments[0]!.damage.length, 1);
  assert.equal(report.segments[0]!.damage[0]!.reason, "checksum mismatch");
  await r.close();
});

test("a record forged inside a message body is never taken for a real one", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  await s.recover();
  // The attacker knows the format but not the segment's salt.
  const forged = encodeRecord(RecordType.Msg, "01KB2X7Q9M4F8Z3H", Buffer.from(JSON.stringify({ ...meta("victim@evil.test"), id: "01KB2X7Q9M4F8Z3H", size: 1 })), Buffer.from("x"));
  sealRecord(forged, Buffer.alloc(8));
  const m = await s.put(meta(), Buffer.concat([Buffer.from("Subject: f\r\n\r\n"), forged]));
  await s.close();
  const seg = join(dir, "journal", readdirSync(join(dir, "journal"))[0]!);
  const fd = openSync(seg, "r+");
  writeSync(fd, Buffer.from("XX"), 0, 2, 16 + 40); // damage before the embedded record: resync runs over it
  closeSync(fd);
  const r = await open(dir, { readOnly: true });
  const got = await all(r);
  assert.ok(!got.some((x) => x.id === "01KB2X7Q9M4F8Z3H"), "forged record not recovered");
  void m;
  await r.close();
});

test("a failed batch is refused to every writer in it and never recovered", async (t) => {
  const dir = tmp(t);
  let fail = false;
  const s = await open(dir, {
    faultHook: () => {
      if (fail) throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
    },
  });
  await s.recover();
  const ok = await s.put(meta(), Buffer.from("Subject: ok\r\n\r\n"));
  fail = true;
  const results = await Promise.allSettled([s.put(meta(), Buffer.from("1")), s.put(meta(), Buffer.from("2")), s.put(meta(), Buffer.from("3"))]);
  assert.ok(results.every((r) => r.status === "rejected" && isMxdError(r.reason, "MXD_SPOOL_IO")));
  fail = false;
  const later = await s.put(meta(), Buffer.from("Subject: later\r\n\r\n"));
  await s.close();
  const r = await open(dir);
  assert.deepEqual((await all(r)).map((m) => m.id).sort(), [ok.id, later.id].sort());
  await r.close();
});

test("a segment that cannot be created fails its batch only; the next batch opens one", async (t) => {
  const dir = tmp(t);
  const s = await open(dir, { segmentSize: 4096, noSync: true });
  await s.recover();
  await s.put(meta(), Buffer.alloc(2600, "a"));
  // The next segment's name is taken (by a directory): opening it fails, whoever we are.
  const { mkdirSync: mk, rmdirSync } = await import("node:fs");
  const blocker = join(dir, "journal", "00000002.seg");
  mk(blocker);
  const r = await s.put(meta(), Buffer.alloc(1500, "b")).then(() => "ok", (e: Error) => e.message);
  assert.match(r, /spool journal write failed/);
  rmdirSync(blocker);
  // A small record would still fit in the old segment's space: it must go to a new segment.
  const after = await s.put(meta(), Buffer.from("small"));
  assert.ok(after.id, "writes work again once the segment can be created");
  await s.close();
  const re = await open(dir);
  assert.equal((await all(re)).length, 2);
  await re.close();
});

test("free-space reserve: begin() refuses with MXD_SPOOL_FULL; put() (bounces) still works", async (t) => {
  const dir = tmp(t);
  let free = 10 * 1024 * 1024;
  let clock = 0;
  const s = await open(dir, { minFree: 50 * 1024 * 1024, freeSpace: async () => free, now: () => (clock += 2000) });
  await s.recover();
  await assert.rejects(s.begin(), (e) => isMxdError(e, "MXD_SPOOL_FULL"));
  await s.put(meta(), Buffer.from("bounce"));
  free = 100 * 1024 * 1024;
  const w = await s.begin();
  await w.abort();
  await s.close();
});

test("free-space reserve: what was written since the last statfs counts (a burst cannot run past the reserve)", async (t) => {
  const dir = tmp(t);
  const clock = 5000; // frozen: statfs is taken once and then cached
  const s = await open(dir, { minFree: 1024 * 1024, freeSpace: async () => 1024 * 1024 + 300 * 1024, now: () => clock });
  await s.recover();
  let accepted = 0;
  for (let i = 0; i < 10; i++) {
    try {
      const w = await s.begin();
      await w.write(Buffer.alloc(100 * 1024, "a"));
      await w.commit(meta());
      accepted++;
    } catch (e) {
      assert.ok(isMxdError(e, "MXD_SPOOL_FULL"));
    }
  }
  assert.equal(accepted, 3, "300 KB above the reserve hold three 100 KB messages, not ten");
  await s.close();
});

test("group commit: many concurrent writers share few syncs", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  await s.recover();
  await Promise.all(Array.from({ length: 200 }, (_, i) => s.put(meta(), Buffer.from(`m${i}`))));
  const st = s.journalStats;
  assert.equal(st.records, 200);
  assert.ok(st.batches < 200, `batched: ${st.batches} syncs for 200 records`);
  await s.close();
});

test("segments: finished ones are deleted; a deferred message is compacted forward, not lost", async (t) => {
  const dir = tmp(t);
  const s = await open(dir, { segmentSize: 4096, compactAfterSegments: 2, noSync: true });
  await s.recover();
  const keep = await s.put(meta(), Buffer.from("Subject: keep\r\n\r\n" + "k".repeat(1000)));
  for (let i = 0; i < 60; i++) {
    const m = await s.put(meta(), Buffer.from("Subject: x\r\n\r\n" + "x".repeat(1000)));
    await s.remove(m.id);
  }
  // Let compaction (background) catch up.
  for (let i = 0; i < 50 && readdirSync(join(dir, "journal")).length > 4; i++) await new Promise((r) => setTimeout(r, 20));
  const segs = readdirSync(join(dir, "journal")).length;
  assert.ok(segs <= 4, `old segments deleted (${segs} left)`);
  await s.close();
  const r = await open(dir);
  assert.deepEqual((await all(r)).map((m) => m.id), [keep.id]);
  assert.ok((await bodyOf(r, keep.id)).startsWith("Subject: keep"));
  await r.close();
});

test("accounting: once every message is gone, every sealed segment is deleted (inline, external, updated)", async (t) => {
  const dir = tmp(t);
  const s = await open(dir, { segmentSize: 2048, inlineMax: 512, noSync: true });
  await s.recover();
  for (let i = 0; i < 30; i++) {
    const m = await s.put(meta(), Buffer.from("Subject: y\r\n\r\n" + "y".repeat(i % 2 ? 100 : 900)));
    const l = await s.load(m.id);
    l.recipients[0]!.attempts++;
    await s.update(l);
    await s.update(l);
    await s.remove(m.id);
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(readdirSync(join(dir, "journal")).length <= 1, `only the head is left: ${readdirSync(join(dir, "journal")).join(",")}`);
  assert.deepEqual(readdirSync(join(dir, "bodies")), []);
  await s.close();
});

test("upgrade: a spool in the previous layout is migrated into the journal", async (t) => {
  const dir = tmp(t);
  const old = new FsSpool({ dir });
  await old.init();
  const small = await old.put(meta(), Buffer.from("Subject: old\r\n\r\nold body\r\n"));
  const big = await old.put(meta("big@y.test"), Buffer.alloc(300 * 1024, "b"));
  writeFileSync(join(dir, "queue", "01KB2X7Q9M4F8Z3H.json"), "{not json");
  writeFileSync(join(dir, "queue", "01KB2X7Q9M4F8Z3H.eml"), "x");
  const s = await open(dir);
  await s.recover();
  const got = await all(s);
  assert.deepEqual(got.map((m) => m.id).sort(), [small.id, big.id].sort());
  assert.equal(await bodyOf(s, small.id), "Subject: old\r\n\r\nold body\r\n");
  assert.equal((await bodyOf(s, big.id)).length, 300 * 1024);
  assert.deepEqual(readdirSync(join(dir, "queue")).filter((f) => f.endsWith(".json")), []);
  assert.ok(readdirSync(join(dir, "dead")).includes("01KB2X7Q9M4F8Z3H.reason"), "unreadable old entry buried");
  await s.close();
  void statSync;
  void truncateSync;
});

test("bury: state, body and reason in dead/; gone from the queue after a reopen", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  await s.recover();
  const m = await s.put(meta(), Buffer.from("Subject: d\r\n\r\n"));
  await s.bury(m.id, "undeliverable bounce");
  assert.deepEqual(readdirSync(join(dir, "dead")).sort(), [`${m.id}.eml`, `${m.id}.json`, `${m.id}.reason`]);
  assert.equal(readFileSync(join(dir, "dead", `${m.id}.eml`), "utf8"), "Subject: d\r\n\r\n");
  await s.close();
  const r = await open(dir);
  assert.equal((await all(r)).length, 0);
  await r.close();
});

test("a just-accepted body is served from memory once (first attempt), then read from the journal", async (t) => {
  const dir = tmp(t);
  const s = await open(dir);
  await s.recover();
  const w = await s.begin();
  await w.write(Buffer.from("Subject: q\r\n\r\nQQQQ\r\n"));
  const m = await w.commit(meta());
  // Change the bytes on disk behind the spool's back: what comes from memory is still the original.
  const seg = readdirSync(join(dir, "journal")).filter((f) => f.endsWith(".seg")).sort().at(-1)!;
  const file = join(dir, "journal", seg);
  const bytes = readFileSync(file);
  const at = bytes.indexOf("QQQQ");
  assert.ok(at > 0);
  bytes.write("XXXX", at, "latin1");
  writeFileSync(file, bytes);
  assert.equal((await s.readHead(m.id, 10)).toString(), "Subject: q", "head from memory");
  const first = await s.locateBody(m.id);
  assert.equal(first.kind === "bytes" && first.bytes.toString("latin1"), "Subject: q\r\n\r\nQQQQ\r\n");
  const second = await s.locateBody(m.id);
  assert.equal(second.kind === "bytes" && second.bytes.toString("latin1"), "Subject: q\r\n\r\nXXXX\r\n", "taken by the first attempt: later ones read the journal");
  // A removed message leaves nothing behind in memory.
  const w2 = await s.begin();
  await w2.write(Buffer.from("Subject: r\r\n\r\nR\r\n"));
  const m2 = await w2.commit(meta());
  await s.remove(m2.id);
  await assert.rejects(s.locateBody(m2.id), (e) => isMxdError(e, "MXD_SPOOL_NOT_FOUND"));
  await s.close();
});
