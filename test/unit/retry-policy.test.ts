import { test } from "node:test";
import assert from "node:assert/strict";
import { expiresAt, isExpired, nextAttemptAt, nextAttemptDelay, shouldWarnDelay, type RetryPolicy } from "../../src/queue/retry-policy.js";
import type { MessageMeta, RecipientState } from "../../src/core/envelope.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** The config defaults: delivery.retry = { minDelay: "5m", maxDelay: "1h", jitter: 0.1 }. */
const DEFAULTS: RetryPolicy = { minDelay: 5 * MIN, maxDelay: HOUR, jitter: 0.1 };
const mid = () => 0.5; // jitter factor exactly 1
const low = () => 0; // factor 1 - jitter
const high = () => 0.999_999_999; // factor ~ 1 + jitter

test("nextAttemptDelay: doubles from minDelay and stops at maxDelay", () => {
  const table: [attempts: number, expected: number][] = [
    [1, 5 * MIN],
    [2, 10 * MIN],
    [3, 20 * MIN],
    [4, 40 * MIN],
    [5, HOUR],
    [6, HOUR],
    [50, HOUR],
    [10_000, HOUR],
  ];
  for (const [attempts, expected] of table) {
    assert.equal(nextAttemptDelay(attempts, DEFAULTS, mid), expected, `attempts=${attempts}`);
  }
});

test("nextAttemptDelay: jitter spreads ±fraction around the base, also at the cap", () => {
  const table: [attempts: number, random: () => number, expected: number][] = [
    [1, low, 4.5 * MIN],
    [1, high, 5.5 * MIN],
    [3, low, 18 * MIN],
    [3, high, 22 * MIN],
    [9, low, 0.9 * HOUR],
    [9, high, 1.1 * HOUR],
  ];
  for (const [attempts, random, expected] of table) {
    assert.ok(Math.abs(nextAttemptDelay(attempts, DEFAULTS, random) - expected) <= 1, `attempts=${attempts} expected≈${expected}`);
  }
  // Values at the cap are not all equal: the herd stays spread out.
  const atCap = new Set([0, 0.25, 0.5, 0.75].map((r) => nextAttemptDelay(20, DEFAULTS, () => r)));
  assert.equal(atCap.size, 4);
});

test("nextAttemptDelay: never below minDelay*(1-jitter), never negative, always an integer", () => {
  const policies: RetryPolicy[] = [DEFAULTS, { minDelay: 0, maxDelay: 0, jitter: 1 }, { minDelay: 1000, maxDelay: 1000, jitter: 1 }, { minDelay: 30 * MIN, maxDelay: 4 * HOUR, jitter: 0.5 }];
  let seed = 42;
  const lcg = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  for (const p of policies) {
    for (const attempts of [-5, 0, 1, 2, 3, 7, 30, 53, 1e6, Infinity, NaN]) {
      for (let i = 0; i < 50; i++) {
        const d = nextAttemptDelay(attempts, p, lcg);
        assert.ok(Number.isInteger(d), `integer: ${d}`);
        assert.ok(d >= 0, `non-negative: ${d}`);
        assert.ok(d >= Math.ceil(p.minDelay * (1 - p.jitter)), `floor: ${d} policy=${JSON.stringify(p)} attempts=${attempts}`);
        assert.ok(d <= Math.max(p.minDelay, p.maxDelay) * (1 + p.jitter) + 1, `ceiling: ${d}`);
      }
    }
  }
});

test("nextAttemptDelay: attempts below 1 count as the first retry; huge counts do not overflow", () => {
  assert.equal(nextAttemptDelay(0, DEFAULTS, mid), 5 * MIN);
  assert.equal(nextAttemptDelay(-3, DEFAULTS, mid), 5 * MIN);
  assert.equal(nextAttemptDelay(Number.MAX_SAFE_INTEGER, DEFAULTS, mid), HOUR);
  assert.equal(nextAttemptDelay(Infinity, DEFAULTS, mid), HOUR);
  assert.equal(nextAttemptDelay(5000, { minDelay: 0, maxDelay: HOUR, jitter: 0 }, mid), 0);
});

test("nextAttemptDelay: a misbehaving random source is clamped", () => {
  for (const r of [NaN, -1, 2, Infinity, -Infinity]) {
    const d = nextAttemptDelay(1, DEFAULTS, () => r);
    assert.ok(d >= 4.5 * MIN && d <= 5.5 * MIN, `random=${r} → ${d}`);
  }
});

test("nextAttemptDelay: minDelay > maxDelay never shortens the delay", () => {
  assert.equal(nextAttemptDelay(1, { minDelay: HOUR, maxDelay: MIN, jitter: 0 }, mid), HOUR);
  assert.equal(nextAttemptDelay(9, { minDelay: HOUR, maxDelay: MIN, jitter: 0 }, mid), HOUR);
});

test("nextAttemptDelay: an invalid policy is a bug and throws", () => {
  const bad: RetryPolicy[] = [
    { minDelay: -1, maxDelay: HOUR, jitter: 0 },
    { minDelay: MIN, maxDelay: NaN, jitter: 0 },
    { minDelay: MIN, maxDelay: HOUR, jitter: 1.5 },
    { minDelay: MIN, maxDelay: HOUR, jitter: -0.1 },
  ];
  for (const p of bad) assert.throws(() => nextAttemptDelay(1, p, mid), RangeError, JSON.stringify(p));
});

