// The on-disk spool's contract (docs/spool.md): queued exactly when queue/<ID>.json exists,
// leftovers cleaned at start, failed commits leave nothing, unreadable entries are reported.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readdirSync, writeFileSync, readFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsSpool, SpoolError } from "../../src/spool/fs-spool.js";
import { newMessage, newRecipient } from "../../src/core/envelope.js";
import { isQueueId } from "../../src/spool/format.js";

function fresh(t: { after: (fn: () => unknown) => void }): { dir: string; spool: FsSpool } {
  const dir = mkdtempSync(join(tmpdir(), "mxd-spool-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, spool: new FsSpool({ dir }) };
}

const meta = () => newMessage({ sender: "a@x.test", recipients: [newRecipient("b@y.test")], nowMs: Date.UTC(2026, 10, 25), client: { ip: "127.0.0.1" } });

test("put: body and state in queue/, nothing in tmp/; load, update, remove", async (t) => {
  const { dir, spool } = fresh(t);
  await spool.init();
  const body = Buffer.from("Subject: s\r\n\r\nbody\r\n");
  const m = await spool.put(meta(), body);
  assert.ok(isQueueId(m.id));
  assert.equal(m.size, body.length);
  assert.deepEqual(readdirSync(join(dir, "queue")).sort(), [`${m.id}.eml`, `${m.id}.json`]);
  assert.deepEqual(readdirSync(join(dir, "tmp")), []);
  assert.equal(readFileSync(spool.bodyPath(m.id), "utf8"), "Subject: s\r\n\r\nbody\r\n");
  const loaded = await spool.load(m.id);
  assert.deepEqual(loaded, m);
  loaded.recipients[0]!.attempts = 3;
  await spool.update(loaded);
  assert.equal((await spool.load(m.id)).recipients[0]!.attempts, 3);
  assert.deepEqual(readdirSync(join(dir, "tmp")), [], "update leaves no temporary file");
  await spool.remove(m.id);
  assert.deepEqual(readdirSync(join(dir, "queue")), []);
});

test("init: removes tmp/ leftovers and a body whose state never landed; keeps queued mail", async (t) => {
  const { dir, spool } = fresh(t);
  await spool.init();
  const kept = await spool.put(meta(), Buffer.from("x\r\n"));
  writeFileSync(join(dir, "tmp", "01M8AAAAAAAAAAAA.eml"), "half written");
  writeFileSync(join(dir, "queue", "01M8BBBBBBBBBBBB.eml"), "renamed, but no state");
  const { cleaned } = await spool.init();
  assert.equal(cleaned, 2);
  assert.deepEqual(readdirSync(join(dir, "tmp")), []);
  assert.deepEqual(readdirSync(join(dir, "queue")).sort(), [`${kept.id}.eml`, `${kept.id}.json`]);
});

test("a commit that fails (queue/ unusable) rejects with SpoolError and leaves nothing behind", async (t) => {
  const { dir, spool } = fresh(t);
  await spool.init();
  rmSync(join(dir, "queue"), { recursive: true });
  writeFileSync(join(dir, "queue"), "not a directory"); // every rename into queue/ fails (ENOTDIR)
  const w = await spool.begin();
  await w.write(Buffer.from("Subject: lost?\r\n\r\nx\r\n"));
  await assert.rejects(w.commit(meta()), (e: unknown) => e instanceof SpoolError);
  assert.deepEqual(readdirSync(join(dir, "tmp")), [], "no half-written entry in tmp/");
  rmSync(join(dir, "queue"));
  mkdirSync(join(dir, "queue"));
  const found: string[] = [];
  for await (const m of spool.scan()) found.push(m.id);
  assert.deepEqual(found, []);
});

test("scan reports an unreadable state file; bury moves the entry to dead/ with a reason", async (t) => {
  const { dir, spool } = fresh(t);
  await spool.init();
  const good = await spool.put(meta(), Buffer.from("x\r\n"));
  const bad = await spool.put(meta(), Buffer.from("y\r\n"));
  writeFileSync(join(dir, "queue", `${bad.id}.json`), '{"version": 1, "id": "torn');
  const problems: string[] = [];
  const found: string[] = [];
  for await (const m of spool.scan((p) => problems.push(p.id))) found.push(m.id);
  assert.deepEqual(found, [good.id]);
  assert.deepEqual(problems, [bad.id]);
  await spool.bury(bad.id, "unreadable spool entry: torn");
  assert.deepEqual(readdirSync(join(dir, "dead")).sort(), [`${bad.id}.eml`, `${bad.id}.json`, `${bad.id}.reason`]);
  assert.match(readFileSync(join(dir, "dead", `${bad.id}.reason`), "utf8"), /torn/);
  assert.deepEqual(readdirSync(join(dir, "queue")).sort(), [`${good.id}.eml`, `${good.id}.json`]);
});
