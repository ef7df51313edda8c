// The daemon as a child process: crash (SIGKILL) in the middle of concurrent submissions, restart
// on the same spool; graceful SIGTERM; check-config exit codes.
import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import {
  RawClient,
  cleanup,
  closeClients,
  eventually,
  listDir,
  queueIds,
  queuedId,
  readEntry,
  session,
  sleep,
  splitReceived,
  tempDir,
  withTimeout,
} from "../helpers/inbound.js";
import { MXD_CLI } from "../helpers/paths.js";
import { startSilentPeer } from "../helpers/raw-smtp-peer.js";
import { startDaemonProcess } from "../helpers/daemon-process.js";

const dirs: string[] = [];
afterEach(closeClients);
after(async () => {
  await cleanup();
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
  for (const t of tarpits) t.close();
});

/**
 * A "remote MX" that accepts connections and never says a word: if the daemon tries to deliver
 * (it must not, delivery.enabled is false), the attempt hangs instead of changing the spool.
 */
interface Tarpit {
  port: number;
  connections: number;
  close(): void;
}
const tarpits: Tarpit[] = [];
async function tarpit(): Promise<Tarpit> {
  const p = await startSilentPeer("127.0.0.1");
  const t: Tarpit = {
    port: p.port,
    get connections() {
      return p.conns.length;
    },
    close: () => void p.close(),
  };
  tarpits.push(t);
  return t;
}

async function writeConfig(extra: Record<string, unknown> = {}): Promise<{ dir: string; spoolDir: string; file: string; tarpit: Tarpit }> {
  const tp = await tarpit();
  const dir = await tempDir("mxd-daemon-");
  dirs.push(dir);
  const spoolDir = join(dir, "spool");
  const file = join(dir, "mxd.json");
  const cfg = {
    hostname: "mx.test",
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir,
    delivery: { enabled: false },
    limits: { connectionsPerClient: 50 },
    log: { level: "info" },
    routes: { "example.net": [`127.0.0.1:${tp.port}`], "example.org": [`127.0.0.1:${tp.port}`] },
    ...extra,
  };
  await fsp.writeFile(file, JSON.stringify(cfg, null, 2));
  return { dir, spoolDir, file, tarpit: tp };
}

/** A message body (CRLF, no dot lines except deliberate ones), tagged so it can be identified. */
function makeBody(tag: string, lines = 150): string {
  let s = `X-Tag: ${tag}\r\nSubject: durability ${tag}\r\n\r\n`;
  for (let i = 0; i < lines; i++) s += `${tag} line ${i} ${"abcdefghij".repeat(8)}\r\n`;
  s += `.dot line for ${tag}\r\n`;
  s += `END ${tag}\r\n`;
  return s;
}
const stuff = (s: string) => s.replace(/^\./gm, "..");

