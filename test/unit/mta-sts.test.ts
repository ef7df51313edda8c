// MTA-STS (RFC 8461) pure decisions: TXT record, policy file, MX patterns, HTTP answer, cache
// decisions in virtual time.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  STS_MAX_AGE_SECONDS,
  cacheEntry,
  mxMatches,
  parseStsPolicy,
  parseStsTxt,
  policyFromResponse,
  refreshAge,
  stsCacheDecision,
  validCacheEntry,
  type StsTxt,
} from "../../src/delivery/mta-sts.js";

test("parseStsTxt: one v=STSv1 record with an id (RFC 8461 §3.1)", () => {
  const table: [string[][], string][] = [
    [[["v=STSv1; id=20160831085700Z;"]], "record 20160831085700Z"],
    [[["v=STSv1;id=abc"]], "record abc"],
    [[["v=STSv1; ", "id=split1"]], "record split1"], // strings of one record are joined
    [[["v=spf1 -all"], ["v=STSv1; id=x1; ext=ignored"]], "record x1"], // other TXT records ignored, unknown fields ignored
    [[["v=STSv1; id=first; id=second"]], "record first"],
    [[], "none"],
    [[["v=spf1 -all"]], "none"],
    [[["v=STSv1; id=a"], ["v=STSv1; id=b"]], "none"], // two STS records: no policy
    [[["v=STSv1"]], "none"], // no id
    [[["v=STSv1; id=has-dash"]], "none"], // id is 1*32(ALPHA / DIGIT)
    [[["v=STSv1; id=" + "a".repeat(33)]], "none"],
    [[["v=STSv1; garbage"]], "none"],
    [[["v=STSv10; id=a"]], "none"], // not v=STSv1
    [[[" v=STSv1; id=a"]], "none"], // must start the record
  ];
  for (const [records, want] of table) {
    const r = parseStsTxt(records);
    assert.equal(r.kind === "record" ? `record ${r.id}` : r.kind, want, JSON.stringify(records));
  }
});

const GOOD = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

