// MtaStsPolicies with injected TXT, HTTPS and disk: offline, in virtual time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MtaStsPolicies } from "../../src/delivery/mta-sts-policies.js";
import type { StsFetchResult } from "../../src/delivery/mta-sts.js";
import { DnsError } from "../../src/io/resolver.js";
import type { StsStore } from "../../src/io/sts-store.js";
import { silentLogger } from "../../src/io/log.js";
import { FakeClock } from "../../src/io/clock.js";

const H = 3_600_000;
const D = 24 * H;
const POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.a.test\r\nmax_age: 604800\r\n";

interface World {
  txt: Record<string, string[][] | "nxdomain" | "servfail">;
  http: Record<string, StsFetchResult>;
  fetches: string[];
  txtQueries: string[];
  disk: Map<string, unknown>;
  now: number;
}

function world(): World {
  return {
    txt: { "_mta-sts.a.test": [["v=STSv1; id=one"]] },
    http: { "https://mta-sts.a.test/.well-known/mta-sts.txt": { ok: true, status: 200, contentType: "text/plain", body: POLICY } },
    fetches: [],
    txtQueries: [],
    disk: new Map(),
    now: Date.UTC(2026, 0, 1),
  };
}

function policies(w: World): MtaStsPolicies {
  const store: StsStore = {
    load: async (d) => (w.disk.has(d) ? JSON.parse(JSON.stringify(w.disk.get(d))) : undefined),
    save: async (d, e) => void w.disk.set(d, JSON.parse(JSON.stringify(e))),
    domains: async (limit) => [...w.disk.keys()].slice(0, limit),
  };
  return new MtaStsPolicies({
    txt: async (name) => {
      w.txtQueries.push(name);
      const r = w.txt[name];
      if (r === undefined || r === "nxdomain") throw new DnsError("nxdomain", name, "ENOTFOUND");
      if (r === "servfail") throw new DnsError("temporary", name, "ESERVFAIL");
      return r;
    },
    fetch: async (url) => {
      w.fetches.push(url);
      return w.http[url] ?? { ok: false, reason: "connect ECONNREFUSED" };
    },
    store,
    now: () => w.now,
    fetchTimeoutMs: 1000,
    maxAgeMs: 365 * D,
    refreshAfterMs: D,
    logger: silentLogger(),
  });
}

const URL_A = "https://mta-sts.a.test/.well-known/mta-sts.txt";

test("MtaStsPolicies: fetch once, then the cache; a new TXT id refetches", async () => {
  const w = world();
  const p = policies(w);
  const first = await p.policyFor("A.test.");
  assert.equal(first.how, "fetched");
  assert.deepEqual(first.entry?.policy, { mode: "enforce", maxAge: 604800, mx: ["mx.a.test"] });
  assert.deepEqual(w.fetches, [URL_A]);
  w.now += H;
  assert.match((await p.policyFor("a.test")).how, /^cached/);
  assert.equal(w.fetches.length, 1, "same id, fresh: no fetch");
  w.txt["_mta-sts.a.test"] = [["v=STSv1; id=two"]];
  w.http[URL_A] = { ok: true, status: 200, contentType: "text/plain", body: POLICY.replace("enforce", "testing") };
  // The TXT answer is reused for 5 minutes: the new id is not seen yet, and not asked for.
  w.now += 4 * 60_000;
  const queries = w.txtQueries.length;
  assert.equal((await p.policyFor("a.test")).entry?.id, "one");
  assert.equal(w.txtQueries.length, queries, "TXT answer reused within 5 minutes");
  w.now += 2 * 60_000;
  const changed = await p.policyFor("a.test");
  assert.equal(changed.how, "fetched");
  assert.equal(changed.entry?.id, "two");
  assert.equal(changed.entry?.policy.mode, "testing");
  assert.equal(w.fetches.length, 2);
});

