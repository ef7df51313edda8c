// Listener changes on reload, on an in-process daemon (127.0.0.110, ports 2699-2700): a
// listener switched to implicit TLS in place (same address) is closed first and reopened with
// TLS — swaks --tls-on-connect gets the greeting over TLS; a reload whose new listener cannot be
// bound (the port is taken) is refused and leaves every listener as it was.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseConfig, type ConfigInput } from "../../src/config.js";
import { startDaemon } from "../../src/main.js";
import { silentLogger } from "../../src/io/log.js";
import { makeCert, peerPath, requirePeers, runTool, skipUnless, stopAllPeers, tempDir } from "../helpers/peers.js";

const HOST = "127.0.0.110";
const skip = skipUnless("swaks", "openssl");
const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await stopAllPeers();
});

test("a listener switched to implicit TLS in place; a listener that cannot be bound refuses the reload and changes nothing", { skip, timeout: 60_000 }, async () => {
  requirePeers("swaks", "openssl");
  const dir = tempDir("mxd-relisten-");
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "cert"));
  const cert = makeCert(join(dir, "cert"), "relisten.test");
  const base: ConfigInput = { hostname: "relisten.test", spoolDir: join(dir, "spool"), dropDir: join(dir, "drop"), admin: { listen: null }, delivery: { enabled: false }, tls: cert };
  const d = await startDaemon(parseConfig({ ...base, listen: [{ host: HOST, port: 2699 }] }), { logger: silentLogger() });
  cleanups.push(() => d.stop());
  const swaks = (tls: boolean, port = 2699) =>
    runTool(peerPath("swaks")!, ["--server", HOST, "--port", String(port), "--from", "a@client.test", "--to", "postmaster@relisten.test", "--quit-after", "EHLO", ...(tls ? ["--tls-on-connect"] : [])], { timeoutMs: 20_000 });
  assert.equal((await swaks(false)).code, 0);

  assert.deepEqual(await d.applyConfig(parseConfig({ ...base, listen: [{ host: HOST, port: 2699, tls: true }] })), { applied: true, changed: ["listen"] });
  const over = await swaks(true);
  assert.equal(over.code, 0, over.stdout + over.stderr);
  assert.match(over.stdout, /TLS started/);
  assert.match(over.stdout, /220 relisten\.test ESMTP/);
  assert.deepEqual(d.smtp.addresses, [{ host: HOST, port: 2699, tls: true, mode: "relay" }]);

  // 2700 is taken by someone else: the reload is refused, 2699 keeps implicit TLS.
  const blocker = net.createServer().listen(2700, HOST);
  await new Promise((r) => blocker.once("listening", r));
  cleanups.push(() => new Promise((r) => blocker.close(r)));
  const r = await d.applyConfig(parseConfig({ ...base, listen: [{ host: HOST, port: 2699 }, { host: HOST, port: 2700 }] }));
  assert.equal(r.applied, false);
  assert.match(JSON.stringify(r), /listener not opened: .*EADDRINUSE.*2700/);
  assert.deepEqual(d.smtp.addresses, [{ host: HOST, port: 2699, tls: true, mode: "relay" }]);
  assert.equal((await swaks(true)).code, 0, "still implicit TLS on 2699");
  assert.equal(d.config.listen.length, 1, "the daemon kept its configuration");
});
