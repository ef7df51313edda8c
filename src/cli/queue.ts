// `mxd queue ...`: inspect and manage the spool. Works without the daemon by reading the
// spool directly (the files are the source of truth).
import { parseArgs } from "node:util";
import { open, stat } from "node:fs/promises";
import { FsSpool } from "../spool/fs-spool.js";
import { pendingRecipients, type MessageMeta } from "../core/envelope.js";
import type { Config } from "../config.js";
import { resolveConfig } from "./resolve-config.js";

const USAGE = `usage: mxd queue <command> [--config FILE]

  list [--domain D] [--json]     queued messages: id, age, size, sender, recipients, next attempt, last error
  show ID [--json] [--body]      envelope, per-recipient history, headers (body on request)
  delete ID...                   remove messages without bouncing (stop the daemon first)

exit codes: 0 success, 1 operation failed, 2 usage error`;

export async function queueCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      domain: { type: "string" },
      json: { type: "boolean" },
      body: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (!sub || sub === "--help" || sub === "-h" || values.help) {
    console.log(USAGE);
    return sub ? 0 : 2;
  }
  const config: Config = resolveConfig(values.config);
  const spool = new FsSpool({ dir: config.spoolDir });
  switch (sub) {
    case "list":
      return list(spool, values.domain, !!values.json);
    case "show":
      if (positionals.length !== 1) {
        console.error("mxd queue show: exactly one queue id expected");
        return 2;
      }
      return show(spool, positionals[0]!, !!values.json, !!values.body);
    case "delete": {
      if (!positionals.length) {
        console.error("mxd queue delete: queue id(s) expected");
        return 2;
      }
      let rc = 0;
      for (const id of positionals) {
        try {
          await spool.load(id);
          await spool.remove(id);
          console.log(`${id}: deleted`);
        } catch (e) {
          console.error(`${id}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such message" : (e as Error).message}`);
          rc = 1;
        }
      }
      return rc;
    }
    default:
      console.error(`mxd queue: unknown command ${JSON.stringify(sub)}\n\n${USAGE}`);
      return 2;
  }
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function lastError(m: MessageMeta): string {
  let best: { at: string; reply: string } | undefined;
  for (const r of pendingRecipients(m)) {
    const h = r.history[r.history.length - 1];
    if (h && (!best || h.at > best.at)) best = h;
  }
  return best?.reply ?? "";
}

async function list(spool: FsSpool, domain: string | undefined, json: boolean): Promise<number> {
  const now = Date.now();
  let n = 0;
  const d = domain?.toLowerCase();
  for await (const m of spool.scan((p) => console.error(`${p.id}: unreadable: ${p.reason}`))) {
    if (d && !m.recipients.some((r) => r.domain === d)) continue;
    n++;
    if (json) {
      console.log(JSON.stringify({ id: m.id, receivedAt: m.receivedAt, size: m.size, sender: m.sender, held: !!m.held, nextAttemptAt: m.nextAttemptAt, recipients: m.recipients.map((r) => ({ address: r.address, status: r.status, attempts: r.attempts, lastReply: r.history[r.history.length - 1]?.reply })) }));
      continue;
    }
    const state = m.held ? "held" : m.recipients.some((r) => r.attempts > 0) ? "deferred" : "queued";
    console.log(`${m.id}  ${state.padEnd(8)} ${age(now - Date.parse(m.receivedAt)).padStart(4)} ${String(m.size).padStart(9)}  <${m.sender}>  next ${m.nextAttemptAt}`);
    for (const r of m.recipients) console.log(`    ${r.status.padEnd(9)} <${r.address}>${r.history.length ? "  " + r.history[r.history.length - 1]!.reply : ""}`);
    const err = lastError(m);
    void err;
  }
  if (!json) console.log(n === 0 ? "Mail queue is empty" : `-- ${n} message(s)`);
  return 0;
}

async function show(spool: FsSpool, id: string, json: boolean, body: boolean): Promise<number> {
  let m: MessageMeta;
  try {
    m = await spool.load(id);
  } catch (e) {
    console.error(`mxd queue show: ${id}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such message" : (e as Error).message}`);
    return 1;
  }
  const path = spool.bodyPath(id);
  const size = (await stat(path)).size;
  const fh = await open(path, "r");
  const buf = Buffer.alloc(body ? size : Math.min(size, 64 * 1024));
  await fh.read(buf, 0, buf.length, 0);
  await fh.close();
  const text = buf.toString("utf8");
  const headers = body ? text : text.split("\r\n\r\n")[0] + "\r\n";
  if (json) {
    console.log(JSON.stringify({ ...m, [body ? "message" : "headers"]: headers }, null, 2));
    return 0;
  }
  console.log(`id:        ${m.id}\nreceived:  ${m.receivedAt} from ${m.client.ip} (${m.client.helo ?? "?"})\nsender:    <${m.sender}>\nsize:      ${m.size}\nnext:      ${m.nextAttemptAt}${m.held ? "\nheld:      yes" : ""}`);
  for (const r of m.recipients) {
    console.log(`recipient  <${r.address}>  ${r.status}, ${r.attempts} attempt(s)`);
    for (const h of r.history) console.log(`    ${h.at}  ${h.outcome.padEnd(9)} ${h.mx ? `${h.mx}[${h.ip ?? ""}] ` : ""}${h.reply}`);
  }
  console.log(`\n${headers}`);
  return 0;
}