describe("daemon durability", () => {
  test("SIGKILL mid-flight: every 250-acknowledged message survives complete; nothing else but in-flight ones", async () => {
    const { spoolDir, file } = await writeConfig();
    const d1 = await startDaemonProcess(file);
    const acked = new Map<string, string>(); // queue id → tag
    const inflight = new Set<string>(); // final dot sent, no reply seen
    const bodies = new Map<string, string>();
    let stop = false;
    let refused = 0;

    async function worker(w: number): Promise<void> {
      let c: RawClient;
      try {
        c = await session(d1.smtpPort, { helo: `worker${w}.test` });
      } catch {
        return;
      }
      for (let i = 0; !stop; i++) {
        const tag = `w${w}m${i}`;
        const body = makeBody(tag, 100 + ((w * 37 + i * 11) % 150));
        bodies.set(tag, body);
        try {
          c.write(`MAIL FROM:<w${w}@example.org>\r\nRCPT TO:<rcpt${i}@example.net>\r\nDATA\r\n`);
          const rs = await c.replies(3, 5000);
          if (rs[2]!.code !== 354) throw new Error(rs.map((r) => r.text).join(" | "));
          const wire = stuff(body);
          // in two writes, so that a kill can land in the middle of the data
          c.write(wire.slice(0, wire.length >> 1));
          await sleep(0);
          c.write(wire.slice(wire.length >> 1));
          inflight.add(tag);
          c.write(".\r\n");
          const r = await c.reply(5000);
          inflight.delete(tag);
          if (r.code === 250) acked.set(queuedId(r), tag);
          else refused++;
        } catch {
          return; // the daemon died: the connection is gone
        }
      }
    }

    const workers = Array.from({ length: 8 }, (_, w) => worker(w));
    assert.ok(await eventually(() => acked.size >= 60, 15_000), `only ${acked.size} messages acknowledged before the kill`);
    d1.child.kill("SIGKILL");
    const ex = await withTimeout(d1.exited, 5000, "daemon exit after SIGKILL");
    assert.equal(ex.signal, "SIGKILL");
    stop = true;
    await withTimeout(Promise.all(workers), 10_000, "clients after the kill");
    assert.equal(refused, 0, "a message was refused during the run");

    // Restart on the same spool.
    const d2 = await startDaemonProcess(file);
    assert.deepEqual(await listDir(join(spoolDir, "bodies")), [], "no body file without its message after restart");
    const ids = await queueIds(spoolDir);

    const seenTags = new Set<string>();
    let lostAcks = 0;
    for (const id of ids) {
      const e = await readEntry(spoolDir, id);
      const rec = splitReceived(e.eml);
      const text = rec.body.toString("utf8");
      const tag = /^X-Tag: (\S+)\r\n/.exec(text)?.[1];
      assert.ok(tag, `${id}: no X-Tag header`);
      assert.ok(!seenTags.has(tag), `${tag} queued twice`);
      seenTags.add(tag);
      if (acked.has(id)) assert.equal(acked.get(id), tag, `${id} holds the wrong message`);
      else {
        // Queued without a 250 the client saw: only allowed for a message whose final dot was sent.
        assert.ok(inflight.has(tag), `${id} (${tag}) is queued but was never acknowledged nor in flight`);
        lostAcks++;
      }
      assert.equal(text, bodies.get(tag), `${id} (${tag}) is incomplete or altered`);
      assert.equal(e.meta.id, id);
      assert.equal(e.meta.size, e.eml.length);
      assert.equal(e.meta.recipients.length, 1);
      assert.equal(e.meta.recipients[0]!.status, "pending");
    }
    for (const [id, tag] of acked) assert.ok(ids.includes(id), `acknowledged message ${id} (${tag}) lost in the crash`);
    assert.ok(lostAcks <= 8, `${lostAcks} unacknowledged entries, at most one per client expected`);

    // The restarted daemon reports what it found and takes new mail.
    const c = await session(d2.smtpPort);
    const body = makeBody("after-restart", 3);
    c.write(`MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n${stuff(body)}.\r\nQUIT\r\n`);
    const rs = await c.replies(5);
    const newId = queuedId(rs[3]!);
    assert.equal(rs[4]!.code, 221);
    assert.equal(splitReceived((await readEntry(spoolDir, newId)).eml).body.toString(), body);
    d2.child.kill("SIGKILL");
    await withTimeout(d2.exited, 5000, "daemon exit");
    console.log(`# durability: ${acked.size} acknowledged, ${lostAcks} queued with the 250 lost in flight, ${inflight.size} in flight at the kill`);
  });

  test("SIGTERM: stops accepting, the transaction in DATA completes, exit code 0", async () => {
    const { spoolDir, file } = await writeConfig({ shutdownTimeout: "10s" });
    const d = await startDaemonProcess(file);
    const idle = await session(d.smtpPort);
    const c = await session(d.smtpPort);
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    await c.cmd("RCPT TO:<b@example.net>", 250);
    await c.cmd("DATA", 354);
    const body = makeBody("graceful", 50);
    const wire = stuff(body);
    c.write(wire.slice(0, 1000));
    await sleep(50);
    d.child.kill("SIGTERM");
    // The idle session is told at once.
    assert.match((await idle.reply(3000)).text, /^421 4\.3\.2 /);
    assert.ok(await idle.closedWithin(2000));
    // New connections are no longer served.
    let newConn = "refused";
    try {
      const n = await RawClient.connect(d.smtpPort, { timeoutMs: 1000 });
      const r = await n.reply(1000).catch(() => undefined);
      newConn = r ? r.text : "no greeting";
    } catch {
      /* ECONNREFUSED */
    }
    assert.ok(newConn === "refused" || /^421 /.test(newConn), `new connection during shutdown got ${newConn}`);
    // The in-flight transaction finishes.
    c.write(wire.slice(1000) + ".\r\n");
    const r = await c.reply(5000);
    const id = queuedId(r);
    assert.match((await c.reply(3000)).text, /^421 4\.3\.2 /);
    const ex = await withTimeout(d.exited, 10_000, "daemon exit after SIGTERM");
    assert.deepEqual(ex, { code: 0, signal: null }, d.stderr());
    const e = await readEntry(spoolDir, id);
    assert.equal(splitReceived(e.eml).body.toString(), body);
    assert.deepEqual(await listDir(join(spoolDir, "bodies")), []);
    assert.ok(d.lines.some((l) => /"msg":"stopped"/.test(l)), "no 'stopped' log line");
  });
});