test("parseStsPolicy: the RFC's example and its variants", () => {
  const r = parseStsPolicy(GOOD);
  assert.ok(r.ok);
  assert.deepEqual(r.policy, { mode: "enforce", maxAge: 604800, mx: ["mail.example.com", "*.example.net", "backupmx.example.com"] });
  const table: [string, string][] = [
    ["version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 86400\n", "ok testing 86400 mx.example.com"], // bare LF, case, trailing dot
    ["version: STSv1\r\nmode: none\r\nmax_age: 0\r\n", "ok none 0 "], // none needs no mx
    ["version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n", "bad"], // 11 digits
    ["version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 9999999999\n", `ok enforce ${STS_MAX_AGE_SECONDS} a.example`], // capped at a year
    ["version: STSv1\nmode: enforce\nmax_age: 600\n", "bad"], // enforce without mx
    ["version: STSv1\nmode: strict\nmx: a.example\nmax_age: 600\n", "bad"],
    ["mode: enforce\nversion: STSv1\nmx: a.example\nmax_age: 600\n", "bad"], // version first
    ["version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 600\n", "bad"],
    ["version: STSv1\nmode: enforce\nmx: a.example\n", "bad"], // no max_age
    ["version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "bad"],
    ["version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 600\n", "bad"], // wildcard only leftmost
    ["version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 600\nfuture_key: whatever\n", "ok enforce 600 a.example"],
    ["version: STSv1\nmode: enforce\nmx: a.example\nmode: none\nmax_age: 600\n", "ok enforce 600 a.example"], // first wins
    ["<html>not a policy</html>", "bad"],
    ["", "bad"],
  ];
  for (const [text, want] of table) {
    const p = parseStsPolicy(text);
    assert.equal(p.ok ? `ok ${p.policy.mode} ${p.policy.maxAge} ${p.policy.mx.join(",")}` : "bad", want, JSON.stringify(text));
  }
});

test("mxMatches: exact names and one leftmost wildcard label (RFC 8461 §4.1)", () => {
  const table: [string, string, boolean][] = [
    ["mail.example.com", "mail.example.com", true],
    ["mail.example.com", "MAIL.example.com.", true],
    ["mail.example.com", "mail2.example.com", false],
    ["*.example.net", "mx1.example.net", true],
    ["*.example.net", "example.net", false],
    ["*.example.net", "a.b.example.net", false],
    ["*.example.net", "mx1.example.net.evil", false],
    ["*.example.net", "mx1example.net", false],
    ["*.example.net", ".example.net", false],
  ];
  for (const [p, h, want] of table) assert.equal(mxMatches(p, h), want, `${p} ~ ${h}`);
});

test("policyFromResponse: only a 200 with text/plain counts; redirects are failures", () => {
  const table: [Parameters<typeof policyFromResponse>[0], string][] = [
    [{ ok: true, status: 200, contentType: "text/plain", body: GOOD }, "ok"],
    [{ ok: true, status: 200, contentType: "text/plain; charset=utf-8", body: GOOD }, "ok"],
    [{ ok: true, status: 200, contentType: "TEXT/PLAIN", body: GOOD }, "ok"],
    [{ ok: true, status: 301, contentType: "text/html", body: "" }, "HTTP status 301 (redirects are not followed, RFC 8461 §3.3)"],
    [{ ok: true, status: 404, contentType: "text/plain", body: "" }, "HTTP status 404"],
    [{ ok: true, status: 200, contentType: "text/html", body: GOOD }, 'media type "text/html" is not text/plain'],
    [{ ok: true, status: 200, contentType: undefined, body: GOOD }, 'media type "" is not text/plain'],
    [{ ok: false, reason: "certificate has expired" }, "certificate has expired"],
  ];
  for (const [res, want] of table) {
    const r = policyFromResponse(res);
    assert.equal(r.ok ? "ok" : r.reason, want, JSON.stringify(res));
  }
});

const H = 3_600_000;
const D = 24 * H;

test("cacheEntry and refreshAge: max_age capped by the operator; refresh at refreshAfter or half the lifetime", () => {
  const policy = { mode: "enforce" as const, maxAge: 7 * 86400, mx: ["mx.a.test"] };
  const e = cacheEntry("a.test", "id1", policy, 1000, 365 * D);
  assert.equal(e.expiresAt, 1000 + 7 * D);
  assert.equal(cacheEntry("a.test", "id1", policy, 1000, 2 * D).expiresAt, 1000 + 2 * D);
  assert.equal(refreshAge(e, D), D);
  assert.equal(refreshAge(cacheEntry("a.test", "i", { ...policy, maxAge: 3600 }, 0, 365 * D), D), H / 2);
});

test("stsCacheDecision: fetch, use the cache, refresh before expiry, fall back (virtual time)", () => {
  const t0 = Date.UTC(2026, 0, 1);
  const cached = cacheEntry("a.test", "id1", { mode: "enforce", maxAge: 7 * 86400, mx: ["mx.a.test"] }, t0, 365 * D);
  const rec = (id: string): StsTxt => ({ kind: "record", id });
  const none: StsTxt = { kind: "none", reason: "no _mta-sts.a.test TXT record" };
  const failed: StsTxt = { kind: "failed", reason: "SERVFAIL" };
  const table: [string, StsTxt, typeof cached | undefined, number, string][] = [
    ["nothing cached, TXT present", rec("id1"), undefined, t0, "fetch -"],
    ["same id, fresh", rec("id1"), cached, t0 + H, "use-cached"],
    ["same id, older than refreshAfter: refresh, keep the cached one on failure", rec("id1"), cached, t0 + D, "fetch id1"],
    ["id changed", rec("id2"), cached, t0 + H, "fetch id1"],
    ["expired: fetch, nothing to fall back to", rec("id1"), cached, t0 + 7 * D, "fetch -"],
    ["TXT gone, cache valid: the cache applies", none, cached, t0 + 6 * D, "use-cached"],
    ["TXT lookup failed, cache valid", failed, cached, t0 + H, "use-cached"],
    ["TXT gone, cache expired", none, cached, t0 + 7 * D + 1, "none"],
    ["TXT failed, nothing cached", failed, undefined, t0, "none"],
  ];
  for (const [name, txt, c, now, want] of table) {
    const d = stsCacheDecision({ txt, cached: c, nowMs: now, refreshAfterMs: D });
    const got = d.action === "fetch" ? `fetch ${d.fallback ? d.fallback.id : "-"}` : d.action;
    assert.equal(got, want, name);
  }
});

test("validCacheEntry: what is read back from disk is checked", () => {
  const good = cacheEntry("a.test", "id1", { mode: "testing", maxAge: 600, mx: ["*.a.test"] }, 0, D);
  assert.ok(validCacheEntry(JSON.parse(JSON.stringify(good)), "a.test"));
  assert.ok(!validCacheEntry(good as unknown, "b.test"), "another domain's file");
  for (const bad of [null, "x", {}, { ...good, id: "bad id" }, { ...good, expiresAt: "soon" }, { ...good, policy: { ...good.policy, mode: "strict" } }, { ...good, policy: { ...good.policy, mx: ["bad pattern!"] } }]) {
    assert.ok(!validCacheEntry(bad, "a.test"), JSON.stringify(bad));
  }
});
