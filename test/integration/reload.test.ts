// Live reload (issue 11): SIGHUP and `mxd reload` re-read the config file. A changed route
// takes effect on the next delivery (Postfix's smtp-sink, then aiosmtpd, as the route's MX;
// swaks submits); a broken file is refused with the words of `mxd check-config` and mxd keeps
// its old configuration; a setting that cannot change at run time is refused by name; listeners
// are opened and closed without touching the sessions on them; SIGHUP never kills the daemon
// nor leaves admin.sock / mxd.pid behind. mxd on 127.0.0.111, MXs on .112 and .113.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import http from "node:http";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  MXD_CLI,
  peerPath,
  pidAlive,
  requirePeers,
  runTool,
  skipUnless,
  startAiosmtpd,
  startMxd,
  startSmtpSink,
  stopAllPeers,
  tempDir,
  waitFor,
  type AioPeer,
  type MxdPeer,
  type SinkPeer,
} from "../helpers/peers.js";
import { RawClient, ehlo } from "../helpers/inbound.js";

const HOST = "127.0.0.111";
const SINK = "127.0.0.112";
const AIO = "127.0.0.113";
const SLOW = "127.0.0.115";
const EXTRA_PORT = 2611;
const PROXY_PORT = 2612;
const skip = skipUnless("swaks", "smtp-sink", "aiosmtpd");

let dir: string;
let mxd: MxdPeer;
let sink: SinkPeer;
let aio: AioPeer;
let config: Record<string, unknown> & { spoolDir: string };

before(async () => {
  if (skip) return;
  requirePeers("swaks", "smtp-sink", "aiosmtpd");
  dir = tempDir("mxd-reload-");
  [sink, aio] = await Promise.all([startSmtpSink({ host: SINK, port: 25 }), startAiosmtpd({ host: AIO, port: 25 })]);
  config = {
    hostname: "mxd-reload.test",
    listen: [{ host: HOST, port: 0 }],
    spoolDir: join(dir, "spool"),
    dropDir: join(dir, "drop"),
    admin: { listen: null },
    dns: { servers: ["127.0.0.1:9"], timeout: "500ms", tries: 1 },
    relay: { allowedNetworks: ["127.0.0.0/8"] },
    delivery: { port: 25, retry: { minDelay: "1s", maxDelay: "2s" } },
    routes: { "dest.test": [`${SINK}:25`] },
  };
  mxd = await startMxd(config);
});

after(async () => {
  await mxd?.stop(5000);
  await Promise.all([sink?.stop(), aio?.stop()]);
  await stopAllPeers();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function swaks(to: string, port = mxd.port): ReturnType<typeof runTool> {
  return runTool(peerPath("swaks")!, ["--server", HOST, "--port", String(port), "--ehlo", "swaks.client.test", "--from", "alice@client.test", "--to", to, "--header", `Subject: reload test to ${to}`], { timeoutMs: 30_000 });
}

function writeConfig(c: unknown): void {
  writeFileSync(mxd.configFile, typeof c === "string" ? c : JSON.stringify(c, null, 2));
}

/** GET /status on the spool socket. */
function status(): Promise<{ delivery: { outbound: number } }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: join(mxd.spoolDir, "admin.sock"), path: "/status", timeout: 5000 }, (res) => {
        let t = "";
        res.on("data", (c: Buffer) => (t += c.toString()));
        res.on("end", () => resolve(JSON.parse(t) as { delivery: { outbound: number } }));
      })
      .on("error", reject);
  });
}

const reloadLines = () => mxd.logs().filter((l) => typeof l.msg === "string" && /^config reloaded|^reload refused/.test(l.msg));
async function hup(): Promise<Record<string, unknown>> {
  const n = reloadLines().length;
  mxd.kill("SIGHUP");
  await waitFor(() => reloadLines().length > n, 10_000, "the reload's log line");
  return reloadLines()[n]!;
}

