// `mxd spool check`: verify every journal segment (framing, checksums, damage and where it is)
// and that every queued message's state decodes and its body exists. Read-only: safe while the
// daemon runs (it may report a torn tail of the segment being written at that instant).
import { parseArgs } from "node:util";
import { resolveConfig } from "./resolve-config.js";
import { openSpool } from "../spool/open-spool.js";
import { segmentName } from "../spool/journal-format.js";

const HELP = `usage: mxd spool check [--config FILE] [--json]

Reads every segment of spoolDir/journal and reports records, damage (offset and reason) and
unreadable queued messages. Exit 0: no damage; 1: damage or problems found; 2: usage.`;

export async function spoolCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "--help" || sub === "-h" || sub === "help") {
    console.log(HELP);
    return 0;
  }
  if (sub !== "check") {
    console.error(`mxd spool: ${sub === undefined ? "a subcommand is needed" : `unknown subcommand ${JSON.stringify(sub)}`}\n\n${HELP}`);
    return 2;
  }
  const { values } = parseArgs({ args: rest, options: { config: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean" } }, strict: true });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const config = resolveConfig(values.config);
  const spool = openSpool(config, { readOnly: true });
  if (!spool.exists()) {
    console.error(`mxd spool check: no spool at ${config.spoolDir}`);
    return 1;
  }
  const report = await spool.check();
  await spool.close();
  const damaged = report.segments.filter((s) => s.damage.length);
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else {
    for (const s of report.segments) {
      console.log(`${segmentName(s.seg)}  ${s.size} octets, ${s.records} records${s.damage.length ? `, DAMAGED: ${s.damage.map((d) => `${d.reason} at ${d.off} (${d.skipped} octets skipped)`).join("; ")}` : ""}`);
    }
    for (const p of report.problems) console.log(`problem: ${p}`);
    console.log(`-- ${report.segments.length} segment(s), ${report.messages} queued message(s), ${damaged.length} damaged segment(s), ${report.problems.length} problem(s)`);
  }
  return damaged.length || report.problems.length ? 1 : 0;
}
