// The log as a postmaster greps it (issue 13): one line per recipient per attempt with
// status=sent|deferred|bounced|expired and the Postfix fields, a NOQUEUE reject line for a
// refused RCPT, one removed line per message, log.format "text" into log.file, and a new file
// after logrotate renamed the old one and sent SIGUSR1. Owns 127.0.0.172-173.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readFileSync, renameSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { spawn } from "node:child_process";
import { until, writeConfig } from "../helpers/daemon-process.js";
import { startMxSink } from "../helpers/mx-sink.js";
import { MXD_CLI } from "../helpers/paths.js";

const dir = mkdtempSync(join(tmpdir(), "mxd-log-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function parseText(line: string): Record<string, string> {
  const o: Record<string, string> = {};
  for (const m of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) o[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  return o;
}

test("delivery, expiry, reject and removed lines in log.file (text), reopened on SIGUSR1", async (t) => {
  const sink = await startMxSink({ host: "127.0.0.172" });
  t.after(() => sink.close());
  const logFile = join(dir, "log", "mxd.log");
  const cfg = writeConfig(dir, {
    hostname: "mxd.test",
    spoolDir: join(dir, "spool"),
    listen: [{ host: "127.0.0.173", port: 2525 }],
    admin: { listen: null },
    routes: { "ok.test": ["127.0.0.172:25"], "down.test": ["127.0.0.172:9"] },
    localDomains: { "corp.test": { recipients: ["known"] } },
    delivery: { maxQueueTime: "1ms", retry: { minDelay: "1h", maxDelay: "1h", jitter: 0 } },
    log: { level: "info", format: "text", file: logFile },
  });
  // Logs go to the file, so the daemon is started here and its "ready" line read from there.
  const child = spawn(process.execPath, [MXD_CLI, "serve", "--config", cfg], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise((r) => child.once("exit", r));
  t.after(async () => {
    child.kill("SIGTERM");
    const k = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(k);
  });
  const lines = () => (existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").filter(Boolean).map(parseText) : []);
  await until(() => lines().some((l) => l.msg === "ready"), 15_000, "the ready line in log.file");
  assert.equal(out, "", "nothing on stdout when log.file is set");
  const tr = nodemailer.createTransport({ host: "127.0.0.173", port: 2525, secure: false, ignoreTLS: true });
  const info = await tr.sendMail({ envelope: { from: "alice@ok.test", to: ["bob@ok.test", "carol@down.test"] }, from: "alice@ok.test", to: "bob@ok.test", subject: "log test", messageId: "<logtest-1@ok.test>", text: "hi\n" });
  const qid = /queued as ([0-9A-Z]{16})/.exec(info.response)![1]!;
  await until(() => lines().some((l) => l.qid === qid && l.msg === "removed"), 15_000, "the removed line");
  const mine = lines().filter((l) => l.qid === qid);
  const sent = mine.find((l) => l.status === "sent")!;
  assert.ok(sent, "a status=sent line");
  assert.equal(sent.msg, "delivered");
  assert.equal(sent.from, "alice@ok.test");
  assert.equal(sent.to, "bob@ok.test");
  assert.equal(sent.relay, "127.0.0.172");
  assert.equal(sent.ip, "127.0.0.172");
  assert.equal(sent.port, "25");
  assert.equal(sent.via, "route");
  assert.equal(sent.attempt, "1");
  assert.equal(sent.messageId, "<logtest-1@ok.test>");
  assert.match(sent.reply, /^250 /);
  assert.match(sent.dsn, /^2\./);
  for (const k of ["delay", "delayQueued", "delayAttempt", "size", "time", "level"]) assert.ok(sent[k] !== undefined, k);
  const deferred = mine.find((l) => l.to === "carol@down.test" && l.status === "deferred");
  assert.ok(deferred, "the failed attempt: status=deferred");
  assert.match(deferred.reply, /connection refused/);
  const expired = mine.find((l) => l.to === "carol@down.test" && l.status === "expired");
  assert.ok(expired, "then status=expired");
  assert.equal(expired.msg, "bounced");
  assert.match(expired.reply, /delivery time expired.*connection refused/);
  assert.equal(mine.filter((l) => l.msg === "removed").length, 1, "one removed line");

  // A refused RCPT at the front end: NOQUEUE: reject with client, helo, from, to, reply.
  await assert.rejects(tr.sendMail({ envelope: { from: "x@ok.test", to: ["nobody@corp.test"] }, from: "x@ok.test", to: "nobody@corp.test", text: "x" }));
  await until(() => lines().some((l) => l.msg === "NOQUEUE: reject"), 5000, "the reject line");
  const rej = lines().find((l) => l.msg === "NOQUEUE: reject")!;
  assert.equal(rej.cmd, "RCPT");
  assert.equal(rej.client, "127.0.0.1");
  assert.equal(rej.from, "x@ok.test");
  assert.equal(rej.to, "nobody@corp.test");
  assert.ok(rej.helo, "helo");
  assert.match(rej.reply, /^550 5\.1\.1 /);

  // logrotate: rename, SIGUSR1, the next events go to a new file at the configured path.
  renameSync(logFile, logFile + ".1");
  child.kill("SIGUSR1");
  await until(() => existsSync(logFile) && lines().some((l) => l.msg === "log reopened"), 5000, "a new log file");
  await tr.sendMail({ envelope: { from: "alice@ok.test", to: ["dave@ok.test"] }, from: "alice@ok.test", to: "dave@ok.test", text: "again\n" });
  await until(() => lines().some((l) => l.to === "dave@ok.test" && l.status === "sent"), 10_000, "delivery logged in the new file");
  assert.ok(!readFileSync(logFile + ".1", "utf8").includes("dave@ok.test"), "nothing after the rotation in the old file");
});
