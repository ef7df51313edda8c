// The admin API is not an open door (issue 11): on TCP, without admin.token, only the read-only
// endpoints answer and every action is refused (the spool socket still does them); with a
// token, an action without it is refused even on loopback; a wrong Host (DNS rebinding), a
// cross-site Origin and a form-encoded or text body are refused whatever the token. Requests
// are made with Node's HTTP client (undici's fetch) the way a script or a page would send them.
// In-process daemons on 127.0.0.114; no remote MX (delivery is paused, bounces are local).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type ConfigInput } from "../../src/config.js";
import { startDaemon, type Daemon } from "../../src/main.js";
import { silentLogger } from "../../src/io/log.js";
import { adminSocketPath } from "../../src/admin/server.js";

const HOST = "127.0.0.114";
const TOKEN = "access-test-token-0123456789";
const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function daemon(admin: ConfigInput["admin"]): Promise<{ d: Daemon; port: number; spoolDir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "mxd-access-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = parseConfig({
    hostname: "mxd-admin.test",
    listen: [{ host: HOST, port: 0 }],
    spoolDir: join(dir, "spool"),
    dropDir: join(dir, "drop"),
    dns: { servers: ["127.0.0.1:9"], timeout: "500ms", tries: 1 },
    admin,
  });
  const d = await startDaemon(config, { logger: silentLogger() });
  cleanups.push(() => d.stop());
  return { d, port: Number(d.admin.addresses.find((a) => a.startsWith(HOST))!.split(":").pop()), spoolDir: config.spoolDir };
}

/** A request with exactly these headers (Node sets Host from host:port unless given). */
function req(o: { port?: number; socketPath?: string; method: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const where = o.socketPath ? { socketPath: o.socketPath } : { host: HOST, port: o.port };
    const r = http.request({ ...where, method: o.method, path: o.path, headers: o.headers ?? {}, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, text }));
    });
    r.on("timeout", () => r.destroy(new Error("timed out")));
    r.on("error", reject);
    r.end(o.body);
  });
}
const json = { "Content-Type": "application/json" };

test("no admin.token: TCP serves the status page, /healthz, /metrics, /status and refuses every action; the socket does them", async () => {
  const { d, port, spoolDir } = await daemon({ listen: `${HOST}:0` });
  for (const path of ["/", "/live", "/healthz", "/metrics", "/status"]) assert.equal((await req({ port, method: "GET", path })).status, 200, path);
  const refused: [string, string, string | undefined][] = [
    ["POST", "/pause", "{}"],
    ["POST", "/queue/flush", '{"all":true}'],
    ["POST", "/queue/delete", '{"all":true}'],
    ["POST", "/reload", "{}"],
    ["DELETE", "/queue/00000000000000000000", undefined],
    ["GET", "/queue", undefined],
  ];
  for (const [method, path, body] of refused) {
    const r = await req({ port, method, path, headers: body ? json : {}, ...(body ? { body } : {}) });
    assert.equal(r.status, 403, `${method} ${path}`);
    assert.match(JSON.parse(r.text).error, /admin\.token is not set, so the TCP admin API is read-only/);
  }
  // fetch, as a script on this machine would: refused too.
  const f = await fetch(`http://${HOST}:${port}/pause`, { method: "POST", headers: json, body: "{}" });
  assert.equal(f.status, 403);
  assert.equal(d.queue.pauseState.paused, false, "nothing was paused");
  // The spool socket (0600) still does it all.
  const socketPath = adminSocketPath(spoolDir)!;
  const p = await req({ socketPath, method: "POST", path: "/pause", headers: json, body: "{}" });
  assert.equal(p.status, 200);
  assert.equal(d.queue.pauseState.paused, true);
  const rl = await req({ socketPath, method: "POST", path: "/reload", headers: json, body: "{}" });
  assert.deepEqual(JSON.parse(rl.text), { applied: true, changed: [] });
  assert.equal((await req({ socketPath, method: "POST", path: "/resume", headers: json, body: "{}" })).status, 200);
  // A refused one (a setting only a restart can change), then both show in /metrics.
  const notApplied = await d.applyConfig(parseConfig({ ...d.config, spoolDir: "/elsewhere" } as ConfigInput));
  assert.equal(notApplied.applied, false);
  const m = (await req({ port, method: "GET", path: "/metrics" })).text;
  assert.match(m, /^mxd_config_reloads_total\{result="applied"\} 1$/m);
  assert.match(m, /^mxd_config_reloads_total\{result="refused"\} 1$/m);
});

