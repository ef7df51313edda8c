// The admin HTTP API of a daemon in a child process: token on TCP, /metrics checked against
// what was sent, errors as JSON, one daemon per spool. Addresses 127.0.0.160-169.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { startDnsServer, type DnsServerHandle } from "../helpers/dns-server.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { mxd, startDaemonProcess, until, writeConfig, type DaemonProcess } from "../helpers/daemon-process.js";
import { parseExposition } from "../helpers/exposition.js";

let dns: DnsServerHandle;
let ok: MxSink;
let refuse: MxSink;
let d: DaemonProcess;
let dir: string;
let cfg: string;
let adminPort: number;
const TOKEN = "s3cret-token-for-tests";

before(async () => {
  dns = await startDnsServer({
    host: "127.0.0.160",
    zone: {
      "ok.test": { mx: [{ exchange: "mx.ok.test", priority: 10 }] },
      "mx.ok.test": { a: ["127.0.0.161"] },
      "refuse.test": { mx: [{ exchange: "mx.refuse.test", priority: 10 }] },
      "mx.refuse.test": { a: ["127.0.0.162"] },
    },
  });
  ok = await startMxSink({ host: "127.0.0.161" });
  refuse = await startMxSink({ host: "127.0.0.162", rcpt: (a) => (a.startsWith("bad") ? { code: 550, message: "5.1.1 unknown" } : { code: 451, message: "4.7.1 greylisted" }) });
  dir = mkdtempSync(join(tmpdir(), "mxd-admin-"));
  // A free port for admin.listen: bind 0, read it, release it.
  adminPort = await new Promise<number>((res) => {
    const s = http.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
  cfg = writeConfig(dir, {
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir: join(dir, "spool"),
    dns: { servers: [dns.address], timeout: "2s", tries: 1 },
    delivery: { retry: { minDelay: "1h", maxDelay: "1h", jitter: 0 }, timeouts: { connect: "2s" } },
    admin: { listen: `127.0.0.1:${adminPort}`, token: TOKEN },
    log: { level: "info" },
  });
  d = await startDaemonProcess(cfg);
});

after(async () => {
  await d?.stop();
  await ok?.close();
  await refuse?.close();
  await dns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function get(path: string, headers: Record<string, string> = {}, method = "GET", body?: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const withType = body !== undefined ? { "Content-Type": "application/json", ...headers } : headers;
    const req = http.request({ host: "127.0.0.1", port: adminPort, path, method, headers: withType, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, type: String(res.headers["content-type"]), text }));
    });
    req.on("timeout", () => req.destroy(new Error("admin request timed out")));
    req.on("error", reject);
    req.end(body);
  });
}
const auth = { Authorization: `Bearer ${TOKEN}` };

async function send(to: string[]): Promise<void> {
  const t = nodemailer.createTransport({ host: "127.0.0.1", port: d.smtpPort, secure: false, ignoreTLS: true });
  await t.sendMail({ envelope: { from: "", to }, from: "s@x.test", to, subject: "m", text: "x\n" });
}

test("the TCP listener needs the bearer token; the spool socket does not", async () => {
  assert.equal((await get("/healthz")).status, 401);
  assert.equal((await get("/healthz", { Authorization: "Bearer wrong-token-wrong-token" })).status, 401);
  const r = await get("/healthz", auth);
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { status: "ok" });
  // The CLI talks over the socket and needs no token.
  const s = await mxd(["status", "--config", cfg]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, new RegExp(`admin: .*admin\\.sock, 127\\.0\\.0\\.1:${adminPort}`));
});

