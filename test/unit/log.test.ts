import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { createLogger, prettyLine } from "../../src/io/log.js";

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
