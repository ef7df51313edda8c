// DANE end to end (RFC 7672): mxd as a child process with delivery.tls.policy.default "dane",
// its DNS and its DANE resolver both Debian's unbound on 127.0.0.205:53, which validates zones
// signed in the test by ldns-signzone (test/helpers/unbound.ts). The remote MXs are smtp-server
// (npm) with STARTTLS and a certificate made by openssl; messages are submitted by nodemailer.
//   dane.test      TLSA 3 1 1 of the MX's certificate        → delivered over TLS, "DANE verified"
//   bad.dane.test  TLSA 3 1 1 of another certificate          → deferred, the mismatch in the reply
//   bogus.test     TLSA changed after signing (bogus)         → deferred, the failed lookup in the reply; no connection
//   plain.test     unsigned zone (TLSA published, insecure)   → delivered without DANE (the level falls back to opportunistic TLS)
//   ta.dane.test   TLSA 2 0 1 of the CA that issued the MX's certificate (sent in its chain) → delivered, DANE-TA verified
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { inCI, requirePeers, skipUnless, startMxd, stopAllPeers, tempDir, waitFor, type MxdPeer } from "../helpers/peers.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { issued, selfSigned, tlsaData, type TestCert } from "../helpers/test-pki.js";
import { startUnbound, type UnboundPeer } from "../helpers/unbound.js";

const skip = skipUnless("unbound", "ldns-signzone", "openssl");
const HOST = "127.0.0.217";
const SINK = { good: "127.0.0.218", bad: "127.0.0.219", bogus: "127.0.0.220", plain: "127.0.0.221", ta: "127.0.0.222" };

let base: string;
let ub: UnboundPeer;
let mxd: MxdPeer;
const sinks: Record<keyof typeof SINK, MxSink> = {} as never;
let mxCert: TestCert, otherCert: TestCert, ca: TestCert, taLeaf: TestCert;
const hex = (b: Buffer) => b.toString("hex");

before(async () => {
  if (skip) return;
  if (inCI) requirePeers("unbound", "ldns-signzone", "openssl");
  base = tempDir("mxd-dane-delivery-");
  mxCert = selfSigned(base, "mx", { cn: "mx.dane.test", dns: ["mx.dane.test"] });
  otherCert = selfSigned(base, "other", { cn: "other.dane.test", dns: ["other.dane.test"] });
  ca = selfSigned(base, "ca", { cn: "mxd DANE test CA", ca: true, days: 10 });
  taLeaf = issued(base, "ta-leaf", ca, { cn: "mx.ta.dane.test", dns: ["mx.ta.dane.test"] });
  const good = hex(tlsaData(mxCert, 1, 1));
  ub = await startUnbound({
    zones: [
      {
        name: "dane.test",
        records: [
          "@ IN MX 10 mx",
          `mx IN A ${SINK.good}`,
          `_25._tcp.mx IN TLSA 3 1 1 ${good}`,
          "bad IN MX 10 mx.bad",
          `mx.bad IN A ${SINK.bad}`,
          `_25._tcp.mx.bad IN TLSA 3 1 1 ${hex(tlsaData(otherCert, 1, 1))}`,
          "ta IN MX 10 mx.ta",
          `mx.ta IN A ${SINK.ta}`,
          `_25._tcp.mx.ta IN TLSA 2 0 1 ${hex(tlsaData(ca, 0, 1))}`,
        ],
      },
      {
        name: "bogus.test",
        records: ["@ IN MX 10 mx", `mx IN A ${SINK.bogus}`, `_25._tcp.mx IN TLSA 3 1 1 ${good}`],
        tamper: (z) => z.replace(new RegExp(`TLSA\\s+3 1 1 ${good}`, "i"), `TLSA\t3 1 1 ${hex(tlsaData(otherCert, 1, 1))}`),
      },
      { name: "plain.test", signed: false, records: ["@ IN MX 10 mx", `mx IN A ${SINK.plain}`, `_25._tcp.mx IN TLSA 3 1 1 ${good}`] },
    ],
  });
  // Every MX presents the certificate the dane.test TLSA record names.
  for (const [k, host] of Object.entries(SINK)) {
    // The DANE-TA MX sends its certificate and the CA's (RFC 7672 §3.1.2: the anchor must be in the chain).
    const creds = k === "ta" ? { key: taLeaf.keyPem, cert: taLeaf.certPem + ca.certPem } : { key: mxCert.keyPem, cert: mxCert.certPem };
    sinks[k as keyof typeof SINK] = await startMxSink({ host, tls: "ok", cert: creds });
  }
  mxd = await startMxd({
    hostname: "mxd-dane.test",
    listen: [{ host: HOST, port: 0 }],
    spoolDir: join(base, "spool"),
    dropDir: join(base, "drop"),
    relay: { allowedNetworks: ["127.0.0.0/8"] },
    dns: { servers: [ub.address], timeout: "2s" },
    admin: { listen: null },
    log: { level: "info" },
    delivery: {
      tls: { policy: { default: "dane" }, mtaSts: { enabled: false } },
      dane: { resolver: ub.address, timeout: "2s" },
      // One attempt per message in this test: a deferral stays deferred.
      retry: { minDelay: "1h", maxDelay: "1h" },
    },
  });
});

