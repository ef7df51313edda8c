import { test } from "node:test";
import assert from "node:assert/strict";
import { RateLimiter, clientKey } from "../../src/smtp/rate-limit.js";

type Rule = "messages" | "recipients";

function limiter(rules: Partial<Record<Rule, { limit: number; per: number }>>, maxKeys = 1000) {
  let t = 1_000_000;
  const rl = new RateLimiter<Rule>({ rules: { messages: { limit: 0, per: 60_000 }, recipients: { limit: 0, per: 60_000 }, ...rules }, maxKeys }, () => t);
  return { rl, advance: (ms: number) => (t += ms) };
}

test("token bucket in virtual time: burst, refusal, refill, full recovery after the window", () => {
  const { rl, advance } = limiter({ messages: { limit: 3, per: 60_000 } });
  // [ms to advance first, expected answer] for one key; 3 per minute = one token every 20 s.
  const steps: [number, string][] = [
    [0, "ok"],
    [0, "ok"],
    [0, "ok"],
    [0, "refused, retry in 20000 ms"], // burst used up
    [10_000, "refused, retry in 10000 ms"], // half a token back
    [10_000, "ok"], // one token back after 20 s
    [0, "refused, retry in 20000 ms"],
    [60_000, "ok"], // a whole window: full again (3 tokens)
    [0, "ok"],
    [0, "ok"],
    [0, "refused, retry in 20000 ms"],
    [3_600_000, "ok"], // never more than the limit, however long the pause
    [0, "ok"],
    [0, "ok"],
    [0, "refused, retry in 20000 ms"],
  ];
  steps.forEach(([ms, want], i) => {
    advance(ms);
    const d = rl.take("messages", "192.0.2.1");
    assert.equal(d.ok ? "ok" : `refused, retry in ${d.retryAfterMs} ms`, want, `step ${i}`);
  });
  assert.equal(rl.hits.get("messages"), 5);
});

test("keys and rules are independent; limit 0 means no limit", () => {
  const { rl } = limiter({ messages: { limit: 1, per: 1000 }, recipients: { limit: 2, per: 1000 } });
  const cases: [Rule, string, boolean][] = [
    ["messages", "a", true],
    ["messages", "a", false],
    ["messages", "b", true], // another key
    ["recipients", "a", true], // another rule, same key
    ["recipients", "a", true],
    ["recipients", "a", false],
  ];
  for (const [rule, key, ok] of cases) assert.equal(rl.take(rule, key).ok, ok, `${rule} ${key}`);
  const off = limiter({}).rl;
  for (let i = 0; i < 10_000; i++) assert.equal(off.take("messages", "a").ok, true);
  assert.equal(off.size, 0, "no bucket for a rule that is off");
});

test("bounded memory: a client cycling source addresses never grows the table past maxKeys", () => {
  const { rl, advance } = limiter({ messages: { limit: 5, per: 60_000 } }, 100);
  for (let i = 0; i < 100_000; i++) {
    rl.take("messages", `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    if (i % 1000 === 0) advance(1);
  }
  assert.ok(rl.size <= 100 && rl.size >= 50, `size ${rl.size}`);
  assert.equal(rl.evictions, 100_000 - rl.size);
});

test("eviction keeps what is used: a busy key survives a stream of new ones", () => {
  const { rl } = limiter({ messages: { limit: 1000, per: 60_000 } }, 10);
  for (let i = 0; i < 500; i++) {
    rl.take("messages", "busy");
    rl.take("messages", `other-${i}`);
  }
  // Had "busy" been evicted, its bucket would be full again: 1000 tokens minus this one.
  let left = 0;
  while (rl.take("messages", "busy").ok) left++;
  assert.equal(left, 1000 - 500);
});

test("prune drops full buckets only", () => {
  const { rl, advance } = limiter({ messages: { limit: 2, per: 1000 } });
  rl.take("messages", "old");
  advance(600);
  rl.take("messages", "new");
  advance(400); // 2 per second: "old" refilled after 1 s, "new" holds 1 + 0.8 tokens
  assert.equal(rl.prune(), 1);
  assert.equal(rl.size, 1);
  // "new" keeps its state: one more event, then a refusal (a fresh bucket would allow two).
  assert.deepEqual([rl.take("messages", "new").ok, rl.take("messages", "new").ok], [true, false]);
});

test("setSettings: new limits at run time; state kept, capped; smaller maxKeys evicts", () => {
  const { rl, advance } = limiter({ messages: { limit: 10, per: 10_000 } });
  for (let i = 0; i < 10; i++) rl.take("messages", "a");
  assert.equal(rl.take("messages", "a").ok, false);
  rl.setSettings({ rules: { messages: { limit: 100, per: 10_000 }, recipients: { limit: 0, per: 1 } }, maxKeys: 1000 });
  // Still empty, but now refills at 100 per 10 s: one token per 100 ms.
  assert.equal(rl.take("messages", "a").ok, false);
  advance(100);
  assert.equal(rl.take("messages", "a").ok, true);
  rl.setSettings({ rules: { messages: { limit: 0, per: 10_000 }, recipients: { limit: 0, per: 1 } }, maxKeys: 1000 });
  for (let i = 0; i < 50; i++) assert.equal(rl.take("messages", "a").ok, true, "switched off");
  rl.setSettings({ rules: { messages: { limit: 1, per: 10_000 }, recipients: { limit: 0, per: 1 } }, maxKeys: 1000 });
  for (const k of ["b", "c", "d"]) rl.take("messages", k);
  const evicted = rl.evictions;
  rl.setSettings({ rules: { messages: { limit: 1, per: 10_000 }, recipients: { limit: 0, per: 1 } }, maxKeys: 2 });
  assert.ok(rl.size <= 2, `size ${rl.size}`);
  assert.equal(rl.evictions - evicted, 4 - rl.size);
  for (const k of ["e", "f", "g", "h", "i"]) rl.take("messages", k);
  assert.ok(rl.size <= 2, `size ${rl.size} after more keys`);
});

test("clientKey: IPv4 as is, IPv6 by /64, IPv4-mapped as IPv4", () => {
  const cases: [string, string][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::ffff", "2001:db8:1:2::/64"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["::1", "0:0:0:0::/64"],
    ["unknown", "unknown"],
  ];
  for (const [ip, want] of cases) assert.equal(clientKey(ip), want, ip);
});
