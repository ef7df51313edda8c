// The admin HTTP server against hostile or broken clients (bad request targets, huge bodies,
// slow senders, readers that stop reading, wrong tokens, wrong methods), and the queue API by
// domain and for dead letters on a real in-process daemon. Addresses 127.0.0.182-184; no
// remote MX: paused destinations are never attempted and bounces go to a local drop domain.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { mkdtempSync, rmSync, readdirSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import nodemailer from "nodemailer";
import { AdminServer, MAX_BODY, SOCKET_POINTER, adminSocketPath } from "../../src/admin/server.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { INITIAL_CONTROL } from "../../src/queue/state.js";
import type { QueueManager } from "../../src/queue/worker.js";
import { parseConfig } from "../../src/config.js";
import { startDaemon, type Daemon } from "../../src/main.js";
import { silentLogger } from "../../src/io/log.js";
import { until } from "../helpers/daemon-process.js";
import { fillSpool } from "../helpers/fill-spool.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const TOKEN = "hardening-token-0123456789";

function tmp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An AdminServer on a socket in a fresh spool and on 127.0.0.182:<free port>. */
async function server(opts: { timeouts?: { headers?: number; request?: number; writeStall?: number } } = {}): Promise<{ admin: AdminServer; port: number; spoolDir: string }> {
  const spoolDir = tmp("mxd-adm-");
  const admin = new AdminServer({ logger: silentLogger(), token: TOKEN, ...opts });
  await admin.listen(spoolDir, "127.0.0.182:0");
  cleanups.push(() => admin.close());
  return { admin, port: Number(admin.addresses[1]!.split(":").pop()), spoolDir };
}

/** A raw request; resolves with the raw response text ("" when the server just closed). */
function raw(port: number, text: string | Buffer, opts: { waitMs?: number; host?: string } = {}): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, opts.host ?? "127.0.0.182");
    let out = "";
    let closed = false;
    s.on("data", (c) => (out += c.toString("latin1")));
    s.on("error", () => undefined);
    s.on("close", () => {
      closed = true;
      clearTimeout(t);
      resolve({ text: out, closed });
    });
    s.write(text);
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text: out, closed });
    }, opts.waitMs ?? 3000);
  });
}

function req(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const withType = body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type") ? { ...headers, "Content-Type": "application/json" } : headers;
    const r = http.request({ host: "127.0.0.182", port, method, path, headers: withType, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    r.on("timeout", () => r.destroy(new Error("timed out")));
    r.on("error", reject);
    r.end(body);
  });
}
const auth = { Authorization: `Bearer ${TOKEN}` };

test("a request target that is not a URL gets 400 and the daemon lives on (it used to crash the process)", async () => {
  const { port } = await server();
  for (const target of ["http://[", "http://[::1", "//[x"]) {
    const r = await raw(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.182:${port}\r\nConnection: close\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 400 /, target);
  }
  assert.equal((await req(port, "GET", "/healthz", auth)).status, 200, "still serving");
});

test("bearer token: required on TCP, compared whole, scheme case-insensitive; the socket needs none", async () => {
  const { port, spoolDir } = await server();
  const st = async (h: Record<string, string>) => (await req(port, "GET", "/healthz", h)).status;
  assert.equal(await st({}), 401);
  assert.equal(await st({ Authorization: TOKEN }), 401, "no scheme");
  assert.equal(await st({ Authorization: `Basic ${TOKEN}` }), 401);
  assert.equal(await st({ Authorization: `Bearer ${TOKEN.slice(0, -1)}` }), 401, "a prefix is not the token");
  assert.equal(await st({ Authorization: `Bearer ${TOKEN}x` }), 401, "nor a longer one");
  assert.equal(await st({ Authorization: `Bearer ` }), 401);
  assert.equal(await st({ Authorization: `bearer ${TOKEN}` }), 200);
  assert.equal(await st({ Authorization: `Bearer ${TOKEN}` }), 200);
  const r = await req(port, "GET", "/healthz");
  assert.equal(r.headers["www-authenticate"], 'Bearer realm="mxd"');
  const local = await new Promise<number>((resolve, reject) => {
    http.get({ socketPath: adminSocketPath(spoolDir)!, path: "/healthz" }, (res) => (res.resume(), resolve(res.statusCode!))).on("error", reject);
  });
  assert.equal(local, 200);
});

