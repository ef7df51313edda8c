// The postmaster's queue tools (issue 13): filters, ids from stdin, one-line bulk summaries,
// --yes for dangerous bulk actions, qshape (`queue summary`), and dead letters that can be
// deleted, retried and purged by age — from the CLI with mxd stopped, and through the admin API
// (GET/DELETE /queue/ID, POST /queue/retry) with it running. Owns 127.0.0.170-171.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, readdirSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";
import { adminSocketPath } from "../../src/admin/server.js";
import { startDaemonProcess, until, writeConfig } from "../helpers/daemon-process.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { MXD_CLI } from "../helpers/paths.js";

const dir = mkdtempSync(join(tmpdir(), "mxd-qtools-"));
const spoolDir = join(dir, "spool");
let sink: MxSink;
let cfg: string;
const DAY = 86_400_000;
const now = Date.now();
const ids: Record<string, string> = {};

function run(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(process.execPath, [MXD_CLI, ...args, "--config", cfg], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0, stdout, stderr }),
    );
    c.stdin!.end(stdin ?? "");
  });
}

async function put(spool: JournalSpool, sender: string, rcpts: string[], ageMs: number, reply?: string): Promise<MessageMeta> {
  const recipients = rcpts.map(newRecipient);
  if (reply) for (const r of recipients) Object.assign(r, { attempts: 1, history: [{ at: new Date(now).toISOString(), outcome: "transient", status: "4.7.1", reply }] });
  return spool.put(newMessage({ sender, recipients, nowMs: now - ageMs, client: { ip: "127.0.0.1" } }), Buffer.from(`Subject: t\r\nMessage-ID: <${Math.random()}@t>\r\n\r\nx\r\n`));
}

before(async () => {
  sink = await startMxSink({ host: "127.0.0.170" });
  cfg = writeConfig(dir, {
    hostname: "mxd.test",
    spoolDir,
    listen: [{ host: "127.0.0.171", port: 0 }],
    admin: { listen: null },
    routes: { ".test": ["127.0.0.170:25"] },
    delivery: { retry: { minDelay: "1h", maxDelay: "1h", jitter: 0 } },
    log: { level: "info" },
  });
  // Queued mail of several shapes; two dead letters buried 40 days and 1 hour ago.
  let clockAt = now;
  const spool = new JournalSpool({ dir: spoolDir, noSync: true, minFree: 0, now: () => clockAt });
  await spool.init();
  await spool.recover();
  ids.grey = (await put(spool, "app@shop.example", ["a@grey.test", "b@grey.test"], 2 * 3_600_000, "451 4.7.1 Greylisted, try again later")).id;
  ids.full = (await put(spool, "app@shop.example", ["c@full.test"], 30 * 60_000, "452 4.2.2 mailbox full")).id;
  ids.news = (await put(spool, "news@list.example", ["d@grey.test"], 60_000)).id;
  ids.bounce = (await put(spool, "", ["e@other.test"], 3 * DAY)).id;
  for (const [name, age] of [["oldDead", 40 * DAY], ["newDead", 3_600_000]] as const) {
    const m = await put(spool, "", [`${name.toLowerCase()}@dead.test`], age);
    clockAt = now - age;
    m.recipients[0]!.status = "failed";
    await spool.update(m);
    await spool.bury(m.id, "bounce could not be delivered: 550 5.1.1 no such user");
    clockAt = now;
    ids[name] = m.id;
  }
  await spool.close();
});

