import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { TickBatcher, createLogger, prettyLine } from "../../src/io/log.js";

test("JSON lines by default: one object per event, qid carried by child loggers", () => {
  const lines: string[] = [];
  const dest = new Writable({ write(c, _e, cb) { lines.push(String(c)); cb(); } });
  const log = createLogger("info", dest as unknown as Parameters<typeof createLogger>[1]).child({ qid: "01M89KK1RNFSH8XC" });
  log.info({ rcpt: "a@b.test" }, "delivered");
  log.debug("not at info level");
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]!);
  assert.equal(o.level, "info");
  assert.equal(o.msg, "delivered");
  assert.equal(o.qid, "01M89KK1RNFSH8XC");
  assert.match(o.time, /^\d{4}-\d\d-\d\dT/);
});

test("prettyLine: time, level, message, then the fields; odd input passes through", () => {
  const line = JSON.stringify({ level: "warn", time: "2026-11-25T15:04:18.016Z", pid: 1, name: "mxd", msg: "deferred", qid: "Q1", reply: "451 4.7.1 later", n: 2 });
  assert.equal(prettyLine(line), '15:04:18.016 WARN  deferred qid=Q1 reply="451 4.7.1 later" n=2');
  assert.equal(prettyLine("not json\n"), "not json");
});

test("TickBatcher: lines of one event-loop turn are one write, in order; the next turn's another; flushSync hands on at once", async () => {
  const writes: string[] = [];
  let syncs = 0;
  const b = new TickBatcher({ write: (s) => writes.push(s), flushSync: () => syncs++ });
  const log = createLogger("info", b);
  log.info("one");
  log.info("two");
  assert.equal(writes.length, 0, "nothing before the turn ends");
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 1);
  assert.deepEqual(writes[0]!.trimEnd().split("\n").map((l) => JSON.parse(l).msg), ["one", "two"]);
  log.info("three");
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 2);
  assert.equal(JSON.parse(writes[1]!).msg, "three");
  log.info("four");
  b.flushSync();
  assert.equal(writes.length, 3);
  assert.equal(JSON.parse(writes[2]!).msg, "four");
  assert.equal(syncs, 1);
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 3, "the scheduled drain finds nothing left");
});
