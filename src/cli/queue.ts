// `mxd queue …`: the postmaster's queue tool (docs/operations.md). Reading (list, show) goes to
// the spool files, which is safe while the daemon runs. Changing goes through the daemon's
// admin API when it runs — so the delivery side knows at once — and straight to the spool when
// it does not (the same QueueManager code, in offline mode, never delivering).
import { parseOptions } from "./args.js";
import { pipeline } from "node:stream/promises";
import type { Config } from "../config.js";
import { openSpool } from "../spool/open-spool.js";
import type { JournalSpool } from "../spool/journal-spool.js";
import { isMxdError, MxdError } from "../core/errors.js";
import { isQueueId } from "../spool/format.js";
import { QueueManager, type OpResult } from "../queue/worker.js";
import { isPausedFor, type ControlState } from "../queue/state.js";
import { isNarrowed, matchesDead, matchesMessage, parseFilter, type QueueFilter } from "../queue/filter.js";
import { BUCKET_LABELS, renderShape, ShapeBuilder } from "../queue/shape.js";
import { DANGEROUS, runAction, selectTargets, summary, type Action } from "../admin/queue-actions.js";
import { parseDuration } from "../config.js";
import { nearest } from "../config-describe.js";
import { UsageError } from "./args.js";
import { silentLogger } from "../io/log.js";
import { systemClock } from "../io/clock.js";
import { ControlFile } from "../queue/control-file.js";
import { toListEntry, type ListEntry } from "../admin/queue-view.js";
import { listDead, openDeadBody, readDeadFiles } from "../spool/dead-letters.js";
import { connectDaemon, type AdminClient } from "./admin-client.js";
import { resolveConfig } from "./resolve-config.js";
import { formatAge, formatSize } from "./format.js";

const FILTERS = `  filters (combine freely): --domain D  --sender S  --recipient R  (S, R: substring, or a glob
  with * and ?; --sender '<>' = bounces)  --older-than 2h  --younger-than 30m  --reason TEXT (in
  the last reply)  --state queued|deferred|held|dead|all`;

const HELP: Record<string, string> = {
  list: `usage: mxd queue list [filters] [--json] [--config FILE]
  One entry per message: id, state, age, size, sender, next attempt; then each recipient with
  its state, attempts and last reply. --json prints one JSON object per line (NDJSON). Works
  whether mxd runs or not.
${FILTERS}`,
  show: `usage: mxd queue show ID [--json] [--body] [--config FILE]
  Envelope, per-recipient attempt history (every host tried) and the message headers (--body:
  the whole message). Also shows dead letters (spoolDir/dead) with the reason they are there.`,
  summary: `usage: mxd queue summary [filters] [--json] [--reasons N] [--config FILE]
  Postfix's qshape: pending recipients per destination domain by age bucket (0-5m … 1280m+),
  TOTAL first, then the top N (default 3) deferral reasons per domain.`,
  flush: `usage: mxd queue flush [ID... | - | filters] [--verbose] [--config FILE]
  Attempt now: the given messages, those matching the filters, or (no argument) every message.
  Held messages are not attempted; paused destinations stay paused. With mxd stopped, the
  messages are marked due now and attempted when it starts.
${FILTERS}`,
  requeue: `usage: mxd queue requeue [ID... | - | filters] [--verbose] [--config FILE]
  Route again and attempt now (postsuper -r): routes, MX records and fallback relays are looked
  up afresh at every attempt, so this is flush, and for dead letters (--state dead or their ids)
  retry: they go back into the queue.
${FILTERS}`,
  retry: `usage: mxd queue retry ID... | - | --state dead [filters] [--verbose] [--config FILE]
  Move dead letters back into the queue: failed recipients pending again, due now, with a fresh
  queue lifetime. Unreadable entries cannot be retried (delete them).`,
  delete: `usage: mxd queue delete ID... | - | filters --yes | --all --yes [--verbose] [--config FILE]
  Remove without a bounce; dead letters too (--state dead --older-than 30d --yes purges old
  ones). With --domain, only the recipients at D are removed (a message goes when none of its
  recipients is left). A selection by filters, and --all, need --yes.
${FILTERS}`,
  bounce: `usage: mxd queue bounce ID... | - | filters --yes [--verbose] [--config FILE]
  Fail every pending recipient now; the sender gets a delivery status notification (and
  bounce.copyTo a copy). A selection by filters needs --yes.
${FILTERS}`,
  hold: `usage: mxd queue hold ID... | - | filters [--verbose] [--config FILE]
  A held message is never attempted until released (postsuper -h).
${FILTERS}`,
  release: `usage: mxd queue release ID... | - | filters [--verbose] [--config FILE]
  Release held messages; they are attempted at once (postsuper -H).
${FILTERS}`,
  pause: `usage: mxd queue pause [--domain D] [--config FILE]
  Stop all outbound delivery, or delivery to D. Mail is still accepted and queued. Deliveries
  in progress finish. The pause survives restarts; undo with mxd queue resume.`,
  resume: `usage: mxd queue resume [--domain D] [--config FILE]
  Restart outbound delivery (without --domain: the global pause only; paused domains stay
  paused) or delivery to D. Waiting messages are attempted at once.`,
};

