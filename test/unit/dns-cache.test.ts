import { test } from "node:test";
import assert from "node:assert/strict";
import { AnswerStore, cacheLifetime, cachingResolver, dnsCacheSettings, type DnsCacheSettings, type LookupOutcome } from "../../src/io/dns-cache.js";
import { DnsError, type TimedAnswer, type TimedResolver } from "../../src/io/resolver.js";
import { FakeClock } from "../../src/io/clock.js";
import { parseConfig } from "../../src/config.js";

const S: DnsCacheSettings = { maxTtlMs: 300_000, unknownTtlMs: 60_000, negativeTtlMs: 30_000, maxEntries: 100 };

test("cacheLifetime: the record's TTL, capped; unknown TTL and negative answers fixed; failures never", () => {
  const nx = new DnsError("nxdomain", "x.test", "ENOTFOUND");
  const nodata = new DnsError("nodata", "x.test", "ENODATA");
  const servfail = new DnsError("temporary", "x.test", "ESERVFAIL");
  const timeout = new DnsError("temporary", "x.test", "ETIMEOUT");
  const rows: [string, LookupOutcome, Partial<DnsCacheSettings>, number][] = [
    ["TTL below the cap", { ok: true, ttlMs: 20_000 }, {}, 20_000],
    ["TTL above the cap", { ok: true, ttlMs: 86_400_000 }, {}, 300_000],
    ["TTL 0: not kept", { ok: true, ttlMs: 0 }, {}, 0],
    ["unknown TTL (MX, TXT)", { ok: true, ttlMs: undefined }, {}, 60_000],
    ["unknown TTL above the cap", { ok: true, ttlMs: undefined }, { maxTtlMs: 10_000 }, 10_000],
    ["NXDOMAIN", { ok: false, error: nx }, {}, 30_000],
    ["NODATA", { ok: false, error: nodata }, {}, 30_000],
    ["negative capped by maxTtl", { ok: false, error: nx }, { maxTtlMs: 5_000 }, 5_000],
    ["negative caching off", { ok: false, error: nodata }, { negativeTtlMs: 0 }, 0],
    ["SERVFAIL", { ok: false, error: servfail }, {}, 0],
    ["timeout", { ok: false, error: timeout }, {}, 0],
    ["not a DnsError", { ok: false, error: new Error("bug") }, {}, 0],
    ["cache off (maxTtl 0)", { ok: true, ttlMs: 20_000 }, { maxTtlMs: 0 }, 0],
  ];
  for (const [what, o, s, want] of rows) assert.equal(cacheLifetime(o, { ...S, ...s }), want, what);
});

test("dnsCacheSettings: the config's defaults; enabled false or maxTtl 0 turn the cache off", () => {
  const c = parseConfig({}).dns.cache;
  assert.deepEqual(dnsCacheSettings(c), { maxTtlMs: 300_000, unknownTtlMs: 60_000, negativeTtlMs: 30_000, maxEntries: 10_000 });
  assert.equal(dnsCacheSettings(parseConfig({ dns: { cache: { enabled: false } } }).dns.cache), undefined);
  assert.equal(dnsCacheSettings(parseConfig({ dns: { cache: { maxTtl: "0s" } } }).dns.cache), undefined);
  assert.throws(() => parseConfig({ dns: { cache: { maxTtl: "soon" } } }), /dns\.cache\.maxTtl/);
  assert.throws(() => parseConfig({ dns: { cache: { maxEntrys: 5 } } }), /maxEntrys/);
});

/** A scripted resolver: answers from `zone` (name → A answer or error), counting the queries and holding them until release(). */
function fakeDns(zone: Record<string, TimedAnswer<string[]> | DnsError>, opts: { hold?: boolean } = {}) {
  const asked: string[] = [];
  const held: (() => void)[] = [];
  const answer = (name: string): Promise<TimedAnswer<string[]>> => {
    asked.push(name);
    const go = () => {
      const v = zone[name] ?? new DnsError("nxdomain", name, "ENOTFOUND");
      return v instanceof DnsError ? Promise.reject(v) : Promise.resolve({ value: [...v.value], ttlMs: v.ttlMs });
    };
    if (!opts.hold) return go();
    return new Promise((resolve, reject) => held.push(() => go().then(resolve, reject)));
  };
  const r: TimedResolver = {
    mx: async (d) => ({ value: [{ exchange: `mx.${d}`, priority: 10 }], ttlMs: undefined }),
    a: answer,
    aaaa: answer,
    txt: async () => ({ value: [["v=STSv1; id=1"]], ttlMs: undefined }),
  };
  return { r, asked, release: () => held.splice(0).forEach((f) => f()) };
}