after(async () => {
  await sink?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("mxd stopped: filters, headers, summary, stdin ids, bulk summary, --yes, dead letters retried and purged by age", async () => {
  const listIds = async (...args: string[]) => (await run(["queue", "list", "--json", ...args])).stdout.trim().split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id).sort();
  assert.deepEqual(await listIds("--sender", "app@*"), [ids.grey, ids.full].sort(), "glob");
  assert.deepEqual(await listIds("--sender", "shop"), [ids.grey, ids.full].sort(), "substring");
  assert.deepEqual(await listIds("--sender", "<>"), [ids.bounce], "the null sender");
  assert.deepEqual(await listIds("--recipient", "@grey.test"), [ids.grey, ids.news].sort());
  assert.deepEqual(await listIds("--older-than", "1h"), [ids.grey, ids.bounce].sort());
  assert.deepEqual(await listIds("--younger-than", "1h"), [ids.full, ids.news].sort());
  assert.deepEqual(await listIds("--reason", "greylisted"), [ids.grey]);
  assert.deepEqual(await listIds("--state", "deferred", "--domain", "full.test"), [ids.full]);
  assert.deepEqual(await listIds("--state", "dead"), [ids.oldDead, ids.newDead].sort());
  assert.deepEqual(await listIds("--state", "dead", "--older-than", "30d"), [ids.oldDead]);
  let r = await run(["queue", "list", "--older-than", "soon"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--older-than must be a duration .*got "soon"/);

  r = await run(["queue", "list"]);
  assert.match(r.stdout.split("\n")[0]!, /^ID {16}STATE +AGE +SIZE +SENDER +NEXT ATTEMPT$/, "column headers");

  // qshape
  r = await run(["queue", "summary", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const shape = JSON.parse(r.stdout) as { buckets: string[]; total: { total: number; buckets: number[] }; domains: { domain: string; total: number; buckets: number[]; reasons: { reason: string; count: number }[] }[] };
  assert.equal(shape.total.total, 5, "pending recipients");
  const grey = shape.domains.find((d) => d.domain === "grey.test")!;
  assert.equal(grey.total, 3);
  assert.equal(grey.buckets[shape.buckets.indexOf("0-5m")], 1);
  assert.equal(grey.buckets[shape.buckets.indexOf("80-160m")], 2);
  assert.deepEqual(grey.reasons, [{ reason: "451 4.7.1 Greylisted, try again later", count: 2 }]);
  r = await run(["queue", "summary"]);
  assert.match(r.stdout, /^DOMAIN +T +0-5m +5-10m/m);
  assert.match(r.stdout, /^TOTAL +5 /m);
  assert.match(r.stdout, /^grey\.test +3 +1 /m);
  assert.match(r.stdout, /top deferral reasons:\n {2}grey\.test\n +2 {2}451 4\.7\.1 Greylisted/);

  // ids from stdin (the text output of list), one summary line.
  const listed = (await run(["queue", "list", "--sender", "app@shop.example"])).stdout;
  r = await run(["queue", "hold", "-"], listed);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "held 2 messages (mxd is not running: spool changed directly)\n");
  assert.deepEqual(await listIds("--state", "held"), [ids.grey, ids.full].sort());
  r = await run(["queue", "release", "--state", "held", "--verbose"]);
  assert.match(r.stdout, new RegExp(`${ids.grey}: released`));
  assert.match(r.stdout, /released 2 messages/);

  // Dangerous bulk actions need --yes.
  r = await run(["queue", "delete", "--sender", "<>"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /add --yes/);
  r = await run(["queue", "bounce", "--domain", "other.test"]);
  assert.equal(r.code, 2);

  // Dead letters: show, purge by age, retry, delete by id.
  r = await run(["queue", "show", ids.oldDead!]);
  assert.match(r.stdout, /DEAD LETTER/);
  r = await run(["queue", "delete", "--state", "dead", "--older-than", "30d", "--yes"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^deleted 1 message /);
  assert.ok(!existsSync(join(spoolDir, "dead", ids.oldDead + ".reason")));
  assert.ok(existsSync(join(spoolDir, "dead", ids.newDead + ".reason")), "the young one stays");
  r = await run(["queue", "retry", ids.newDead!]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /requeued from dead\//);
  assert.deepEqual(readdirSync(join(spoolDir, "dead")), []);
  const back = JSON.parse((await run(["queue", "show", ids.newDead!, "--json"])).stdout) as MessageMeta;
  assert.equal(back.recipients[0]!.status, "pending");
  assert.equal(Date.parse(back.nextAttemptAt) <= Date.now(), true);
  r = await run(["queue", "delete", ids.oldDead!]);
  assert.equal(r.code, 1, "gone already");
  assert.match(r.stderr, /no such message/);
});

function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath: adminSocketPath(spoolDir)!, method, path, headers: payload ? { "Content-Type": "application/json" } : {}, timeout: 10_000 }, (res) => {
      let t = "";
      res.on("data", (c: Buffer) => (t += c.toString()));
      res.on("end", () => { try { resolve({ status: res.statusCode ?? 0, json: (t ? JSON.parse(t) : {}) as Record<string, unknown> }); } catch { reject(new Error(`${method} ${path}: ${res.statusCode} ${t.slice(0, 300)}`)); } });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

test("mxd running: GET and DELETE /queue/ID for dead letters, POST /queue/retry delivers", async () => {
  // Two fresh dead letters, buried while mxd is stopped.
  const spool = new JournalSpool({ dir: spoolDir, noSync: true, minFree: 0 });
  await spool.init();
  await spool.recover();
  const dead: string[] = [];
  for (const who of ["x@retry.test", "y@gone.test"]) {
    const m = await put(spool, "sender@origin.test", [who], 0);
    m.recipients[0]!.status = "failed";
    await spool.update(m);
    await spool.bury(m.id, "bounce could not be delivered: 550 5.1.1 no such user");
    dead.push(m.id);
  }
  await spool.close();
  const d = await startDaemonProcess(cfg);
  try {
    let r = await api("GET", `/queue/${dead[0]}`);
    assert.equal(r.status, 200);
    assert.equal(r.json.state, "dead");
    assert.match(String(r.json.deadReason), /no such user/);
    r = await api("DELETE", `/queue/${dead[1]}`);
    assert.equal(r.status, 200);
    assert.equal(r.json.status, "deleted (dead letter)");
    assert.equal((await api("DELETE", `/queue/${dead[1]}`)).status, 404);
    assert.equal((await api("GET", `/queue/${dead[1]}`)).status, 404);
    r = await api("POST", "/queue/retry", { ids: [dead[0]] });
    assert.deepEqual(r.json.results, [{ id: dead[0], ok: true, status: "requeued from dead/" }]);
    await until(() => sink.messages.some((m) => m.to.includes("x@retry.test")), 10_000, "the retried dead letter delivered");
    r = await api("GET", "/queue?state=dead&olderThan=1d");
    assert.equal(r.status, 200);
    r = await api("POST", "/queue/delete", { filter: { state: "dead", olderThan: "bad" } });
    assert.equal(r.status, 400);
    assert.match(String(r.json.error), /olderThan must be a duration/);
  } finally {
    await d.stop();
  }
});