const USAGE = `usage: mxd queue <command> [options] [--config FILE]

  list [filters] [--json]                   messages, recipients, states, next attempt, last error
  show ID [--json] [--body]                 envelope, attempt history, headers (body on request)
  summary [filters] [--json]                qshape: domains × age buckets, top deferral reasons
  flush [ID... | - | filters]               attempt now
  requeue [ID... | - | filters]             route again and attempt now; dead letters back into the queue
  retry ID... | --state dead                move dead letters back into the queue
  delete ID... | filters --yes | --all --yes  remove without bouncing (dead letters too)
  bounce ID... | filters --yes              fail now, with a bounce to the sender
  hold / release ID... | filters            keep messages from delivery / give them back
  pause [--domain D] / resume [--domain D]  stop / restart outbound delivery (all, or one domain)

IDs: queue ids, or "-" to read them from stdin (the first word of each line: the output of
mxd queue list, or of jq -r .id). Bulk actions print one summary line; --verbose one per message.
mxd queue <command> --help for details.
exit codes: 0 success, 1 operation failed, 2 usage or configuration error`;

const OPTIONS = {
  config: { type: "string", short: "c" },
  domain: { type: "string", short: "d" },
  sender: { type: "string", short: "s" },
  recipient: { type: "string", short: "r" },
  "older-than": { type: "string" },
  "younger-than": { type: "string" },
  reason: { type: "string" },
  state: { type: "string" },
  json: { type: "boolean" },
  body: { type: "boolean" },
  all: { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  verbose: { type: "boolean", short: "v" },
  reasons: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<typeof parseOptions<typeof OPTIONS>>["values"];
const FILTER_KEYS = ["domain", "sender", "recipient", "older-than", "younger-than", "reason", "state"] as const;

export async function queueCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(USAGE);
    return sub ? 0 : 2;
  }
  if (!(sub in HELP)) {
    const near = nearest(sub, Object.keys(HELP));
    console.error(`mxd queue: unknown command ${JSON.stringify(sub)}${near ? ` (did you mean ${near}?)` : ""}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parseOptions(`mxd queue ${sub}`, rest, OPTIONS);
  if (values.help) {
    console.log(HELP[sub]);
    return 0;
  }
  let filter: QueueFilter;
  let ids = positionals;
  try {
    filter = filterFrom(values);
    if (ids.length === 1 && ids[0] === "-") ids = idsFrom(await readStdin());
    checkUsage(sub, values, ids, positionals[0] === "-");
  } catch (e) {
    console.error(`mxd queue ${sub}: ${(e as Error).message}\n\n${HELP[sub]}`);
    return 2;
  }
  const config: Config = resolveConfig(values.config);
  // list and show only read (also while the daemon runs); the rest may edit the spool offline.
  const spool = openSpool(config, { readOnly: sub === "list" || sub === "show" || sub === "summary" });
  switch (sub) {
    case "list":
      return list(spool, config, filter, !!values.json);
    case "summary":
      return summaryCommand(spool, filter, !!values.json, values.reasons === undefined ? 3 : Number(values.reasons));
    case "show":
      return show(spool, config, ids[0]!, !!values.json, !!values.body);
    case "pause":
    case "resume":
      return pauseResume(config, spool, sub, values.domain);
    default: {
      const op = sub as Action;
      if (op === "retry" && !ids.length) filter = { ...filter, state: "dead" };
      return act(config, spool, op, { ids, filter, all: !!values.all, fromStdin: positionals[0] === "-" }, !!values.verbose);
    }
  }
}

function filterFrom(v: Values): QueueFilter {
  const o: Record<string, unknown> = {};
  if (v.domain !== undefined) o.domain = v.domain;
  if (v.sender !== undefined) o.sender = v.sender;
  if (v.recipient !== undefined) o.recipient = v.recipient;
  if (v.reason !== undefined) o.reason = v.reason;
  if (v.state !== undefined) o.state = v.state;
  if (v["older-than"] !== undefined) o.olderThan = v["older-than"];
  if (v["younger-than"] !== undefined) o.youngerThan = v["younger-than"];
  try {
    return parseFilter(o, parseDuration);
  } catch (e) {
    // "olderThan must be …" → "--older-than must be …"
    throw new UsageError((e as Error).message.replace(/^(olderThan|youngerThan|domain|state|sender|recipient|reason)\b/, (k) => "--" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())));
  }
}

/** Queue ids from `mxd queue list` output, `jq -r .id`, or a plain list: the first word of each line that is one. */
export function idsFrom(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const w = line.trim().split(/\s+/)[0] ?? "";
    if (isQueueId(w) && !out.includes(w)) out.push(w);
  }
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function checkUsage(sub: string, v: Values, ids: string[], fromStdin: boolean): void {
  const filters = [...FILTER_KEYS];
  const bulk = [...filters, "verbose"];
  const allowed: Record<string, string[]> = {
    list: [...filters, "json"],
    summary: [...filters, "json", "reasons"],
    show: ["json", "body"],
    flush: bulk,
    requeue: bulk,
    retry: bulk,
    delete: [...bulk, "all", "yes"],
    bounce: [...bulk, "yes"],
    hold: bulk,
    release: bulk,
    pause: ["domain"],
    resume: ["domain"],
  };
  const given = v as Record<string, unknown>;
  for (const k of Object.keys(given)) if (given[k] !== undefined && k !== "config" && !allowed[sub]!.includes(k)) throw new UsageError(`--${k} does not apply here`);
  const bad = ids.filter((i) => !isQueueId(i));
  if (bad.length) throw new UsageError(`not a queue id: ${bad.join(", ")} (16 characters like 01KB2X7Q9M4F8Z3H)`);
  if (v.reasons !== undefined && !/^\d{1,3}$/.test(v.reasons)) throw new UsageError(`--reasons expects a number, got ${JSON.stringify(v.reasons)}`);
  const hasFilter = FILTER_KEYS.some((k) => given[k] !== undefined);
  if (sub === "show" && ids.length !== 1) throw new UsageError("exactly one queue id expected");
  if (["list", "summary", "pause", "resume"].includes(sub) && ids.length) throw new UsageError(`unexpected argument ${ids[0]}`);
  if (fromStdin && !ids.length) throw new UsageError("no queue ids on stdin");
  if (!["list", "summary", "show", "pause", "resume"].includes(sub)) {
    if (ids.length && (hasFilter || v.all)) throw new UsageError("give ids or filters, not both");
    if (["bounce", "hold", "release"].includes(sub) && !ids.length && !hasFilter) throw new UsageError("queue id(s) or filters expected");
    if (sub === "delete" && !ids.length && !hasFilter && !v.all) throw new UsageError("give ids, filters (with --yes) or --all --yes");
    if (v.all && hasFilter) throw new UsageError("--all selects every message: no filters with it");
    if (DANGEROUS.includes(sub as Action) && !ids.length && !v.yes) {
      throw new UsageError(`${sub === "delete" ? "removes every selected message without a bounce" : "fails every selected message and sends bounces"}; add --yes to confirm (mxd queue list with the same filters shows what it selects)`);
    }
  }
}

/** The running daemon, or a QueueManager working on the spool directly. */
async function backend(config: Config, spool: JournalSpool): Promise<{ daemon: AdminClient } | { offline: QueueManager }> {
  const daemon = await connectDaemon(config);
  if (daemon) return { daemon };
  if (!spool.exists()) throw new MxdError("MXD_SPOOL_MISSING", `no spool at ${spool.dir} (is spoolDir right? relative paths are resolved from the current directory)`);
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

async function act(config: Config, spool: JournalSpool, op: Action, sel: { ids: string[]; filter: QueueFilter; all: boolean; fromStdin: boolean }, verbose: boolean): Promise<number> {
  const b = await backend(config, spool);
  const hasFilter = Object.keys(sel.filter).length > 0;
  let results: OpResult[];
  if ("daemon" in b) {
    const body = sel.ids.length ? { ids: sel.ids } : hasFilter ? { filter: toWire(sel.filter) } : { all: true };
    results = (await b.daemon.post<{ results: OpResult[] }>(`/queue/${op}`, body)).results;
  } else {
    const q = b.offline;
    const targets = await selectTargets(spool, q, op, sel.ids.length ? { ids: sel.ids } : { filter: sel.filter }, Date.now());
    results = [];
    for (const t of targets) results.push(await runAction(q, spool, op, t, op === "delete" ? sel.filter.domain : undefined));
  }
  const how = "daemon" in b ? "" : " (mxd is not running: spool changed directly)";
  // Named ids: one line each (the operator asked about each). A bulk selection: one summary
  // line unless --verbose; failures are counted by reason there.
  const perMessage = verbose || (sel.ids.length > 0 && !sel.fromStdin);
  if (perMessage) for (const r of results) (r.ok ? console.log : console.error)(`${r.id}: ${r.status}`);
  const line = summary(op, results) + how;
  if (!perMessage || results.length !== 1) (results.every((r) => r.ok) ? console.log : console.error)(line);
  else if (how && results.some((r) => r.ok)) console.log(how.trim());
  return results.every((r) => r.ok) ? 0 : 1;
}

/** The filter as the admin API takes it (durations in ms). */
function toWire(f: QueueFilter): Record<string, unknown> {
  const { olderThanMs, youngerThanMs, ...rest } = f;
  return { ...rest, ...(olderThanMs !== undefined ? { olderThan: olderThanMs } : {}), ...(youngerThanMs !== undefined ? { youngerThan: youngerThanMs } : {}) };
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

async function list(spool: JournalSpool, config: Config, filter: QueueFilter, json: boolean): Promise<number> {
  if (!spool.exists()) {
    // Most likely a wrong (or relative) spoolDir: saying "empty" would mislead.
    console.error(`mxd queue list: no spool at ${spool.dir} (is spoolDir right? relative paths are resolved from the current directory)`);
    return 1;
  }
  const now = Date.now();
  if (filter.state === "dead") {
    const dead = (await listDead(spool)).filter((d) => matchesDead(d, filter, now));
    if (!json && dead.length) console.log(`${"ID".padEnd(16)}  ${"STATE".padEnd(8)} ${"BURIED".padEnd(24)}  SENDER -> RECIPIENTS\n    REASON`);
    for (const d of dead) {
      if (json) console.log(JSON.stringify(d));
      else console.log(`${d.id}  dead     ${(d.buriedAt ?? "").padEnd(24)}  <${d.sender ?? "?"}> -> ${(d.recipients ?? []).map((r) => `<${r}>`).join(" ")}\n    ${d.reason}`);
    }
    if (!json) console.log(dead.length ? `-- ${dead.length} dead letter(s) in ${spool.deadDir}` : "No dead letters" + (isNarrowed({ ...filter, state: undefined }) ? " (for this selection)" : ""));
    return 0;
  }
  const control = await new ControlFile(config.spoolDir).load();
  const counts = { queued: 0, deferred: 0, held: 0 };
  let n = 0;
  const out = new BufferedStdout();
  for await (const m of spool.scan((p) => console.error(`${p.id}: unreadable (${p.reason}); mxd moves it to dead/ at start`))) {
    if (!matchesMessage(m, filter, now)) continue;
    const e = toListEntry(m, now, control);
    if (n === 0 && !json) await out.write(`${"ID".padEnd(16)}  ${"STATE".padEnd(9)} ${"AGE".padStart(4)} ${"SIZE".padStart(6)}  SENDER  NEXT ATTEMPT\n    RECIPIENT STATE  <RECIPIENT>  [ATTEMPTS] LAST REPLY\n`);
    n++;
    counts[e.state]++;
    if (!(await out.write(json ? JSON.stringify(e) + "\n" : formatEntry(e, now)))) return 0;
  }
  await out.end();
  if (!json) {
    if (n === 0) console.log("Mail queue is empty" + (isNarrowed(filter) ? " (for this selection)" : ""));
    else console.log(`-- ${n} message(s): ${counts.queued} queued, ${counts.deferred} deferred, ${counts.held} held`);
    if (control.paused || control.pausedDomains.length) console.log(`-- ${describePause(control)}`);
  }
  return 0;
}

async function summaryCommand(spool: JournalSpool, filter: QueueFilter, json: boolean, reasons: number): Promise<number> {
  if (!spool.exists()) {
    console.error(`mxd queue summary: no spool at ${spool.dir} (is spoolDir right?)`);
    return 1;
  }
  const now = Date.now();
  const shape = new ShapeBuilder();
  for await (const m of spool.scan()) if (matchesMessage(m, filter, now)) shape.add(m, now);
  const r = shape.result(reasons);
  if (json) console.log(JSON.stringify({ buckets: BUCKET_LABELS, ...r }));
  else console.log(renderShape(r));
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
  let deadHead = "";
  if (!queued) {
    const dead = await readDeadFiles(spool, id);
    text = dead.stateText;
    reason = dead.reasonLine;
    deadHead = dead.head;
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
  const head = queued ? (await spool.readHead(id, 64 * 1024).catch(() => Buffer.alloc(0))).toString("utf8") : deadHead;
  const bodyStream = () => (queued ? spool.openBody(id) : openDeadBody(spool, id));
  const headerEnd = head.indexOf("\r\n\r\n");
  const headers = headerEnd >= 0 ? head.slice(0, headerEnd + 2) : head;
  if (json) {
    const out: Record<string, unknown> = { ...meta, ...(reason ? { state: "dead", deadReason: reason } : {}), headers };
    if (body) out.message = await streamToString(bodyStream()).catch(() => null);
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  const m = meta as { sender?: string; receivedAt?: string; client?: { ip?: string; helo?: string }; size?: number; nextAttemptAt?: string; held?: boolean; kind?: string; recipients?: { address: string; status: string; attempts: number; history: { at: string; outcome: string; mx?: string; ip?: string; reply: string; tls?: { version: string; cipher: string; verified: boolean }; tlsPolicy?: string; hosts?: { host: string; ip: string; port: number; kind: string; reply: string }[] }[] }[] };
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
    for (const h of r.history ?? []) {
      console.log(`    ${h.at}  ${h.outcome.padEnd(9)} ${h.mx ? `${h.mx}[${h.ip ?? ""}] ` : ""}${h.reply}`);
      // The connection's TLS and the policy that applied (docs/deliverability.md, "Reading the TLS fields").
      if (h.tls || h.tlsPolicy) console.log(`        tls: ${h.tls ? `${h.tls.version} ${h.tls.cipher}, ${h.tls.verified ? "verified" : "not verified"}` : "none"}${h.tlsPolicy ? `; policy ${h.tlsPolicy}` : ""}`);
      // Every host of that attempt (MX, then fallback relays), the reported one first.
      for (const x of h.hosts ?? []) console.log(`        ${x.kind === "fallback" ? "fallback " : ""}${x.host}[${x.ip}]:${x.port}: ${x.reply}`);
    }
  }
  if (body) {
    console.log("");
    await pipeline(bodyStream(), process.stdout, { end: false });
  } else console.log(`\n${headers}`);
  return 0;
}

async function streamToString(r: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