test("SIGHUP with a changed route: the next delivery goes to the new MX; a broken config keeps the old one and logs check-config's words", { skip, timeout: 120_000 }, async () => {
  assert.equal((await swaks("a@dest.test")).code, 0);
  await sink.waitForMessages(1, 20_000);

  config = { ...config, routes: { "dest.test": [`${AIO}:25`] } };
  writeConfig(config);
  const ok = await hup();
  assert.equal(ok.msg, "config reloaded: routes.dest.test changed");
  assert.deepEqual(ok.changed, ["routes.dest.test"]);
  assert.equal((await swaks("b@dest.test")).code, 0);
  const got = await aio.waitForMessages(1, 20_000);
  assert.deepEqual(got[0]!.to, ["b@dest.test"]);
  assert.equal(sink.dumps().length, 1, "nothing more at the old MX");

  // An invalid file: refused with exactly what `mxd check-config` says about it.
  const broken = { ...config, limits: { connections: "many" }, routes: { "dest.test": [`${SINK}:25`] } };
  writeConfig(broken);
  const refused = await hup();
  assert.match(String(refused.msg), /^reload refused; still running on the previous configuration$/);
  const check = await runTool(process.execPath, [MXD_CLI, "check-config", mxd.configFile], { timeoutMs: 20_000 });
  assert.equal(check.code, 2);
  assert.deepEqual(refused.errors, [check.stderr.trim().replace(/^mxd: /, "")]);
  assert.match(String((refused.errors as string[])[0]), /limits\.connections/);
  // Not JSON at all.
  writeConfig("{ this is not json");
  const notJson = await hup();
  assert.match(JSON.stringify(notJson.errors), /is not valid JSON/);
  // A setting only a restart can change.
  writeConfig({ ...config, spoolDir: join(dir, "elsewhere") });
  const fixed = await hup();
  assert.match(JSON.stringify(fixed.errors), /spoolDir cannot change while mxd runs .*restart mxd to apply it/);
  // Still the old configuration: the route to aiosmtpd.
  assert.equal((await swaks("c@dest.test")).code, 0);
  await aio.waitForMessages(2, 20_000);
  assert.equal(sink.dumps().length, 1);
  assert.ok(pidAlive(mxd.pid));
});

test("a delivery in progress during a reload finishes on its old route; the next one takes the new route", { skip, timeout: 120_000 }, async () => {
  // smtp-sink that waits 3 s before answering DATA: the delivery is in flight while we reload.
  const slow = await startSmtpSink({ host: SLOW, port: 25, extraArgs: ["-w", "3"] });
  try {
    config = { ...config, routes: { ...(config.routes as object), "slow.test": [`${SLOW}:25`] } };
    writeConfig(config);
    assert.deepEqual((await hup()).changed, ["routes.slow.test"]);
    assert.equal((await swaks("h@slow.test")).code, 0);
    await waitFor(async () => (await status()).delivery.outbound > 0, 10_000, "the delivery to be in flight");
    config = { ...config, routes: { ...(config.routes as object), "slow.test": [`${AIO}:25`] } };
    writeConfig(config);
    assert.deepEqual((await hup()).changed, ["routes.slow.test"]);
    await slow.waitForMessages(1, 20_000);
    await waitFor(() => mxd.logs().some((l) => l.msg === "delivered" && l.to === "h@slow.test"), 10_000, "the delivered line");
    const line = mxd.logs().find((l) => l.msg === "delivered" && l.to === "h@slow.test")!;
    assert.equal(line.ip, SLOW, "delivered where it started");
    const before = aio.messages().length;
    assert.ok(!aio.messages().some((m) => m.to.includes("h@slow.test")), "not sent twice");
    assert.equal((await swaks("i@slow.test")).code, 0);
    const got = await aio.waitForMessages(before + 1, 20_000);
    assert.deepEqual(got.at(-1)!.to, ["i@slow.test"]);
    assert.equal(slow.dumps().length, 1);
  } finally {
    await slow.stop();
  }
});

test("mxd reload: opens and closes listeners, answers what changed or why not; sessions on a closed listener go on", { skip, timeout: 120_000 }, async () => {
  const reload = () => runTool(process.execPath, [MXD_CLI, "reload", "--config", mxd.configFile], { timeoutMs: 20_000 });
  config = { ...config, listen: [{ host: HOST, port: 0 }, { host: HOST, port: EXTRA_PORT }, { host: HOST, port: PROXY_PORT, proxyProtocol: { trustedNetworks: ["127.0.0.1/32"] } }], routes: { ...(config.routes as object), "dest.test": [`${SINK}:25`] } };
  writeConfig(config);
  let r = await reload();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), "applied; changed: listen, routes.dest.test");
  assert.equal((await swaks("d@dest.test", EXTRA_PORT)).code, 0, "the new listener takes mail");
  await sink.waitForMessages(2, 20_000);
  const status = await runTool(process.execPath, [MXD_CLI, "status", "--json", "--config", mxd.configFile], { timeoutMs: 20_000 });
  const st = JSON.parse(status.stdout) as { listen: { port: number }[]; proxyProtocol: { listeners: number } };
  assert.ok(st.listen.some((l) => l.port === EXTRA_PORT), "mxd status lists it");
  assert.equal(st.proxyProtocol.listeners, 1, "mxd status counts the PROXY protocol listener opened by the reload");

  // A session on the extra listener, then the listener goes away.
  const open = await RawClient.connect(EXTRA_PORT, { host: HOST });
  await open.reply();
  await ehlo(open);
  config = { ...config, listen: [{ host: HOST, port: 0 }] };
  writeConfig(config);
  r = await reload();
  assert.equal(r.stdout.trim(), "applied; changed: listen");
  const refusedConnect = await new Promise<string>((ok) => net.connect(EXTRA_PORT, HOST).on("connect", () => ok("connected")).on("error", (e: NodeJS.ErrnoException) => ok(e.code ?? "error")));
  assert.equal(refusedConnect, "ECONNREFUSED", "closed for new connections");
  await open.cmd("MAIL FROM:<alice@client.test>", 250);
  await open.cmd("RCPT TO:<e@dest.test>", 250);
  await open.cmd("DATA", 354);
  await open.cmd("Subject: on a closed listener\r\n\r\nstill served\r\n.", 250);
  await open.cmd("QUIT", 221);
  await sink.waitForMessages(3, 20_000);

  // Refused: exit 2, the errors on stderr; nothing changed.
  writeConfig({ ...config, listen: [{ host: HOST, port: 0 }], dns: { servers: ["127.0.0.1:5353"] } });
  r = await reload();
  assert.equal(r.code, 2);
  assert.match(r.stderr, /refused, mxd keeps running on its previous configuration:\ndns\.servers cannot change/);
  // The same file twice: nothing to do.
  writeConfig(config);
  r = await reload();
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), "applied; nothing changed");
});

