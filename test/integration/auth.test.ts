// AUTH through the socket layer (smtp/server.ts) with the in-process server: the SASL exchange
// across reads, an overlong response line, AUTH pipelined with the transaction, and the users
// file re-read between connections. The raw client writes exactly the bytes given.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { RawClient, ehlo, makeCert, startInbound, tempDir, type Inbound } from "../helpers/inbound.js";
import { hashPassword } from "../../src/auth/password-hash.js";
import { serializeUsers } from "../../src/auth/users-file.js";

let dir: string;
let s: Inbound;
let usersFile: string;
const b64 = (t: string) => Buffer.from(t).toString("base64");

before(async () => {
  dir = await tempDir("mxd-auth-");
  const creds = makeCert(dir);
  usersFile = join(dir, "users");
  await fsp.writeFile(usersFile, serializeUsers([{ name: "alice", hash: await hashPassword("alice-password", { N: 1024, r: 8, p: 1 }), senders: ["@example.org"] }]));
  s = await startInbound(
    {
      listen: [{ host: "127.0.0.1", port: 0, mode: "submission" }],
      tls: { cert: creds.certPath, key: creds.keyPath },
      relay: { allowedNetworks: ["192.0.2.0/24"] },
      auth: { usersFile },
    },
    { tlsCredentials: creds },
  );
});
after(async () => {
  await s?.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function tlsSession(): Promise<RawClient> {
  const c = await RawClient.connect(s.port);
  await c.reply();
  assert.ok(!(await ehlo(c)).some((e) => e.startsWith("AUTH")), "no AUTH before TLS");
  await c.cmd("STARTTLS", 220);
  await c.startTls();
  assert.ok((await ehlo(c)).includes("AUTH PLAIN LOGIN"));
  return c;
}

test("a SASL response line over the limit: 500 5.5.6, the exchange ends, the session goes on", async () => {
  const c = await tlsSession();
  await c.cmd("AUTH PLAIN", 334);
  const r = await c.cmd("A".repeat(3000), 500);
  assert.match(r.text, /^500 5\.5\.6 Authentication exchange line is too long$/);
  await c.cmd("NOOP", 250);
  await c.cmd("MAIL FROM:<alice@example.org>", 530);
  c.destroy();
});

test("the LOGIN exchange split across reads; AUTH then the transaction pipelined after 235", async () => {
  const c = await tlsSession();
  c.write("AUTH LOG");
  await new Promise((r) => setTimeout(r, 20));
  c.write("IN\r\n");
  assert.equal((await c.reply()).text, "334 VXNlcm5hbWU6");
  c.write(b64("alice") + "\r\n");
  assert.equal((await c.reply()).text, "334 UGFzc3dvcmQ6");
  await c.cmd(b64("alice-password"), 235);
  c.write("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@far.test>\r\nDATA\r\n");
  const [mail, rcpt, data] = await c.replies(3);
  assert.deepEqual([mail!.code, rcpt!.code, data!.code], [250, 250, 354]);
  c.write("Subject: hi\r\n\r\nbody\r\n.\r\n");
  assert.match((await c.reply(5000)).text, /^250 2\.0\.0 Ok: queued as /);
  const m = s.queued.at(-1)!;
  assert.equal(m.client.user, "alice");
  assert.equal(m.client.relayAllowed, true, "an authenticated sender counts as verified (its DSNs may carry the body)");
  c.destroy();
});

test("the users file is re-read at AUTH when it changed: a new password works at once, the old one no longer", async () => {
  const c1 = await tlsSession();
  await c1.cmd(`AUTH PLAIN ${b64("\0alice\0alice-password")}`, 235);
  c1.destroy();
  await fsp.writeFile(usersFile, serializeUsers([{ name: "alice", hash: await hashPassword("new-password", { N: 1024, r: 8, p: 1 }), senders: ["*"] }]));
  const c2 = await tlsSession();
  await c2.cmd(`AUTH PLAIN ${b64("\0alice\0alice-password")}`, 535);
  await c2.cmd(`AUTH PLAIN ${b64("\0alice\0new-password")}`, 235);
  await c2.cmd("MAIL FROM:<anyone@else.test>", 250);
  c2.destroy();
});
