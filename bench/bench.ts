// Benchmarks against real peers measured in the same run. Never asserted anywhere: numbers
// depend on the machine. Every part is bounded in time; every process is started through
// test/helpers/peers.ts and stopped by PID at the end, also on failure or timeout.
//
//   npm run bench                      # all parts: submit, delivery, bigqueue
//   npm run bench -- submit            # smtp-source → smtp-sink / mxd / Postfix (acceptance rate)
//   npm run bench -- delivery          # queued mail drained to smtp-sink: mxd vs Postfix (msg/s)
//   npm run bench -- bigqueue          # 100,000 deferred messages: start-up, RSS, queue list;
//                                      # 10,000 due messages to a sink answering 4xx: RSS
//   BENCH_MESSAGES=10000 BENCH_SESSIONS=50 BENCH_SIZE=10240 npm run bench -- submit
//
// Knobs (environment): BENCH_MESSAGES/SESSIONS/SIZE (submit), BENCH_DELIVERY_MESSAGES (2000),
// BENCH_DOMAINS (10), BENCH_BIGQUEUE (100000), BENCH_DUE (10000), BENCH_IDLE_S (30),
// BENCH_TIMEOUT_S (whole run, 1200).
//
// Needs the peers of test/helpers/peers.ts (postfix package, dnsmasq-base; root for port 25).
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { ADDR, MXD_CLI, peerPath, runTool, spawnPeer, startDnsmasq, startMxd, startPostfix, startSmtpSink, stopAllPeers, tempDir, waitFor, sleep, type MxdPeer } from "../test/helpers/peers.js";
import { queuedIdsSync } from "../test/helpers/spool-snapshot.js";
import { fillSpool } from "../test/helpers/fill-spool.js";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20);
const SIZE = Number(process.env.BENCH_SIZE ?? 2048);
const DELIVERY_MESSAGES = Number(process.env.BENCH_DELIVERY_MESSAGES ?? 2000);
const DOMAINS = Number(process.env.BENCH_DOMAINS ?? 10);
const BIG = Number(process.env.BENCH_BIGQUEUE ?? 100_000);
const DUE = Number(process.env.BENCH_DUE ?? 10_000);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30);
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT_S ?? 1200);
/** Extra node options for the mxd under test, e.g. BENCH_MXD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const MXD_NODE_ARGS = (process.env.BENCH_MXD_NODE_ARGS ?? "").split(" ").filter(Boolean);

const PARTS = ["submit", "delivery", "bigqueue"] as const;
type Part = (typeof PARTS)[number];

const isRoot = process.getuid?.() === 0;
const domainOf = (i: number) => `d${i % DOMAINS}.test`;
const MX_SINK = "mx.sink.test";

// ---------------------------------------------------------------------------------------------
// Small measuring helpers

/** Resident set size in MB (VmRSS or VmHWM from /proc/<pid>/status); 0 when the process is gone. */
function memMB(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples a process's RSS every `everyMs` until stopped; reports peak and last. */
function rssSampler(pid: number, everyMs = 250): { stop(): { peak: number; last: number; samples: number[] } } {
  const samples: number[] = [];
  const t = setInterval(() => samples.push(memMB(pid)), everyMs);
  samples.push(memMB(pid));
  return {
    stop() {
      clearInterval(t);
      samples.push(memMB(pid));
      return { peak: Math.max(...samples), last: samples[samples.length - 1]!, samples };
    },
  };
}

const countJson = (spoolDir: string) => queuedIdsSync(spoolDir).length;

/** Files below `dir` (recursive); 0 when absent. */
function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

/** GET from the daemon's admin socket. */
function adminGet(spoolDir: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: join(spoolDir, "admin.sock"), path, timeout: 30_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error(`admin ${path}: timeout`)));
    req.on("error", reject);
  });
}