after(async () => {
  await mxd?.stop(5000);
  for (const s of Object.values(sinks)) await s.close();
  await ub?.stop();
  await stopAllPeers();
  if (base) rmSync(base, { recursive: true, force: true });
});

async function submit(to: string): Promise<void> {
  const t = nodemailer.createTransport({ host: HOST, port: mxd.port, secure: false, ignoreTLS: true, name: "client.test" });
  try {
    const info = await t.sendMail({ envelope: { from: "sender@client.test", to }, from: "sender@client.test", to, subject: `to ${to}`, text: "DANE test\n" });
    assert.match(String(info.response), /^250 /);
  } finally {
    t.close();
  }
}

/** The delivery log line of the first attempt for `to`. */
async function deliveryLine(to: string): Promise<Record<string, unknown>> {
  let line: Record<string, unknown> | undefined;
  await waitFor(() => (line = mxd.logs().find((l) => l.event === "delivery" && l.to === to)) !== undefined, 30_000, `the delivery log line for ${to}`);
  return line!;
}

const linesFor = (qid: unknown) => mxd.logs().filter((l) => l.qid === qid);

test("matching TLSA (3 1 1 of the MX certificate): delivered over TLS, logged as DANE verified", { skip, timeout: 60_000 }, async () => {
  await submit("rcpt@dane.test");
  const l = await deliveryLine("rcpt@dane.test");
  assert.equal(l.status, "sent", JSON.stringify(l));
  assert.equal(l.tlsPolicy, "dane (level dane)");
  assert.equal((l.tls as { verified: boolean }).verified, true, JSON.stringify(l.tls));
  assert.ok(linesFor(l.qid).some((x) => /DANE verified: DANE-EE\(3\) SPKI\(1\) SHA2-256\(1\) matched the server certificate/.test(JSON.stringify(x))), JSON.stringify(linesFor(l.qid)));
  await sinks.good.waitForMessages(1, 5000);
  assert.equal(sinks.good.messages[0]!.secure, true, "the message travelled over TLS");
  assert.deepEqual(sinks.good.messages[0]!.to, ["rcpt@dane.test"]);
});

test("TLSA of another certificate: deferred, the reason in the reply; nothing delivered", { skip, timeout: 60_000 }, async () => {
  await submit("rcpt@bad.dane.test");
  const l = await deliveryLine("rcpt@bad.dane.test");
  assert.equal(l.status, "deferred", JSON.stringify(l));
  assert.match(String(l.reply), /no DANE-EE\(3\) record matched the server certificate/);
  assert.match(String(l.dsn), /^4\.7\./);
  assert.equal(sinks.bad.messages.length, 0);
});

test("bogus TLSA (zone changed after signing): deferred without connecting, the failed lookup in the reply", { skip, timeout: 60_000 }, async () => {
  await submit("rcpt@bogus.test");
  const l = await deliveryLine("rcpt@bogus.test");
  assert.equal(l.status, "deferred", JSON.stringify(l));
  assert.match(String(l.reply), /TLSA lookup for _25\._tcp\.mx\.bogus\.test failed: SERVFAIL/);
  assert.equal(sinks.bogus.connections.length, 0, "a host whose TLSA lookup failed is not contacted");
  assert.ok(ub.log().some((x) => /validation failure <_25\._tcp\.mx\.bogus\.test\. TLSA IN>/.test(x)));
});

test("unsigned zone: no DANE (the TLSA record is ignored), delivered with the non-DANE policy", { skip, timeout: 60_000 }, async () => {
  await submit("rcpt@plain.test");
  const l = await deliveryLine("rcpt@plain.test");
  assert.equal(l.status, "sent", JSON.stringify(l));
  assert.notEqual(l.tlsPolicy, "dane (level dane)");
  assert.equal((l.tls as { verified: boolean } | undefined)?.verified ?? false, false, "not authenticated: no DANE, and the certificate is self-signed");
  assert.ok(!linesFor(l.qid).some((x) => /DANE verified/.test(JSON.stringify(x))));
  await sinks.plain.waitForMessages(1, 5000);
});

test("DANE-TA (2 0 1 of the issuing CA, sent in the chain): delivered, the MX name checked", { skip, timeout: 60_000 }, async () => {
  await submit("rcpt@ta.dane.test");
  const l = await deliveryLine("rcpt@ta.dane.test");
  assert.equal(l.status, "sent", JSON.stringify(l));
  assert.equal((l.tls as { verified: boolean }).verified, true, JSON.stringify(l.tls));
  assert.ok(
    linesFor(l.qid).some((x) => /DANE verified: DANE-TA\(2\) Cert\(0\) SHA2-256\(1\) matched the trust anchor at depth 1; certificate name mx\.ta\.dane\.test/.test(JSON.stringify(x))),
    JSON.stringify(linesFor(l.qid)),
  );
  await sinks.ta.waitForMessages(1, 5000);
});
