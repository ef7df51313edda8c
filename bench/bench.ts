// mxd against Postfix, measured in the same run, alternately, on loopback (issue 9). Never
// asserted anywhere: numbers depend on the machine; compare the ratios of one run. Every peer is
// started through test/helpers/peers.ts (or, for the restarted Postfix of the big queue, by PID
// here) and stopped by PID, also on failure, SIGINT/SIGTERM and BENCH_TIMEOUT_S.
//
//   npx tsc -p . && ip netns exec nsb node dist/bench/bench.js            # everything
//   ip netns exec nsb node dist/bench/bench.js inbound e2e                # some workloads
//   BENCH_ROUNDS=1 BENCH_MESSAGES=2000 BENCH_E2E_MESSAGES=2000 BENCH_FANOUT_RCPTS=1000 \
//     BENCH_BIG=10000 BENCH_HUGE=0 ip netns exec nsb node dist/bench/bench.js   # a quick run
//
// Workloads (parts): inbound, live, e2e, fanout, bigqueue, huge. See bench/README.md.
// Run it in a private network namespace: the sinks listen on 0.0.0.0:25 there (one loopback
// address per destination domain); outside one they fall back to 127.0.0.201 for every domain.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync, copyFileSync, chownSync, chmodSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { ADDR, REPO_ROOT, peerPath, pidAlive, runTool, startDnsmasq, startMxd, startPostfix, stopAllPeers, tempDir, waitFor, sleep, type DnsPeer, type MxdPeer, type PostfixPeer } from "../test/helpers/peers.js";
import { fillSpool } from "../test/helpers/fill-spool.js";
import { countFiles, listFiles, makeMessage, memMB, metric, storageWriteBytes, cpuSeconds, peakSampler, postfixPssMB, queuedNow, sendOneToMany, startCountingSink, startProbe, stats, waitGreeting, type CountingSink, type Probe } from "./lib.js";

const env = (k: string, d: number) => (process.env[k] !== undefined && process.env[k] !== "" ? Number(process.env[k]) : d);
const ROUNDS = env("BENCH_ROUNDS", 3);
const MESSAGES = env("BENCH_MESSAGES", 20_000); // inbound
const LIVE_MESSAGES = env("BENCH_LIVE_MESSAGES", MESSAGES); // inbound while delivering
const SESSIONS = env("BENCH_SESSIONS", 50);
const SIZE = env("BENCH_SIZE", 4096);
const E2E_MESSAGES = env("BENCH_E2E_MESSAGES", 10_000);
const DOMAINS = env("BENCH_DOMAINS", 100);
const FANOUT_RCPTS = env("BENCH_FANOUT_RCPTS", 5000);
const FANOUT_DOMAINS = env("BENCH_FANOUT_DOMAINS", 500);
const BIG = env("BENCH_BIG", 100_000);
const HUGE = env("BENCH_HUGE", 1_000_000);
const DUE = env("BENCH_DUE", 100); // due messages among the big queue: their first attempt is timed
const TIMEOUT_S = env("BENCH_TIMEOUT_S", 1200);
/** Extra node options for the mxd under test, e.g. BENCH_MXD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const MXD_NODE_ARGS = (process.env.BENCH_MXD_NODE_ARGS ?? "").split(" ").filter(Boolean);
/** BENCH_ONLY=mxd (or postfix): run one MTA only, e.g. for a profile. */
const ONLY = process.env.BENCH_ONLY ?? "";
const RESULTS_DIR = process.env.BENCH_RESULTS_DIR ?? join(REPO_ROOT, "bench/results");

const PARTS = ["inbound", "live", "e2e", "fanout", "bigqueue", "huge"] as const;
type Part = (typeof PARTS)[number];
type Mta = "postfix" | "mxd";

// ---------------------------------------------------------------------------------------------
// Network plan (inside the namespace): dnsmasq .200:5353, Postfix smtpd .202:2525, mxd .212:2526,
// probe .205:25, smtp-sink 0.0.0.0:25; destination domain dN.test → mxN.sink.test → 127.1.x.y.

const netns = spawnSync("ip", ["netns", "identify", String(process.pid)], { encoding: "utf8" }).stdout?.trim() ?? "";
const PRIVATE_NET = netns !== "";
const SINK_LISTEN = PRIVATE_NET ? { host: "0.0.0.0", port: 25 } : { host: ADDR.smtpSink, port: 25 };
const sinkIp = (d: number) => (PRIVATE_NET ? `127.1.${Math.floor(d / 250)}.${(d % 250) + 1}` : ADDR.smtpSink);
const dom = (d: number) => `d${d}.test`;
const PROBE = { host: "127.0.0.205", port: 25 };
const PF = { host: ADDR.postfix, port: 2525 };
const MXD_LISTEN = { host: "127.0.0.212", port: 2526 };
const MAX_DOMAINS = Math.max(DOMAINS, FANOUT_DOMAINS, 1);

// ---------------------------------------------------------------------------------------------
// Results

