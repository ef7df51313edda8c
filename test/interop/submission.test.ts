// Interop, submission side: real clients submit to the mxd daemon (a child process, delivery
// off) — swaks (plain, PIPELINING, STARTTLS), Postfix's smtp-source (parallel sessions) and
// Python's smtplib — and the spool must hold exactly what each one sent.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { makeCert, runTool, skipUnless, requirePeers, startMxd, stopAllPeers, tempDir, peerPath, SYSTEM_PYTHON, inCI, waitFor, type MxdPeer } from "../helpers/peers.js";
import { splitFirstHeader } from "./wire.js";

const HOST = "127.0.0.204";
let base: string;
let mxd: MxdPeer;
const spool = () => join(base, "spool");
const skip = skipUnless("openssl");

before(async () => {
  if (skip) return;
  requirePeers("openssl");
  base = tempDir("mxd-interop-sub-");
  const { cert, key } = makeCert(base);
  mxd = await startMxd({
    hostname: "mxd.test",
    listen: [{ host: HOST, port: 0 }],
    spoolDir: spool(),
    tls: { cert, key },
    // Nothing listens on 127.0.0.249:9: attempts fail transiently and messages stay queued
    // for an hour, so the spool can be inspected (independently of delivery.enabled).
    routes: { ".test": ["127.0.0.249:9"] },
    delivery: { retry: { minDelay: "1h", maxDelay: "1h" } },
    limits: { connectionsPerClient: 100, connections: 200 },
    log: { level: "info" },
  });
});

after(async () => {
  await mxd?.stop();
  await stopAllPeers();
  if (base) rmSync(base, { recursive: true, force: true });
});

function stored(id: string): { eml: Buffer; meta: Record<string, any> } {
  const e = spoolSnapshot(spool()).get(id);
  assert.ok(e, `${id} is queued`);
  return { eml: e.eml, meta: e.meta as unknown as Record<string, any> };
}

/** The spool copy is mxd's Received header followed by exactly the submitted bytes. */
function assertStoredAs(id: string, submitted: Buffer, protocol: RegExp): Record<string, any> {
  const { eml, meta } = stored(id);
  const { first, rest } = splitFirstHeader(eml);
  assert.match(first, new RegExp(`^Received: from .*\\r\\n\\tby mxd\\.test \\(mxd\\) with ${protocol.source} id ${id}`));
  assert.equal(rest.toString("latin1"), submitted.toString("latin1"));
  assert.equal(meta.size, eml.length);
  return meta;
}

const MESSAGE = Buffer.from(
  [
    "From: Alice <alice@client.test>",
    "To: bob@pf.test",
    "Subject: interop via swaks",
    "Message-ID: <swaks-1@client.test>",
    "Date: Wed, 25 Nov 2026 15:00:00 +0000",
    "",
    "first line",
    ".a line that starts with a dot",
    "..two dots",
    "",
    "last line",
  ].join("\r\n"),
  "latin1",
);

function swaks(args: string[]) {
  return runTool(peerPath("swaks")!, ["--server", HOST, "--port", String(mxd.port), "--ehlo", "swaks.client.test", "--from", "alice@client.test", "--to", "bob@pf.test", ...args], { timeoutMs: 30_000 });
}

function queuedId(out: string): string {
  const m = /<[-~]\s+250 2\.0\.0 Ok: queued as ([0-9A-Z]{16})/.exec(out);
  assert.ok(m, `no "queued as" in swaks output:\n${out}`);
  return m[1]!;
}