describe("delivery switch", () => {
  test("delivery.enabled false: queued messages are not attempted (no connection to the route host)", async () => {
    const { spoolDir, file, tarpit: tp } = await writeConfig();
    const d = await startDaemonProcess(file);
    const c = await session(d.smtpPort);
    c.write(`MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n${makeBody("no-delivery", 2)}.\r\n`);
    const id = queuedId((await c.replies(4))[3]!);
    await sleep(1000);
    const e = await readEntry(spoolDir, id);
    assert.equal(tp.connections, 0, "the daemon connected to the route host although delivery.enabled is false");
    assert.equal(e.meta.recipients[0]!.attempts, 0);
    assert.deepEqual(await queueIds(spoolDir), [id]);
    d.child.kill("SIGKILL");
    await withTimeout(d.exited, 5000, "daemon exit");
  });
});

describe("check-config", () => {
  function run(args: string[]) {
    return spawnSync(process.execPath, [MXD_CLI, ...args], { encoding: "utf8", timeout: 10_000 });
  }

  test("a wrong type exits 2 and names the key path", async () => {
    const dir = await tempDir("mxd-cfg-");
    dirs.push(dir);
    const bad = join(dir, "bad.json");
    await fsp.writeFile(bad, JSON.stringify({ limits: { connections: "many" } }));
    const r = run(["check-config", bad]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /limits\.connections: expected number, got "many"/);
  });

  test("an unknown key exits 2 and names the key", async () => {
    const dir = await tempDir("mxd-cfg-");
    dirs.push(dir);
    const bad = join(dir, "bad.json");
    await fsp.writeFile(bad, JSON.stringify({ limits: { maxConnections: 5 } }));
    const r = run(["check-config", bad]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /unknown key "limits\.maxConnections"/);
  });

  test("invalid JSON and a missing file exit 2", async () => {
    const dir = await tempDir("mxd-cfg-");
    dirs.push(dir);
    const bad = join(dir, "bad.json");
    await fsp.writeFile(bad, "{ limits: ");
    assert.equal(run(["check-config", bad]).status, 2);
    const missing = run(["check-config", join(dir, "nope.json")]);
    assert.equal(missing.status, 2, missing.stderr);
  });

  test("a valid file exits 0 and prints the config with defaults", async () => {
    const { file } = await writeConfig({ limits: { commandTimeout: "30s" } });
    const r = run(["check-config", file]);
    assert.equal(r.status, 0, r.stderr);
    const cfg = JSON.parse(r.stdout) as { limits: { commandTimeout: string; dataTimeout: string }; hostname: string };
    assert.equal(cfg.limits.commandTimeout, "30s", "as written");
    assert.equal(cfg.limits.dataTimeout, "10m", "the default as written");
    assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: OK`), "names the file it read");
    assert.equal(cfg.hostname, "mx.test");
  });
});
