// The TLS outcome of every connection, where an operator reads it: the delivery log line
// (tls.version, tls.cipher, tls.verified, tls.verifyError, tlsPolicy) and `mxd queue show`.
// mxd runs as a daemon (child process), nodemailer submits, smtp-server sinks play the MX hosts
// (certificates from a test CA made with openssl, or self-signed); the loopback DNS server
// answers MX/A. Owns 127.0.8.3 (DNS), 127.0.8.50-127.0.8.52 (MX hosts), 127.0.8.60 (mxd).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { mxd, startDaemonProcess, until, writeConfig } from "../helpers/daemon-process.js";
import { startDnsServer } from "../helpers/dns-server.js";
import { startMxSink, selfSignedCert } from "../helpers/mx-sink.js";
import { makeTestCa } from "../helpers/test-ca.js";

const dir = mkdtempSync(join(tmpdir(), "mxd-tls-log-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("delivery log line and queue show carry TLS version, cipher, verified and the policy", async (t) => {
  const ca = makeTestCa();
  t.after(() => ca.remove());
  const dns = await startDnsServer({
    host: "127.0.8.3",
    zone: {
      "good.test": { mx: [{ exchange: "mx.good.test", priority: 10 }] },
      "mx.good.test": { a: ["127.0.8.50"] },
      "self.test": { mx: [{ exchange: "mx.self.test", priority: 10 }] },
      "mx.self.test": { a: ["127.0.8.51"] },
      "plain.test": { mx: [{ exchange: "mx.plain.test", priority: 10 }] },
      "mx.plain.test": { a: ["127.0.8.52"] },
    },
  });
  t.after(() => dns.close());
  const good = await startMxSink({ host: "127.0.8.50", tls: "ok", cert: ca.issue(["mx.good.test"]) });
  const self = await startMxSink({ host: "127.0.8.51", tls: "ok", cert: selfSignedCert() });
  const plain = await startMxSink({ host: "127.0.8.52", tls: "ok", cert: selfSignedCert() });
  t.after(() => Promise.all([good.close(), self.close(), plain.close()]));
  const cfg = writeConfig(dir, {
    hostname: "mxd.test",
    spoolDir: join(dir, "spool"),
    listen: [{ host: "127.0.8.60", port: 2525 }],
    admin: { listen: null },
    dns: { servers: [dns.address], timeout: "1s", tries: 1 },
    delivery: {
      retry: { minDelay: "1h", maxDelay: "1h", jitter: 0 },
      timeouts: { connect: "2s", tls: "3s" },
      tls: { caFile: ca.caFile, policy: { default: "may", domains: { "good.test": "verify", "self.test": "verify" } } },
    },
    log: { level: "info" },
  });
  const d = await startDaemonProcess(cfg);
  t.after(() => d.stop());
  const tr = nodemailer.createTransport({ host: "127.0.8.60", port: 2525, secure: false, ignoreTLS: true });
  const info = await tr.sendMail({ envelope: { from: "a@origin.test", to: ["u@good.test", "u@self.test", "u@plain.test"] }, from: "a@origin.test", to: "u@good.test", subject: "tls log", text: "hi\n" });
  const qid = /queued as ([0-9A-Z]{16})/.exec(info.response)![1]!;
  const lines = () => d.logs.filter((l) => l.qid === qid && l.event === "delivery");
  await until(() => lines().length >= 3, 15_000, "three delivery lines");

  const byTo = (to: string) => lines().find((l) => l.to === to)!;
  const sent = byTo("u@good.test");
  assert.equal(sent.status, "sent");
  assert.equal(sent.tlsPolicy, "verify (domain)");
  const tls = sent.tls as { version: string; cipher: string; verified: boolean; verifyError?: string };
  assert.match(tls.version, /^TLSv1\.[23]$/);
  assert.ok(tls.cipher.length > 0);
  assert.equal(tls.verified, true);
  assert.equal(tls.verifyError, undefined);

  const deferred = byTo("u@self.test");
  assert.equal(deferred.status, "deferred");
  assert.equal(deferred.dsn, "4.7.5");
  assert.equal(deferred.tlsPolicy, "verify (domain)");
  assert.match(String(deferred.reply), /certificate not accepted: certificate not trusted/);
  // The handshake took place: the line says which TLS it was and why it was not accepted.
  const refusedTls = deferred.tls as { version: string; verified: boolean; verifyError?: string };
  assert.match(refusedTls.version, /^TLSv1\.[23]$/);
  assert.equal(refusedTls.verified, false);
  assert.match(String(refusedTls.verifyError), /not trusted/);
  assert.equal(self.messages.length, 0);

  const may = byTo("u@plain.test");
  assert.equal(may.status, "sent");
  assert.equal(may.tlsPolicy, "may (default)");
  assert.equal((may.tls as { verified: boolean }).verified, false);
  assert.match(String((may.tls as { verifyError?: string }).verifyError), /not trusted/);

  // queue show: the message waits for u@self.test; every attempt says what TLS it had.
  const show = await mxd(["queue", "show", qid, "--config", cfg]);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /<u@good\.test>[\s\S]*?tls: TLSv1\.[23] \S+, verified; policy verify \(domain\)/);
  assert.match(show.stdout, /<u@self\.test>[\s\S]*?4\.7\.5[\s\S]*?tls: TLSv1\.[23] \S+, not verified; policy verify \(domain\)/);
  assert.match(show.stdout, /<u@plain\.test>[\s\S]*?tls: TLSv1\.[23] \S+, not verified; policy may \(default\)/);
});
