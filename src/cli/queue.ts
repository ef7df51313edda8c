// `mxd queue …`: the postmaster's queue tool (docs/operations.md). Reading (list, show) goes to
// the spool files, which is safe while the daemon runs. Changing goes through the daemon's
// admin API when it runs — so the delivery side knows at once — and straight to the spool when
// it does not (the same QueueManager code, in offline mode, never delivering).
import { parseArgs } from "node:util";
import { createReadStream, existsSync, promises as fsp } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Config } from "../config.js";
import { openSpool } from "../spool/open-spool.js";
import type { JournalSpool } from "../spool/journal-spool.js";
import { isMxdError } from "../core/errors.js";
import { isQueueId } from "../spool/format.js";
import { QueueManager, type OpResult } from "../queue/worker.js";
import { isPausedFor, type ControlState } from "../queue/state.js";
import { silentLogger } from "../io/log.js";
import { systemClock } from "../io/clock.js";
import { ControlFile } from "../admin/control-file.js";
import { LIST_STATES, listDead, matches, scanStates, toListEntry, type ListEntry, type ListState } from "../admin/queue-view.js";
import { connectDaemon, type AdminClient } from "./admin-client.js";
import { resolveConfig } from "./resolve-config.js";
import { formatAge, formatSize } from "./format.js";

const HELP: Record<string, string> = {
  list: `usage: mxd queue list [--domain D] [--state queued|deferred|held|dead|all] [--json] [--config FILE]
  One entry per message: id, state, age, size, sender; then each recipient with its state,
  attempts and last reply, and when the next attempt is due. --json prints one JSON object
  per line (NDJSON). Works whether mxd runs or not.`,
  show: `usage: mxd queue show ID [--json] [--body] [--config FILE]
  Envelope, per-recipient attempt history and the message headers (--body: the whole message).
  Also shows dead letters (spoolDir/dead) with the reason they are there.`,
  flush: `usage: mxd queue flush [ID... | --domain D] [--config FILE]
  Attempt now: the given messages, those with recipients at D, or (no argument) every message.
  Held messages are not attempted; paused destinations stay paused. With mxd stopped, the
  messages are marked due now and attempted when it starts.`,
  delete: `usage: mxd queue delete ID... | --domain D | --all --yes [--config FILE]
  Remove without a bounce. --domain removes the recipients at D (a message goes when none of
  its recipients is left); --all empties the queue and needs --yes.`,
  bounce: `usage: mxd queue bounce ID... [--config FILE]
  Fail every pending recipient now; the sender gets a delivery status notification (and
  bounce.copyTo a copy).`,
  hold: `usage: mxd queue hold ID... [--config FILE]
  A held message is never attempted until released (postsuper -h).`,
  release: `usage: mxd queue release ID... [--config FILE]
  Release held messages; they are attempted at once (postsuper -H).`,
  pause: `usage: mxd queue pause [--domain D] [--config FILE]
  Stop all outbound delivery, or delivery to D. Mail is still accepted and queued. Deliveries
  in progress finish. The pause survives restarts; undo with mxd queue resume.`,
  resume: `usage: mxd queue resume [--domain D] [--config FILE]
  Restart outbound delivery (without --domain: the global pause only; paused domains stay
  paused) or delivery to D. Waiting messages are attempted at once.`,
};

const USAGE = `usage: mxd queue <command> [options] [--config FILE]

  list [--domain D] [--state S] [--json]   messages, recipients, states, next attempt, last error
  show ID [--json] [--body]                 envelope, attempt history, headers (body on request)
  flush [ID... | --domain D]                attempt now
  delete ID... | --domain D | --all --yes   remove without bouncing
  bounce ID...                              fail now, with a bounce to the sender
  hold ID... / release ID...                keep a message from delivery / give it back
  pause [--domain D] / resume [--domain D]  stop / restart outbound delivery (all, or one domain)

mxd queue <command> --help for details.
exit codes: 0 success, 1 operation failed, 2 usage or configuration error`;

class UsageError extends Error {}