test("404 and 405 (with Allow); 503 while the daemon is not attached; unknown parameters are 400", async () => {
  const { port } = await server();
  let r = await req(port, "GET", "/queue/../../etc/passwd", auth);
  assert.equal(r.status, 404, "the URL parser collapses dot segments: nothing outside the API is reachable");
  r = await req(port, "GET", "/queue/..%2F..%2Fetc%2Fpasswd", auth);
  assert.equal(r.status, 400);
  assert.match(JSON.parse(r.text).error, /not a queue id/);
  r = await req(port, "DELETE", "/queue/flush", auth);
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, "POST");
  r = await req(port, "POST", "/metrics", auth);
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, "GET");
  r = await req(port, "GET", "/status", auth);
  assert.equal(r.status, 503);
  assert.deepEqual(JSON.parse(r.text), { error: "mxd is starting" });
  r = await req(port, "GET", "/queue", auth);
  assert.equal(r.status, 503, "no 200 header before the daemon is ready");
  r = await req(port, "GET", "/metrics", auth);
  assert.equal(r.status, 503, "/metrics answers 503 while starting (not an empty reply)");
  r = await req(port, "GET", "/queue?stat=held", auth);
  assert.equal(r.status, 400);
  r = await req(port, "GET", "/queue?domain=a%2F..", auth);
  assert.equal(r.status, 400);
});

test("bodies over 1 MB get 413 without being read, by Content-Length or by counting; bad JSON is 400", async () => {
  const { port } = await server();
  // Declared too large: answered at once, the connection closed, the body never sent.
  let r = await raw(port, `POST /queue/hold HTTP/1.1\r\nHost: 127.0.0.182:${port}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${10 * MAX_BODY}\r\n\r\n{"ids":[`);
  assert.match(r.text, /^HTTP\/1\.1 413 /);
  assert.match(r.text, /request body too large/);
  assert.ok(r.closed, "the server closed the connection");
  // Chunked, no length: counted while read; past the limit the answer is 413 and the socket closes.
  const big = await new Promise<{ status: number; closed: boolean }>((resolve) => {
    const s = net.connect(port, "127.0.0.182");
    let out = "";
    s.on("data", (c) => (out += c.toString()));
    s.on("error", () => undefined);
    s.on("close", () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(out)?.[1] ?? 0), closed: true }));
    s.write(`POST /queue/hold HTTP/1.1\r\nHost: 127.0.0.182:${port}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const size = 64 * 1024;
    const frame = Buffer.concat([Buffer.from(`${size.toString(16)}\r\n`), Buffer.alloc(size, 0x20), Buffer.from("\r\n")]);
    let sent = 0;
    const pump = () => {
      while (sent < 4 * MAX_BODY && !s.destroyed) {
        sent += size;
        if (!s.write(frame)) return void s.once("drain", pump);
      }
    };
    pump();
    setTimeout(() => s.destroy(), 10_000);
  });
  assert.equal(big.status, 413);
  for (const body of ["{not json", "[1,2]", "null", '"x"']) {
    r = await raw(port, `POST /pause HTTP/1.1\r\nHost: 127.0.0.182:${port}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    assert.match(r.text, /^HTTP\/1\.1 400 /, body);
  }
  assert.equal((await req(port, "GET", "/healthz", auth)).status, 200);
});