interface Sample {
  part: Part;
  mta: Mta;
  round: number;
  ok: boolean;
  /** The workload's figure: msg/s, rcpt/s or, for the big queue, seconds and MB (see `metrics`). */
  metrics: Record<string, number>;
  /** Peak memory in MB: mxd VmHWM; Postfix the peak of its processes' summed Pss (sampled). */
  rssMB: number;
  notes: Record<string, number | string>;
  error?: string;
}
const samples: Sample[] = [];

interface RowSpec {
  part: Part;
  name: string;
  metric: string;
  unit: string;
  /** "higher" for rates, "lower" for times and memory. */
  better: "higher" | "lower";
  target?: { kind: "ratio" | "abs"; value: number; text: string };
  /** Only mxd runs this one. */
  mxdOnly?: boolean;
  rss?: boolean;
}

const ROWS: RowSpec[] = [
  { part: "inbound", name: `inbound, delivery off (${MESSAGES} × ${SIZE / 1024} KB, ${SESSIONS} sessions)`, metric: "rate", unit: "msg/s", better: "higher", target: { kind: "ratio", value: 3, text: "≥ 3×" }, rss: true },
  { part: "live", name: `inbound while delivering (${LIVE_MESSAGES}, 1 domain)`, metric: "rate", unit: "msg/s", better: "higher", target: { kind: "ratio", value: 3, text: "≥ 3×" }, rss: true },
  { part: "live", name: "  … its queue drained (submission → all at sink)", metric: "drain", unit: "msg/s", better: "higher" },
  { part: "e2e", name: `end to end (${E2E_MESSAGES}, ${DOMAINS} domains)`, metric: "rate", unit: "msg/s", better: "higher", target: { kind: "ratio", value: 3, text: "≥ 3×" }, rss: true },
  { part: "fanout", name: `fan-out (1 msg → ${FANOUT_RCPTS} rcpts, ${FANOUT_DOMAINS} domains)`, metric: "rate", unit: "rcpt/s", better: "higher", target: { kind: "ratio", value: 2, text: "≥ 2×" }, rss: true },
  { part: "bigqueue", name: `big queue ${BIG}: start → listening`, metric: "listen", unit: "s", better: "lower", target: { kind: "abs", value: 1, text: "< 1 s" } },
  { part: "bigqueue", name: `big queue ${BIG}: start → first attempt`, metric: "first", unit: "s", better: "lower", target: { kind: "abs", value: 2, text: "< 2 s" } },
  { part: "bigqueue", name: `big queue ${BIG}: RSS (after first attempt + 2 s)`, metric: "rss", unit: "MB", better: "lower", target: { kind: "abs", value: 150, text: "< 150 MB" } },
  { part: "bigqueue", name: `big queue ${BIG}: start → whole queue indexed`, metric: "recovered", unit: "s", better: "lower", mxdOnly: true },
  { part: "huge", name: `huge queue ${HUGE}: start → listening`, metric: "listen", unit: "s", better: "lower", mxdOnly: true, target: { kind: "abs", value: 1, text: "(< 1 s)" } },
  { part: "huge", name: `huge queue ${HUGE}: start → first attempt`, metric: "first", unit: "s", better: "lower", mxdOnly: true },
  { part: "huge", name: `huge queue ${HUGE}: start → whole queue indexed`, metric: "recovered", unit: "s", better: "lower", mxdOnly: true },
  { part: "huge", name: `huge queue ${HUGE}: peak RSS`, metric: "rss", unit: "MB", better: "lower", mxdOnly: true, target: { kind: "abs", value: 1024, text: "< 1 GB" } },
];

// ---------------------------------------------------------------------------------------------
// Configuration of the two MTAs: the same concurrency per destination (100), the same global
// delivery concurrency (100), both fsync every accepted message before the 250.

let base = "";
let dns: DnsPeer | undefined;

function mxdConfig(name: string, extra: { delivery?: Record<string, unknown>; [k: string]: unknown } = {}): Record<string, unknown> & { spoolDir: string } {
  const { delivery, ...rest } = extra;
  return {
    hostname: "mxd.bench",
    listen: [MXD_LISTEN],
    spoolDir: join(base, name, "spool"),
    dns: { servers: [`${ADDR.dns}:5353`], timeout: "2s", tries: 1 },
    admin: { listen: null }, // the admin socket only: no TCP port to clash with another run
    limits: { connections: 1000, connectionsPerClient: 1000, recipientsPerMessage: Math.max(100, FANOUT_RCPTS) },
    // BENCH_MXD_THREAD=0: delivery on the main thread (delivery.thread false), for comparison.
    delivery: { concurrency: 100, perHostConcurrency: 100, perDomainConcurrency: 100, ...(process.env.BENCH_MXD_THREAD === "0" ? { thread: false } : {}), ...delivery },
    log: { level: "info" },
    ...rest,
  };
}