/** Messages queued, from the daemon's /metrics (cheap to poll, unlike reading the journal). */
async function queuedNow(spoolDir: string): Promise<number> {
  const text = await adminGet(spoolDir, "/metrics");
  let n = 0;
  for (const m of text.matchAll(/^mxd_queue_messages\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
  return n;
}

async function metric(spoolDir: string, re: RegExp): Promise<number> {
  const m = re.exec(await adminGet(spoolDir, "/metrics"));
  return m ? Number(m[1]) : NaN;
}

/** Run `mxd ARGS` to completion; counts output lines and bytes instead of keeping them. */
async function mxdCli(args: string[], timeoutMs = 300_000): Promise<{ ms: number; code: number | null; lines: number; bytes: number; err: string }> {
  const t0 = performance.now();
  let lines = 0;
  let bytes = 0;
  const p = spawnPeer("mxd-cli", process.execPath, [MXD_CLI, ...args], {
    onLine: (l, s) => {
      if (s === "stdout") {
        lines++;
        bytes += l.length + 1;
      }
    },
  });
  const timer = setTimeout(() => void p.stop(1000), timeoutMs);
  const r = await p.exited;
  clearTimeout(timer);
  return { ms: performance.now() - t0, code: r.code, lines, bytes, err: p.stderr.slice(-5).join("\n") };
}

/** smtp-source from `from` to `to` at target: n messages in s sessions. */
async function smtpSource(target: string, n: number, s: number, to: string, size = SIZE): Promise<{ ms: number; ok: boolean; out: string }> {
  const r = await runTool(peerPath("smtp-source")!, ["-s", String(s), "-m", String(n), "-d", "-l", String(size), "-M", "bench.test", "-f", "bench@bench.test", "-t", to, target], { timeoutMs: 600_000 });
  return { ms: r.ms, ok: r.code === 0, out: r.stdout + r.stderr };
}

/** N messages spread over the DOMAINS domains (one recipient each), all domains in parallel. */
async function submitSpread(target: string, n: number): Promise<boolean> {
  const per = Array.from({ length: DOMAINS }, (_, d) => Math.floor(n / DOMAINS) + (d < n % DOMAINS ? 1 : 0));
  const sessions = Math.max(1, Math.floor(SESSIONS / DOMAINS));
  const rs = await Promise.all(per.map((k, d) => (k ? smtpSource(target, k, sessions, `sink@${domainOf(d)}`, 2048) : Promise.resolve({ ms: 0, ok: true, out: "" }))));
  for (const r of rs) if (!r.ok) console.error(`smtp-source: ${r.out.slice(0, 500)}`);
  return rs.every((r) => r.ok);
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const fmtMB = (mb: number) => `${mb.toFixed(0)} MB`;

interface Row {
  name: string;
  value: string;
  note?: string;
}
const tables: { title: string; rows: Row[] }[] = [];

function mxdBase(base: string, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> & { spoolDir: string } {
  return {
    hostname: "mxd.bench",
    listen: [{ host: "127.0.0.212", port: 0 }],
    spoolDir: join(base, name, "spool"),
    dns: { servers: [`${ADDR.dns}:5353`], timeout: "2s", tries: 1 },
    admin: { listen: null }, // the admin socket only: no TCP port to clash with another run
    limits: { connections: 1000, connectionsPerClient: 1000 },
    log: { level: "info" }, // the default; "ready" is logged at info
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------
// Part 1: acceptance rate (the original benchmark)

async function benchSubmit(base: string): Promise<void> {
  const results: { name: string; ms: number; ok: boolean; rss?: number }[] = [];
  const sink = await startSmtpSink({ dump: false });
  results.push({ name: "smtp-sink (Postfix test server, no disk)", ...(await smtpSource(`${sink.host}:${sink.port}`, MESSAGES, SESSIONS, "sink@pf.test")) });
  await sink.stop();

  const mxd = await startMxd(mxdBase(base, "submit", { delivery: { enabled: false } }));
  const r2 = await smtpSource(`${mxd.host}:${mxd.port}`, MESSAGES, SESSIONS, "sink@pf.test");
  results.push({ name: "mxd (journal, group commit, delivery off)", ...r2, rss: memMB(mxd.pid, "VmHWM") });
  await mxd.stop();

  if (isRoot && peerPath("postfix")) {
    const pf = await startPostfix({ host: ADDR.postfix, extraMainCf: "smtpd_client_connection_count_limit = 0\ndefault_process_limit = 200\n" });
    results.push({ name: "Postfix (smtpd + cleanup, queued to disk)", ...(await smtpSource(`${pf.host}:${pf.port}`, MESSAGES, SESSIONS, "sink@pf.test")) });
    await pf.stop();
  }
  const rate = (r: { ms: number }) => (MESSAGES / r.ms) * 1000;
  const mxdRes = results.find((r) => r.name.startsWith("mxd"))!;
  tables.push({
    title: `submit — smtp-source: ${MESSAGES} messages, ${SESSIONS} parallel sessions, ${SIZE} bytes each`,
    rows: results.map((r) => ({
      name: r.name,
      value: `${r.ok ? "" : "(errors) "}${fmtS(r.ms)}  ${rate(r).toFixed(0).padStart(6)} msg/s`,
      note: `mxd/this ${(rate(mxdRes) / rate(r)).toFixed(2)}${r.rss ? `  peak RSS ${fmtMB(r.rss)}` : ""}`,
    })),
  });
}

// ---------------------------------------------------------------------------------------------
// Part 2: delivery throughput — a queue of N messages drained into smtp-sink

async function benchDelivery(base: string): Promise<void> {
  const N = DELIVERY_MESSAGES;
  const mx: Record<string, { host: string; pref: number }[]> = {};
  for (let d = 0; d < DOMAINS; d++) mx[domainOf(d)] = [{ host: MX_SINK, pref: 10 }];
  const dns = await startDnsmasq({ mx, a: { [MX_SINK]: [ADDR.smtpSink] } });
  const sink = await startSmtpSink({ dump: false });
  const rows: Row[] = [];
  let mxdRate = NaN;
  try {
    // mxd: started, paused through the CLI, filled with smtp-source, resumed through the CLI.
    // Same concurrency per destination address as Postfix gets below (100).
    const mxd = await startMxd(mxdBase(base, "delivery", { delivery: { perHostConcurrency: 100 } }), { nodeArgs: MXD_NODE_ARGS });
    const pause = await mxdCli(["queue", "pause", "--config", mxd.configFile]);
    if (pause.code !== 0) throw new Error(`mxd queue pause failed: ${pause.err}`);
    if (!(await submitSpread(`${mxd.host}:${mxd.port}`, N))) throw new Error("submission to mxd failed");
    const queued = countJson(mxd.spoolDir);
    const rss0 = memMB(mxd.pid);
    const sampler = rssSampler(mxd.pid);
    const t0 = performance.now();
    const resume = await mxdCli(["queue", "resume", "--config", mxd.configFile]);
    if (resume.code !== 0) throw new Error(`mxd queue resume failed: ${resume.err}`);
    await waitFor(async () => (await queuedNow(mxd.spoolDir)) === 0, 600_000, "mxd's spool to empty");
    const ms = performance.now() - t0;
    const rss = sampler.stop();
    const delivered = await metric(mxd.spoolDir, /mxd_recipient_deliveries_total\{outcome="delivered"\} (\d+)/);
    const deferred = await metric(mxd.spoolDir, /mxd_recipient_deliveries_total\{outcome="deferred"\} (\d+)/);
    await mxd.stop();
    mxdRate = (queued / ms) * 1000;
    rows.push({
      name: "mxd (MX via dnsmasq → smtp-sink)",
      value: `${fmtS(ms)}  ${mxdRate.toFixed(0).padStart(6)} msg/s`,
      note: `${queued} queued, ${delivered} delivered, ${deferred} deferred; RSS ${fmtMB(rss0)} → peak ${fmtMB(rss.peak)}`,
    });

    // Postfix: every accepted message goes on hold (access action HOLD), then all are released
    // (postsuper -H ALL) and flushed (postqueue -f); all domains relay to [smtp-sink]:25.
    if (isRoot && peerPath("postfix")) {
      const transport = Array.from({ length: DOMAINS }, (_, d) => `${domainOf(d)}=smtp:[${ADDR.smtpSink}]:25`).join(", ");
      const pf = await startPostfix({
        host: ADDR.postfix,
        extraMainCf: [
          "smtpd_client_connection_count_limit = 0",
          "default_process_limit = 200",
          `transport_maps = inline:{ ${transport} }`,
          `relay_domains = ${Array.from({ length: DOMAINS }, (_, d) => domainOf(d)).join(", ")}`,
          "smtpd_end_of_data_restrictions = check_client_access static:HOLD",
          // One nexthop ([smtp-sink]:25) for all domains: allow the same 100 deliveries in
          // flight as mxd's delivery.concurrency (Postfix's default is 20 per destination).
          "default_destination_concurrency_limit = 100",
          "smtp_destination_concurrency_limit = 100",
          "",
        ].join("\n"),
      });
      try {
        const conf = join(pf.dir, "conf");
        if (!(await submitSpread(`${pf.host}:${pf.port}`, N))) throw new Error("submission to Postfix failed");
        const holdDir = join(pf.dir, "queue/hold");
        await waitFor(() => countFiles(holdDir) >= N, 120_000, `${N} messages in Postfix's hold queue (log: ${pf.log().split("\n").slice(-5).join("\n")})`);
        const held = countFiles(holdDir);
        const qdirs = ["maildrop", "incoming", "active", "deferred", "hold"].map((d) => join(pf.dir, "queue", d));
        const t0 = performance.now();
        const h = await runTool("/usr/sbin/postsuper", ["-c", conf, "-H", "ALL"], { timeoutMs: 120_000 });
        const f = await runTool("/usr/sbin/postqueue", ["-c", conf, "-f"], { timeoutMs: 120_000 });
        if (h.code !== 0 || f.code !== 0) throw new Error(`postsuper/postqueue failed: ${h.stderr} ${f.stderr}`);
        await waitFor(() => qdirs.every((d) => countFiles(d) === 0), 600_000, "Postfix's queue to empty");
        const ms = performance.now() - t0;
        const sent = (pf.log().match(/status=sent/g) ?? []).length;
        const rate = (held / ms) * 1000;
        rows.push({
          name: "Postfix (transport → [smtp-sink]:25)",
          value: `${fmtS(ms)}  ${rate.toFixed(0).padStart(6)} msg/s`,
          note: `${held} held, ${sent} status=sent; mxd/this ${(mxdRate / rate).toFixed(2)}`,
        });
      } finally {
        await pf.stop();
      }
    }
  } finally {
    await sink.stop();
    await dns.stop();
  }
  tables.push({ title: `delivery — ${N} queued messages (2 KB, 1 recipient, ${DOMAINS} domains) drained into smtp-sink after a resume`, rows });
}

// ---------------------------------------------------------------------------------------------
// Part 3: a large deferred queue (memory, start-up, queue list) and a due backlog to a 4xx sink

async function startTimed(config: Record<string, unknown> & { spoolDir: string }): Promise<{ mxd: MxdPeer; ms: number }> {
  const t0 = performance.now();
  const mxd = await startMxd(config, { readyMs: 600_000 });
  return { mxd, ms: performance.now() - t0 };
}

async function idleMeasure(mxd: MxdPeer): Promise<{ ready: number; later: number; hwm: number }> {
  const ready = memMB(mxd.pid);
  await sleep(IDLE_S * 1000);
  return { ready, later: memMB(mxd.pid), hwm: memMB(mxd.pid, "VmHWM") };
}

async function benchBigQueue(base: string): Promise<void> {
  const rows: Row[] = [];
  const dns = await startDnsmasq({ mx: { "d0.test": [{ host: MX_SINK, pref: 10 }] }, a: { [MX_SINK]: [ADDR.smtpSink] } });
  try {
    // Peer: an idle mxd on an empty spool, measured the same way.
    {
      const { mxd, ms } = await startTimed(mxdBase(base, "empty"));
      const [m, list] = await Promise.all([idleMeasure(mxd), (async () => (await sleep(1000), mxdCli(["queue", "list", "--config", mxd.configFile])))()]);
      await mxd.stop();
      rows.push({ name: "mxd, empty spool: start → ready", value: fmtS(ms), note: `RSS ${fmtMB(m.ready)} at ready, ${fmtMB(m.later)} after ${IDLE_S} s (peak ${fmtMB(m.hwm)}); queue list ${fmtS(list.ms)}` });
    }

    // 100,000 deferred messages (one pending recipient, tried once, next attempt in 1 hour).
    const cfg = mxdBase(base, "big");
    const t0 = performance.now();
    await fillSpool(cfg.spoolDir, BIG, { attempts: 1, domain: domainOf });
    rows.push({ name: `fill ${BIG} deferred messages (no fsync)`, value: fmtS(performance.now() - t0) });
    {
      const { mxd, ms } = await startTimed(cfg);
      const queued = (mxd.logs().find((l) => l.msg === "ready")?.queued as number | undefined) ?? NaN;
      const readyRss = memMB(mxd.pid);
      const listStart = Date.now();
      const list = await mxdCli(["queue", "list", "--config", mxd.configFile]);
      const listRss = memMB(mxd.pid);
      const status = await mxdCli(["status", "--config", mxd.configFile]);
      const rest = Math.max(0, IDLE_S * 1000 - (Date.now() - listStart));
      await sleep(rest);
      const later = memMB(mxd.pid);
      const hwm = memMB(mxd.pid, "VmHWM");
      await mxd.stop(30_000);
      rows.push({ name: `mxd, ${BIG} deferred: start → ready`, value: fmtS(ms), note: `ready says queued=${queued}` });
      rows.push({ name: `mxd, ${BIG} deferred: RSS`, value: `${fmtMB(readyRss)} at ready`, note: `${fmtMB(listRss)} right after queue list, ${fmtMB(later)} ${IDLE_S} s after ready (peak ${fmtMB(hwm)})` });
      rows.push({ name: `mxd queue list (daemon running, ${BIG})`, value: fmtS(list.ms), note: `exit ${list.code}, ${list.lines} lines, ${(list.bytes / 1e6).toFixed(1)} MB; mxd status ${fmtS(status.ms)}` });
      // The same list with the daemon stopped (the CLI reads the spool itself).
      const off = await mxdCli(["queue", "list", "--config", mxd.configFile]);
      rows.push({ name: `mxd queue list (daemon stopped, ${BIG})`, value: fmtS(off.ms), note: `exit ${off.code}, ${off.lines} lines` });
    }
    rmSync(join(base, "big"), { recursive: true, force: true });

    // 10,000 due messages to a sink that answers 4xx to every RCPT.
    if (DUE > 0) {
      const sink = await startSmtpSink({ dump: false, extraArgs: ["-r", "RCPT"] });
      try {
        const cfgDue = mxdBase(base, "due", { routes: Object.fromEntries(Array.from({ length: DOMAINS }, (_, d) => [domainOf(d), [`${ADDR.smtpSink}:25`]])) });
        await fillSpool(cfgDue.spoolDir, DUE, { domain: domainOf, nowMs: Date.now() - 3_600_000 }); // due now
        // Paused before the start (the CLI writes control.json while no daemon runs), so that
        // start-up only recovers the queue; the run is timed from the resume. (Unpaused, mxd
        // attempts the due backlog while it is still scanning the spool, and logs "ready" only
        // after that; with more than 20,000 log lines before it, startMxd misses the line.)
        const cfgFile = join(base, "due", "pause.json");
        writeFileSync(cfgFile, JSON.stringify(cfgDue));
        const pause = await mxdCli(["queue", "pause", "--config", cfgFile]);
        if (pause.code !== 0) throw new Error(`mxd queue pause (offline) failed: ${pause.err}`);
        const { mxd, ms: readyMs } = await startTimed(cfgDue);
        const rssReady = memMB(mxd.pid);
        const s = rssSampler(mxd.pid, 500);
        const t0 = performance.now();
        const resume = await mxdCli(["queue", "resume", "--config", mxd.configFile]);
        if (resume.code !== 0) throw new Error(`mxd queue resume failed: ${resume.err}`);
        // Done when no message is left that was never attempted and nothing is in flight.
        // (fillSpool's first message, its template, goes to remote.test, which does not
        // resolve: it bounces, and the bounce to origin.test ends in dead/.)
        await waitFor(async () => {
          const q = (JSON.parse(await adminGet(mxd.spoolDir, "/status")) as { queue: { queued: number; active: number } }).queue;
          return q.queued === 0 && q.active === 0;
        }, 600_000, `every due message attempted`);
        const ms = performance.now() - t0;
        const deferred = await metric(mxd.spoolDir, /mxd_recipient_deliveries_total\{outcome="deferred"\} (\d+)/);
        const during = s.stop();
        const after0 = memMB(mxd.pid);
        await sleep(10_000);
        const after10 = memMB(mxd.pid);
        const hwm = memMB(mxd.pid, "VmHWM");
        const left = countJson(mxd.spoolDir);
        await mxd.stop(30_000);
        rows.push({ name: `mxd, ${DUE} due → sink answering 4xx`, value: `${fmtS(ms)}  ${((DUE / ms) * 1000).toFixed(0).padStart(5)} attempts/s`, note: `paused start → ready ${fmtS(readyMs)}; from resume: ${deferred} deferrals, ${left} still queued` });
        rows.push({ name: `mxd, ${DUE} due → 4xx: RSS`, value: `peak ${fmtMB(hwm)} (VmHWM)`, note: `${fmtMB(rssReady)} at ready (paused), sampled peak ${fmtMB(during.peak)}, ${fmtMB(after0)} when all deferred, ${fmtMB(after10)} 10 s later` });
      } finally {
        await sink.stop();
      }
    }
  } finally {
    await dns.stop();
  }
  tables.push({ title: "bigqueue — memory and start-up with a large queue (RSS = VmRSS of the mxd process)", rows });
}

// ---------------------------------------------------------------------------------------------

function printTables(): void {
  for (const t of tables) {
    console.log(`\n${t.title}\n`);
    for (const r of t.rows) console.log(`${r.name.padEnd(44)} ${r.value.padEnd(24)}${r.note ? ` | ${r.note}` : ""}`);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const bad = args.filter((a) => !(PARTS as readonly string[]).includes(a));
  if (bad.length) {
    console.error(`bench: unknown part(s) ${bad.join(", ")}; choose from ${PARTS.join(", ")} (default: all)`);
    process.exit(2);
  }
  const parts: Part[] = args.length ? (args as Part[]) : [...PARTS];
  if (!peerPath("smtp-source") || !peerPath("smtp-sink")) {
    console.error("bench: needs smtp-source and smtp-sink (apt-get install postfix)");
    process.exit(2);
  }
  if ((parts.includes("delivery") || parts.includes("bigqueue")) && !peerPath("dnsmasq")) {
    console.error("bench: delivery and bigqueue need dnsmasq (apt-get install dnsmasq-base)");
    process.exit(2);
  }
  if (!isRoot) console.error("bench: not root — Postfix and port-25 sinks are skipped or fail");
  const base = tempDir("mxd-bench-");
  // Bound the whole run: on timeout, print what was measured and kill everything by PID.
  const deadline = setTimeout(() => {
    console.error(`bench: timed out after ${TIMEOUT_S} s; stopping peers`);
    printTables();
    void stopAllPeers().finally(() => {
      rmSync(base, { recursive: true, force: true });
      process.exit(1);
    });
  }, TIMEOUT_S * 1000);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      console.error(`bench: ${sig}; stopping peers`);
      void stopAllPeers().finally(() => {
        rmSync(base, { recursive: true, force: true });
        process.exit(130);
      });
    });
  }
  const stamp = new Date().toISOString();
  try {
    for (const p of parts) {
      const t0 = performance.now();
      try {
        if (p === "submit") await benchSubmit(base);
        if (p === "delivery") await benchDelivery(base);
        if (p === "bigqueue") await benchBigQueue(base);
      } catch (e) {
        console.error(`bench ${p}: ${(e as Error).stack ?? e}`);
        tables.push({ title: `${p} — FAILED: ${(e as Error).message.split("\n")[0]}`, rows: [] });
        process.exitCode = 1;
        await stopAllPeers();
      }
      console.error(`bench: ${p} done in ${fmtS(performance.now() - t0)}`);
    }
  } finally {
    const left = await stopAllPeers();
    if (left.length) console.error(`bench: stopped ${left.join(", ")}`);
    rmSync(base, { recursive: true, force: true });
    clearTimeout(deadline);
  }
  console.log(`\nmxd bench ${stamp} — node ${process.version}, parts: ${parts.join(", ")}`);
  printTables();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
