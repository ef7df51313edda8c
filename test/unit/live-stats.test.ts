import { test } from "node:test";
import assert from "node:assert/strict";
import { LiveStats, RING, SAMPLE_MS } from "../../src/admin/live-stats.js";
import { buildSnapshot } from "../../src/admin/status-page.js";
import type { DeliveryLogFields } from "../../src/queue/delivery-log.js";

const f = (to: string, status: DeliveryLogFields["status"], reply: string, tls = false): DeliveryLogFields => ({
  event: "delivery", status, from: "a@x", to, via: "mx", attempt: 1, dsn: "2.0.0", reply, delay: 1, delayQueued: 0, delayAttempt: 1, size: 10,
  ...(tls ? { tls: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", verified: false } } : {}),
});

test("LiveStats: rates over 10 s and 60 s windows, totals, per-destination reply and TLS, reasons", () => {
  let now = 1_000_000_000_000;
  const s = new LiveStats(() => now);
  for (let i = 0; i < 20; i++) s.accepted();
  s.delivery("Q1", f("a@ok.test", "sent", "250 ok", true));
  s.delivery("Q2", f("b@grey.test", "deferred", "451 4.7.1 <b@grey.test> greylisted"));
  s.delivery("Q3", f("c@grey.test", "deferred", "451 4.7.1 <c@grey.test> greylisted"));
  s.delivery("Q4", f("d@gone.test", "expired", "4.4.7 expired"));
  assert.deepEqual(s.rates(), { acceptedPerSec: 2, deliveredPerSec: 0.1, deferredPerMin: 2, bouncedPerMin: 1 });
  assert.deepEqual(s.totals, { accepted: 20, delivered: 1, deferred: 2, bounced: 1 });
  assert.deepEqual(s.topReasons(), [{ reason: "451 4.7.1 <…> greylisted", count: 2 }], "addresses do not split reasons");
  assert.equal(s.domain("grey.test")?.lastReply, "451 4.7.1 <c@grey.test> greylisted");
  assert.deepEqual(s.tlsOutcomes().find((t) => t.domain === "ok.test"), { domain: "ok.test", version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", verified: false, used: true });
  assert.equal(s.recentEvents()[0]!.qid, "Q4", "newest first");
  now += 11_000;
  assert.equal(s.rates().acceptedPerSec, 0, "past the 10 s window");
  assert.equal(s.rates().deferredPerMin, 2, "still inside the minute");
  now += 60_000;
  assert.equal(s.rates().deferredPerMin, 0);
});

test("LiveStats: one sample per 10 s, an hour kept", () => {
  let now = 0;
  const s = new LiveStats(() => now);
  for (let i = 0; i < RING + 50; i++) {
    now += SAMPLE_MS;
    s.tick({ queued: i, deferred: 0, held: 0 });
    s.tick({ queued: -1, deferred: 0, held: 0 }); // same instant: no second sample
  }
  const h = s.history();
  assert.equal(h.length, RING);
  assert.equal(h[h.length - 1]!.queued, RING + 49);
  assert.equal(h[0]!.queued, 50);
});

test("buildSnapshot: destinations joined with their last reply, oldest age from the queue id", () => {
  const now = Date.UTC(2026, 0, 1, 12);
  const live = new LiveStats(() => now);
  live.delivery("Q", f("x@grey.test", "deferred", "451 later"));
  const snap = buildSnapshot({
    nowMs: now, hostname: "h", startedAtMs: now - 5000, live,
    counts: { queued: 1, deferred: 2, held: 0, total: 3, active: 0, parked: 0 }, dead: 4,
    oldestId: "01KB2X7Q9M4F8Z3H", paused: false,
    destinations: [{ domain: "grey.test", messages: 2, held: 0, inFlight: 1, nextAttemptMs: now + 60_000, paused: false }],
  });
  assert.equal(snap.uptimeSeconds, 5);
  assert.equal(snap.queue.dead, 4);
  assert.deepEqual(snap.destinations[0], { domain: "grey.test", messages: 2, held: 0, inFlight: 1, paused: false, nextAttemptAt: new Date(now + 60_000).toISOString(), lastReply: "451 later", lastStatus: "deferred" });
  assert.ok(typeof snap.oldestAgeSeconds === "number" && snap.oldestAgeSeconds > 0);
});
