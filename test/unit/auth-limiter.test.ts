// Failed-AUTH limits per IP, in virtual time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AuthLimiter } from "../../src/smtp/auth-limiter.js";

const MIN = 60_000;
function limiter(maxEntries?: number) {
  let t = 1_000_000;
  const l = new AuthLimiter({ max: 3, window: 15 * MIN, backoff: MIN, maxBackoff: 8 * MIN, maxEntries }, () => t);
  return { l, advance: (ms: number) => (t += ms) };
}

test("the max-th failure blocks for backoff; each failure after a block doubles it, up to maxBackoff", () => {
  const { l, advance } = limiter();
  const ip = "192.0.2.1";
  assert.deepEqual(l.fail(ip), { blocked: false, failures: 1 });
  assert.deepEqual(l.fail(ip), { blocked: false, failures: 2 });
  assert.equal(l.blockedFor(ip), 0, "not blocked below the limit (control)");
  assert.deepEqual(l.fail(ip), { blocked: true, failures: 3, forMs: MIN });
  assert.equal(l.blockedFor(ip), MIN);
  assert.equal(l.blockedFor("192.0.2.2"), 0, "per IP");
  assert.equal(l.blockedCount(), 1);
  advance(MIN);
  assert.equal(l.blockedFor(ip), 0, "the block ends");
  // The back-off grows: 2, 4, 8, then capped at 8 minutes.
  const seen: number[] = [];
  for (let i = 0; i < 4; i++) {
    const f = l.fail(ip);
    assert.equal(f.blocked, true);
    if (f.blocked) seen.push(f.forMs / MIN);
    advance(l.blockedFor(ip));
  }
  assert.deepEqual(seen, [2, 4, 8, 8]);
});

test("failures are forgotten after window; a quiet IP starts over at backoff", () => {
  const { l, advance } = limiter();
  const ip = "2001:db8::1";
  l.fail(ip);
  l.fail(ip);
  advance(15 * MIN + 1);
  assert.deepEqual(l.fail(ip), { blocked: false, failures: 1 }, "old failures no longer count");
  l.fail(ip);
  assert.equal(l.fail(ip).blocked, true);
  advance(MIN + 15 * MIN + 1);
  assert.equal(l.size, 1);
  l.sweep();
  assert.equal(l.size, 0, "forgotten once quiet for window + last block");
  assert.deepEqual(l.fail(ip), { blocked: false, failures: 1 });
});

test("memory is bounded: the least recently failing IPs are dropped first", () => {
  const { l } = limiter(100);
  for (let i = 0; i < 1000; i++) l.fail(`10.0.${i >> 8}.${i & 255}`);
  assert.equal(l.size, 100);
  assert.equal(l.fail("10.0.3.231").failures, 2, "a recent IP is still counted");
  assert.equal(l.fail("10.0.0.0").failures, 1, "an old one was dropped");
});