test("swaks, plain: the spool holds the submitted bytes after mxd's Received header", { skip: skip || skipUnless("swaks") }, async () => {
  requirePeers("swaks");
  const f = join(base, "msg.eml");
  writeFileSync(f, MESSAGE);
  const r = await swaks(["--data", f]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const id = queuedId(r.stdout);
  // swaks ends the data with CRLF . CRLF after the file's last line.
  const meta = assertStoredAs(id, Buffer.concat([MESSAGE, Buffer.from("\r\n")]), /ESMTP/);
  assert.equal(meta.sender, "alice@client.test");
  assert.deepEqual(meta.recipients.map((x: { address: string }) => x.address), ["bob@pf.test"]);
  assert.equal(meta.client.helo, "swaks.client.test");
  assert.equal(meta.client.tls, false);
});

test("swaks --pipeline: grouped commands are answered in order, one message queued", { skip: skip || skipUnless("swaks") }, async () => {
  requirePeers("swaks");
  const f = join(base, "msg-pipe.eml");
  writeFileSync(f, MESSAGE);
  const r = await swaks(["--pipeline", "--to", "bob@pf.test,carol@pf.test,dave@other.test", "--data", f]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /PIPELINING/);
  const id = queuedId(r.stdout);
  const meta = assertStoredAs(id, Buffer.concat([MESSAGE, Buffer.from("\r\n")]), /ESMTP/);
  assert.deepEqual(meta.recipients.map((x: { address: string }) => x.address), ["bob@pf.test", "carol@pf.test", "dave@other.test"]);
});

test("swaks -tls (STARTTLS): TLS session, ESMTPS in Received, state says tls", { skip: skip || skipUnless("swaks") }, async () => {
  requirePeers("swaks");
  const f = join(base, "msg-tls.eml");
  writeFileSync(f, MESSAGE);
  const r = await swaks(["-tls", "--data", f]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /TLS started/);
  const id = queuedId(r.stdout);
  const meta = assertStoredAs(id, Buffer.concat([MESSAGE, Buffer.from("\r\n")]), /ESMTPS/);
  assert.equal(meta.client.tls, true);
});

test("swaks: 8-bit body and a 998-octet line are kept byte for byte", { skip: skip || skipUnless("swaks") }, async () => {
  requirePeers("swaks");
  const body = Buffer.concat([
    Buffer.from("From: a@client.test\r\nTo: b@pf.test\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", "latin1"),
    Buffer.from("Grüße, 日本語, ça va ?\r\n", "utf8"),
    Buffer.from("x".repeat(998), "latin1"),
  ]);
  const f = join(base, "msg-8bit.eml");
  writeFileSync(f, body);
  const r = await swaks(["--data", f]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const id = queuedId(r.stdout);
  const meta = assertStoredAs(id, Buffer.concat([body, Buffer.from("\r\n")]), /ESMTP/);
  assert.equal(meta.eightBit, true);
});

test("smtp-source: 20 parallel sessions (200 messages, 2,000 with MXD_STRESS) are all queued intact", { skip: skip || skipUnless("smtp-source") }, async () => {
  requirePeers("smtp-source");
  const before = new Set(queuedIdsSync(spool()));
  const n = process.env.MXD_STRESS ? 2000 : 200;
  const r = await runTool(peerPath("smtp-source")!, ["-s", "20", "-m", String(n), "-d", "-l", "2048", "-M", "source.test", "-f", "load@source.test", "-t", "sink@pf.test", "-S", "smtp-source load", `${HOST}:${mxd.port}`], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `smtp-source failed: ${r.stdout}\n${r.stderr}`);
  let fresh: string[] = [];
  await waitFor(() => (fresh = queuedIdsSync(spool()).filter((id) => !before.has(id))).length >= n, 10_000, `${n} queued messages`);
  assert.equal(fresh.length, n);
  for (const id of fresh.slice(0, 50)) {
    const { eml, meta } = stored(id);
    assert.equal(meta.sender, "load@source.test");
    assert.equal(meta.recipients[0].address, "sink@pf.test");
    assert.equal(meta.size, eml.length);
    assert.match(eml.toString("latin1"), /\r\nSubject: smtp-source load\r\n/);
    assert.doesNotMatch(eml.toString("latin1"), /[^\r]\n/, "CRLF line ends only");
  }
  // mxd writes its log asynchronously: the last lines may still be in the pipe (loaded machines).
  let logs: unknown[] = [];
  await waitFor(() => (logs = mxd.logs().filter((l) => l.msg === "message queued")).length >= n, 10_000, `${n} "message queued" lines`);
  assert.ok(logs.length >= n);
});

const SMTPLIB = String.raw`
import smtplib, ssl, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = b"From: py@client.test\r\nTo: r@pf.test\r\nSubject: smtplib " + mode.encode() + b"\r\n\r\nhello from smtplib\r\n.dot\r\n"
s = smtplib.SMTP(host, port, local_hostname="py.client.test", timeout=20)
s.ehlo()
if mode == "starttls":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo()
refused = s.sendmail("py@client.test", ["r@pf.test", "s@pf.test"], msg)
code, resp = s.noop()
print("refused", refused)
s.quit()
`;
import { queuedIdsSync, spoolSnapshot } from "../helpers/spool-snapshot.js";

test("Python smtplib (plain and STARTTLS): accepted and stored intact", { skip: skip || (existsSync(SYSTEM_PYTHON) || inCI ? false : "missing package: python3") }, async () => {
  const script = join(base, "submit.py");
  writeFileSync(script, SMTPLIB);
  for (const mode of ["plain", "starttls"]) {
    const before = new Set(queuedIdsSync(spool()));
    const r = await runTool(SYSTEM_PYTHON, [script, HOST, String(mxd.port), mode], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /refused \{\}/);
    const fresh = queuedIdsSync(spool()).filter((id) => !before.has(id));
    assert.equal(fresh.length, 1);
    const id = fresh[0]!;
    const meta = assertStoredAs(id, Buffer.from(`From: py@client.test\r\nTo: r@pf.test\r\nSubject: smtplib ${mode}\r\n\r\nhello from smtplib\r\n.dot\r\n`, "latin1"), mode === "starttls" ? /ESMTPS/ : /ESMTP/);
    assert.equal(meta.client.tls, mode === "starttls");
    assert.deepEqual(meta.recipients.map((x: { address: string }) => x.address), ["r@pf.test", "s@pf.test"]);
  }
});

test("delivery.enabled=false: accepted mail stays queued, no delivery attempt is made", async () => {
  const dir = join(base ?? tempDir("mxd-interop-sub-"), "disabled");
  const d = await startMxd({ hostname: "mxd.test", listen: [{ host: HOST, port: 0 }], spoolDir: join(dir, "spool"), delivery: { enabled: false }, routes: { ".test": ["127.0.0.249:9"] } });
  try {
    const { sendMessage } = await import("./wire.js");
    const r = await sendMessage(d.port, HOST, { from: "a@client.test", to: ["b@pf.test"] }, "Subject: hold\r\n\r\nkeep me\r\n");
    assert.equal(r.reply.code, 250, r.reply.text);
    await new Promise((res) => setTimeout(res, 1500));
    const e = spoolSnapshot(join(dir, "spool")).get(r.id!);
    assert.ok(e, "the message is still queued");
    const meta = e.meta;
    assert.equal(meta.recipients[0].attempts, 0, `no attempt was made: ${JSON.stringify(meta.recipients[0].history)}`);
  } finally {
    await d.stop();
  }
});
