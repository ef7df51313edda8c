// Local drop domains: mail for them is written to dropDir/<domain>/<mailbox>/ as maildir files,
// from any client (not only relay networks); unknown recipients are refused at RCPT unless a
// catch-all is set. The daemon runs in-process; no remote MX is involved.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readdirSync, readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { parseConfig } from "../../src/config.js";
import { startDaemon, type Daemon } from "../../src/main.js";
import { silentLogger } from "../../src/io/log.js";
import { until } from "../helpers/daemon-process.js";
import { queuedIdsSync } from "../helpers/spool-snapshot.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
/** Files in a directory; 0 while it does not exist yet. */
const count = (dir: string) => {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
};
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function daemon(): Promise<{ d: Daemon; drop: string; spool: string }> {
  const dir = mkdtempSync(join(tmpdir(), "mxd-drop-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const drop = join(dir, "drop");
  const spool = join(dir, "spool");
  const config = parseConfig({
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir: spool,
    dropDir: drop,
    // 127.0.0.1 may not relay: local domains must still be accepted from it.
    relay: { allowedNetworks: ["192.0.2.0/24"] },
    localDomains: { "Corp.Test": { recipients: ["alice", "Bob.Smith"] }, "catch.test": { recipients: ["info"], catchAll: "inbox" } },
    dns: { servers: ["127.0.0.1:9"], timeout: "500ms", tries: 1 },
  });
  const d = await startDaemon(config, { logger: silentLogger() });
  cleanups.push(() => d.stop());
  return { d, drop, spool };
}

/** A raw SMTP dialogue: send each line, collect the reply to each. */
async function dialogue(port: number, lines: string[]): Promise<string[]> {
  const sock = net.connect(port, "127.0.0.1");
  sock.setEncoding("utf8");
  let buf = "";
  const replies: string[] = [];
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply; got ${JSON.stringify(buf)}`)), 5000);
      const check = () => {
        const m = /(?:^|\r\n)(\d{3}) [^\r\n]*\r\n$/.exec(buf);
        if (m) {
          clearTimeout(t);
          sock.off("data", onData);
          const r = buf;
          buf = "";
          resolve(r.trim());
        }
      };
      const onData = (c: string) => {
        buf += c;
        check();
      };
      sock.on("data", onData);
      check();
    });
  try {
    await next(); // greeting
    for (const l of lines) {
      sock.write(l + "\r\n");
      replies.push(await next());
    }
  } finally {
    sock.destroy();
  }
  return replies;
}

test("known local recipients are dropped as maildir files; unknown ones get 550 5.1.1; others are not relayed", async () => {
  const { d, drop, spool } = await daemon();
  const r = await dialogue(d.smtp.addresses[0]!.port, [
    "EHLO client.test",
    "MAIL FROM:<sender@remote.test>",
    "RCPT TO:<alice@corp.test>",
    "RCPT TO:<BOB.SMITH@CORP.TEST>",
    "RCPT TO:<mallory@corp.test>",
    "RCPT TO:<someone@elsewhere.test>",
    "RCPT TO:<whoever@catch.test>",
    "RCPT TO:<info@catch.test>",
    "DATA",
    "Subject: drop\r\n\r\nline one\r\n..dotted\r\n.",
    "QUIT",
  ]);
  assert.match(r[2]!, /^250 /);
  assert.match(r[3]!, /^250 /);
  assert.equal(r[4], "550 5.1.1 <mallory@corp.test>: Recipient address rejected: no such user here");
  assert.match(r[5]!, /^554 5\.7\.1 .*Relay access denied/);
  assert.match(r[6]!, /^250 /, "catch-all domain accepts any local part");
  assert.match(r[7]!, /^250 /);
  assert.match(r[9]!, /^250 2\.0\.0 Ok: queued as/);
  const box = (dom: string, mb: string) => join(drop, dom, mb);
  await until(() => ["alice", "bob.smith"].every((mb) => count(join(box("corp.test", mb), "new")) === 1), 5000, "two corp.test drops");
  const aliceFiles = readdirSync(join(box("corp.test", "alice"), "new"));
  const text = readFileSync(join(box("corp.test", "alice"), "new", aliceFiles[0]!), "utf8");
  assert.match(text, /^Return-Path: <sender@remote\.test>\r\nDelivered-To: alice@corp\.test\r\nReceived: from client\.test/);
  assert.match(text, /\r\nSubject: drop\r\n\r\nline one\r\n\.dotted\r\n$/);
  assert.deepEqual(readdirSync(join(box("corp.test", "alice"), "tmp")), [], "nothing left in tmp/");
  await until(() => count(join(box("catch.test", "inbox"), "new")) === 1 && count(join(box("catch.test", "info"), "new")) === 1, 5000, "catch.test drops");
  assert.match(readFileSync(join(box("catch.test", "inbox"), "new", readdirSync(join(box("catch.test", "inbox"), "new"))[0]!), "utf8"), /Delivered-To: whoever@catch\.test/);
  assert.equal(readdirSync(join(drop, "catch.test")).sort().join(","), "inbox,info", "no directory per unknown local part");
  await until(() => queuedIdsSync(spool).length === 0, 5000, "the spool to empty");
  const m = d.metrics.registry.render();
  assert.match(m, /mxd_recipient_deliveries_total\{outcome="delivered"\} 4/);
});

test("a failed drop (a file where the mailbox directory should be) is deferred with 451 4.3.0 and delivered on a later attempt, not lost", async () => {
  const { d, drop, spool } = await daemon();
  // alice's mailbox cannot be created: a plain file is in its place. bob.smith's works.
  mkdirSync(join(drop, "corp.test"), { recursive: true });
  writeFileSync(join(drop, "corp.test", "alice"), "not a directory");
  const r = await dialogue(d.smtp.addresses[0]!.port, [
    "EHLO client.test",
    "MAIL FROM:<sender@remote.test>",
    "RCPT TO:<alice@corp.test>",
    "RCPT TO:<bob.smith@corp.test>",
    "DATA",
    "Subject: retry me\r\n\r\nbody\r\n.",
    "QUIT",
  ]);
  const id = /queued as ([0-9A-Z]{16})/.exec(r[5]!)![1]!;
  await until(() => count(join(drop, "corp.test", "bob.smith", "new")) === 1, 5000, "bob's drop");
  let meta = await d.spool.load(id);
  await until(async () => (meta = await d.spool.load(id)).recipients[0]!.attempts === 1, 5000, "alice's attempt recorded");
  assert.equal(meta.recipients[0]!.status, "pending", "kept for a retry");
  assert.match(meta.recipients[0]!.history[0]!.reply, /^451 4\.3\.0 local drop to .*corp\.test\/alice failed: /);
  assert.equal(meta.recipients[1]!.status, "delivered");
  assert.ok(Date.parse(meta.nextAttemptAt) > Date.now(), "a retry is scheduled");
  assert.ok(queuedIdsSync(spool).includes(id), "the message is still queued");
  assert.match(d.metrics.registry.render(), /mxd_recipient_deliveries_total\{outcome="deferred"\} 1/);

  // The operator fixes the directory and flushes: delivered once, to alice only.
  rmSync(join(drop, "corp.test", "alice"));
  assert.deepEqual(await d.queue.flush(id), { id, ok: true, status: "flushed" });
  await until(() => count(join(drop, "corp.test", "alice", "new")) === 1, 5000, "alice's drop after the flush");
  await until(() => queuedIdsSync(spool).length === 0, 5000, "the spool to empty");
  assert.equal(count(join(drop, "corp.test", "bob.smith", "new")), 1, "bob is not delivered twice");
  assert.deepEqual(readdirSync(join(drop, "corp.test", "alice", "tmp")), []);
});

test("a failed write inside the mailbox (tmp/ not a directory) leaves nothing behind and is retried", async () => {
  const { d, drop } = await daemon();
  const box = join(drop, "corp.test", "alice");
  mkdirSync(join(box, "new"), { recursive: true });
  mkdirSync(join(box, "cur"), { recursive: true });
  writeFileSync(join(box, "tmp"), "");
  const r = await dialogue(d.smtp.addresses[0]!.port, ["EHLO c.test", "MAIL FROM:<s@remote.test>", "RCPT TO:<alice@corp.test>", "DATA", "Subject: x\r\n\r\nx\r\n.", "QUIT"]);
  const id = /queued as ([0-9A-Z]{16})/.exec(r[4]!)![1]!;
  await until(async () => (await d.spool.load(id)).recipients[0]!.attempts === 1, 5000, "the failed attempt");
  assert.equal(count(join(box, "new")), 0);
  rmSync(join(box, "tmp"));
  await d.queue.flush(id);
  await until(() => count(join(box, "new")) === 1, 5000, "delivered after the fix");
});
