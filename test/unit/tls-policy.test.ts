// Outbound TLS policy, pure decisions: the level of a domain, the requirement of one host
// (level × MTA-STS × DANE), the verdict on a peer.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { hostTls, isSkip, levelFor, policyLabel, verifyPeer, type AppliedSts, type TlsLevel } from "../../src/delivery/tls-policy.js";
import type { DaneLookup } from "../../src/delivery/dane-types.js";

test("levelFor: exact domain, then the longest .parent entry, else the default", () => {
  const policy = parseConfig({
    delivery: { tls: { policy: { default: "may", domains: { "bank.test": "verify", ".bank.test": "encrypt", ".deep.bank.test": "dane-only", "Upper.TEST": "encrypt" } } } },
  }).delivery.tls.policy;
  const table: [string, string][] = [
    ["bank.test", "verify domain"],
    ["mail.bank.test", "encrypt domain"],
    ["x.deep.bank.test", "dane-only domain"],
    ["upper.test", "encrypt domain"],
    ["other.test", "may default"],
    ["notbank.test", "may default"],
  ];
  for (const [d, want] of table) {
    const l = levelFor(policy, d);
    assert.equal(`${l.level} ${l.source}`, want, d);
  }
});

test("config: delivery.tls keys, defaults and errors naming the key", () => {
  const c = parseConfig({}).delivery.tls;
  assert.equal(c.policy.default, "may");
  assert.equal(c.mtaSts.enabled, true);
  assert.equal(c.caFile, undefined);
  assert.throws(() => parseConfig({ delivery: { tls: { policy: { domains: { "a.test": "must" } } } } }), /delivery\.tls\.policy\.domains\.a\.test: .*"must"/);
  assert.throws(() => parseConfig({ delivery: { tls: { mtaSts: { fetchTimeout: "soon" } } } }), /delivery\.tls\.mtaSts\.fetchTimeout/);
  assert.throws(() => parseConfig({ delivery: { tls: { cert: "x" } } }), /delivery\.tls.*cert/);
  assert.throws(() => parseConfig({ delivery: { tls: { caFile: "/nonexistent/ca.pem" } } }), /delivery\.tls\.caFile: cannot read "\/nonexistent\/ca\.pem": ENOENT/);
  const notPem = join(mkdtempSync(join(tmpdir(), "mxd-ca-")), "ca.pem");
  writeFileSync(notPem, "not a certificate\n");
  assert.throws(() => parseConfig({ delivery: { tls: { caFile: notPem } } }), /delivery\.tls\.caFile: expected a PEM file of CA certificates/);
  rmSync(dirname(notPem), { recursive: true, force: true });
});

const enforce: AppliedSts = { id: "1", policy: { mode: "enforce", maxAge: 600, mx: ["*.a.test"] } };
const testing: AppliedSts = { id: "1", policy: { mode: "testing", maxAge: 600, mx: ["*.a.test"] } };
const stsNone: AppliedSts = { id: "1", policy: { mode: "none", maxAge: 600, mx: [] } };
const usable: DaneLookup = { kind: "usable", records: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32) }] };
const noDane: DaneLookup = { kind: "none", reason: "insecure zone" };
const daneDefer: DaneLookup = { kind: "defer", reason: "TLSA lookup SERVFAIL" };
/** A secure TLSA RRset of unusable records only (e.g. PKIX-EE): TLS mandatory, unauthenticated. */
const unusableOnly: DaneLookup = { kind: "none", requireTls: true, reason: "only unusable TLSA records" };

/** starttls/plainFallback/verify/enforce/source, or "skip STATUS". */
function describe(r: ReturnType<typeof hostTls>): string {
  if (isSkip(r)) return `skip ${r.status} ${r.source}`;
  return `${r.starttls}${r.plainFallback ? "+plain" : ""} ${r.verify}${r.enforce ? "!" : "?"} ${r.source}${r.minVersion ? " 1.2" : ""}${r.report ? " report" : ""}`;
}

