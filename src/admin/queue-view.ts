// What an operator sees of the queue: one summary per message (for `mxd queue list` and
// GET /queue) and the dead-letter folder. Reads the spool files directly — safe while the
// daemon runs, because every state file is replaced by an atomic rename. Streams: only a
// bounded window of state files is read at a time, never a body, so 100,000 queued messages
// cost a directory listing and a constant amount of memory.
import { promises as fsp, readFileSync } from "node:fs";
import { join } from "node:path";
import type { MessageMeta } from "../core/envelope.js";
import type { Spool } from "../spool/spool.js";
import { decodeMeta, isQueueId } from "../spool/format.js";
import { isPausedFor, messageState, pendingDomains, type ControlState, type MessageState } from "../queue/state.js";

export type ListState = MessageState | "all" | "dead";
export const LIST_STATES: readonly ListState[] = ["queued", "deferred", "held", "dead", "all"];

export interface ListEntry {
  id: string;
  state: MessageState;
  /** Every pending destination is paused. */
  paused: boolean;
  receivedAt: string;
  ageSeconds: number;
  size: number;
  sender: string;
  kind: "message" | "bounce";
  nextAttemptAt: string;
  recipients: { address: string; status: string; attempts: number; lastAt?: string; lastReply?: string }[];
  /** The newest reply among pending recipients. */
  lastError?: string;
}

export interface DeadEntry {
  id: string;
  state: "dead";
  buriedAt?: string;
  reason: string;
  sender?: string;
  recipients?: string[];
  size?: number;
}

export interface ListFilter {
  domain?: string;
  state?: ListState;
}

export function toListEntry(m: MessageMeta, nowMs: number, control: ControlState): ListEntry {
  let last: { at: string; reply: string } | undefined;
  for (const r of m.recipients) {
    if (r.status !== "pending") continue;
    const h = r.history[r.history.length - 1];
    if (h && (!last || h.at > last.at)) last = h;
  }
  const domains = pendingDomains(m);
  return {
    id: m.id,
    state: messageState(m),
    paused: domains.length > 0 && domains.every((d) => isPausedFor(control, d)),
    receivedAt: m.receivedAt,
    ageSeconds: Math.max(0, Math.round((nowMs - Date.parse(m.receivedAt)) / 1000)),
    size: m.size,
    sender: m.sender,
    kind: m.kind,
    nextAttemptAt: m.nextAttemptAt,
    recipients: m.recipients.map((r) => {
      const h = r.history[r.history.length - 1];
      return { address: r.address, status: r.status, attempts: r.attempts, ...(h ? { lastAt: h.at, lastReply: h.reply } : {}) };
    }),
    ...(last ? { lastError: last.reply } : {}),
  };
}

export function matches(m: MessageMeta, f: ListFilter): boolean {
  if (f.domain && !m.recipients.some((r) => r.domain === f.domain!.toLowerCase())) return false;
  if (f.state && f.state !== "all" && messageState(m) !== f.state) return false;
  return true;
}

/** Every queued message's state; unreadable ones go to onProblem (the spool's scan). */
export async function* scanStates(spool: Spool, onProblem?: (id: string, reason: string) => void): AsyncGenerator<MessageMeta> {
  yield* spool.scan(onProblem ? (p) => onProblem(p.id, p.reason) : undefined);
}

/** The dead-letter folder: one entry per <ID>.reason, with the envelope when it is readable. */
export async function listDead(spool: { deadDir: string }): Promise<DeadEntry[]> {
  let names: string[];
  try {
    names = await fsp.readdir(spool.deadDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const out: DeadEntry[] = [];
  for (const f of names.filter((n) => n.endsWith(".reason")).sort()) {
    const id = f.slice(0, -".reason".length);
    if (!isQueueId(id)) continue;
    const text = (await fsp.readFile(join(spool.deadDir, f), "utf8").catch(() => "")).trim();
    const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) ([\s\S]*)$/.exec(text);
    const e: DeadEntry = { id, state: "dead", reason: m ? m[2]! : text, ...(m ? { buriedAt: m[1]! } : {}) };
    try {
      const meta = JSON.parse(await fsp.readFile(join(spool.deadDir, id + ".json"), "utf8")) as MessageMeta;
      e.sender = meta.sender;
      e.recipients = meta.recipients.map((r) => r.address);
      e.size = meta.size;
    } catch {
      /* unreadable state: that may be why it is here */
    }
    out.push(e);
  }
  return out;
}

/** One dead letter as `GET /queue/ID` and `mxd queue show --json` give it: state file (when readable), reason, headers. */
export async function readDead(spool: { deadDir: string }, id: string): Promise<Record<string, unknown>> {
  const text = (await fsp.readFile(join(spool.deadDir, id + ".reason"), "utf8").catch(() => "")).trim();
  const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) ([\s\S]*)$/.exec(text);
  let meta: Record<string, unknown> = { id };
  const raw = await fsp.readFile(join(spool.deadDir, id + ".json"), "utf8").catch(() => undefined);
  if (raw !== undefined) {
    try {
      meta = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      meta = { id, unreadable: raw.slice(0, 2000) };
    }
  }
  const head = await fsp.readFile(join(spool.deadDir, id + ".eml")).then((b) => b.subarray(0, 64 * 1024).toString("utf8"), () => "");
  const end = head.indexOf("\r\n\r\n");
  return { ...meta, state: "dead", deadReason: m ? m[2]! : text, ...(m ? { buriedAt: m[1]! } : {}), headers: end >= 0 ? head.slice(0, end + 2) : head };
}


export async function countDead(spool: { deadDir: string }): Promise<number> {
  try {
    return (await fsp.readdir(spool.deadDir)).filter((n) => n.endsWith(".reason")).length;
  } catch {
    return 0;
  }
}