test("relay networks, limits and localDomains apply from the next session; a session open during the reload keeps its own", { skip, timeout: 120_000 }, async () => {
  // Opened before: relay allowed, big messages allowed.
  const early = await RawClient.connect(mxd.port, { host: HOST });
  await early.reply();
  await ehlo(early);
  config = { ...config, relay: { allowedNetworks: ["10.0.0.0/8"] }, limits: { messageSize: "2KB" }, localDomains: { "local.test": { recipients: ["bob"] } } };
  writeConfig(config);
  const r = await hup();
  assert.deepEqual(r.changed, ["limits.messageSize", "localDomains.local.test", "relay.allowedNetworks"]);
  // A new session: relaying from 127.0.0.1 is refused now; bob@local.test is a local mailbox, eve is unknown.
  const relay = await swaks("f@dest.test");
  assert.notEqual(relay.code, 0);
  assert.match(relay.stdout + relay.stderr, /<\*\* 554 5\.7\.1/);
  const local = await swaks("bob@local.test");
  assert.equal(local.code, 0, local.stdout);
  const unknown = await swaks("eve@local.test");
  assert.match(unknown.stdout + unknown.stderr, /<\*\* 550 5\.1\.1/);
  const big = await runTool(peerPath("swaks")!, ["--server", HOST, "--port", String(mxd.port), "--from", "alice@client.test", "--to", "bob@local.test", "--body", "x".repeat(4000)], { timeoutMs: 30_000 });
  assert.match(big.stdout + big.stderr, /552 5\.3\.4/, "the new size limit");
  // The early session keeps the settings it started with, and is not cut off.
  await early.cmd("MAIL FROM:<alice@client.test>", 250);
  await early.cmd("RCPT TO:<g@dest.test>", 250);
  await early.cmd("RSET", 250);
  await early.cmd("QUIT", 221);
  // Back to the previous settings for the next test.
  config = { ...config, relay: { allowedNetworks: ["127.0.0.0/8"] }, limits: {}, localDomains: {} };
  writeConfig(config);
  assert.match(String((await hup()).msg), /^config reloaded/);
});

test("SIGHUP never kills mxd nor leaves admin.sock or mxd.pid behind; SIGTERM afterwards stops it cleanly", { skip, timeout: 60_000 }, async () => {
  const sock = join(mxd.spoolDir, "admin.sock");
  const pid = join(mxd.spoolDir, "mxd.pid");
  for (let i = 0; i < 3; i++) assert.equal((await hup()).msg, "config reloaded: nothing changed");
  // A burst (the kernel may merge pending signals into one): still at least one more reload.
  const n = reloadLines().length;
  for (let i = 0; i < 5; i++) mxd.kill("SIGHUP");
  await waitFor(() => reloadLines().length > n, 10_000, "a reload after the burst");
  assert.ok(pidAlive(mxd.pid));
  assert.ok(existsSync(sock) && existsSync(pid));
  const status = await runTool(process.execPath, [MXD_CLI, "status", "--config", mxd.configFile], { timeoutMs: 20_000 });
  assert.equal(status.code, 0, "the admin socket still answers");
  const stopped = await mxd.stop(10_000);
  assert.equal(stopped.code, 0);
  assert.equal(existsSync(sock), false, "admin.sock removed");
  assert.equal(existsSync(pid), false, "mxd.pid removed");
  const down = await runTool(process.execPath, [MXD_CLI, "reload", "--config", mxd.configFile], { timeoutMs: 20_000 });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /mxd is not running/);
});
