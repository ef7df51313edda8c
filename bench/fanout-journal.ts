// What one fan-out appends to the journal: the real queue worker and journal spool, a courier
// without a network (each domain answers after 5–30 ms), fdatasync on. Prints records and
// octets by type and the CPU time, with recipient deltas (as mxd runs) and without them (every
// state write whole, as before RCPTS records existed). Counts, not timings, are the point.
//
//   npx tsc -p . && node dist/bench/fanout-journal.js [recipients=5000] [domains=500]
//   RATIOS=2,3 node dist/bench/fanout-journal.js       # also with longer chains (ChainLimits.maxRatio)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runFanout } from "../test/helpers/fanout-run.js";
import { DEFAULT_CHAIN_LIMITS, type ChainLimits } from "../src/spool/state-delta.js";

const rcpts = Number(process.argv[2] ?? 5000);
const domains = Number(process.argv[3] ?? 500);
const ratios = (process.env.RATIOS ?? "").split(",").filter(Boolean).map(Number);
const variants: [string, ChainLimits | undefined][] = [["whole states only", { minFull: Infinity, maxDeltas: 0, maxRatio: 0 }], ["recipient deltas", undefined]];
for (const r of ratios) variants.push([`recipient deltas, chain up to ${r}× the state`, { ...DEFAULT_CHAIN_LIMITS, maxRatio: r }]);
for (const [name, chainLimits] of variants) {
  const dir = mkdtempSync(join(tmpdir(), "mxd-fanout-journal-"));
  try {
    const r = await runFanout({ dir, rcpts, domains, sync: true, chainLimits });
    await r.qm.stop(1000);
    await r.spool.close();
    const kb = (n: number) => (n / 1024).toFixed(0);
    const total = Object.values(r.records).reduce((a, x) => a + x.bytes, 0);
    const parts = Object.entries(r.records).map(([k, v]) => `${k.toUpperCase()} ${v.n} (${kb(v.bytes)} KB)`).join(", ");
    console.log(`${name}: ${rcpts} rcpts / ${domains} domains: ${kb(total)} KB appended — ${parts}; ${r.ms.toFixed(0)} ms, CPU ${r.cpuMs.toFixed(0)} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
