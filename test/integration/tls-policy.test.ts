// Outbound TLS policy over real sockets: the courier from delivery/factory.ts against remote
// MX hosts we did not write — smtp-server (STARTTLS with a self-signed certificate, or one
// signed by a test CA made with openssl here), Postfix's smtp-sink (no STARTTLS at all) and
// aiosmtpd (advertises STARTTLS, answers 454: a stripped or broken TLS). Each control shows
// both sides: the same remote under "may" receives the mail, under the stricter level not.
// Addresses: this file owns 127.0.8.1 (DNS) and 127.0.8.10-127.0.8.29 (remote MX hosts).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type ConfigInput } from "../../src/config.js";
import { createNodeResolver, type Resolver } from "../../src/io/resolver.js";
import type { Logger } from "../../src/io/log.js";
import { createCourier } from "../../src/delivery/factory.js";
import type { Courier } from "../../src/delivery/courier.js";
import { startDnsServer, type DnsServerHandle, type Zone } from "../helpers/dns-server.js";
import { selfSignedCert } from "../helpers/mx-sink.js";
import { deliverOne, memoryLogger, sink } from "../helpers/courier-run.js";
import { makeTestCa, type TestCa } from "../helpers/test-ca.js";
import { requirePeers, skipUnless, startAiosmtpd, startSmtpSink } from "../helpers/peers.js";
import { createHash, X509Certificate } from "node:crypto";
import type { Dane, DaneLookup, TlsaRecord } from "../../src/delivery/dane-types.js";

const mx = (host: string, ip: string): Zone => ({ [host.replace(/^mx\./, "")]: { mx: [{ exchange: host, priority: 10 }] }, [host]: { a: [ip] } });
const zone: Zone = {
  ...mx("mx.selfsigned.test", "127.0.8.10"),
  ...mx("mx.casigned.test", "127.0.8.11"),
  ...mx("mx.wrongname.test", "127.0.8.12"),
  ...mx("mx.nostarttls.test", "127.0.8.13"),
  ...mx("mx.starttls454.test", "127.0.8.14"),
  ...mx("mx.broken.test", "127.0.8.15"),
  ...mx("mx.dane.test", "127.0.8.16"),
  ...mx("mx.mixed.test", "127.0.8.17"),
  ...mx("mx.danefake.test", "127.0.8.19"),
};
// Two MX hosts: the first (preferred) one without STARTTLS, the second with a valid certificate.
zone["mixed.test"] = { mx: [{ exchange: "mx.mixed.test", priority: 10 }, { exchange: "mx2.mixed.test", priority: 20 }] };
zone["mx2.mixed.test"] = { a: ["127.0.8.18"] };

let dns: DnsServerHandle;
let resolver: Resolver;
let ca: TestCa;
let spool: string;