test("MtaStsPolicies: the disk cache survives a restart and applies when the HTTPS server is down", async () => {
  const w = world();
  await policies(w).policyFor("a.test");
  delete w.http[URL_A]; // the policy server is down from now on
  w.now += 2 * H;
  // A new instance (a restart) finds the policy on disk: same id, no fetch needed.
  const again = await policies(w).policyFor("a.test");
  assert.match(again.how, /^cached/);
  assert.equal(again.entry?.policy.mode, "enforce");
  assert.equal(w.fetches.length, 1);
  // The id changed but the fetch fails: the cached policy stays in force (RFC 8461 §5.1).
  w.txt["_mta-sts.a.test"] = [["v=STSv1; id=two"]];
  const fallback = await policies(w).policyFor("a.test");
  assert.match(fallback.how, /^cached \(fetch failed: connect ECONNREFUSED\)/);
  assert.equal(fallback.entry?.id, "one");
  // The other side: nothing cached and the server down means no policy at all.
  const w2 = world();
  delete w2.http[URL_A];
  const none = await policies(w2).policyFor("a.test");
  assert.equal(none.entry, undefined);
  assert.match(none.how, /no policy \(fetch failed/);
});

test("MtaStsPolicies: refreshed before expiry; expired and unreachable means no policy", async () => {
  const w = world();
  const p = policies(w);
  await p.policyFor("a.test");
  w.now += D; // refreshAfter reached: fetched again though the id is the same
  assert.equal((await p.policyFor("a.test")).how, "fetched");
  assert.equal(w.fetches.length, 2);
  delete w.http[URL_A];
  w.now += 6 * D; // 6 days after the refresh: still valid, refresh fails, cached one used
  assert.match((await p.policyFor("a.test")).how, /^cached \(fetch failed/);
  w.now += 2 * D; // past max_age (7 days after the last fetch)
  const gone = await p.policyFor("a.test");
  assert.equal(gone.entry, undefined);
});

test("MtaStsPolicies: no TXT record or a failed lookup keeps a valid cached policy; otherwise none", async () => {
  const w = world();
  const p = policies(w);
  await p.policyFor("a.test");
  const q = w.txtQueries.length;
  w.txt["_mta-sts.a.test"] = "servfail";
  w.now += 6 * 60_000; // past the TXT reuse time
  assert.match((await p.policyFor("a.test")).how, /TXT lookup of _mta-sts\.a\.test failed/);
  assert.equal((await p.policyFor("a.test")).entry?.id, "one");
  assert.equal(w.txtQueries.length, q + 2, "a failed TXT lookup is not reused");
  w.txt["_mta-sts.a.test"] = "nxdomain";
  assert.match((await p.policyFor("a.test")).how, /no _mta-sts\.a\.test TXT record; the cached policy/);
  assert.equal(w.fetches.length, 1);
  const none = await p.policyFor("b.test");
  assert.equal(none.entry, undefined);
  assert.match(none.how, /no _mta-sts\.b\.test TXT record/);
  assert.equal(w.fetches.length, 1, "no TXT record: nothing fetched");
});

test("MtaStsPolicies: a bad policy file, a redirect, a corrupt cache file", async () => {
  const w = world();
  w.http[URL_A] = { ok: true, status: 302, contentType: "text/html", body: "" };
  assert.match((await policies(w).policyFor("a.test")).how, /HTTP status 302 \(redirects are not followed/);
  w.http[URL_A] = { ok: true, status: 200, contentType: "text/plain", body: "version: STSv1\nmode: enforce\nmax_age: 60\n" };
  assert.match((await policies(w).policyFor("a.test")).how, /mode enforce without any mx pattern/);
  w.disk.set("a.test", { domain: "a.test", id: "one", policy: { mode: "enforce" } }); // torn/hand-edited
  w.http[URL_A] = { ok: true, status: 200, contentType: "text/plain", body: POLICY };
  assert.equal((await policies(w).policyFor("a.test")).how, "fetched", "an invalid cache file is ignored");
});

test("MtaStsPolicies: concurrent lookups of one domain share one fetch", async () => {
  const w = world();
  const p = policies(w);
  const all = await Promise.all([p.policyFor("a.test"), p.policyFor("a.test"), p.policyFor("a.test")]);
  assert.equal(w.fetches.length, 1);
  for (const r of all) assert.equal(r.entry?.id, "one");
});

test("MtaStsPolicies: the background refresh fetches a cached policy again before it expires, without any mail", async () => {
  const w = world();
  w.txt["_mta-sts.b.test"] = [["v=STSv1; id=b1"]];
  w.http["https://mta-sts.b.test/.well-known/mta-sts.txt"] = { ok: true, status: 200, contentType: "text/plain", body: POLICY.replace("604800", "3600") };
  // A previous run cached both policies on disk (a.test: 7 days, b.test: 1 hour).
  const before = policies(w);
  await before.policyFor("a.test");
  await before.policyFor("b.test");
  assert.equal(w.fetches.length, 2);
  const clock = new FakeClock(w.now);
  const p = policies(w); // a restart: nothing in memory
  p.startRefresh(clock, 10 * 60_000);
  const step = async (ms: number) => {
    clock.advance(ms);
    w.now = clock.now();
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  await step(0);
  for (let i = 0; i < 2; i++) await step(10 * 60_000);
  assert.equal(w.fetches.length, 2, "20 minutes: nothing due yet");
  for (let i = 0; i < 2; i++) await step(10 * 60_000); // b.test is past half its hour: refreshed; a.test is not due
  assert.deepEqual(w.fetches.slice(2), ["https://mta-sts.b.test/.well-known/mta-sts.txt"]);
  const fetchedB = (w.disk.get("b.test") as { fetchedAt: number }).fetchedAt;
  assert.ok(fetchedB > Date.UTC(2026, 0, 1), "b.test's cache entry is new");
  for (let i = 0; i < 6 * 24; i++) await step(10 * 60_000); // one day later: a.test is due (refreshAfter)
  assert.ok(w.fetches.includes(URL_A) && w.fetches.filter((u) => u === URL_A).length >= 2, "a.test refreshed within a day");
  p.stop();
  const n = w.fetches.length;
  await step(24 * 3_600_000);
  assert.equal(w.fetches.length, n, "no refresh after stop()");
  assert.equal(clock.pendingTimers(), 0);
});

test("refreshDue: old enough, not expired, oldest first, bounded", async () => {
  const { cacheEntry, refreshDue } = await import("../../src/delivery/mta-sts.js");
  const pol = (maxAge: number) => ({ mode: "enforce" as const, maxAge, mx: ["mx.x.test"] });
  const t0 = Date.UTC(2026, 0, 1);
  const entries = [
    cacheEntry("young.test", "1", pol(7 * 86400), t0 + 23 * H, 365 * D),
    cacheEntry("old.test", "1", pol(7 * 86400), t0, 365 * D),
    cacheEntry("short.test", "1", pol(3600), t0 + 23.5 * H, 365 * D),
    cacheEntry("expired.test", "1", pol(3600), t0, 365 * D),
  ];
  assert.deepEqual(refreshDue(entries, t0 + 24 * H, D, 10), ["old.test", "short.test"]);
  assert.deepEqual(refreshDue(entries, t0 + 24 * H, D, 1), ["old.test"]);
});

test("MtaStsPolicies: after a failed fetch the policy server is left alone for 5 minutes", async () => {
  const w = world();
  const p = policies(w);
  const saved = w.http[URL_A]!;
  delete w.http[URL_A];
  assert.match((await p.policyFor("a.test")).how, /no policy \(fetch failed: connect ECONNREFUSED\)/);
  w.now += 60_000;
  const again = await p.policyFor("a.test");
  assert.match(again.how, /not asked again before/);
  assert.equal(w.fetches.length, 1, "no second fetch within 5 minutes");
  w.http[URL_A] = saved;
  w.now += 5 * 60_000;
  assert.equal((await p.policyFor("a.test")).how, "fetched");
  assert.equal(w.fetches.length, 2);
});