export async function queueCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(USAGE);
    return sub ? 0 : 2;
  }
  if (!(sub in HELP)) {
    console.error(`mxd queue: unknown command ${JSON.stringify(sub)}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      domain: { type: "string", short: "d" },
      state: { type: "string" },
      json: { type: "boolean" },
      body: { type: "boolean" },
      all: { type: "boolean" },
      yes: { type: "boolean", short: "y" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(HELP[sub]);
    return 0;
  }
  try {
    checkUsage(sub, values, positionals);
  } catch (e) {
    console.error(`mxd queue ${sub}: ${(e as Error).message}\n\n${HELP[sub]}`);
    return 2;
  }
  const config: Config = resolveConfig(values.config);
  // list and show only read (also while the daemon runs); the rest may edit the spool offline.
  const spool = openSpool(config, { readOnly: sub === "list" || sub === "show" });
  switch (sub) {
    case "list":
      return list(spool, config, values.domain, (values.state ?? "all") as ListState, !!values.json);
    case "show":
      return show(spool, config, positionals[0]!, !!values.json, !!values.body);
    case "pause":
    case "resume":
      return pauseResume(config, spool, sub, values.domain);
    default:
      return act(config, spool, sub as Op, { ids: positionals, domain: values.domain, all: !!values.all });
  }
}

type Op = "flush" | "delete" | "bounce" | "hold" | "release";

function checkUsage(sub: string, v: Record<string, unknown>, ids: string[]): void {
  const allowed: Record<string, string[]> = {
    list: ["domain", "state", "json"],
    show: ["json", "body"],
    flush: ["domain"],
    delete: ["domain", "all", "yes"],
    bounce: [],
    hold: [],
    release: [],
    pause: ["domain"],
    resume: ["domain"],
  };
  for (const k of Object.keys(v)) if (v[k] !== undefined && k !== "config" && !allowed[sub]!.includes(k)) throw new UsageError(`--${k} does not apply here`);
  const bad = ids.filter((i) => !isQueueId(i));
  if (bad.length) throw new UsageError(`not a queue id: ${bad.join(", ")} (16 characters like 01KB2X7Q9M4F8Z3H)`);
  if (v.state !== undefined && !LIST_STATES.includes(v.state as ListState)) throw new UsageError(`--state must be one of ${LIST_STATES.join(", ")}`);
  if (v.domain !== undefined && !/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[^\]]+\]$/.test(v.domain as string)) throw new UsageError(`--domain expects a domain name`);
  const needsIds = ["show", "bounce", "hold", "release"];
  if (sub === "show" && ids.length !== 1) throw new UsageError("exactly one queue id expected");
  if (needsIds.includes(sub) && !ids.length) throw new UsageError("queue id(s) expected");
  if (["list", "pause", "resume"].includes(sub) && ids.length) throw new UsageError(`unexpected argument ${ids[0]}`);
  if (sub === "flush" && ids.length && v.domain) throw new UsageError("give ids or --domain, not both");
  if (sub === "delete") {
    const modes = [ids.length > 0, v.domain !== undefined, !!v.all].filter(Boolean).length;
    if (modes !== 1) throw new UsageError("give ids, --domain D or --all --yes");
    if (v.all && !v.yes) throw new UsageError("--all removes every queued message without a bounce; add --yes to confirm");
  }
}

/** The running daemon, or a QueueManager working on the spool directly. */
async function backend(config: Config, spool: JournalSpool): Promise<{ daemon: AdminClient } | { offline: QueueManager }> {
  const daemon = await connectDaemon(config);
  if (daemon) return { daemon };
  if (!spool.exists()) throw Object.assign(new Error(`no spool at ${spool.dir} (is spoolDir right? relative paths are resolved from the current directory)`), { code: "ENOSPOOL" });
  await spool.init();
  await spool.recover();
  const offline = new QueueManager({
    config,
    spool,
    clock: systemClock,
    logger: silentLogger(),
    control: new ControlFile(config.spoolDir),
    offline: true,
    courier: {
      deliver: () => Promise.reject(new Error("the offline queue tool never delivers")),
      close: async () => undefined,
    },
  });
  await offline.start();
  return { offline };
}

async function act(config: Config, spool: JournalSpool, op: Op, sel: { ids: string[]; domain?: string; all: boolean }): Promise<number> {
  const b = await backend(config, spool);
  let results: OpResult[];
  if ("daemon" in b) {
    const body = sel.ids.length ? { ids: sel.ids } : sel.domain !== undefined ? { domain: sel.domain } : { all: true };
    results = (await b.daemon.post<{ results: OpResult[] }>(`/queue/${op}`, body)).results;
  } else {
    const q = b.offline;
    const ids = sel.ids.length ? sel.ids : await q.select(sel.domain, { skipHeld: op === "flush" });
    results = [];
    for (const id of ids) {
      if (op === "delete" && sel.domain !== undefined) results.push(await q.deleteRecipients(id, sel.domain));
      else results.push(await q[op](id));
    }
  }
  for (const r of results) (r.ok ? console.log : console.error)(`${r.id}: ${r.status}`);
  const how = "daemon" in b ? "" : " (mxd is not running: spool changed directly)";
  if (!sel.ids.length) console.log(`${op}: ${results.filter((r) => r.ok).length} message(s)${sel.domain ? ` at ${sel.domain}` : ""}${how}`);
  else if (how && results.some((r) => r.ok)) console.log(how.trim());
  return results.every((r) => r.ok) ? 0 : 1;
}

async function pauseResume(config: Config, spool: JournalSpool, op: "pause" | "resume", domain: string | undefined): Promise<number> {
  const b = await backend(config, spool);
  const st: ControlState = "daemon" in b ? await b.daemon.post<ControlState>(`/${op}`, domain ? { domain } : {}) : await b.offline[op](domain);
  console.log(describePause(st) + ("daemon" in b ? "" : " (mxd is not running: saved for its next start)"));
  return 0;
}

export function describePause(st: Pick<ControlState, "paused" | "pausedDomains">): string {
  const parts = [st.paused ? "outbound delivery is PAUSED" : "outbound delivery is running"];
  if (st.pausedDomains.length) parts.push(`paused domains: ${st.pausedDomains.join(", ")}`);
  return parts.join("; ");
}

async function list(spool: JournalSpool, config: Config, domain: string | undefined, state: ListState, json: boolean): Promise<number> {
  if (!spool.exists()) {
    // Most likely a wrong (or relative) spoolDir: saying "empty" would mislead.
    console.error(`mxd queue list: no spool at ${spool.dir} (is spoolDir right? relative paths are resolved from the current directory)`);
    return 1;
  }
  if (state === "dead") {
    const dead = await listDead(spool);
    for (const d of dead) {
      if (domain && !(d.recipients ?? []).some((r) => r.toLowerCase().endsWith("@" + domain.toLowerCase()))) continue;
      if (json) console.log(JSON.stringify(d));
      else console.log(`${d.id}  dead     ${d.buriedAt ?? ""}  <${d.sender ?? "?"}> -> ${(d.recipients ?? []).map((r) => `<${r}>`).join(" ")}\n    ${d.reason}`);
    }
    if (!json) console.log(dead.length ? `-- ${dead.length} dead letter(s) in ${spool.deadDir}` : "No dead letters");
    return 0;
  }
  const control = await new ControlFile(config.spoolDir).load();
  const now = Date.now();
  const counts = { queued: 0, deferred: 0, held: 0 };
  let n = 0;
  const out = new BufferedStdout();
  for await (const m of scanStates(spool, (id, reason) => console.error(`${id}: unreadable (${reason}); mxd moves it to dead/ at start`))) {
    if (!matches(m, { domain, state })) continue;
    const e = toListEntry(m, now, control);
    n++;
    counts[e.state]++;
    if (!(await out.write(json ? JSON.stringify(e) + "\n" : formatEntry(e, now)))) return 0;
  }
  await out.end();
  if (!json) {
    if (n === 0) console.log("Mail queue is empty" + (domain || state !== "all" ? " (for this selection)" : ""));
    else console.log(`-- ${n} message(s): ${counts.queued} queued, ${counts.deferred} deferred, ${counts.held} held`);
    if (control.paused || control.pausedDomains.length) console.log(`-- ${describePause(control)}`);
  }
  return 0;
}

function formatEntry(e: ListEntry, now: number): string {
  const state = e.paused && e.state !== "held" ? `${e.state}*` : e.state;
  const next = e.state === "held" ? "held until released" : e.paused ? "destination paused" : Date.parse(e.nextAttemptAt) <= now ? "next: now" : `next: in ${formatAge(Date.parse(e.nextAttemptAt) - now)}`;
  let text = `${e.id}  ${state.padEnd(9)} ${formatAge(e.ageSeconds * 1000).padStart(4)} ${formatSize(e.size).padStart(6)}  <${e.sender}>${e.kind === "bounce" ? " (bounce)" : ""}  ${next}\n`;
  for (const r of e.recipients) {
    const tail = r.lastReply ? `  [${r.attempts} attempt${r.attempts === 1 ? "" : "s"}] ${r.lastReply}` : "";
    text += `    ${r.status.padEnd(9)} <${r.address}>${tail}\n`;
  }
  return text;
}

/**
 * stdout in 64 KB writes instead of one per line (100,000 messages are 200,000 lines), with
 * back-pressure; a reader that goes away (`| head`) ends the listing quietly.
 */
class BufferedStdout {
  private buf = "";
  private closed = false;
  constructor() {
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      this.closed = true;
    });
  }

  /** False once the reader has gone away: stop producing. */
  async write(s: string): Promise<boolean> {
    this.buf += s;
    if (this.buf.length >= 65536) await this.flush();
    return !this.closed;
  }

  private async flush(): Promise<void> {
    const chunk = this.buf;
    this.buf = "";
    if (this.closed || !chunk) return;
    if (!process.stdout.write(chunk)) await new Promise<void>((ok) => { process.stdout.once("drain", ok); process.stdout.once("error", () => ok()); });
  }

  async end(): Promise<void> {
    await this.flush();
  }
}

async function show(spool: JournalSpool, config: Config, id: string, json: boolean, body: boolean): Promise<number> {
  let text = "";
  let reason: string | undefined;
  let queued = false;
  try {
    await spool.recover();
    text = (await spool.load(id).then((m) => JSON.stringify(m)));
    queued = true;
  } catch (e) {
    if (isMxdError(e, "MXD_SPOOL_INVALID")) {
      text = "";
      queued = true;
    } else if (!isMxdError(e, "MXD_SPOOL_NOT_FOUND")) throw e;
  }
  if (!queued) {
    try {
      text = await fsp.readFile(join(spool.deadDir, id + ".json"), "utf8");
    } catch {
      text = "";
    }
    reason = await fsp.readFile(join(spool.deadDir, id + ".reason"), "utf8").then((s) => s.trim(), () => undefined);
    if (!text && !reason) {
      console.error(`mxd queue show: ${id}: no such message`);
      return 1;
    }
  }
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(text) as Record<string, unknown>;
  } catch {
    meta = { id, unreadable: text.slice(0, 2000) };
  }
  const emlPath = join(spool.deadDir, id + ".eml");
  const head = queued ? (await spool.readHead(id, 64 * 1024).catch(() => Buffer.alloc(0))).toString("utf8") : await readHead(emlPath, 64 * 1024);
  const bodyStream = () => (queued ? spool.openBody(id) : createReadStream(emlPath));
  const headerEnd = head.indexOf("\r\n\r\n");
  const headers = headerEnd >= 0 ? head.slice(0, headerEnd + 2) : head;
  if (json) {
    const out: Record<string, unknown> = { ...meta, ...(reason ? { state: "dead", deadReason: reason } : {}), headers };
    if (body) out.message = await streamToString(bodyStream()).catch(() => null);
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  const m = meta as { sender?: string; receivedAt?: string; client?: { ip?: string; helo?: string }; size?: number; nextAttemptAt?: string; held?: boolean; kind?: string; recipients?: { address: string; status: string; attempts: number; history: { at: string; outcome: string; mx?: string; ip?: string; reply: string }[] }[] };
  console.log(`id:        ${id}${reason ? "  (DEAD LETTER)" : ""}`);
  if (reason) console.log(`dead:      ${reason}`);
  if (m.receivedAt) console.log(`received:  ${m.receivedAt} from ${m.client?.ip ?? "?"} (${m.client?.helo ?? "?"})`);
  if (m.sender !== undefined) console.log(`sender:    <${m.sender}>${m.kind === "bounce" ? "  (a bounce generated by mxd)" : ""}`);
  if (m.size !== undefined) console.log(`size:      ${m.size} octets`);
  if (!reason && m.nextAttemptAt) {
    const waiting = [...new Set((m.recipients ?? []).filter((r) => r.status === "pending").map((r) => r.address.slice(r.address.lastIndexOf("@") + 1).toLowerCase()))];
    const control = await new ControlFile(config.spoolDir).load().catch(() => undefined);
    const paused = !!control && waiting.length > 0 && waiting.every((d) => isPausedFor(control, d));
    console.log(`next:      ${m.held ? "held until released" : paused ? `waiting: destination paused (due ${m.nextAttemptAt})` : m.nextAttemptAt}`);
  }
  for (const r of m.recipients ?? []) {
    console.log(`recipient  <${r.address}>  ${r.status}, ${r.attempts} attempt(s)`);
    for (const h of r.history ?? []) console.log(`    ${h.at}  ${h.outcome.padEnd(9)} ${h.mx ? `${h.mx}[${h.ip ?? ""}] ` : ""}${h.reply}`);
  }
  if (body) {
    console.log("");
    await pipeline(bodyStream(), process.stdout, { end: false });
  } else console.log(`\n${headers}`);
  return 0;
}

async function readHead(path: string, max: number): Promise<string> {
  const fh = await fsp.open(path, "r").catch(() => undefined);
  if (!fh) return "";
  try {
    const buf = Buffer.alloc(max);
    const { bytesRead } = await fh.read(buf, 0, max, 0);
    return buf.subarray(0, bytesRead).toString("utf8");
  } finally {
    await fh.close();
  }
}

async function streamToString(r: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