test("/metrics counts what was sent: accepted, delivered, deferred, bounced, queue size, latency", async () => {
  // Bounces from <> are never generated, so the counts below are exactly these messages.
  await send(["a@ok.test", "b@ok.test"]);
  await send(["c@ok.test"]);
  await send(["bad1@refuse.test", "later@refuse.test"]);
  await ok.waitForMessages(2, 10_000);
  let m = parseExposition("");
  await until(async () => {
    m = parseExposition((await get("/metrics", auth)).text);
    const v = (n: string, l: Record<string, string> = {}) => m.find((x) => x.name === n && Object.entries(l).every(([k, val]) => x.labels[k] === val))?.value;
    return v("mxd_recipient_deliveries_total", { outcome: "deferred" }) === 1 && v("mxd_queue_messages", { state: "deferred" }) === 1;
  }, 10_000, "the deferred attempt to be counted");
  const r = await get("/metrics", auth);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  m = parseExposition(r.text);
  const v = (n: string, l: Record<string, string> = {}) => m.find((x) => x.name === n && Object.entries(l).every(([k, val]) => x.labels[k] === val))?.value;
  assert.equal(v("mxd_messages_accepted_total"), 3);
  assert.equal(v("mxd_recipient_deliveries_total", { outcome: "delivered" }), 3);
  assert.equal(v("mxd_recipient_deliveries_total", { outcome: "bounced" }), 1);
  assert.equal(v("mxd_recipient_deliveries_total", { outcome: "deferred" }), 1);
  assert.equal(v("mxd_queue_messages", { state: "queued" }), 0);
  assert.equal(v("mxd_queue_messages", { state: "held" }), 0);
  assert.equal(v("mxd_delivery_latency_seconds_count"), 3);
  assert.equal(v("mxd_delivery_latency_seconds_bucket", { le: "+Inf" }), 3);
  assert.ok(v("mxd_delivery_latency_seconds_bucket", { le: "5" })! >= 3, "delivered within seconds");
  assert.ok(v("mxd_delivery_latency_seconds_sum")! < 15);
  assert.equal(v("mxd_connections_active", { direction: "in" }), 0);
  assert.equal(v("mxd_delivery_paused"), 0);
  assert.equal(v("mxd_dead_letters_total") ?? 0, 0);

  // Pause one domain and the whole delivery: both show in /metrics.
  assert.equal((await mxd(["queue", "pause", "--domain", "refuse.test", "--config", cfg])).code, 0);
  // A typo must not pause everything: unknown fields are refused.
  const typo = await get("/pause", auth, "POST", '{"domian":"refuse.test"}');
  assert.equal(typo.status, 400);
  assert.equal(JSON.parse(typo.text).error, `unknown field "domian"`);
  assert.equal(parseExposition((await get("/metrics", auth)).text).find((x) => x.name === "mxd_delivery_paused")?.value, 0);
  assert.equal((await get("/pause", auth, "POST", "{}")).status, 200);
  m = parseExposition((await get("/metrics", auth)).text);
  assert.equal(v("mxd_delivery_paused"), 1);
  assert.equal(v("mxd_domain_paused", { domain: "refuse.test" }), 1);
  const st = JSON.parse((await get("/resume", auth, "POST", "{}")).text);
  assert.deepEqual([st.paused, st.pausedDomains], [false, ["refuse.test"]]);
});

test("errors are JSON with the right status; GET /queue streams NDJSON", async () => {
  let r = await get("/nope", auth);
  assert.equal(r.status, 404);
  assert.match(JSON.parse(r.text).error, /no such endpoint/);
  r = await get("/queue/flush", auth);
  assert.equal(r.status, 405);
  r = await get("/queue/hold", auth, "POST", "{not json");
  assert.equal(r.status, 400);
  r = await get("/queue/hold", auth, "POST", JSON.stringify({ ids: ["../../etc/passwd"] }));
  assert.equal(r.status, 400);
  assert.match(JSON.parse(r.text).error, /not a queue id/);
  r = await get("/queue/bounce", auth, "POST", JSON.stringify({ all: true }));
  assert.equal(r.status, 400);
  r = await get("/queue/hold", auth, "POST", JSON.stringify({ ids: ["01KB2X7Q9M4F8Z3H"] }));
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text).results, [{ id: "01KB2X7Q9M4F8Z3H", ok: false, status: "no such message" }]);
  r = await get("/queue/01KB2X7Q9M4F8Z3H", auth);
  assert.equal(r.status, 404);
  r = await get("/queue?state=deferred", auth);
  assert.equal(r.status, 200);
  assert.match(r.type, /application\/x-ndjson/);
  const lines = r.text.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 1);
  assert.deepEqual(lines[0].recipients.map((x: { address: string; status: string }) => [x.address, x.status]), [["bad1@refuse.test", "failed"], ["later@refuse.test", "pending"]]);
  assert.equal(lines[0].lastError, "451 4.7.1 greylisted");
  r = await get(`/queue/${lines[0].id}`, auth);
  assert.equal(r.status, 200);
  assert.match(JSON.parse(r.text).headers, /^Received: from /);
});

test("a second daemon on the same spool is refused; a non-loopback admin.listen needs a token", async () => {
  const second = await mxd(["serve", "--config", cfg], { timeoutMs: 15_000 });
  assert.equal(second.code, 1);
  assert.match(second.stderr, /another mxd is already running on spool/);
  const bad = writeConfig(dir, { admin: { listen: "0.0.0.0:8025" } }, "bad.json");
  const r = await mxd(["check-config", bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /admin\.token: admin\.listen 0\.0\.0\.0:8025 is not a loopback address, so admin\.token is required/);
});