/** Postfix: every destination domain has its own nexthop (the same address mxd gets from DNS). */
function postfixMainCf(extra: string[] = []): string {
  const transport = join(base, "transport");
  if (!existsSync(transport)) {
    const lines = Array.from({ length: MAX_DOMAINS }, (_, d) => `${dom(d)} smtp:[${sinkIp(d)}]:25`);
    for (const d of ["due.test", "remote.test", "origin.test"]) lines.push(`${d} smtp:[${PROBE.host}]:${PROBE.port}`);
    writeFileSync(transport, lines.join("\n") + "\n");
  }
  return [
    "smtpd_client_connection_count_limit = 0",
    "smtpd_recipient_limit = 100000",
    // smtpd, smtp (and the others) at most 100 processes each: 100 deliveries in flight, as mxd.
    "default_process_limit = 100",
    `transport_maps = texthash:${transport}`,
    "default_destination_concurrency_limit = 100",
    "smtp_destination_concurrency_limit = 100",
    ...extra,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// smtp-source

async function smtpSource(target: string, n: number, s: number, to: string): Promise<{ ms: number; ok: boolean; out: string }> {
  const r = await runTool(peerPath("smtp-source")!, ["-s", String(s), "-m", String(n), "-d", "-l", String(SIZE), "-M", "bench.test", "-f", "bench@bench.test", "-t", to, target], { timeoutMs: 600_000 });
  return { ms: r.ms, ok: r.code === 0, out: (r.stdout + r.stderr).slice(0, 500) };
}

/** n messages over `domains` domains, `sessions` in parallel: each worker sends its domains' share one domain after the other. */
async function submitOverDomains(target: string, n: number, domains: number, sessions: number): Promise<{ ok: boolean; out: string }> {
  const per = Array.from({ length: domains }, (_, d) => Math.floor(n / domains) + (d < n % domains ? 1 : 0));
  const workers = Math.max(1, Math.min(sessions, domains));
  const perWorker = Math.max(1, Math.floor(sessions / workers));
  const rs = await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      let out = "";
      for (let d = w; d < domains; d += workers) {
        if (!per[d]) continue;
        const r = await smtpSource(target, per[d]!, perWorker, `sink@${dom(d)}`);
        if (!r.ok) return { ok: false, out: r.out };
        out = r.out;
      }
      return { ok: true, out };
    }),
  );
  const bad = rs.find((r) => !r.ok);
  return { ok: !bad, out: bad?.out ?? "" };
}

// ---------------------------------------------------------------------------------------------
// Running one MTA for one workload

interface Running {
  target: string;
  /** Peak memory so far (MB). */
  stopRss(): number;
  /** Recipients delivered so far (mxd: /metrics; Postfix: status=sent in its log). */
  delivered(): Promise<number>;
  /** Nothing left in the queue. */
  empty(): Promise<boolean>;
  accepted(): Promise<number>;
  /** MB written to storage by the MTA process so far (mxd: journal and body files; /proc/PID/io). */
  storageMB?(): number;
  /** CPU seconds the MTA process used so far (mxd: its one process). */
  cpuS?(): number;
  stop(): Promise<void>;
}

async function runMxd(name: string, extra: Parameters<typeof mxdConfig>[1] = {}): Promise<Running & { mxd: MxdPeer }> {
  rmSync(join(base, name), { recursive: true, force: true });
  const mxd = await startMxd(mxdConfig(name, extra), { nodeArgs: MXD_NODE_ARGS, readyMs: 60_000 });
  return {
    mxd,
    target: `${mxd.host}:${mxd.port}`,
    stopRss: () => memMB(mxd.pid, "VmHWM"),
    storageMB: () => Math.round(storageWriteBytes(mxd.pid) / 10485.76) / 100,
    cpuS: () => cpuSeconds(mxd.pid),
    delivered: () => metric(mxd.spoolDir, /mxd_recipient_deliveries_total\{outcome="delivered"\} (\d+)/),
    empty: async () => (await queuedNow(mxd.spoolDir)) === 0,
    accepted: () => metric(mxd.spoolDir, /^mxd_messages_accepted_total (\d+)/m),
    async stop() {
      await mxd.stop(30_000);
      // BENCH_MXD_LOGS=DIR keeps each run's log lines (JSON) as DIR/<workload>-<time>.log.
      if (process.env.BENCH_MXD_LOGS) {
        mkdirSync(process.env.BENCH_MXD_LOGS, { recursive: true });
        writeFileSync(join(process.env.BENCH_MXD_LOGS, `${name}-${Date.now()}.log`), mxd.logs().map((l) => JSON.stringify(l)).join("\n") + "\n");
      }
      rmSync(join(base, name), { recursive: true, force: true });
    },
  };
}

