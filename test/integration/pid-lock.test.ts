// One daemon per spool even when the admin socket is gone: the pid lock refuses a second
// daemon, and the CLI refuses to edit the spool behind a running daemon it cannot reach.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { acquirePidLock, lockHolder } from "../../src/io/pid-lock.js";
import { cleanup, session, sendMessage, queuedId } from "../helpers/inbound.js";
import { queuedIdsSync, spoolSnapshot } from "../helpers/spool-snapshot.js";
import { MXD_CLI, REPO_ROOT } from "../helpers/paths.js";
import { startDaemonProcess } from "../helpers/daemon-process.js";

after(cleanup);

test("pid lock: a stale lock (dead pid) is taken over; a live holder is refused; release removes it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A pid that is certainly dead: a child that already exited.
  const dead = spawnSync(process.execPath, ["-e", "0"]).pid!;
  writeFileSync(join(dir, "mxd.pid"), `${dead}\n`);
  assert.equal(lockHolder(dir), undefined);
  const lock = await acquirePidLock(dir);
  assert.equal(lockHolder(dir), process.pid);
  // A live node process holding the lock is refused.
  const other = spawn(process.execPath, ["-e", "setTimeout(() => {}, 20000)"], { stdio: "ignore" });
  t.after(() => other.kill("SIGKILL"));
  writeFileSync(join(dir, "mxd.pid"), `${other.pid}\n`);
  await assert.rejects(acquirePidLock(dir), /another mxd is already running on spool .*pid \d+/);
  writeFileSync(join(dir, "mxd.pid"), `${process.pid}\n`);
  await lock.release();
  assert.equal(existsSync(join(dir, "mxd.pid")), false);
});

test("admin socket deleted while mxd runs: a second daemon is refused and the CLI does not edit the spool", { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spoolDir = join(dir, "spool");
  const cfg = join(dir, "mxd.json");
  writeFileSync(cfg, JSON.stringify({ hostname: "mx.test", listen: [{ host: "127.0.0.1", port: 0 }], spoolDir, delivery: { enabled: false }, admin: { listen: null } }));
  const d = await startDaemonProcess(cfg);
  const c = await session(d.smtpPort);
  const id = queuedId(await sendMessage(c, "a@example.org", ["b@example.net"], "Subject: x\r\n\r\nx\r\n"));
  rmSync(join(spoolDir, "admin.sock"), { force: true });
  const second = spawnSync(process.execPath, [MXD_CLI, "serve", "--config", cfg], { cwd: REPO_ROOT, encoding: "utf8", timeout: 15_000 });
  assert.equal(second.status, 1, second.stderr);
  assert.match(second.stderr, /another mxd is already running on spool/);
  const hold = spawnSync(process.execPath, [MXD_CLI, "queue", "hold", id, "--config", cfg], { cwd: REPO_ROOT, encoding: "utf8", timeout: 15_000 });
  assert.equal(hold.status, 1, hold.stdout + hold.stderr);
  assert.match(hold.stderr, /seems to run \(pid \d+/);
  const meta = spoolSnapshot(spoolDir).get(id)!.meta;
  assert.notEqual(meta.held, true, "the spool was not edited behind the daemon");
  assert.ok(queuedIdsSync(spoolDir).includes(id));
  d.child.kill("SIGTERM");
  assert.equal((await d.exited).code, 0);
  assert.equal(existsSync(join(spoolDir, "mxd.pid")), false, "the lock is released at a clean stop");
});

test("the CLI never takes another spool's daemon for its own (shared admin TCP address)", { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const admin = { listen: `127.0.0.1:${port}` };
  const cfgA = join(dir, "a.json");
  const cfgB = join(dir, "b.json");
  writeFileSync(cfgA, JSON.stringify({ hostname: "mx.test", listen: [{ host: "127.0.0.1", port: 0 }], spoolDir: join(dir, "spool-a"), delivery: { enabled: false }, admin }));
  writeFileSync(cfgB, JSON.stringify({ hostname: "mx.test", listen: [{ host: "127.0.0.1", port: 0 }], spoolDir: join(dir, "spool-b"), delivery: { enabled: false }, admin }));
  const a = await startDaemonProcess(cfgA);
  // B's daemon is not running; A answers on the shared TCP address. B's CLI must see "stopped".
  const st = spawnSync(process.execPath, [MXD_CLI, "status", "--config", cfgB], { cwd: REPO_ROOT, encoding: "utf8", timeout: 15_000 });
  assert.equal(st.status, 1, st.stdout + st.stderr);
  assert.doesNotMatch(st.stdout, new RegExp(`pid ${a.child.pid}`));
  const stA = spawnSync(process.execPath, [MXD_CLI, "status", "--config", cfgA], { cwd: REPO_ROOT, encoding: "utf8", timeout: 15_000 });
  assert.equal(stA.status, 0, stA.stdout + stA.stderr);
  assert.match(stA.stdout, new RegExp(`pid ${a.child.pid}`));
  a.child.kill("SIGTERM");
  await a.exited;
});
