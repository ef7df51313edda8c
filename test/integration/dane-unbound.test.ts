// DANE lookups against a real validating resolver: Debian's unbound on 127.0.0.205:1053 with
// zones signed in the test by ldns-signzone (test/helpers/unbound.ts). Drives the Dane seam
// (createDane over io/dnssec-resolver) directly: usable / none / defer, and verify() of the
// certificate the TLSA record names against another one.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDane } from "../../src/delivery/dane.js";
import type { Dane } from "../../src/delivery/dane-types.js";
import { createDnssecResolver, createNodeDnssecResolver, socketExchange } from "../../src/io/dnssec-resolver.js";
import { inCI, requirePeers, skipUnless, stopAllPeers } from "../helpers/peers.js";
import { selfSigned, tlsaData, type TestCert } from "../helpers/test-pki.js";
import { startUnbound, type UnboundPeer } from "../helpers/unbound.js";

const skip = skipUnless("unbound", "ldns-signzone", "openssl");
let ub: UnboundPeer;
let dane: Dane;
let dir: string;
let mxCert: TestCert, otherCert: TestCert;
const hex = (b: Buffer) => b.toString("hex");

before(async () => {
  if (skip) return;
  if (inCI) requirePeers("unbound", "ldns-signzone", "openssl");
  dir = mkdtempSync(join(tmpdir(), "mxd-dane-unbound-"));
  mxCert = selfSigned(dir, "mx", { cn: "mx.dane.test", dns: ["mx.dane.test"] });
  otherCert = selfSigned(dir, "other", { cn: "mx.dane.test", dns: ["mx.dane.test"] });
  const tlsa311 = hex(tlsaData(mxCert, 1, 1));
  // Port 1053: dane-delivery.test.ts may run at the same time with its unbound on port 53.
  ub = await startUnbound({
    port: 1053,
    zones: [
      {
        name: "dane.test",
        records: [
          "@ IN MX 10 mx",
          "mx IN A 127.0.0.211",
          `_25._tcp.mx IN TLSA 3 1 1 ${tlsa311}`,
          "notlsa IN A 127.0.0.212",
          "pkix IN A 127.0.0.213",
          `_25._tcp.pkix IN TLSA 1 1 1 ${tlsa311}`,
          "v6 IN AAAA ::1",
          `_25._tcp.v6 IN TLSA 3 0 2 ${hex(tlsaData(mxCert, 0, 2))}`,
          "implicit IN A 127.0.0.214",
          "alias IN CNAME mx",
          // 30 SHA-512 records: more than the 1,232-byte UDP answer, so unbound truncates it and
          // the resolver asks again over TCP.
          "big IN A 127.0.0.217",
          ...Array.from({ length: 30 }, (_, i) => `_25._tcp.big IN TLSA 3 1 2 ${Buffer.alloc(64, i + 1).toString("hex")}`),
          `_25._tcp.big IN TLSA 3 1 1 ${tlsa311}`,
        ],
      },
      {
        name: "bogus.test",
        records: ["@ IN MX 10 mx", "mx IN A 127.0.0.215", `_25._tcp.mx IN TLSA 3 1 1 ${tlsa311}`],
        // Changed after signing: the RRSIG no longer fits the TLSA RRset.
        tamper: (z) => z.replace(new RegExp(`TLSA\\s+3 1 1 ${tlsa311}`, "i"), `TLSA\t3 1 1 ${hex(tlsaData(otherCert, 1, 1))}`),
      },
      {
        name: "plain.test",
        signed: false,
        records: ["@ IN MX 10 mx", "mx IN A 127.0.0.216", `_25._tcp.mx IN TLSA 3 1 1 ${tlsa311}`],
      },
    ],
  });
  dane = createDane({ resolver: createNodeDnssecResolver({ server: ub.address, timeoutMs: 2000, tries: 2 }) });
});

