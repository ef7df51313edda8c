// `mxd status`: is the daemon up, where does it listen, how big is the queue, what is paused,
// what failed last. Exit 0 when the daemon answers, 1 when it does not (the queue counts are
// then read from the spool, so the operator still sees what is waiting).
import { parseOptions } from "./args.js";
import { existsSync } from "node:fs";
import { openSpool } from "../spool/open-spool.js";
import { messageState } from "../queue/state.js";
import { ControlFile } from "../queue/control-file.js";
import { adminSocketPath } from "../admin/server.js";
import { countDead } from "../spool/dead-letters.js";
import type { StatusReply } from "../admin/status-reply.js";
import { connectDaemon } from "./admin-client.js";
import { resolveConfig } from "./resolve-config.js";
import { describePause } from "./queue.js";
import { formatAge } from "./format.js";

const USAGE = `usage: mxd status [--json] [--config FILE]
  Listener addresses, uptime, queue counts by state, paused delivery, last errors.
  exit codes: 0 mxd is running, 1 it is not (queue counts are read from the spool), 2 usage error`;

/** "client-messages 100/1m (3 hits)" per rule; "off" for a limit of 0. */
export function describeRateLimits(r: NonNullable<StatusReply["rateLimits"]>): string[] {
  const rules = r.rules.map((x) => `${x.rule} ${x.limit > 0 ? `${x.limit}/${x.per}` : "off"}${x.hits ? ` (${x.hits} hit${x.hits === 1 ? "" : "s"})` : ""}`);
  return [rules.join(", "), `tracking ${r.trackedKeys} of at most ${r.maxTrackedKeys} clients and users; exempt: ${r.exemptNetworks.join(" ") || "none"}`];
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions("mxd status", argv, { config: { type: "string", short: "c" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length) {
    console.error(`mxd status: unexpected argument ${positionals[0]}\n\n${USAGE}`);
    return 2;
  }
  const config = resolveConfig(values.config);
  const daemon = await connectDaemon(config);
  if (daemon) {
    const s = await daemon.get<StatusReply>("/status");
    if (values.json) {
      console.log(JSON.stringify({ running: true, ...s }, null, 2));
      return 0;
    }
    console.log(`mxd is running: pid ${s.pid}, up ${formatAge(s.uptimeSeconds * 1000)} (since ${s.startedAt}), hostname ${s.hostname}`);
    console.log(`smtp:      ${s.listen.map((l) => `${l.host}:${l.port}${l.tls ? " (TLS)" : ""}${l.mode === "submission" ? " (submission)" : ""}`).join(", ")}`);
    console.log(`admin:     ${s.admin.join(", ")}`);
    console.log(`spool:     ${s.spoolDir}`);
    console.log(`queue:     ${s.queue.total} message(s): ${s.queue.queued} queued, ${s.queue.deferred} deferred, ${s.queue.held} held; ${s.queue.active} being worked on, ${s.queue.parked} waiting for a paused destination; ${s.queue.dead} dead letter(s)`);
    console.log(`delivery:  ${s.delivery.enabled ? describePause(s) : "disabled in the config (delivery.enabled: false)"}; ${s.delivery.outbound} outbound connection(s) in use`);
    if (s.rateLimits) {
      const [rules, tracking] = describeRateLimits(s.rateLimits);
      console.log(`limits:    ${rules}`);
      console.log(`           ${tracking}`);
    }
    if (s.proxyProtocol?.listeners) {
      const refused = Object.entries(s.proxyProtocol.refused).map(([k, v]) => `${v} ${k}`);
      console.log(`proxy:     PROXY protocol on ${s.proxyProtocol.listeners} listener(s); refused: ${refused.join(", ") || "none"}`);
    }
    if (s.lastErrors.length) {
      console.log("last errors:");
      for (const e of s.lastErrors.slice(0, 10)) console.log(`  ${e.at}  ${e.qid}  <${e.rcpt}>  ${e.reply}`);
    }
    return 0;
  }
  const spool = openSpool(config, { readOnly: true });
  const control = await new ControlFile(config.spoolDir).load();
  const q = { queued: 0, deferred: 0, held: 0, total: 0, dead: await countDead(spool) };
  if (spool.exists()) {
    for await (const m of spool.scan()) {
      q[messageState(m)]++;
      q.total++;
    }
  }
  if (values.json) {
    console.log(JSON.stringify({ running: false, spoolDir: config.spoolDir, queue: q, paused: control.paused, pausedDomains: control.pausedDomains }, null, 2));
    return 1;
  }
  console.log(`mxd is not running (no answer on ${adminSocketPath(config.spoolDir) ?? `${config.spoolDir}/admin.sock`}${config.admin.listen ? ` or ${config.admin.listen}` : ""})`);
  console.log(`spool:     ${config.spoolDir}${spool.exists() ? "" : " (does not exist)"}`);
  console.log(`queue:     ${q.total} message(s): ${q.queued} queued, ${q.deferred} deferred, ${q.held} held; ${q.dead} dead letter(s)`);
  console.log(`delivery:  ${describePause(control)} (when mxd starts)`);
  return 1;
}