test("isExpired / expiresAt", () => {
  const t0 = Date.UTC(2026, 0, 1);
  const table: [now: number, max: number, expected: boolean][] = [
    [t0, 5 * DAY, false],
    [t0 + 5 * DAY - 1, 5 * DAY, false],
    [t0 + 5 * DAY, 5 * DAY, true],
    [t0 + 6 * DAY, 5 * DAY, true],
    [t0, 0, true],
    [t0 - HOUR, 5 * DAY, false], // clock stepped back: not expired
  ];
  for (const [now, max, expected] of table) assert.equal(isExpired(t0, now, max), expected, `now=${now - t0} max=${max}`);
  assert.equal(expiresAt(t0, 5 * DAY), t0 + 5 * DAY);
});

function rcpt(status: RecipientState["status"], extra: Partial<RecipientState> = {}): RecipientState {
  return { address: "bob@example.org", domain: "example.org", status, attempts: 1, history: [], ...extra };
}

function meta(extra: Partial<MessageMeta> = {}): MessageMeta {
  return {
    version: 1,
    id: "Q1",
    sender: "alice@example.com",
    recipients: [rcpt("pending")],
    receivedAt: "2026-01-01T00:00:00.000Z",
    client: { ip: "192.0.2.1" },
    params: {},
    size: 100,
    eightBit: false,
    nextAttemptAt: "2026-01-01T00:00:00.000Z",
    kind: "message",
    ...extra,
  };
}

test("shouldWarnDelay", () => {
  const t0 = Date.UTC(2026, 0, 1);
  const table: [name: string, m: MessageMeta, now: number, after: number | null, expected: boolean][] = [
    ["disabled", meta(), t0 + DAY, null, false],
    ["too early", meta(), t0 + 4 * HOUR - 1, 4 * HOUR, false],
    ["due exactly", meta(), t0 + 4 * HOUR, 4 * HOUR, true],
    ["due later", meta(), t0 + DAY, 4 * HOUR, true],
    ["already warned", meta({ delayWarned: true }), t0 + DAY, 4 * HOUR, false],
    ["null sender", meta({ sender: "" }), t0 + DAY, 4 * HOUR, false],
    ["our own bounce", meta({ kind: "bounce" }), t0 + DAY, 4 * HOUR, false],
    ["nothing pending", meta({ recipients: [rcpt("delivered"), rcpt("failed")] }), t0 + DAY, 4 * HOUR, false],
    ["one of several pending", meta({ recipients: [rcpt("delivered"), rcpt("pending")] }), t0 + DAY, 4 * HOUR, true],
    ["unreadable receivedAt", meta({ receivedAt: "garbage" }), t0 + DAY, 4 * HOUR, false],
  ];
  for (const [name, m, now, after, expected] of table) assert.equal(shouldWarnDelay(m, now, after), expected, name);
});

test("nextAttemptAt: now + delay while the queue time lasts, then clamped to expiry, then null", () => {
  const t0 = Date.UTC(2026, 0, 1);
  const base = { receivedAtMs: t0, policy: DEFAULTS, maxQueueTime: 5 * DAY, random: mid };
  assert.equal(nextAttemptAt({ ...base, attempts: 1, nowMs: t0 }), t0 + 5 * MIN);
  assert.equal(nextAttemptAt({ ...base, attempts: 3, nowMs: t0 + HOUR }), t0 + HOUR + 20 * MIN);
  // 10 minutes before expiry, a 1 h delay would overshoot: the last attempt is at expiry.
  assert.equal(nextAttemptAt({ ...base, attempts: 20, nowMs: t0 + 5 * DAY - 10 * MIN }), t0 + 5 * DAY);
  assert.equal(nextAttemptAt({ ...base, attempts: 20, nowMs: t0 + 5 * DAY - 1 }), t0 + 5 * DAY);
  // At or past expiry: no more attempts, the recipients fail now.
  assert.equal(nextAttemptAt({ ...base, attempts: 20, nowMs: t0 + 5 * DAY }), null);
  assert.equal(nextAttemptAt({ ...base, attempts: 20, nowMs: t0 + 9 * DAY }), null);
});

test("nextAttemptAt: a whole schedule with the default config ends with an attempt exactly at expiry", () => {
  const t0 = Date.UTC(2026, 0, 1);
  let seed = 7;
  const random = () => ((seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647);
  for (const maxQueueTime of [5 * DAY, 90 * MIN, 7 * MIN]) {
    let now = t0; // first attempt at arrival
    let attempts = 1;
    const times: number[] = [now];
    for (;;) {
      const next = nextAttemptAt({ attempts, receivedAtMs: t0, nowMs: now, policy: DEFAULTS, maxQueueTime, random });
      if (next === null) break;
      assert.ok(next > now, "strictly later");
      assert.ok(next <= t0 + maxQueueTime, "never past expiry");
      now = next;
      attempts++;
      times.push(now);
      assert.ok(attempts < 1000, "terminates");
    }
    assert.equal(times.at(-1), t0 + maxQueueTime, `the final attempt is at expiry (maxQueueTime=${maxQueueTime})`);
    // With min 5 m, doubling to 1 h, the gaps stay within the jittered bounds.
    for (let i = 1; i < times.length - 1; i++) {
      const gap = times[i]! - times[i - 1]!;
      assert.ok(gap >= 4.5 * MIN && gap <= 1.1 * HOUR + 1, `gap ${gap}`);
    }
  }
});
