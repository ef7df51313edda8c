// Throughput benchmark: Postfix's smtp-source submits the same load to mxd, to Postfix's
// smtp-sink and to a real Postfix (private instance) in one run; reports messages/s and the
// ratios. Never asserted anywhere: numbers depend on the machine.
//
//   npm run bench                      # 2,000 messages × 20 sessions, 2 KB each
//   BENCH_MESSAGES=10000 BENCH_SESSIONS=50 BENCH_SIZE=10240 npm run bench
//
// Needs the peers of test/helpers/peers.ts (postfix package; root for Postfix on port 25).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ADDR, peerPath, runTool, startMxd, startPostfix, startSmtpSink, stopAllPeers, tempDir } from "../test/helpers/peers.js";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20);
const SIZE = Number(process.env.BENCH_SIZE ?? 2048);

async function source(target: string): Promise<{ ms: number; ok: boolean; out: string }> {
  const r = await runTool(peerPath("smtp-source")!, ["-s", String(SESSIONS), "-m", String(MESSAGES), "-d", "-l", String(SIZE), "-M", "bench.test", "-f", "bench@bench.test", "-t", "sink@pf.test", target], { timeoutMs: 600_000 });
  return { ms: r.ms, ok: r.code === 0, out: r.stdout + r.stderr };
}

async function main(): Promise<void> {
  if (!peerPath("smtp-source") || !peerPath("smtp-sink")) {
    console.error("bench: needs smtp-source and smtp-sink (apt-get install postfix)");
    process.exit(2);
  }
  const base = tempDir("mxd-bench-");
  const results: { name: string; ms: number; ok: boolean; rss?: number }[] = [];
  try {
    const sink = await startSmtpSink({ dump: false });
    const r1 = await source(`${sink.host}:${sink.port}`);
    results.push({ name: "smtp-sink (Postfix test server, no disk)", ...r1 });
    await sink.stop();

    const mxd = await startMxd({
      hostname: "mxd.bench",
      listen: [{ host: "127.0.0.212", port: 0 }],
      spoolDir: join(base, "spool"),
      delivery: { enabled: false },
      limits: { connections: 1000, connectionsPerClient: 1000 },
      log: { level: "info" }, // the default; "ready" is logged at info
    });
    const r2 = await source(`${mxd.host}:${mxd.port}`);
    const rss = Number(/VmHWM:\s+(\d+)/.exec((await import("node:fs")).readFileSync(`/proc/${mxd.pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
    results.push({ name: "mxd (fsync per message, delivery off)", ...r2, rss });
    await mxd.stop();

    if (process.getuid?.() === 0 && peerPath("postfix")) {
      const pf = await startPostfix({ host: ADDR.postfix, extraMainCf: "smtpd_client_connection_count_limit = 0\ndefault_process_limit = 200\n" });
      const r3 = await source(`${pf.host}:${pf.port}`);
      results.push({ name: "Postfix (smtpd + cleanup, queued to disk)", ...r3 });
      await pf.stop();
    }
  } finally {
    await stopAllPeers();
    rmSync(base, { recursive: true, force: true });
  }
  const mxdRate = (r: { ms: number }) => (MESSAGES / r.ms) * 1000;
  const mxdRes = results.find((r) => r.name.startsWith("mxd"));
  console.log(`\nsmtp-source: ${MESSAGES} messages, ${SESSIONS} parallel sessions, ${SIZE} bytes each\n`);
  for (const r of results) {
    const ratio = mxdRes ? ` | mxd/this ${(mxdRate(mxdRes) / mxdRate(r)).toFixed(2)}` : "";
    console.log(`${r.name.padEnd(44)} ${r.ok ? "" : "(errors) "}${(r.ms / 1000).toFixed(2)} s  ${mxdRate(r).toFixed(0).padStart(6)} msg/s${ratio}${r.rss ? `  peak RSS ${r.rss.toFixed(0)} MB` : ""}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
