import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { waitForEvent } from "../../src/io/wait-event.js";

const opts = (timeoutMs: number, onFail?: () => void) => ({
  timeoutMs,
  timeout: () => new Error("timed out"),
  fail: { error: (e: Error) => new Error(`failed: ${e.message}`), close: () => new Error("closed") },
  ...(onFail ? { onFail } : {}),
});

const listeners = (e: EventEmitter) => e.eventNames().reduce((n, ev) => n + e.listenerCount(ev), 0);

test("waitForEvent: the event resolves; nothing stays attached", async () => {
  const e = new EventEmitter();
  const p = waitForEvent(e, "ready", opts(5000));
  e.emit("ready");
  await p;
  assert.equal(listeners(e), 0);
});

test("waitForEvent: a fail event rejects with its mapped error, after onFail", async () => {
  for (const [ev, arg, msg] of [["error", new Error("boom"), "failed: boom"], ["close", undefined, "closed"]] as const) {
    const e = new EventEmitter();
    let failed = 0;
    const p = waitForEvent(e, "ready", opts(5000, () => failed++));
    e.emit(ev, arg);
    await assert.rejects(p, { message: msg });
    assert.equal(failed, 1);
    assert.equal(listeners(e), 0);
    e.emit("ready"); // late: ignored
  }
});

test("waitForEvent: the deadline rejects", async () => {
  const e = new EventEmitter();
  let failed = 0;
  await assert.rejects(waitForEvent(e, "ready", opts(20, () => failed++)), { message: "timed out" });
  assert.equal(failed, 1);
  assert.equal(listeners(e), 0);
});
