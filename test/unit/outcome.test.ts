// queue/outcome.ts as tables: what a result does to a recipient, expiry, and the plan after a run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newRecipient, type RecipientState } from "../../src/core/envelope.js";
import { HISTORY_MAX, afterRun, expireRecipient, recordResult } from "../../src/queue/outcome.js";
import type { RecipientResult } from "../../src/delivery/courier.js";

const NOW = "2026-12-01T12:00:00.000Z";
const res = (outcome: RecipientResult["outcome"], extra: Partial<RecipientResult> = {}): RecipientResult => ({
  recipient: "b@y.test",
  outcome,
  reply: outcome === "delivered" ? "250 2.0.0 ok" : outcome === "transient" ? "451 4.7.1 later" : "550 5.1.1 no such user",
  status: outcome === "delivered" ? "2.0.0" : outcome === "transient" ? "4.7.1" : "5.1.1",
  remote: true,
  ...extra,
});

test("recordResult: status, attempts, history and owed DSN per outcome", () => {
  const rows: [RecipientResult, { event: string; status: string; attempts: number; dsnOwed?: boolean; history: number }][] = [
    [res("delivered"), { event: "delivered", status: "delivered", attempts: 1, history: 1 }],
    [res("transient"), { event: "deferred", status: "pending", attempts: 1, history: 1 }],
    [res("permanent"), { event: "bounced", status: "failed", attempts: 1, dsnOwed: true, history: 1 }],
    [res("transient", { retrySoon: true }), { event: "busy", status: "pending", attempts: 0, history: 0 }],
    // retrySoon on anything but a temporary result is an ordinary result
    [res("delivered", { retrySoon: true }), { event: "delivered", status: "delivered", attempts: 1, history: 1 }],
  ];
  for (const [result, want] of rows) {
    const r = newRecipient("b@y.test");
    const { event } = recordResult(r, result, NOW);
    assert.deepEqual({ event, status: r.status, attempts: r.attempts, dsnOwed: r.dsnOwed, history: r.history.length }, { ...want, dsnOwed: want.dsnOwed }, JSON.stringify(result));
    if (want.status !== "pending") assert.equal(r.finalAt, NOW);
  }
});

test("recordResult: replies kept as excerpts; history bounded to HISTORY_MAX, newest last", () => {
  const r = newRecipient("b@y.test");
  for (let i = 0; i < HISTORY_MAX + 5; i++) recordResult(r, res("transient", { reply: `451 4.7.1 try ${i} ` + "x".repeat(10_000) }), NOW);
  assert.equal(r.history.length, HISTORY_MAX);
  assert.equal(r.attempts, HISTORY_MAX + 5);
  assert.match(r.history[HISTORY_MAX - 1]!.reply, /^451 4\.7\.1 try 24 /);
  assert.ok(r.history.every((h) => h.reply.length <= 600), "excerpts");
});

test("expireRecipient: 4.4.7 quoting the last error, failed, DSN owed", () => {
  const r: RecipientState = { ...newRecipient("b@y.test"), attempts: 3, history: [{ at: NOW, outcome: "transient", status: "4.7.1", reply: "451 4.7.1 greylisted", remote: true, mx: "mx.y.test", ip: "192.0.2.1" }] };
  const rec = expireRecipient(r, Date.parse(NOW), 5 * 86_400_000);
  assert.deepEqual(
    { status: r.status, dsnOwed: r.dsnOwed, code: rec.status, reply: rec.reply, mx: rec.mx, remote: rec.remote },
    { status: "failed", dsnOwed: true, code: "4.4.7", reply: "delivery time expired after 120h; last error: 451 4.7.1 greylisted", mx: "mx.y.test", remote: true },
  );
});

test("afterRun: none, soon (only busy hosts), retry with backoff, expire", () => {
  const policy = { minDelay: 300_000, maxDelay: 3_600_000, jitter: 0 };
  const now = Date.parse(NOW);
  const a = { ...newRecipient("a@x.test"), attempts: 1 };
  const b = { ...newRecipient("b@x.test"), attempts: 2 };
  const base = { receivedAtMs: now - 60_000, nowMs: now, policy, maxQueueTime: 86_400_000, random: () => 0.5 };
  assert.deepEqual(afterRun({ ...base, pending: [], busy: new Set() }), { kind: "none" });
  assert.deepEqual(afterRun({ ...base, pending: [a, b], busy: new Set([a, b]) }), { kind: "soon", at: now + 1500 });
  // One recipient really attempted: the backoff of the most-tried one applies to all.
  assert.deepEqual(afterRun({ ...base, pending: [a, b], busy: new Set([a]) }), { kind: "retry", at: now + 600_000 });
  assert.deepEqual(afterRun({ ...base, pending: [a], busy: new Set(), receivedAtMs: now - 86_400_000 }), { kind: "expire" });
  // Out of time, even when only busy: never "soon" past the queue lifetime.
  assert.deepEqual(afterRun({ ...base, pending: [a], busy: new Set([a]), receivedAtMs: now - 86_400_001 }), { kind: "expire" });
});

test("recordResult: the connection's TLS and the policy are kept in the history entry", () => {
  const r = newRecipient("b@y.test");
  const { record } = recordResult(r, res("delivered", { mx: "mx.y.test", tls: { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", verified: true, verifyReason: "ok" }, tlsPolicy: "verify (domain)" }), NOW);
  assert.deepEqual(record?.tls, { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", verified: true });
  assert.equal(record?.tlsPolicy, "verify (domain)");
  const plain = recordResult(newRecipient("b@y.test"), res("transient", { tlsPolicy: "encrypt (default)" }), NOW).record;
  assert.equal(plain?.tls, undefined);
  assert.equal(plain?.tlsPolicy, "encrypt (default)");
});
