// Rate limits on the daemon (a child process), with nodemailer and swaks as clients on their own
// loopback source addresses (127.0.0.81–.85): a limit hit answers 4xx with a clear text, the
// client gets through again once the window has passed, exempt networks are never limited,
// and the hits show in /metrics and `mxd status`. Windows are seconds long so that recovery
// can be waited for; nothing here asserts how fast anything is.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { mxd, startDaemonProcess, writeConfig, type DaemonProcess } from "../helpers/daemon-process.js";
import { parseExposition } from "../helpers/exposition.js";
import { peerPath, runTool, skipUnless, requirePeers } from "../helpers/peers.js";

let d: DaemonProcess;
let dir: string;
let cfg: string;
const WINDOW_MS = 3000;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mxd-rate-"));
  cfg = writeConfig(dir, {
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir: join(dir, "spool"),
    relay: { allowedNetworks: ["127.0.0.0/8"] },
    delivery: { enabled: false },
    admin: { listen: null },
    rateLimits: {
      // Only 127.0.0.1 is exempt; the test's other source addresses are limited.
      exemptNetworks: ["127.0.0.1/32"],
      perClient: {
        connections: { limit: 3, per: "3s" },
        messages: { limit: 2, per: "3s" },
        recipients: { limit: 5, per: "3s" },
      },
    },
    log: { level: "info" },
  });
  d = await startDaemonProcess(cfg);
});

after(async () => {
  await d?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One message over a fresh nodemailer connection from `localAddress`. */
function send(localAddress: string, to: string[], tag: string) {
  const t = nodemailer.createTransport({ host: "127.0.0.1", port: d.smtpPort, secure: false, ignoreTLS: true, localAddress, name: "nm.client.test", connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 5000 } as never);
  return t
    .sendMail({ envelope: { from: "alice@client.test", to }, raw: `From: alice@client.test\r\nTo: ${to.join(", ")}\r\nSubject: ${tag}\r\n\r\nrate limit test\r\n` })
    .then(
      (info) => ({ ok: true as const, info: info as { accepted: string[]; rejected: string[]; rejectedErrors?: { response: string }[]; response: string } }),
      (err: { response?: string; responseCode?: number; message: string }) => ({ ok: false as const, err }),
    )
    .finally(() => t.close());
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test("messages per client: 450 4.7.1 at MAIL past the limit; accepted again after the window", async () => {
  const ip = "127.0.0.81";
  for (const n of [1, 2]) {
    const r = await send(ip, ["bob@remote.example"], `m${n}`);
    assert.ok(r.ok, `message ${n}: ${!r.ok && r.err.message}`);
  }
  const refused = await send(ip, ["bob@remote.example"], "m3");
  assert.equal(refused.ok, false);
  assert.ok(!refused.ok);
  assert.equal(refused.err.responseCode, 450);
  assert.match(refused.err.response ?? "", /^450 4\.7\.1 Error: too many messages from 127\.0\.0\.81 \(limit 2 per 3s\), try again later/);
  // Another client is not affected.
  const other = await send("127.0.0.82", ["bob@remote.example"], "other");
  assert.ok(other.ok, !other.ok ? other.err.message : "");
  await sleep(WINDOW_MS);
  const again = await send(ip, ["bob@remote.example"], "m4");
  assert.ok(again.ok, `after the window: ${!again.ok && again.err.message}`);
  // The log line may reach us after the client has its reply.
  const logged = () => d.logs.some((l) => l.msg === "NOQUEUE: reject" && l.client === ip && String(l.reply).startsWith("450 4.7.1"));
  for (let i = 0; i < 100 && !logged(); i++) await sleep(50);
  assert.ok(logged(), "a reject line in the log");
});

test("recipients per client: 450 4.7.1 at RCPT for the ones past the limit; the rest is queued", async () => {
  const ip = "127.0.0.83";
  const to = Array.from({ length: 7 }, (_, i) => `r${i}@remote.example`);
  const r = await send(ip, to, "many recipients");
  assert.ok(r.ok, !r.ok ? r.err.message : "");
  assert.deepEqual(r.info.accepted, to.slice(0, 5));
  assert.deepEqual(r.info.rejected, to.slice(5));
  assert.match(r.info.rejectedErrors?.[0]?.response ?? "", /^450 4\.7\.1 Error: too many recipients from 127\.0\.0\.83 \(limit 5 per 3s\)/);
  await sleep(WINDOW_MS);
  const again = await send(ip, to.slice(5), "the rest");
  assert.ok(again.ok && again.info.rejected.length === 0, `after the window: ${JSON.stringify(again)}`);
});

test("connection rate per client: 421 4.7.0 greeting past the limit (swaks); accepted after the window", { skip: skipUnless("swaks") }, async () => {
  requirePeers("swaks");
  const ip = "127.0.0.84";
  const swaks = () => runTool(peerPath("swaks")!, ["--server", "127.0.0.1", "--port", String(d.smtpPort), "--local-interface", ip, "--quit-after", "EHLO", "--ehlo", "swaks.client.test", "--timeout", "10"], { timeoutMs: 20_000 });
  for (let i = 0; i < 3; i++) {
    const r = await swaks();
    assert.equal(r.code, 0, `connection ${i + 1}: ${r.stdout}`);
  }
  const refused = await swaks();
  assert.notEqual(refused.code, 0);
  assert.match(refused.stdout, /421 4\.7\.0 mxd\.test Error: too many connections from 127\.0\.0\.84 \(limit 3 per 3s\), try again later/);
  await sleep(WINDOW_MS);
  const again = await swaks();
  assert.equal(again.code, 0, `after the window: ${again.stdout}`);
});

test("an exempt network is never limited", async () => {
  for (let i = 0; i < 6; i++) {
    const r = await send("127.0.0.1", ["a@remote.example", "b@remote.example"], `exempt ${i}`);
    assert.ok(r.ok && r.info.rejected.length === 0, `exempt message ${i}: ${JSON.stringify(r)}`);
  }
});

test("the limits and their hits in /metrics and mxd status", async () => {
  const text = await new Promise<string>((resolve, reject) => {
    const req = http.get({ socketPath: join(dir, "spool", "admin.sock"), path: "/metrics", timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error("/metrics timed out")));
    req.on("error", reject);
  });
  const samples = parseExposition(text);
  const v = (name: string, labels: Record<string, string>) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, x]) => s.labels[k] === x))?.value;
  assert.equal(v("mxd_rate_limit", { rule: "client-messages", per: "3s" }), 2);
  assert.equal(v("mxd_rate_limit", { rule: "user-messages" }), 100, "the default");
  assert.ok((v("mxd_rate_limit_hits_total", { rule: "client-messages" }) ?? 0) >= 1);
  assert.ok((v("mxd_rate_limit_hits_total", { rule: "client-recipients" }) ?? 0) >= 2);
  assert.equal(v("mxd_rate_limit_hits_total", { rule: "user-recipients" }), 0);
  assert.ok((v("mxd_rate_limit_tracked_keys", {}) ?? 0) >= 1);
  const st = await mxd(["status", "--config", cfg]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^limits: {4}client-connections 3\/3s.*, client-messages 2\/3s \(\d+ hits?\), client-recipients 5\/3s \(\d+ hits?\), user-messages 100\/1m, user-recipients 1000\/1h$/m);
  assert.match(st.stdout, /tracking \d+ of at most 100000 clients and users; exempt: 127\.0\.0\.1\/32/);
});