async function runPostfix(extra: string[] = []): Promise<Running & { pf: PostfixPeer }> {
  const pf = await startPostfix({ host: PF.host, port: PF.port, extraMainCf: postfixMainCf(extra) });
  const rss = peakSampler(() => postfixPssMB(pf.pid), 500);
  let logPos = 0;
  let sent = 0;
  const qdirs = ["maildrop", "incoming", "active", "deferred"].map((d) => join(pf.dir, "queue", d));
  return {
    pf,
    target: `${pf.host}:${pf.port}`,
    stopRss: () => rss.stop(),
    async delivered() {
      const log = pf.log();
      sent += (log.slice(logPos).match(/status=sent/g) ?? []).length;
      logPos = log.length;
      return sent;
    },
    empty: async () => qdirs.every((d) => countFiles(d) === 0),
    accepted: async () => (pf.log().match(/: message-id=/g) ?? []).length,
    async stop() {
      rss.stop();
      await pf.stop();
    },
  };
}

async function runMta(mta: Mta, name: string, opts: { deliveryOff?: boolean } = {}): Promise<Running> {
  if (mta === "mxd") return runMxd(name, opts.deliveryOff ? { delivery: { enabled: false } } : {});
  // Postfix without delivery: every message goes on hold when accepted (queued to disk, fsynced).
  return runPostfix(opts.deliveryOff ? ["smtpd_end_of_data_restrictions = check_client_access static:HOLD"] : []);
}

// ---------------------------------------------------------------------------------------------
// The workloads: each returns the figures of one MTA in one round

async function inbound(mta: Mta): Promise<Omit<Sample, "part" | "mta" | "round">> {
  const m = await runMta(mta, "inbound", { deliveryOff: true });
  try {
    const r = await smtpSource(m.target, MESSAGES, SESSIONS, `sink@${dom(0)}`);
    const queued = mta === "mxd" ? await m.accepted() : countFiles(join((m as unknown as { pf: PostfixPeer }).pf.dir, "queue/hold"));
    const rate = (MESSAGES / r.ms) * 1000;
    return { ok: r.ok && queued === MESSAGES, metrics: { rate }, rssMB: m.stopRss(), notes: { seconds: r.ms / 1000, queued, ...(r.ok ? {} : { error: r.out }) } };
  } finally {
    await m.stop();
  }
}

/** Waits until the sink counted n messages; resolves performance.now() then. */
async function sinkHolds(sink: CountingSink, n: number, ms = 600_000): Promise<number> {
  await waitFor(() => sink.messages() >= n, ms, `${n} messages at smtp-sink (has ${sink.messages()})`);
  return performance.now();
}

async function live(mta: Mta): Promise<Omit<Sample, "part" | "mta" | "round">> {
  const sink = await startCountingSink(SINK_LISTEN);
  const m = await runMta(mta, "live");
  try {
    const t0 = performance.now();
    const r = await smtpSource(m.target, LIVE_MESSAGES, SESSIONS, `sink@${dom(0)}`);
    const t1 = performance.now();
    const atSinkDuring = sink.messages();
    const tEnd = await sinkHolds(sink, LIVE_MESSAGES);
    return {
      ok: r.ok,
      metrics: { rate: (LIVE_MESSAGES / (t1 - t0)) * 1000, drain: (LIVE_MESSAGES / (tEnd - t0)) * 1000 },
      rssMB: m.stopRss(),
      notes: { submitS: (t1 - t0) / 1000, drainS: (tEnd - t0) / 1000, atSinkWhenSubmitted: atSinkDuring, ...(r.ok ? {} : { error: r.out }) },
    };
  } finally {
    await m.stop();
    await sink.stop();
  }
}

async function e2e(mta: Mta): Promise<Omit<Sample, "part" | "mta" | "round">> {
  const sink = await startCountingSink(SINK_LISTEN);
  const m = await runMta(mta, "e2e");
  try {
    const t0 = performance.now();
    const r = await submitOverDomains(m.target, E2E_MESSAGES, DOMAINS, SESSIONS);
    const t1 = performance.now();
    const tEnd = await sinkHolds(sink, E2E_MESSAGES);
    return {
      ok: r.ok,
      metrics: { rate: (E2E_MESSAGES / (tEnd - t0)) * 1000 },
      rssMB: m.stopRss(),
      notes: { submitS: (t1 - t0) / 1000, totalS: (tEnd - t0) / 1000, ...(r.ok ? {} : { error: r.out }) },
    };
  } finally {
    await m.stop();
    await sink.stop();
  }
}

