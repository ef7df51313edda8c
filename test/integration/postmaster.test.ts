// Backscatter through <Postmaster> (issue 8 §3). RFC 5321 §4.5.1 makes mxd accept
// RCPT TO:<Postmaster> from anyone; a stranger writing MAIL FROM:<victim@…> must never get its
// text delivered to the victim by mxd. mxd runs as a child process; the "victim" domain and the
// routed postmaster domain point at an in-process sink (smtp-server) on 127.0.0.213:25.
// Asserted: by default the message lands in the local drop mailbox dropDir/<hostname>/postmaster
// and nothing goes to the victim; when the postmaster address is routed and refuses the mail,
// the bounce to the unverified sender carries the headers only (RET=FULL notwithstanding),
// while a relay client's RET=FULL bounce still carries the message; a postmaster address that
// is neither local nor routed is refused at start (exit 2, naming the key).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MXD_CLI, runTool, sleep, startMxd, stopAllPeers, tempDir, waitFor, type MxdPeer } from "../helpers/peers.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { Wire } from "../interop/wire.js";

const HOST = "127.0.0.212";
const SINK = "127.0.0.213";
const STRANGER = "127.0.0.236";
const PHISH = "Your account is locked: log in at http://phish.example/ PHISHING-BODY-7731";

let base: string;
let sink: MxSink;
const daemons: MxdPeer[] = [];

before(async () => {
  base = tempDir("mxd-postmaster-");
  sink = await startMxSink({
    host: SINK,
    dsn: true,
    rcpt: (a) => (a.toLowerCase() === "pm@pmhost.test" ? { code: 550, message: "5.1.1 <pm@pmhost.test>: no such user" } : undefined),
  });
});

after(async () => {
  for (const d of daemons) await d.stop(5000);
  await sink?.close();
  await stopAllPeers();
  if (base) rmSync(base, { recursive: true, force: true });
});

async function daemon(name: string, extra: Record<string, unknown>): Promise<MxdPeer> {
  const d = await startMxd({
    hostname: "mxd-pm.test",
    listen: [{ host: HOST, port: 0 }],
    spoolDir: join(base, name, "spool"),
    dropDir: join(base, name, "drop"),
    relay: { allowedNetworks: ["127.0.0.1/32"] },
    routes: { "victim.test": [`${SINK}:25`], "pmhost.test": [`${SINK}:25`] },
    log: { level: "info" },
    ...extra,
  });
  daemons.push(d);
  return d;
}

/** One transaction with exact commands; returns the final reply code. */
async function submit(d: MxdPeer, from: string, localAddress: string, mail: string, rcpt: string): Promise<number> {
  const w = await Wire.connect(d.port, HOST, { localAddress });
  try {
    await w.reply();
    assert.equal((await w.cmd("EHLO stranger.example")).code, 250);
    assert.equal((await w.cmd(mail)).code, 250, mail);
    assert.equal((await w.cmd(rcpt)).code, 250, rcpt);
    assert.equal((await w.cmd("DATA")).code, 354);
    await w.write(`From: Bank <${from}>\r\nTo: you\r\nSubject: urgent\r\n\r\n${PHISH}\r\n.\r\n`);
    const r = await w.reply(10_000);
    await w.write("QUIT\r\n");
    return r.code;
  } finally {
    w.destroy();
  }
}

const toVictim = () => sink.messages.filter((m) => m.to.some((t) => t.endsWith("@victim.test")));

test("a stranger's mail to <Postmaster> lands in the local drop mailbox; nothing reaches the victim", { timeout: 60_000 }, async () => {
  const d = await daemon("default", {});
  const code = await submit(d, "victim@victim.test", STRANGER, "MAIL FROM:<victim@victim.test> RET=FULL", "RCPT TO:<Postmaster>");
  assert.equal(code, 250);
  const box = join(base, "default", "drop", "mxd-pm.test", "postmaster", "new");
  await waitFor(() => existsSync(box) && readdirSync(box).length === 1, 10_000, "the message in dropDir/mxd-pm.test/postmaster/new");
  const stored = readFileSync(join(box, readdirSync(box)[0]!), "latin1");
  assert.ok(stored.includes(PHISH), "the postmaster has the message");
  assert.match(stored, /^Return-Path: <victim@victim\.test>\r\nDelivered-To: postmaster@mxd-pm\.test\r\n/);
  // Give a (wrong) bounce time to be generated and sent.
  await sleep(1500);
  assert.deepEqual(toVictim(), [], "nothing sent to the victim");
  assert.equal(d.logs().filter((l) => l.msg === "bounce queued").length, 0, "no bounce queued");
});

test("routed postmaster refuses the stranger's mail: the bounce to the unverified sender has headers only; a relay client's RET=FULL bounce keeps the body", { timeout: 60_000 }, async () => {
  const d = await daemon("routed", { postmaster: "pm@pmhost.test" });
  const before = toVictim().length;
  assert.equal(await submit(d, "victim@victim.test", STRANGER, "MAIL FROM:<victim@victim.test> RET=FULL", "RCPT TO:<Postmaster>"), 250);
  await sink.waitForMessages(sink.messages.length + 1, 15_000);
  const bounce = toVictim().slice(before);
  assert.equal(bounce.length, 1, "one bounce to the victim");
  assert.equal(bounce[0]!.from, "", "from <>");
  const raw = bounce[0]!.raw!.toString("latin1");
  assert.match(raw, /report-type=delivery-status/);
  assert.match(raw, /\r\nContent-Type: text\/rfc822-headers\r\n/, "headers only");
  assert.ok(!raw.includes("PHISHING-BODY-7731"), "the stranger's body is not returned to the victim");
  assert.doesNotMatch(raw, /message\/rfc822/);

  // Control: the same message from a relay client (RET=FULL) bounces with the whole message.
  const n = sink.messages.length;
  assert.equal(await submit(d, "sender@victim.test", "127.0.0.1", "MAIL FROM:<sender@victim.test> RET=FULL", "RCPT TO:<pm@pmhost.test>"), 250);
  await sink.waitForMessages(n + 1, 15_000);
  const full = sink.messages.slice(n).find((m) => m.to.includes("sender@victim.test"));
  assert.ok(full, "bounce to the relay client's sender");
  assert.match(full.raw!.toString("latin1"), /\r\nContent-Type: message\/rfc822\r\n/);
  assert.ok(full.raw!.toString("latin1").includes("PHISHING-BODY-7731"), "RET=FULL honoured for relay clients");
});

test("a postmaster address that is neither local nor routed is refused at start (exit 2, names the key)", { timeout: 30_000 }, async () => {
  const file = join(base, "bad-postmaster.json");
  writeFileSync(file, JSON.stringify({ hostname: "mxd-pm.test", spoolDir: join(base, "bad", "spool"), postmaster: "admin@elsewhere.example" }));
  for (const cmd of ["check-config", "serve"]) {
    const r = await runTool(process.execPath, [MXD_CLI, cmd, ...(cmd === "serve" ? ["--config", file] : [file])], { timeoutMs: 15_000 });
    assert.equal(r.code, 2, `${cmd}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /postmaster: "admin@elsewhere\.example" is neither a local drop mailbox \(localDomains\) nor routed \(routes\)/, cmd);
  }
});