test("slow clients: headers that never finish are cut off; so is a body that never ends", async () => {
  const { port } = await server({ timeouts: { headers: 500, request: 1500 } });
  const t0 = Date.now();
  let r = await raw(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.182:${port}\r\nX-Slow: `, { waitMs: 8000 });
  assert.ok(r.closed, "closed by the server");
  assert.ok(Date.now() - t0 < 5000, `cut off after ${Date.now() - t0} ms`);
  const t1 = Date.now();
  r = await raw(port, `POST /pause HTTP/1.1\r\nHost: 127.0.0.182:${port}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`, { waitMs: 8000 });
  assert.ok(r.closed, "closed by the server");
  assert.ok(Date.now() - t1 < 6000, `cut off after ${Date.now() - t1} ms`);
});

test("GET /queue to a client that stops reading: the stream is abandoned, not buffered forever", async () => {
  const { admin, port, spoolDir } = await server({ timeouts: { writeStall: 500 } });
  await fillSpool(spoolDir, 20_000);
  const spool = new JournalSpool({ dir: spoolDir, readOnly: true });
  admin.attach({ queue: { pauseState: { ...INITIAL_CONTROL, pausedDomains: [] } } as unknown as QueueManager, spool, metrics: () => "", status: async () => ({}) as never });
  // A reader that never reads: the server's writes block on back-pressure, then give up.
  const r = await raw(port, `GET /queue HTTP/1.1\r\nHost: 127.0.0.182:${port}\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`, { waitMs: 15_000 });
  assert.ok(r.closed, "the server closed the stalled response");
  // An attentive reader gets everything.
  const all = await req(port, "GET", "/queue?state=queued&domain=remote.test", auth);
  assert.equal(all.status, 200);
  assert.equal(all.text.trim().split("\n").length, 20_000);
});

test("a spoolDir too long for a Unix socket: the socket goes to a fresh 0700 directory named in spoolDir/admin.sock.path, which another user can neither create first nor write", async (t) => {
  const base = tmp("mxd-long-");
  const spoolDir = join(base, "a".repeat(60), "b".repeat(60), "spool");
  assert.ok(Buffer.byteLength(join(spoolDir, "admin.sock")) > 107);
  assert.equal(adminSocketPath(spoolDir), undefined, "no daemon yet: nothing to connect to");
  // The name mxd used to bind (tmpdir/mxd-<sha256 of the spool>.sock), created first by
  // another user: it used to stop mxd from starting. As uid 65534 when we can switch users.
  const squat = join(tmpdir(), `mxd-${createHash("sha256").update(resolve(spoolDir)).digest("hex").slice(0, 16)}.sock`);
  const asNobody = (cmd: string[]) => spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ...cmd], { timeout: 10_000 });
  const canSwitch = process.getuid?.() === 0 && asNobody(["true"]).status === 0;
  if (canSwitch) assert.equal(asNobody(["touch", squat]).status, 0, "nobody creates the old predictable name");
  else writeFileSync(squat, "");
  cleanups.push(() => rmSync(squat, { force: true }));
  const admin = new AdminServer({ logger: silentLogger() });
  await admin.listen(spoolDir, null);
  cleanups.push(() => admin.close());
  const p = adminSocketPath(spoolDir)!;
  assert.ok(p, "the pointer file names the socket");
  assert.equal(readFileSync(join(spoolDir, SOCKET_POINTER), "utf8").trim(), p);
  assert.ok(p.startsWith(tmpdir()) && Buffer.byteLength(p) <= 103, p);
  assert.notEqual(p, squat);
  const dir = statSync(dirname(p));
  assert.equal(dir.mode & 0o777, 0o700, "only mxd's user may enter or write the directory");
  assert.equal(dir.uid, process.getuid!());
  assert.equal(statSync(p).mode & 0o777, 0o600);
  if (canSwitch) {
    const touch = asNobody(["touch", join(dirname(p), "x")]);
    assert.notEqual(touch.status, 0, "another user cannot create files there");
    assert.match(String(touch.stderr), /Permission denied/);
    const connect = asNobody([process.execPath, "-e", `require("net").connect(${JSON.stringify(p)}).on("connect",()=>process.exit(0)).on("error",(e)=>{console.error(e.code);process.exit(3)})`]);
    assert.equal(connect.status, 3, "nor connect to the socket");
    assert.match(String(connect.stderr), /EACCES/);
  } else t.diagnostic("not root: the other-user checks were not run");
  assert.equal(await new Promise<number>((ok, fail) => http.get({ socketPath: p, path: "/healthz" }, (res) => (res.resume(), ok(res.statusCode!))).on("error", fail)), 200, "answers");
  const second = new AdminServer({ logger: silentLogger() });
  await assert.rejects(second.listen(spoolDir, null), /another mxd is already running/);
  await admin.close();
  assert.equal(existsSync(p), false, "socket removed at close");
  assert.equal(existsSync(dirname(p)), false, "its directory too");
  assert.equal(adminSocketPath(spoolDir), undefined, "and the pointer");
});

// ------------------------------------------------------------ the queue API on a real daemon

async function daemon(): Promise<{ d: Daemon; drop: string; port: number }> {
  const dir = tmp("mxd-admq-");
  const config = parseConfig({
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.183", port: 0 }],
    spoolDir: join(dir, "spool"),
    dropDir: join(dir, "drop"),
    localDomains: { "corp.test": { recipients: ["alice"] } },
    dns: { servers: ["127.0.0.1:9"], timeout: "500ms", tries: 1 },
    admin: { listen: "127.0.0.182:0", token: TOKEN },
    bounce: { copyTo: "alice@corp.test" },
  });
  const d = await startDaemon(config, { logger: silentLogger() });
  cleanups.push(() => d.stop());
  return { d, drop: join(dir, "drop"), port: Number(d.admin.addresses[1]!.split(":").pop()) };
}

async function submit(d: Daemon, from: string, to: string[]): Promise<string> {
  const t = nodemailer.createTransport({ host: "127.0.0.183", port: d.smtp.addresses[0]!.port, secure: false, ignoreTLS: true });
  const info = await t.sendMail({ envelope: { from, to }, from: from || "x@x.test", to, subject: "api", text: "hi\n" });
  return /queued as ([0-9A-Z]{16})/.exec(info.response)![1]!;
}

const ndjson = (t: string) => (t.trim() ? t.trim().split("\n").map((l) => JSON.parse(l)) : []);

test("hold, release and bounce by domain through the API; GET /queue?state=dead (with domain)", async () => {
  const { d, drop, port } = await daemon();
  const post = async (p: string, body: object) => {
    const r = await req(port, "POST", p, { ...auth, "Content-Type": "application/json" }, JSON.stringify(body));
    assert.equal(r.status, 200, r.text);
    return JSON.parse(r.text);
  };
  await post("/pause", { domain: "far.test" });
  await post("/pause", { domain: "other.test" });
  const a1 = await submit(d, "alice@corp.test", ["x@far.test"]);
  const a2 = await submit(d, "nobody@corp.test", ["y@far.test", "z@other.test"]);
  const b1 = await submit(d, "alice@corp.test", ["w@other.test"]);
  await until(() => d.queue.counts().parked === 3, 5000, "three parked messages");

  let r = await post("/queue/hold", { domain: "FAR.test" });
  assert.deepEqual(r.results.map((x: { id: string; status: string }) => [x.id, x.status]).sort(), [[a1, "held"], [a2, "held"]].sort());
  let list = ndjson((await req(port, "GET", "/queue?state=held", auth)).text);
  assert.deepEqual(list.map((e) => e.id).sort(), [a1, a2].sort());
  list = ndjson((await req(port, "GET", "/queue?state=queued&domain=other.test", auth)).text);
  assert.deepEqual(list.map((e) => e.id), [b1], "a2 is held, so not queued");
  r = await post("/queue/release", { domain: "far.test" });
  assert.deepEqual(r.results.map((x: { status: string }) => x.status), ["released", "released"]);
  r = await post("/queue/release", { domain: "far.test" });
  assert.deepEqual(r.results.map((x: { ok: boolean; status: string }) => [x.ok, x.status]), [[false, "not held"], [false, "not held"]]);
  assert.equal(ndjson((await req(port, "GET", "/queue?state=held", auth)).text).length, 0);

  // Bounce by domain: every message with a recipient at far.test is failed (all its pending
  // recipients), the sender gets a DSN. a2's sender has no mailbox: its DSN becomes a dead letter.
  r = await post("/queue/bounce", { domain: "far.test" });
  assert.deepEqual(r.results.map((x: { status: string }) => x.status), ["bounced", "bounced"]);
  const files = (p: string) => (existsSync(p) ? readdirSync(p) : []);
  await until(() => files(join(drop, "corp.test", "alice", "new")).length === 2, 5000, "a1's DSN (alice is also copyTo: one copy) and the copy of a2's");
  let dead: { id: string; reason: string; recipients: string[] }[] = [];
  await until(async () => (dead = ndjson((await req(port, "GET", "/queue?state=dead", auth)).text)).length === 1, 5000, "one dead letter");
  assert.match(dead[0]!.reason, /bounce could not be delivered: nobody@corp\.test: 550 5\.1\.1/);
  assert.deepEqual(ndjson((await req(port, "GET", "/queue?state=dead&domain=corp.test", auth)).text).map((e) => e.id), [dead[0]!.id]);
  assert.deepEqual(ndjson((await req(port, "GET", "/queue?state=dead&domain=far.test", auth)).text), [], "the dead letter has no far.test recipient");
  const left = ndjson((await req(port, "GET", "/queue", auth)).text);
  assert.deepEqual(left.map((e) => e.id), [b1], "only the other.test message is left");
  // Bulk hold with {all:true} is refused: hold takes ids or a domain.
  assert.equal((await req(port, "POST", "/queue/hold", auth, JSON.stringify({ all: true }))).status, 400);
  assert.equal((await req(port, "POST", "/queue/hold", auth, JSON.stringify({ domain: "x.test", ids: [b1] }))).status, 400);
  assert.equal((await req(port, "POST", "/queue/hold", auth, JSON.stringify({ domain: "x.test", extra: 1 }))).status, 400);
});