/** "1.2.3.4" or "error nxdomain" (the lookup's outcome as text). */
async function outcome(p: Promise<string[]>): Promise<string> {
  return p.then((v) => v.join(","), (e: DnsError) => `error ${e.kind}`);
}

test("in virtual time: a hit while the TTL lasts, a new query when it expires; negatives kept briefly; failures never", async () => {
  const clock = new FakeClock();
  const zone: Record<string, TimedAnswer<string[]> | DnsError> = {
    "mx.a.test": { value: ["192.0.2.1"], ttlMs: 10_000 },
    "mx.long.test": { value: ["192.0.2.2"], ttlMs: 3_600_000 },
    "mx.fail.test": new DnsError("temporary", "mx.fail.test", "ESERVFAIL"),
  };
  const dns = fakeDns(zone);
  const c = cachingResolver(dns.r, S, () => clock.now());
  // [ms to advance first, name, expected outcome, expected queries sent so far]
  const steps: [number, string, string, number][] = [
    [0, "mx.a.test", "192.0.2.1", 1],
    [9_999, "MX.A.test.", "192.0.2.1", 1], // same name (case, trailing dot), still within the TTL
    [1, "mx.a.test", "192.0.2.1", 2], // TTL over: asked again
    [0, "mx.long.test", "192.0.2.2", 3],
    [299_999, "mx.long.test", "192.0.2.2", 3], // a one-hour TTL is kept 5 minutes (maxTtl)...
    [1, "mx.long.test", "192.0.2.2", 4], // ...not longer
    [0, "nx.test", "error nxdomain", 5],
    [29_999, "nx.test", "error nxdomain", 5], // the negative answer is kept 30 s
    [1, "nx.test", "error nxdomain", 6],
    [0, "mx.fail.test", "error temporary", 7],
    [0, "mx.fail.test", "error temporary", 8], // SERVFAIL is never kept
  ];
  for (const [i, [advance, name, want, queries]] of steps.entries()) {
    clock.advance(advance);
    assert.equal(await outcome(c.a(name)), want, `step ${i}: ${name}`);
    assert.equal(dns.asked.length, queries, `step ${i}: queries sent`);
  }
  // A name that recovers is answered at once (the failure was not kept).
  zone["mx.fail.test"] = { value: ["192.0.2.9"], ttlMs: 60_000 };
  assert.equal(await outcome(c.a("mx.fail.test")), "192.0.2.9");
  // A record that changes is seen once the old TTL is over, not before.
  assert.equal(await outcome(c.a("mx.a.test")), "192.0.2.1"); // expired long ago: a fresh answer, kept 10 s
  zone["mx.a.test"] = { value: ["192.0.2.77"], ttlMs: 10_000 };
  clock.advance(9_999);
  assert.equal(await outcome(c.a("mx.a.test")), "192.0.2.1");
  clock.advance(1);
  assert.equal(await outcome(c.a("mx.a.test")), "192.0.2.77");
});