test("with admin.token: actions need it on loopback too; wrong Host, cross-site Origin and form or text bodies are refused even with it", async () => {
  const { d, port } = await daemon({ listen: `${HOST}:0`, token: TOKEN, hosts: ["scrape.internal"] });
  const auth = { Authorization: `Bearer ${TOKEN}` };
  assert.equal((await req({ port, method: "POST", path: "/pause", headers: json, body: "{}" })).status, 401, "no token");
  assert.equal((await req({ port, method: "POST", path: "/pause", headers: { ...json, Authorization: "Bearer wrong-wrong-wrong-wrong" }, body: "{}" })).status, 401);
  assert.equal(d.queue.pauseState.paused, false);

  // DNS rebinding: a page at attacker.example whose name now resolves to 127.0.0.114.
  const rebinding = await req({ port, method: "GET", path: "/status", headers: { ...auth, Host: `attacker.example:${port}` } });
  assert.equal(rebinding.status, 403);
  assert.match(JSON.parse(rebinding.text).error, /Host "attacker\.example:\d+" is not this admin listener/);
  assert.equal((await req({ port, method: "POST", path: "/pause", headers: { ...json, ...auth, Host: `attacker.example:${port}` }, body: "{}" })).status, 403);
  // A form on another site, posted by the browser (it would send cached Basic credentials).
  const form = await req({ port, method: "POST", path: "/pause", headers: { ...auth, "Content-Type": "application/x-www-form-urlencoded", Origin: "http://attacker.example" }, body: "domain=x" });
  assert.equal(form.status, 403, "cross-site Origin");
  for (const type of ["application/x-www-form-urlencoded", "multipart/form-data; boundary=zz", "text/plain"]) {
    const r = await req({ port, method: "POST", path: "/pause", headers: { ...auth, "Content-Type": type }, body: type.startsWith("multipart") ? "--zz--\r\n" : "{}" });
    assert.equal(r.status, 415, type);
    assert.match(JSON.parse(r.text).error, /must be JSON/);
  }
  assert.equal((await req({ port, method: "POST", path: "/pause", headers: auth })).status, 415, "an empty POST without a JSON type");
  assert.equal(d.queue.pauseState.paused, false, "none of them paused anything");

  // The right way: token, JSON, our Host (IP literal, localhost or the configured hostname).
  for (const host of [`${HOST}:${port}`, `localhost:${port}`, `mxd-admin.test:${port}`, `scrape.internal:${port}`]) {
    assert.equal((await req({ port, method: "GET", path: "/status", headers: { ...auth, Host: host } })).status, 200, host);
  }
  const ok = await req({ port, method: "POST", path: "/pause", headers: { ...json, ...auth, Origin: `http://${HOST}:${port}` }, body: "{}" });
  assert.equal(ok.status, 200);
  assert.equal(d.queue.pauseState.paused, true);
  const rl = await fetch(`http://${HOST}:${port}/reload`, { method: "POST", headers: { ...json, ...auth }, body: "{}" });
  assert.deepEqual(await rl.json(), { applied: true, changed: [] });
});

test("a reload that changes admin.token applies from the next request", async () => {
  const { d, port } = await daemon({ listen: `${HOST}:0`, token: TOKEN });
  const next = parseConfig({ ...d.config, admin: { listen: d.config.admin.listen, token: "the-new-token-0123456789" } } as ConfigInput);
  const r = await d.applyConfig(next);
  assert.deepEqual(r, { applied: true, changed: ["admin.token"] });
  assert.equal((await req({ port, method: "GET", path: "/status", headers: { Authorization: `Bearer ${TOKEN}` } })).status, 401);
  assert.equal((await req({ port, method: "GET", path: "/status", headers: { Authorization: "Bearer the-new-token-0123456789" } })).status, 200);
});
