// Pause state and message state classification (pure).
import { test } from "node:test";
import assert from "node:assert/strict";
import { INITIAL_CONTROL, decodeControl, isPausedFor, messageState, withPause, withResume } from "../../src/queue/state.js";
import type { RecipientState } from "../../src/core/envelope.js";

test("pause/resume: global and per domain are independent; resume without a domain keeps domain pauses", () => {
  let s = withPause(INITIAL_CONTROL, "B.test");
  s = withPause(s, "a.test");
  s = withPause(s, "b.test");
  assert.deepEqual(s.pausedDomains, ["a.test", "b.test"]);
  assert.equal(isPausedFor(s, "a.test"), true);
  assert.equal(isPausedFor(s, "c.test"), false);
  s = withPause(s);
  assert.equal(isPausedFor(s, "c.test"), true);
  s = withResume(s);
  assert.equal(s.paused, false);
  assert.deepEqual(s.pausedDomains, ["a.test", "b.test"]);
  s = withResume(s, "A.TEST");
  assert.deepEqual(s.pausedDomains, ["b.test"]);
  assert.deepEqual(INITIAL_CONTROL.pausedDomains, [], "the initial state is never mutated");
});

test("decodeControl refuses a damaged file instead of silently resuming", () => {
  assert.deepEqual(decodeControl({ version: 1, paused: true, pausedDomains: ["X.test"], updatedAt: "…" }), { version: 1, paused: true, pausedDomains: ["x.test"] });
  assert.throws(() => decodeControl({ paused: true, pausedDomains: [] }), /version/);
  assert.throws(() => decodeControl({ version: 1, paused: "yes", pausedDomains: [] }), /paused/);
  assert.throws(() => decodeControl({ version: 1, paused: false, pausedDomains: [1] }), /pausedDomains/);
});

test("message state: held, deferred (a pending recipient was tried), queued", () => {
  const r = (status: RecipientState["status"], attempts: number): RecipientState => ({ address: "a@b", domain: "b", status, attempts, history: [] });
  assert.equal(messageState({ held: true, recipients: [r("pending", 3)] }), "held");
  assert.equal(messageState({ recipients: [r("pending", 1)] }), "deferred");
  assert.equal(messageState({ recipients: [r("delivered", 1), r("pending", 0)] }), "queued");
});