after(async () => {
  await ub?.stop();
  await stopAllPeers();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("signed zone, matching TLSA: usable, and the MX's certificate verifies while another does not", { skip }, async () => {
  assert.equal(await dane.mxSecure("dane.test"), true);
  const r = await dane.lookup("mx.dane.test", 25, true);
  assert.equal(r.kind, "usable", JSON.stringify(r));
  if (r.kind !== "usable") return;
  assert.deepEqual(r.records.map((x) => [x.usage, x.selector, x.matchingType, hex(x.data)]), [[3, 1, 1, hex(tlsaData(mxCert, 1, 1))]]);
  const ok = dane.verify([mxCert.x509], r.records, ["mx.dane.test"]);
  assert.deepEqual(ok, { ok: true, reason: "DANE verified: DANE-EE(3) SPKI(1) SHA2-256(1) matched the server certificate" });
  const bad = dane.verify([otherCert.x509], r.records, ["mx.dane.test"]);
  assert.equal(bad.ok, false);
  assert.match(bad.reason, /no DANE-EE\(3\) record matched the server certificate/);
});

test("signed zone: an IPv6-only host with a 3 0 2 record; secure denial; only unusable records", { skip }, async () => {
  const v6 = await dane.lookup("v6.dane.test", 25, true);
  assert.equal(v6.kind, "usable", JSON.stringify(v6));
  if (v6.kind === "usable") assert.equal(dane.verify([mxCert.x509], v6.records, []).ok, true);
  const none = await dane.lookup("notlsa.dane.test", 25, true);
  assert.deepEqual(none, { kind: "none", reason: "no TLSA records at _25._tcp.notlsa.dane.test (validated denial)" });
  const pkix = await dane.lookup("pkix.dane.test", 25, true);
  assert.equal(pkix.kind, "none");
  assert.match((pkix as { reason: string }).reason, /only unusable TLSA records.*PKIX-EE\(1\)/);
  // Another port has its own TLSA name (_2525._tcp...), which does not exist.
  assert.equal((await dane.lookup("mx.dane.test", 2525, true)).kind, "none");
});

test("a CNAME'd host name: the TLSA records of the CNAME's target are used (RFC 7672 §2.2.2)", { skip }, async () => {
  const r = await dane.lookup("alias.dane.test", 25, true);
  assert.equal(r.kind, "usable", JSON.stringify(r));
  if (r.kind === "usable") assert.equal(dane.verify([mxCert.x509], r.records, ["alias.dane.test"]).ok, true);
});

test("an answer too big for UDP comes over TCP (RFC 7766)", { skip }, async () => {
  const used: string[] = [];
  const exchange = socketExchange(ub.host, ub.port);
  const watched = createDane({
    resolver: createDnssecResolver({ exchange: (q, t, ms) => (used.push(t), exchange(q, t, ms)), timeoutMs: 2000, tries: 2 }),
  });
  const r = await watched.lookup("big.dane.test", 25, true);
  assert.deepEqual(used, ["udp", "udp", "udp", "tcp"], "A and AAAA over UDP, the TLSA answer truncated and asked again over TCP");
  assert.equal(r.kind, "usable", JSON.stringify(r).slice(0, 300));
  if (r.kind !== "usable") return;
  assert.equal(r.records.length, 31);
  assert.equal(dane.verify([mxCert.x509], r.records, []).ok, true);
});

test("bogus TLSA (zone changed after signing): defer, and unbound logged the validation failure", { skip }, async () => {
  assert.equal(await dane.mxSecure("bogus.test"), true, "the MX RRset of the bogus zone is still intact");
  const r = await dane.lookup("mx.bogus.test", 25, true);
  assert.equal(r.kind, "defer", JSON.stringify(r));
  assert.match((r as { reason: string }).reason, /TLSA lookup for _25\._tcp\.mx\.bogus\.test failed: SERVFAIL/);
  assert.ok(ub.log().some((l) => /validation failure <_25\._tcp\.mx\.bogus\.test\. TLSA IN>/.test(l)), ub.log().join("\n"));
});

test("unsigned zone: insecure, so no DANE even though a TLSA record is published", { skip }, async () => {
  assert.equal(await dane.mxSecure("plain.test"), false);
  assert.deepEqual(await dane.lookup("mx.plain.test", 25, false), { kind: "none", reason: "the MX records naming mx.plain.test are not DNSSEC-validated" });
  // Even when the caller claims a secure MX (a configured route), the host's addresses are insecure.
  assert.deepEqual(await dane.lookup("mx.plain.test", 25, true), { kind: "none", reason: "the address records of mx.plain.test are not DNSSEC-validated" });
});

test("a resolver that does not answer: defer after the tries (never a silent downgrade)", { skip }, async () => {
  const silent = createDane({ resolver: createNodeDnssecResolver({ server: `${ub.host}:1054`, timeoutMs: 200, tries: 2 }) });
  const r = await silent.lookup("mx.dane.test", 25, true);
  assert.equal(r.kind, "defer", JSON.stringify(r));
  // A failed MX lookup does not turn DANE off (that would be a downgrade): the host decides.
  assert.equal(await silent.mxSecure("dane.test"), true);
});