test("hostTls: level × MTA-STS × DANE (precedence DANE > MTA-STS > level)", () => {
  const table: [TlsLevel, string, "mx" | "route" | "fallback" | "literal", AppliedSts | undefined, DaneLookup | undefined, string][] = [
    ["may", "mx1.a.test", "mx", undefined, undefined, "may+plain pkix? default"],
    ["encrypt", "mx1.a.test", "mx", undefined, undefined, "require pkix? default 1.2"],
    ["verify", "mx1.a.test", "mx", undefined, undefined, "require pkix! default 1.2"],
    // MTA-STS enforce raises may/encrypt to verified TLS, and rules out hosts not in the policy.
    ["may", "mx1.a.test", "mx", enforce, undefined, "require pkix! mta-sts 1.2"],
    ["encrypt", "mx1.a.test", "mx", enforce, undefined, "require pkix! mta-sts 1.2"],
    ["may", "evil.b.test", "mx", enforce, undefined, "skip 4.7.5 mta-sts"],
    ["may", "relay.b.test", "fallback", enforce, undefined, "skip 4.7.5 mta-sts"],
    // Operator routes and address literals are not MX selection: MTA-STS does not apply.
    ["may", "smart.b.test", "route", enforce, undefined, "may+plain pkix? default"],
    ["may", "192.0.2.1", "literal", enforce, undefined, "may+plain pkix? default"],
    // testing: delivery as the level says, with a report when enforce would refuse.
    ["may", "mx1.a.test", "mx", testing, undefined, "may+plain pkix? mta-sts-testing"],
    ["may", "evil.b.test", "mx", testing, undefined, "may+plain pkix? mta-sts-testing report"],
    ["verify", "evil.b.test", "mx", testing, undefined, "require pkix! default 1.2 report"],
    ["may", "evil.b.test", "mx", stsNone, undefined, "may+plain pkix? default"],
    // DANE: usable records win over MTA-STS (even a host MTA-STS enforce would refuse).
    ["dane", "evil.b.test", "mx", enforce, usable, "require dane! dane 1.2"],
    ["dane-only", "mx1.a.test", "mx", undefined, usable, "require dane! dane 1.2"],
    ["dane", "mx1.a.test", "mx", undefined, daneDefer, "skip 4.7.5 dane"],
    ["dane", "mx1.a.test", "mx", undefined, unusableOnly, "require pkix? dane 1.2"],
    ["dane-only", "mx1.a.test", "mx", undefined, unusableOnly, "skip 4.7.5 default"],
    ["dane-only", "mx1.a.test", "mx", undefined, daneDefer, "skip 4.7.5 dane"],
    // no DANE for the host: dane is opportunistic (then MTA-STS may apply), dane-only defers.
    ["dane", "mx1.a.test", "mx", undefined, noDane, "may+plain pkix? default"],
    ["dane", "mx1.a.test", "mx", enforce, noDane, "require pkix! mta-sts 1.2"],
    ["dane-only", "mx1.a.test", "mx", undefined, noDane, "skip 4.7.5 default"],
    // no DANE resolver configured at all: the RFC's insecure case.
    ["dane", "mx1.a.test", "mx", undefined, undefined, "may+plain pkix? default"],
    ["dane-only", "mx1.a.test", "mx", undefined, undefined, "skip 4.7.5 default"],
  ];
  for (const [level, host, kind, sts, dane, want] of table) {
    const got = describe(hostTls({ level: { level, source: "default" }, host, kind, sts, dane }));
    assert.equal(got, want, `${level} ${host} (${kind}) sts=${sts?.policy.mode ?? "-"} dane=${dane?.kind ?? "-"}`);
  }
  const skipped = hostTls({ level: { level: "dane-only", source: "domain" }, host: "mx1.a.test", kind: "mx" });
  assert.ok(isSkip(skipped));
  assert.match(skipped.skip, /dane-only but no DANE resolver is configured/);
});

/** A stand-in for X509Certificate: only checkHost is used by verifyPeer. */
function cert(names: string[]): X509Certificate {
  return { subjectAltName: names.map((n) => `DNS:${n}`).join(", "), checkHost: (n: string) => (names.some((c) => c === n || (c.startsWith("*.") && n.slice(n.indexOf(".") + 1) === c.slice(2) && n.indexOf(".") > 0)) ? n : undefined) } as unknown as X509Certificate;
}

test("verifyPeer: PKIX needs a trusted chain and the MX name; DANE asks the DANE verifier", () => {
  const req = { verify: "pkix" as const, names: ["mx1.a.test"] };
  const table: [Parameters<typeof verifyPeer>[1], string][] = [
    [{ leaf: cert(["mx1.a.test"]), chain: [], authorized: true }, "ok certificate valid for mx1.a.test"],
    [{ leaf: cert(["*.a.test"]), chain: [], authorized: true }, "ok certificate valid for mx1.a.test"],
    [{ leaf: cert(["mx2.a.test"]), chain: [], authorized: true }, "no certificate not valid for mx1.a.test (it names DNS:mx2.a.test)"],
    [{ leaf: cert(["mx1.a.test"]), chain: [], authorized: false, authorizationError: "SELF_SIGNED_CERT_IN_CHAIN" }, "no certificate not trusted: SELF_SIGNED_CERT_IN_CHAIN"],
    [{ leaf: undefined, chain: [], authorized: false }, "no the server sent no certificate"],
    // Node's own host name check failed but the chain verified: the names are judged here.
    [{ leaf: cert(["mx1.a.test"]), chain: [], authorized: false, authorizationError: "ERR_TLS_CERT_ALTNAME_INVALID" }, "ok certificate valid for mx1.a.test"],
    [{ leaf: cert(["mx9.b.test"]), chain: [], authorized: false, authorizationError: "ERR_TLS_CERT_ALTNAME_INVALID" }, "no certificate not valid for mx1.a.test (it names DNS:mx9.b.test)"],
    [{ leaf: cert(["mx.test"]), chain: [], authorized: false, authorizationError: "DEPTH_ZERO_SELF_SIGNED_CERT" }, "no certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT; not valid for mx1.a.test (it names DNS:mx.test)"],
  ];
  for (const [peer, want] of table) {
    const v = verifyPeer(req, peer);
    assert.equal(`${v.ok ? "ok" : "no"} ${v.reason}`, want);
  }
  const records = [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32) }];
  const peer = { leaf: cert(["other"]), chain: [], authorized: false };
  let asked: unknown;
  const v = verifyPeer({ verify: "dane", names: ["mx1.a.test"], records }, peer, (chain, recs, names) => ((asked = { chain, recs, names }), { ok: true, reason: "DANE-EE match" }));
  assert.deepEqual(v, { ok: true, reason: "DANE-EE match" });
  assert.deepEqual(asked, { chain: peer.chain, recs: records, names: ["mx1.a.test"] });
  assert.equal(verifyPeer({ verify: "dane", names: ["x"], records }, peer).ok, false, "no DANE verifier: never verified");
});

test("policyLabel", () => {
  assert.equal(policyLabel({ level: "verify", source: "domain" }), "verify (domain)");
  assert.equal(policyLabel({ level: "may", source: "mta-sts" }), "mta-sts (level may)");
  assert.equal(policyLabel({ level: "dane", source: "dane" }), "dane (level dane)");
});