before(async () => {
  dns = await startDnsServer({ zone, host: "127.0.8.1" });
  resolver = createNodeResolver({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
  ca = makeTestCa();
  spool = mkdtempSync(join(tmpdir(), "mxd-tls-policy-"));
});
after(async () => {
  await dns.close();
  ca.remove();
  rmSync(spool, { recursive: true, force: true });
});

function courier(t: { after: (fn: () => unknown) => void }, tls: NonNullable<NonNullable<ConfigInput["delivery"]>["tls"]>, logger?: Logger, dane?: Dane): Courier {
  const config = parseConfig({
    hostname: "mxd.test",
    spoolDir: spool,
    delivery: {
      timeouts: { connect: "2s", greeting: "3s", ehlo: "3s", mail: "3s", rcpt: "3s", data: "3s", dataBlock: "5s", dataEnd: "5s", tls: "3s" },
      tls: { caFile: ca.caFile, ...tls },
    },
  });
  const c = createCourier({ config, resolver, logger: logger ?? memoryLogger().logger, ...(dane ? { dane } : {}) });
  t.after(() => c.close());
  return c;
}


let qn = 0;
const one = (c: Courier, domain: string) => deliverOne(c, domain, `T${++qn}`);
const level = (domain: string, l: string) => ({ policy: { default: "may" as const, domains: { [domain]: l as "may" } } });

test("verify: a self-signed certificate defers (nothing sent); the same host under may gets the mail, unverified", async (t) => {
  const s = await sink(t, { host: "127.0.8.10", tls: "ok", cert: selfSignedCert() });
  const r = await one(courier(t, level("selfsigned.test", "verify")), "selfsigned.test");
  assert.equal(r.outcome, "transient");
  assert.equal(r.status, "4.7.5");
  assert.match(r.reply, /certificate not accepted: certificate not trusted/);
  assert.match(r.reply, /TLS policy verify \(domain\)/);
  assert.equal(r.tlsPolicy, "verify (domain)");
  // The handshake that took place is in the result (the delivery log and queue show print it).
  assert.match(r.tls?.version ?? "", /^TLSv1\.[23]$/);
  assert.equal(r.tls?.verified, false);
  assert.match(r.tls?.verifyReason ?? "", /not trusted/);
  assert.equal(s.messages.length, 0, "nothing delivered to an unverified host");
  assert.equal(s.rcptSeen.length, 0, "not even an envelope");

  const may = await one(courier(t, level("selfsigned.test", "may")), "selfsigned.test");
  assert.equal(may.outcome, "delivered");
  assert.equal(may.tls?.verified, false);
  assert.match(may.tls?.verifyReason ?? "", /not trusted/);
  assert.equal(may.tlsPolicy, "may (domain)");
  assert.equal(s.messages.length, 1);
  assert.equal(s.messages[0]!.secure, true);
});

test("verify: a certificate from the configured CA for the MX name delivers, verified; a wrong name defers", async (t) => {
  const good = await sink(t, { host: "127.0.8.11", tls: "ok", cert: ca.issue(["mx.casigned.test"]) });
  const { logger, lines } = memoryLogger();
  const r = await one(courier(t, level("casigned.test", "verify"), logger), "casigned.test");
  assert.equal(r.outcome, "delivered", r.reply);
  assert.equal(r.tls?.verified, true);
  assert.match(r.tls?.version ?? "", /^TLSv1\.[23]$/);
  assert.equal(r.tlsPolicy, "verify (domain)");
  assert.equal(good.messages.length, 1);
  const attempt = lines.find((l) => l.msg === "delivery attempt");
  assert.equal((attempt?.tls as { verified?: boolean } | undefined)?.verified, true);
  assert.equal(attempt?.tlsPolicy, "verify (domain)");

  // Signed by the same CA, but for another name: not valid for this MX.
  const wrong = await sink(t, { host: "127.0.8.12", tls: "ok", cert: ca.issue(["other.casigned.test"]) });
  const w = await one(courier(t, level("wrongname.test", "verify")), "wrongname.test");
  assert.equal(w.outcome, "transient");
  assert.equal(w.status, "4.7.5");
  assert.match(w.reply, /certificate not valid for mx\.wrongname\.test \(it names DNS:other\.casigned\.test\)/);
  assert.equal(wrong.messages.length, 0);
  // encrypt accepts any certificate: the same host gets the mail.
  const e = await one(courier(t, level("wrongname.test", "encrypt")), "wrongname.test");
  assert.equal(e.outcome, "delivered", e.reply);
  assert.equal(e.tls?.verified, false);
  assert.equal(wrong.messages.length, 1);
});

test("encrypt: a remote without STARTTLS (smtp-sink) defers; under may it receives the mail in plain text", { skip: skipUnless("smtp-sink") }, async (t) => {
  requirePeers("smtp-sink");
  const s = await startSmtpSink({ host: "127.0.8.13" });
  t.after(() => s.stop());
  const r = await one(courier(t, level("nostarttls.test", "encrypt")), "nostarttls.test");
  assert.equal(r.outcome, "transient");
  assert.equal(r.status, "4.7.4");
  assert.match(r.reply, /TLS is required, but the host did not offer STARTTLS/);
  assert.equal(s.dumps().length, 0, "nothing sent in plain text");

  const v = await one(courier(t, level("nostarttls.test", "verify")), "nostarttls.test");
  assert.equal(v.outcome, "transient");
  assert.equal(s.dumps().length, 0);

  const may = await one(courier(t, level("nostarttls.test", "may")), "nostarttls.test");
  assert.equal(may.outcome, "delivered", may.reply);
  assert.equal(may.tls, undefined);
  await s.waitForMessages(1, 5000);
});

test("downgrade: STARTTLS answered 454 (aiosmtpd) under encrypt and verify defers; under may the mail goes in plain text", { skip: skipUnless("aiosmtpd") }, async (t) => {
  requirePeers("aiosmtpd");
  const a = await startAiosmtpd({ host: "127.0.8.14", starttls454: true });
  t.after(() => a.stop());
  for (const l of ["encrypt", "verify"]) {
    const r = await one(courier(t, level("starttls454.test", l)), "starttls454.test");
    assert.equal(r.outcome, "transient", l);
    assert.equal(r.status, "4.7.4", l);
    assert.match(r.reply, /STARTTLS refused: 454/, l);
  }
  assert.equal(a.messages().length, 0, "no plain-text delivery after a refused STARTTLS");
  const may = await one(courier(t, level("starttls454.test", "may")), "starttls454.test");
  assert.equal(may.outcome, "delivered", may.reply);
  assert.equal(a.messages().length, 1);
});

test("encrypt: a failed handshake is not retried in plain text; under may it is", async (t) => {
  const s = await sink(t, { host: "127.0.8.15", tls: "broken" });
  const r = await one(courier(t, level("broken.test", "encrypt")), "broken.test");
  assert.equal(r.outcome, "transient");
  assert.equal(r.status, "4.7.5");
  assert.match(r.reply, /no plain-text retry/);
  assert.equal(s.messages.length, 0);
  assert.equal(s.connections.length, 1, "one connection, no second one without STARTTLS");
  const may = await one(courier(t, level("broken.test", "may")), "broken.test");
  assert.equal(may.outcome, "delivered");
  assert.equal(s.messages.length, 1);
  assert.equal(s.messages[0]!.secure, false);
});

test("dane-only without a DANE resolver defers; dane without one is opportunistic", async (t) => {
  const s = await sink(t, { host: "127.0.8.16", tls: "ok" });
  const r = await one(courier(t, level("dane.test", "dane-only")), "dane.test");
  assert.equal(r.outcome, "transient");
  assert.equal(r.status, "4.7.5");
  assert.match(r.reply, /dane-only but no DANE resolver is configured/);
  assert.equal(s.connections.length, 0, "not even connected");
  const d = await one(courier(t, level("dane.test", "dane")), "dane.test");
  assert.equal(d.outcome, "delivered", d.reply);
  assert.equal(d.tlsPolicy, "dane (domain)");
  assert.equal(s.messages.length, 1);
});

test("verify: an MX without STARTTLS is passed over for the next one that verifies", { skip: skipUnless("smtp-sink") }, async (t) => {
  requirePeers("smtp-sink");
  const plain = await startSmtpSink({ host: "127.0.8.17" });
  t.after(() => plain.stop());
  const good = await sink(t, { host: "127.0.8.18", tls: "ok", cert: ca.issue(["mx2.mixed.test"]) });
  const r = await one(courier(t, { policy: { default: "verify", domains: {} } }), "mixed.test");
  assert.equal(r.outcome, "delivered", r.reply);
  assert.equal(r.mx, "mx2.mixed.test");
  assert.equal(r.tlsPolicy, "verify (default)");
  assert.equal(good.messages.length, 1);
  assert.equal(plain.dumps().length, 0);
});

/** SHA-256 of a certificate's SubjectPublicKeyInfo: the data of a "3 1 1" (DANE-EE SPKI SHA-256) record. */
function spkiSha256(pem: string | X509Certificate): Buffer {
  const cert = typeof pem === "string" ? new X509Certificate(pem) : pem;
  return createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest();
}

/**
 * A stand-in for the DANE component (the courier's `dane` seam, delivery/dane-types.ts): TLSA
 * answers from a table, and a DANE-EE(3) SPKI(1) SHA-256(1) matcher — enough to show that the
 * policy's per-connection verify decides, over a real TLS handshake.
 */
function tableDane(answers: Record<string, DaneLookup>): Dane & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    lookup: async (host, port, secureMx) => (asked.push(`${host}:${port} secureMx=${secureMx}`), answers[host] ?? { kind: "none", reason: "no TLSA records" }),
    verify: (chain, records) => {
      const leaf = chain[0];
      if (!leaf) return { ok: false, reason: "no certificate" };
      const got = spkiSha256(leaf);
      return records.some((r) => r.usage === 3 && r.selector === 1 && r.matchingType === 1 && r.data.equals(got)) ? { ok: true, reason: "DANE-EE SPKI match" } : { ok: false, reason: "DANE: no TLSA record matches the certificate" };
    },
    mxSecure: async () => true,
  };
}