async function fanout(mta: Mta): Promise<Omit<Sample, "part" | "mta" | "round">> {
  const sink = await startCountingSink(SINK_LISTEN);
  const m = await runMta(mta, "fanout");
  const cpu0 = m.cpuS?.() ?? 0; // start-up excluded
  try {
    const rcpts = Array.from({ length: FANOUT_RCPTS }, (_, i) => `r${i}@${dom(i % FANOUT_DOMAINS)}`);
    const [host, port] = m.target.split(":");
    const t0 = performance.now();
    const r = await sendOneToMany(host!, Number(port), "bench@bench.test", rcpts, makeMessage(SIZE, "fan-out"));
    const t1 = performance.now();
    await waitFor(async () => (await m.delivered()) >= FANOUT_RCPTS && (await m.empty()), 600_000, `${FANOUT_RCPTS} recipients delivered`);
    const tEnd = performance.now();
    return {
      ok: r.ok,
      metrics: { rate: (FANOUT_RCPTS / (tEnd - t0)) * 1000 },
      rssMB: m.stopRss(),
      notes: { submitS: (t1 - t0) / 1000, totalS: (tEnd - t0) / 1000, delivered: await m.delivered(), sinkTransactions: sink.messages(), ...(m.storageMB ? { storageWriteMB: m.storageMB() } : {}), ...(m.cpuS ? { cpuS: m.cpuS() - cpu0 } : {}), ...(r.ok ? {} : { error: r.detail }) },
    };
  } finally {
    await m.stop();
    await sink.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Big queue: BIG deferred messages (next attempt in an hour) plus DUE due ones; timed from the
// start of the MTA to its first 220 greeting and to the first connection at the probe.

interface BigTimes {
  listen: number;
  first: number;
  recovered?: number;
  rss: number;
  probeConnections: number;
}

async function timeMxdStart(cfg: Record<string, unknown> & { spoolDir: string }, probe: Probe, opts: { settleMs?: number } = {}): Promise<BigTimes> {
  probe.reset();
  const t0 = performance.now();
  const greeting = waitGreeting(MXD_LISTEN.host, MXD_LISTEN.port, 600_000);
  const mxd = await startMxd(cfg, { nodeArgs: MXD_NODE_ARGS, readyMs: 600_000 });
  try {
    const tListen = await greeting;
    await waitFor(() => probe.firstAt() !== undefined, 600_000, "the first delivery attempt at the probe");
    const tFirst = probe.firstAt()!;
    let recoveredAt: number | undefined;
    await waitFor(() => {
      const line = mxd.logs().find((l) => l.msg === "queue recovered");
      if (line) recoveredAt = typeof line.time === "string" ? Date.parse(line.time) : Number(line.time);
      return line !== undefined;
    }, 600_000, "mxd's 'queue recovered' line");
    // The log line carries its wall-clock time; t0 in wall-clock terms:
    const t0Wall = Date.now() - (performance.now() - t0);
    await sleep(opts.settleMs ?? 2000);
    return { listen: (tListen - t0) / 1000, first: (tFirst - t0) / 1000, recovered: (recoveredAt! - t0Wall) / 1000, rss: memMB(mxd.pid, "VmHWM"), probeConnections: probe.connections() };
  } finally {
    await mxd.stop(30_000);
  }
}

async function bigMxd(probe: Probe, n: number, rounds: number, part: Part): Promise<void> {
  const pristine = join(base, `pristine-${n}`);
  const t0 = performance.now();
  await fillSpool(join(pristine, "spool"), n, { attempts: 1, domain: (i) => dom(i % MAX_DOMAINS) });
  // The due ones last in the journal (the worst place for a scan in order).
  await fillSpool(join(pristine, "spool"), DUE, { nowMs: Date.now() - 7_200_000, domain: () => "due.test" });
  const fillS = (performance.now() - t0) / 1000;
  console.error(`bench: ${part}: filled ${n} + ${DUE} due into mxd's journal in ${fillS.toFixed(1)} s`);
  for (let r = 1; r <= rounds; r++) {
    const name = `big-mxd-${n}`;
    const dir = join(base, name);
    rmSync(dir, { recursive: true, force: true });
    if (rounds > 1) cpSync(pristine, dir, { recursive: true });
    else renameSync(pristine, dir);
    const cfg = mxdConfig(name);
    try {
      const t = await timeMxdStart(cfg, probe);
      samples.push({ part, mta: "mxd", round: r, ok: true, metrics: { listen: t.listen, first: t.first, recovered: t.recovered!, rss: t.rss }, rssMB: t.rss, notes: { fillS, probeConnections: t.probeConnections } });
    } catch (e) {
      samples.push({ part, mta: "mxd", round: r, ok: false, metrics: {}, rssMB: NaN, notes: {}, error: (e as Error).message });
      console.error(`bench ${part} mxd round ${r}: ${(e as Error).stack}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  rmSync(pristine, { recursive: true, force: true });
}

/** A Postfix master this bench restarted itself (not through peers.ts): stopped by PID. */
let ownPostfix: { dir: string; pid: number } | undefined;

async function postfixStopOwn(): Promise<void> {
  if (!ownPostfix) return;
  const { dir, pid } = ownPostfix;
  await runTool("/usr/sbin/postfix", ["-c", join(dir, "conf"), "stop"], { timeoutMs: 20_000 });
  await waitFor(() => !pidAlive(pid), 10_000, "postfix master to exit").catch(() => {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      /* gone */
    }
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  });
  ownPostfix = undefined;
}

function masterPid(dir: string): number {
  const f = join(dir, "queue/pid/master.pid");
  return existsSync(f) ? Number(readFileSync(f, "utf8").trim()) : 0;
}

async function bigPostfix(probe: Probe, n: number, rounds: number): Promise<void> {
  // One real queue file (submitted, put on hold), copied n times into deferred/ with a future
  // mtime (Postfix's "next attempt" time); postsuper -s then names every copy after its inode.
  const pf = await startPostfix({ host: PF.host, port: PF.port, extraMainCf: postfixMainCf(["smtpd_end_of_data_restrictions = check_client_access static:HOLD"]) });
  const conf = join(pf.dir, "conf");
  try {
    const t0 = performance.now();
    const s = await smtpSource(`${pf.host}:${pf.port}`, 1, 1, "rcpt@due.test");
    if (!s.ok) throw new Error(`submission to Postfix failed: ${s.out}`);
    await waitFor(() => countFiles(join(pf.dir, "queue/hold")) === 1, 30_000, "the template in Postfix's hold queue");
    const pid0 = pf.pid;
    await runTool("/usr/sbin/postfix", ["-c", conf, "stop"], { timeoutMs: 20_000 });
    await waitFor(() => !pidAlive(pid0), 10_000, "postfix master to exit");
    const template = listFiles(join(pf.dir, "queue/hold"))[0]!;
    const st = statSync(template);
    const future = new Date(Date.now() + 7_200_000);
    const deferred = join(pf.dir, "queue/deferred");
    for (let i = 0; i < n; i++) {
      const id = (0x100000 + i).toString(16).toUpperCase().padStart(10, "0");
      const sub = join(deferred, id[0]!);
      if (i === 0) {
        mkdirSync(sub, { recursive: true });
        chownSync(sub, st.uid, st.gid);
      }
      const p = join(sub, id);
      copyFileSync(template, p);
      chownSync(p, st.uid, st.gid);
      chmodSync(p, 0o700);
      utimesSync(p, future, future);
    }
    rmSync(template);
    const fix = await runTool("/usr/sbin/postsuper", ["-c", conf, "-s"], { timeoutMs: 300_000 });
    // (It exits 1 after renaming when it cannot write the maillog with no postlogd running.)
    if (fix.code !== 0 && !/open logfile/.test(fix.stderr)) throw new Error(`postsuper -s: ${fix.stderr}`);
    const fillS = (performance.now() - t0) / 1000;
    const files = listFiles(deferred);
    console.error(`bench: bigqueue: ${files.length} deferred queue files for Postfix in ${fillS.toFixed(1)} s`);
    for (let r = 1; r <= rounds; r++) {
      // DUE of them due now (mtime in the past), different ones each round.
      const past = new Date(Date.now() - 60_000);
      for (let i = 0; i < DUE; i++) {
        const f = files[(r * DUE + i) % files.length]!;
        if (existsSync(f)) utimesSync(f, past, past);
      }
      probe.reset();
      const t0 = performance.now();
      const greeting = waitGreeting(PF.host, PF.port, 600_000);
      const start = await runTool("/usr/sbin/postfix", ["-c", conf, "start"], { timeoutMs: 300_000 });
      try {
        if (start.code !== 0) throw new Error(`postfix start failed: ${start.stdout} ${start.stderr}\n${pf.log().split("\n").slice(-10).join("\n")}`);
        ownPostfix = { dir: pf.dir, pid: masterPid(pf.dir) };
        const tListen = await greeting;
        await waitFor(() => probe.firstAt() !== undefined, 120_000, "Postfix's first delivery attempt at the probe");
        const tFirst = probe.firstAt()!;
        const rss = peakSampler(() => postfixPssMB(ownPostfix!.pid), 250);
        await sleep(2000);
        const peak = rss.stop();
        samples.push({ part: "bigqueue", mta: "postfix", round: r, ok: true, metrics: { listen: (tListen - t0) / 1000, first: (tFirst - t0) / 1000, rss: peak }, rssMB: peak, notes: { fillS, probeConnections: probe.connections() } });
      } catch (e) {
        samples.push({ part: "bigqueue", mta: "postfix", round: r, ok: false, metrics: {}, rssMB: NaN, notes: {}, error: (e as Error).message });
        console.error(`bench bigqueue postfix round ${r}: ${(e as Error).stack}`);
        greeting.catch(() => {});
      } finally {
        if (!ownPostfix) ownPostfix = { dir: pf.dir, pid: masterPid(pf.dir) };
        await postfixStopOwn();
      }
    }
  } finally {
    await postfixStopOwn();
    await pf.stop();
  }
}

async function bigqueue(part: Part): Promise<void> {
  const probe = await startProbe(PROBE.host, PROBE.port);
  try {
    if (part === "bigqueue") {
      // Postfix's rounds, then mxd's: each MTA's own fill is made once and reused.
      const order: Mta[] = ["postfix", "mxd"];
      for (const mta of order) {
        if (mta === "postfix" && canPostfix()) {
          await bigPostfix(probe, BIG, ROUNDS).catch((e: Error) => {
            samples.push({ part, mta: "postfix", round: 0, ok: false, metrics: {}, rssMB: NaN, notes: {}, error: e.message });
            console.error(`bench bigqueue postfix: ${e.stack}`);
          });
        }
        if (mta === "mxd" && ONLY !== "postfix") await bigMxd(probe, BIG, ROUNDS, "bigqueue");
      }
    } else {
      await bigMxd(probe, HUGE, 1, "huge");
    }
  } finally {
    await probe.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Table and JSON

const canPostfix = () => ONLY !== "mxd" && process.getuid?.() === 0 && !!peerPath("postfix");

function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return "—";
  if (unit === "s") return v < 10 ? v.toFixed(2) : v.toFixed(1);
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function summarize(): { rows: Record<string, unknown>[]; text: string } {
  const rows: Record<string, unknown>[] = [];
  const lines: string[] = [];
  const header = ["workload", "unit", "Postfix median (min–max)", "mxd median (min–max)", "mxd/Postfix", "target", "met", "peak RSS Postfix / mxd"];
  const table: string[][] = [header];
  for (const spec of ROWS) {
    const of = (mta: Mta) => samples.filter((s) => s.part === spec.part && s.mta === mta && s.ok && Number.isFinite(s.metrics[spec.metric]));
    const pf = stats(of("postfix").map((s) => s.metrics[spec.metric]!));
    const mx = stats(of("mxd").map((s) => s.metrics[spec.metric]!));
    const anyRan = samples.some((s) => s.part === spec.part);
    if (!anyRan) continue;
    const ratio = mx.median / pf.median;
    let met = "";
    if (spec.target && Number.isFinite(mx.median)) {
      if (spec.target.kind === "ratio") met = Number.isFinite(ratio) ? (ratio >= spec.target.value ? "yes" : "no") : "";
      else met = mx.median < spec.target.value ? "yes" : "no";
    }
    const rssPf = stats(of("postfix").map((s) => s.rssMB));
    const rssMx = stats(of("mxd").map((s) => s.rssMB));
    const failed = samples.filter((s) => s.part === spec.part && !s.ok).length;
    const cell = (s: ReturnType<typeof stats>) => (s.n ? `${fmt(s.median, spec.unit)} (${fmt(s.min, spec.unit)}–${fmt(s.max, spec.unit)})` : spec.mxdOnly ? "" : "—");
    table.push([
      spec.name + (failed && spec.metric === ROWS.find((r) => r.part === spec.part)!.metric ? ` [${failed} failed]` : ""),
      spec.unit,
      cell(pf),
      cell(mx),
      Number.isFinite(ratio) ? ratio.toFixed(2) : "",
      spec.target?.text ?? "",
      met,
      spec.rss ? `${fmt(rssPf.median, "MB")} / ${fmt(rssMx.median, "MB")} MB` : "",
    ]);
    rows.push({ part: spec.part, workload: spec.name, metric: spec.metric, unit: spec.unit, better: spec.better, postfix: pf, mxd: mx, ratio, target: spec.target?.text, met, rssPostfixMB: rssPf, rssMxdMB: rssMx, failedSamples: failed });
  }
  const widths = header.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const [i, r] of table.entries()) {
    lines.push(r.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join("  "));
    if (i === 0) lines.push(widths.map((w) => "-".repeat(w)).join("  "));
  }
  return { rows, text: lines.join("\n") };
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  const pfv = spawnSync("/usr/sbin/postconf", ["-d", "mail_version"], { encoding: "utf8" }).stdout?.trim().replace("mail_version = ", "");
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    memGB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    postfix: pfv,
    loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
    netns: netns || null,
  };
}

// ---------------------------------------------------------------------------------------------

const WORKLOADS: Partial<Record<Part, (mta: Mta) => Promise<Omit<Sample, "part" | "mta" | "round">>>> = { inbound, live, e2e, fanout };

async function runAlternating(part: Part): Promise<void> {
  const f = WORKLOADS[part]!;
  for (let r = 1; r <= ROUNDS; r++) {
    // Alternate who goes first, so a drift of the machine's load does not favour one of them.
    const order: Mta[] = r % 2 ? ["postfix", "mxd"] : ["mxd", "postfix"];
    for (const mta of order) {
      if ((mta === "postfix" && !canPostfix()) || (mta === "mxd" && ONLY === "postfix")) continue;
      const t0 = performance.now();
      try {
        const s = await f(mta);
        samples.push({ part, mta, round: r, ...s });
        const main = Object.entries(s.metrics).map(([k, v]) => `${k} ${v.toFixed(k === "rate" || k === "drain" ? 0 : 2)}`).join(", ");
        console.error(`bench: ${part} round ${r} ${mta}: ${main}; RSS ${s.rssMB.toFixed(0)} MB${typeof s.notes.storageWriteMB === "number" ? `, ${s.notes.storageWriteMB} MB written to storage` : ""}${typeof s.notes.cpuS === "number" ? `, CPU ${s.notes.cpuS.toFixed(2)} s` : ""}${s.ok ? "" : " (NOT OK: " + JSON.stringify(s.notes) + ")"} [${((performance.now() - t0) / 1000).toFixed(1)} s]`);
      } catch (e) {
        samples.push({ part, mta, round: r, ok: false, metrics: {}, rssMB: NaN, notes: {}, error: (e as Error).message });
        console.error(`bench ${part} round ${r} ${mta}: ${(e as Error).stack ?? e}`);
        await postfixStopOwn();
      }
    }
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const bad = args.filter((a) => !(PARTS as readonly string[]).includes(a));
  if (bad.length) {
    console.error(`bench: unknown part(s) ${bad.join(", ")}; choose from ${PARTS.join(", ")} (default: all)`);
    process.exit(2);
  }
  let parts: Part[] = args.length ? (args as Part[]) : [...PARTS];
  if (!args.length && HUGE <= 0) parts = parts.filter((p) => p !== "huge");
  if (!args.length && BIG <= 0) parts = parts.filter((p) => p !== "bigqueue");
  for (const need of ["smtp-source", "smtp-sink", "dnsmasq"] as const) {
    if (!peerPath(need)) {
      console.error(`bench: needs ${need} (apt-get install postfix dnsmasq-base)`);
      process.exit(2);
    }
  }
  if (!canPostfix()) console.error("bench: not root or no postfix — Postfix is skipped (and port-25 sinks fail)");
  if (!PRIVATE_NET) console.error("bench: not in a named network namespace — every destination shares smtp-sink at 127.0.0.201 (run it with `ip netns exec NS`)");
  base = tempDir("mxd-bench-");
  const stamp = new Date().toISOString();
  const started = performance.now();
  const cleanup = async () => {
    await postfixStopOwn().catch(() => {});
    const left = await stopAllPeers();
    rmSync(base, { recursive: true, force: true });
    return left;
  };
  const deadline = setTimeout(() => {
    console.error(`bench: timed out after ${TIMEOUT_S} s; stopping peers`);
    console.log(summarize().text);
    void cleanup().finally(() => process.exit(1));
  }, TIMEOUT_S * 1000);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      console.error(`bench: ${sig}; stopping peers`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const partTimes: Record<string, number> = {};
  try {
    const mx: Record<string, { host: string; pref: number }[]> = {};
    const a: Record<string, string[]> = { "mx.probe.test": [PROBE.host] };
    for (let d = 0; d < MAX_DOMAINS; d++) {
      mx[dom(d)] = [{ host: `mx${d}.sink.test`, pref: 10 }];
      a[`mx${d}.sink.test`] = [sinkIp(d)];
    }
    for (const d of ["due.test", "remote.test", "origin.test"]) mx[d] = [{ host: "mx.probe.test", pref: 10 }];
    // TTL 300 s as real zones have (dnsmasq's own records default to TTL 0: never cacheable).
    dns = await startDnsmasq({ mx, a }, { logQueries: true, localTtl: 300 });
    for (const p of parts) {
      const t0 = performance.now();
      try {
        if (p === "bigqueue" || p === "huge") await bigqueue(p);
        else await runAlternating(p);
      } catch (e) {
        console.error(`bench ${p}: ${(e as Error).stack ?? e}`);
        samples.push({ part: p, mta: "mxd", round: 0, ok: false, metrics: {}, rssMB: NaN, notes: {}, error: (e as Error).message });
        process.exitCode = 1;
      }
      partTimes[p] = (performance.now() - t0) / 1000;
      console.error(`bench: ${p} done in ${partTimes[p]!.toFixed(1)} s; DNS queries so far (dnsmasq, both MTAs): ${dns?.queries()} ${JSON.stringify(dns?.queriesByType())}`);
    }
  } finally {
    const left = await cleanup();
    if (left.length) console.error(`bench: stopped ${left.join(", ")}`);
    clearTimeout(deadline);
  }
  const totalS = (performance.now() - started) / 1000;
  const m = machine();
  const { rows, text } = summarize();
  console.log(`\nmxd bench ${stamp} — ${m.cpus} × ${m.cpuModel}, ${m.memGB} GB, Linux ${m.kernel}, node ${m.node}, Postfix ${m.postfix}, load ${(m.loadavg as number[]).join(" ")}; ${ROUNDS} round(s), alternating; ${totalS.toFixed(0)} s`);
  console.log(`peak RSS: mxd VmHWM; Postfix the peak of the summed Pss of its processes (sampled). Ratios are of the medians; for s and MB lower is better.\n`);
  console.log(text);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `bench-${stamp.replace(/[:.]/g, "-")}.json`);
  const knobs = { ROUNDS, MESSAGES, LIVE_MESSAGES, SESSIONS, SIZE, E2E_MESSAGES, DOMAINS, FANOUT_RCPTS, FANOUT_DOMAINS, BIG, HUGE, DUE, MXD_NODE_ARGS, PRIVATE_NET };
  writeFileSync(file, JSON.stringify({ stamp, totalS, partTimes, machine: m, knobs, summary: rows, samples }, null, 2));
  console.log(`\nresults: ${file}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