test("MX and TXT (TTL unknown) are kept unknownTtl; types are cached apart; callers get their own copies", async () => {
  const clock = new FakeClock();
  let mxQueries = 0;
  const inner: TimedResolver = {
    mx: async (d) => (mxQueries++, { value: [{ exchange: `mx.${d}`, priority: 10 }], ttlMs: undefined }),
    a: async () => ({ value: ["192.0.2.1"], ttlMs: 60_000 }),
    aaaa: async () => ({ value: ["2001:db8::1"], ttlMs: 60_000 }),
  };
  const c = cachingResolver(inner, S, () => clock.now());
  assert.equal(c.txt, undefined, "no TXT lookups when the inner resolver has none");
  const first = await c.mx("a.test");
  first[0]!.exchange = "edited.test";
  first.push({ exchange: "more.test", priority: 1 });
  assert.deepEqual(await c.mx("a.test"), [{ exchange: "mx.a.test", priority: 10 }]);
  clock.advance(59_999);
  await c.mx("a.test");
  assert.equal(mxQueries, 1);
  clock.advance(1);
  await c.mx("a.test");
  assert.equal(mxQueries, 2);
  assert.deepEqual([await c.a("h.test"), await c.aaaa("h.test")], [["192.0.2.1"], ["2001:db8::1"]]);
  assert.deepEqual(c.stats(), { hits: 2, shared: 0, queries: 4, entries: 3 });
});

test("concurrent lookups of one name and type share one query, its answer and its failure", async () => {
  const clock = new FakeClock();
  const dns = fakeDns({ "mx.a.test": { value: ["192.0.2.1"], ttlMs: 10_000 }, "mx.bad.test": new DnsError("temporary", "mx.bad.test", "ETIMEOUT") }, { hold: true });
  const c = cachingResolver(dns.r, S, () => clock.now());
  const ok = [c.a("mx.a.test"), c.a("mx.a.test"), c.a("MX.A.TEST")].map(outcome);
  const bad = [c.a("mx.bad.test"), c.a("mx.bad.test")].map(outcome);
  const other = outcome(c.aaaa("mx.a.test")); // another type: its own query
  assert.deepEqual(dns.asked, ["mx.a.test", "mx.bad.test", "mx.a.test"]);
  dns.release();
  assert.deepEqual(await Promise.all([...ok, ...bad, other]), ["192.0.2.1", "192.0.2.1", "192.0.2.1", "error temporary", "error temporary", "192.0.2.1"]);
  assert.deepEqual(c.stats(), { hits: 0, shared: 3, queries: 3, entries: 2 });
  // The shared failure was not kept: the next lookup asks again.
  const again = outcome(c.a("mx.bad.test"));
  assert.equal(dns.asked.length, 4);
  dns.release();
  assert.equal(await again, "error temporary");
});

test("memory is bounded: never more than maxEntries answers; recently used ones survive a flood", async () => {
  const clock = new FakeClock();
  const zone: Record<string, TimedAnswer<string[]>> = {};
  for (let i = 0; i < 1000; i++) zone[`h${i}.test`] = { value: ["192.0.2.1"], ttlMs: 60_000 };
  const dns = fakeDns(zone);
  const c = cachingResolver(dns.r, { ...S, maxEntries: 10 }, () => clock.now());
  let maxSeen = 0;
  for (let i = 0; i < 1000; i++) {
    await c.a(`h${i}.test`);
    await c.a("h0.test"); // kept in use: moved to the current generation each time it is found in the previous one
    maxSeen = Math.max(maxSeen, c.stats().entries);
  }
  assert.ok(maxSeen <= 10, `held ${maxSeen} answers`);
  const before = dns.asked.length;
  await c.a("h0.test");
  assert.equal(dns.asked.length, before, "the name in use is still cached");
  await c.a("h500.test");
  assert.equal(dns.asked.length, before + 1, "an old one is gone");
});

test("AnswerStore: generations of maxEntries/2; a hit in the previous one moves it; expired entries are dropped", () => {
  const s = new AnswerStore(4);
  const e = (expiresAt: number) => ({ expiresAt, ok: true, value: [] });
  s.set("a", e(100));
  s.set("b", e(100));
  s.set("c", e(100)); // current {a,b} full → previous; current {c}
  assert.equal(s.size, 3);
  assert.ok(s.get("a", 0), "found in the previous generation, moved to the current one");
  s.set("d", e(100)); // current {c,a} full → previous {c,a}; b dropped
  assert.equal(s.get("b", 0), undefined);
  assert.ok(s.get("c", 0) && s.get("a", 0) && s.get("d", 0));
  assert.ok(s.size <= 4);
  assert.equal(s.get("d", 100), undefined, "expired at its time");
  assert.equal(s.get("d", 0), undefined, "and gone");
});
