// TLSA usability and certificate matching (RFC 7672 §3) with real certificates made by openssl;
// the expected association data is computed by openssl too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tlsaUnusable, usableTlsa, verifyChain, describeTlsa } from "../../src/delivery/tlsa.js";
import type { TlsaRecord } from "../../src/delivery/dane-types.js";
import { issued, selfSigned, tlsaData, type TestCert } from "../helpers/test-pki.js";
import { skipUnless } from "../helpers/peers.js";

const skip = skipUnless("openssl");
let dir: string;
let ca: TestCert, leaf: TestCert, other: TestCert, wild: TestCert, inter: TestCert, leaf2: TestCert;
/** Set once the certificates exist (their validity starts when they are made). */
let NOW = 0;
const DAY = 86_400_000;

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "mxd-tlsa-"));
  ca = selfSigned(dir, "ca", { cn: "mxd test CA", ca: true, days: 30 });
  leaf = issued(dir, "leaf", ca, { cn: "mx.dane.test", dns: ["mx.dane.test"] });
  other = selfSigned(dir, "other", { cn: "mx.dane.test", dns: ["mx.dane.test"] });
  wild = issued(dir, "wild", ca, { cn: "wild", dns: ["*.dane.test"] });
  inter = issued(dir, "inter", ca, { cn: "mxd test intermediate", ca: true, days: 10 });
  leaf2 = issued(dir, "leaf2", inter, { cn: "mx2.dane.test", dns: ["mx2.dane.test"] });
  NOW = Date.now() + 1000;
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

const rec = (usage: number, selector: number, matchingType: number, data: Buffer): TlsaRecord => ({ usage, selector, matchingType, data });
const zeros = (n: number) => Buffer.alloc(n);

test("usability (RFC 7672 §3.1): PKIX usages, unknown parameters and wrong digest lengths are unusable", () => {
  const table: [TlsaRecord, boolean][] = [
    [rec(3, 1, 1, zeros(32)), true],
    [rec(3, 0, 2, zeros(64)), true],
    [rec(2, 0, 1, zeros(32)), true],
    [rec(2, 1, 0, zeros(91)), true],
    [rec(0, 0, 1, zeros(32)), false], // PKIX-TA
    [rec(1, 1, 1, zeros(32)), false], // PKIX-EE
    [rec(4, 1, 1, zeros(32)), false],
    [rec(3, 2, 1, zeros(32)), false],
    [rec(3, 1, 3, zeros(32)), false],
    [rec(3, 1, 1, zeros(31)), false],
    [rec(3, 1, 2, zeros(32)), false],
    [rec(3, 1, 0, zeros(0)), false],
  ];
  for (const [r, ok] of table) assert.equal(tlsaUnusable(r) === undefined, ok, `${r.usage} ${r.selector} ${r.matchingType} len ${r.data.length}`);
  const split = usableTlsa(table.map(([r]) => r));
  assert.equal(split.usable.length, 4);
  assert.equal(split.unusable.length, 8);
  assert.match(tlsaUnusable(rec(1, 1, 1, zeros(32)))!, /PKIX-EE\(1\) is not used with SMTP/);
  assert.equal(describeTlsa(rec(3, 1, 1, zeros(32))), "DANE-EE(3) SPKI(1) SHA2-256(1)");
});

test("DANE-EE(3): every selector and matching type matches the leaf, and only the leaf", { skip }, () => {
  for (const selector of [0, 1]) {
    for (const matching of [0, 1, 2]) {
      const good = verifyChain([leaf.x509], [rec(3, selector, matching, tlsaData(leaf, selector, matching))], [], NOW);
      assert.equal(good.ok, true, `3 ${selector} ${matching}: ${good.reason}`);
      assert.match(good.reason, /^DANE verified: DANE-EE\(3\).*matched the server certificate/);
      const bad = verifyChain([other.x509], [rec(3, selector, matching, tlsaData(leaf, selector, matching))], [], NOW);
      assert.equal(bad.ok, false, `3 ${selector} ${matching} must not match another certificate`);
      assert.match(bad.reason, /no DANE-EE\(3\) record matched/);
    }
  }
  // A DANE-EE record of the CA does not authenticate a leaf it issued.
  assert.equal(verifyChain([leaf.x509, ca.x509], [rec(3, 1, 1, tlsaData(ca, 1, 1))], [], NOW).ok, false);
});