test("dane (the DANE seam with a table double): matching TLSA records verify a self-signed certificate; others defer, nothing sent", async (t) => {
  const cert = selfSignedCert();
  const s = await sink(t, { host: "127.0.8.19", tls: "ok", cert });
  const match: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: spkiSha256(cert.cert) };
  const dane = tableDane({ "mx.danefake.test": { kind: "usable", records: [match] } });
  const r = await one(courier(t, level("danefake.test", "dane"), undefined, dane), "danefake.test");
  assert.equal(r.outcome, "delivered", r.reply);
  assert.equal(r.tls?.verified, true);
  assert.equal(r.tlsPolicy, "dane (level dane)");
  assert.deepEqual(dane.asked, ["mx.danefake.test:25 secureMx=true"]);
  assert.equal(s.messages.length, 1);

  const other: TlsaRecord = { ...match, data: Buffer.alloc(32, 7) };
  const wrong = await one(courier(t, level("danefake.test", "dane-only"), undefined, tableDane({ "mx.danefake.test": { kind: "usable", records: [other] } })), "danefake.test");
  assert.equal(wrong.outcome, "transient");
  assert.equal(wrong.status, "4.7.5");
  assert.match(wrong.reply, /certificate not accepted: DANE: no TLSA record matches/);
  assert.equal(s.messages.length, 1, "nothing more delivered");
  assert.equal(s.rcptSeen.length, 1);

  // A verifier that throws counts as "not verified": deferred, nothing sent, no crash.
  const throwing = { ...tableDane({ "mx.danefake.test": { kind: "usable", records: [match] } }), verify: () => { throw new Error("bad TLSA data"); } };
  const thrown = await one(courier(t, level("danefake.test", "dane"), undefined, throwing), "danefake.test");
  assert.equal(thrown.outcome, "transient");
  assert.match(thrown.reply, /certificate not accepted: certificate check failed: bad TLSA data/);
  assert.equal(s.rcptSeen.length, 1);

  const conns = s.connections.length;
  const deferred = await one(courier(t, level("danefake.test", "dane"), undefined, tableDane({ "mx.danefake.test": { kind: "defer", reason: "TLSA lookup: SERVFAIL" } })), "danefake.test");
  assert.equal(deferred.outcome, "transient");
  assert.match(deferred.reply, /DANE: TLSA lookup: SERVFAIL/);
  assert.equal(s.connections.length, conns, "a failed TLSA lookup: no connection");
});