test("DANE-EE(3): no name check and no validity check (RFC 7672 §3.1.1)", { skip }, () => {
  const r = [rec(3, 1, 1, tlsaData(leaf, 1, 1))];
  assert.equal(verifyChain([leaf.x509], r, ["not-the-name.example"], NOW).ok, true);
  assert.equal(verifyChain([leaf.x509], r, [], NOW + 400 * DAY).ok, true, "expired leaf still matches DANE-EE");
});

test("DANE-TA(2): chain to the anchor, name check, validity (RFC 7672 §3.1.2, §3.2.3)", { skip }, () => {
  const ta = [rec(2, 0, 1, tlsaData(ca, 0, 1))];
  const cases: { what: string; chain: TestCert[]; records?: TlsaRecord[]; names: string[]; now?: number; ok: boolean; reason: RegExp }[] = [
    { what: "leaf + CA, right name", chain: [leaf, ca], names: ["mx.dane.test"], ok: true, reason: /^DANE verified: DANE-TA\(2\) Cert\(0\) SHA2-256\(1\) matched the trust anchor at depth 1; certificate name mx\.dane\.test/ },
    { what: "second reference name matches", chain: [leaf, ca], names: ["dane.test", "mx.dane.test."], ok: true, reason: /certificate name mx\.dane\.test/ },
    { what: "wrong name", chain: [leaf, ca], names: ["mx.other.test"], ok: false, reason: /does not match mx\.other\.test/ },
    { what: "anchor not sent by the server", chain: [leaf], names: ["mx.dane.test"], ok: false, reason: /no DANE-TA\(2\) record matched a certificate of the chain/ },
    { what: "leaf not issued by the anchor", chain: [other, ca], names: ["mx.dane.test"], ok: false, reason: /not signed by the one at depth 1/ },
    { what: "expired leaf", chain: [leaf, ca], names: ["mx.dane.test"], now: NOW + 5 * DAY, ok: false, reason: /expired/ },
    { what: "not yet valid", chain: [leaf, ca], names: ["mx.dane.test"], now: NOW - 5 * DAY, ok: false, reason: /not valid before/ },
    { what: "wildcard covers one label", chain: [wild, ca], names: ["mx.dane.test"], ok: true, reason: /certificate name mx\.dane\.test/ },
    { what: "wildcard does not cover two labels", chain: [wild, ca], names: ["a.mx.dane.test"], ok: false, reason: /does not match/ },
    { what: "through an intermediate to the root anchor", chain: [leaf2, inter, ca], names: ["mx2.dane.test"], ok: true, reason: /depth 2/ },
    { what: "intermediate as the anchor, SPKI SHA-512", chain: [leaf2, inter, ca], records: [rec(2, 1, 2, tlsaData(inter, 1, 2))], names: ["mx2.dane.test"], ok: true, reason: /DANE-TA\(2\) SPKI\(1\) SHA2-512\(2\) matched the trust anchor at depth 1/ },
    { what: "a leaf is not its own trust anchor", chain: [leaf, ca], records: [rec(2, 0, 1, tlsaData(leaf, 0, 1))], names: ["mx.dane.test"], ok: false, reason: /no DANE-TA\(2\) record matched/ },
  ];
  for (const c of cases) {
    const r = verifyChain(c.chain.map((x) => x.x509), c.records ?? ta, c.names, c.now ?? NOW);
    assert.equal(r.ok, c.ok, `${c.what}: ${r.reason}`);
    assert.match(r.reason, c.reason, c.what);
  }
});

test("mixed records: any usable record that matches authenticates; unusable ones are ignored", { skip }, () => {
  const records = [rec(1, 1, 1, tlsaData(leaf, 1, 1)), rec(3, 1, 1, tlsaData(other, 1, 1)), rec(2, 1, 1, tlsaData(ca, 1, 1))];
  const r = verifyChain([leaf.x509, ca.x509], records, ["mx.dane.test"], NOW);
  assert.equal(r.ok, true, r.reason);
  // The PKIX-EE(1) record would match the leaf, but is never used for SMTP.
  const pkix = verifyChain([leaf.x509], [rec(1, 1, 1, tlsaData(leaf, 1, 1))], ["mx.dane.test"], NOW);
  assert.deepEqual(pkix, { ok: false, reason: "no usable TLSA record" });
  assert.deepEqual(verifyChain([], records, [], NOW), { ok: false, reason: "the server sent no certificate" });
  const both = verifyChain([other.x509], [rec(3, 1, 1, tlsaData(leaf, 1, 1)), rec(2, 1, 1, tlsaData(ca, 1, 1))], ["mx.dane.test"], NOW);
  assert.equal(both.ok, false);
  assert.match(both.reason, /no DANE-EE\(3\) record matched the server certificate; no DANE-TA\(2\) record matched/);
});
