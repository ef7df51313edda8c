// Which messages an operator means: `mxd queue list|flush|hold|release|delete|bounce|requeue`
// and the admin API select with the same filter (docs/operations.md). Pure: a filter is data,
// matching is a function of a message's state (or a dead letter's entry) and the time.
import type { MessageMeta } from "../core/envelope.js";
import { messageState, type MessageState } from "./state.js";

export type FilterState = MessageState | "all" | "dead";
export const FILTER_STATES: readonly FilterState[] = ["queued", "deferred", "held", "dead", "all"];

export interface QueueFilter {
  /** A recipient's domain, exactly (case-insensitive). */
  domain?: string;
  /** Substring of the sender, or a glob with * and ? ("<>" = the null sender). */
  sender?: string;
  /** Substring of a recipient, or a glob. */
  recipient?: string;
  /** Queued (dead letters: buried) at least this long ago, ms. */
  olderThanMs?: number;
  youngerThanMs?: number;
  /** Text in a recipient's last reply (dead letters: also the reason). */
  reason?: string;
  /** Default "all" (the queue, not dead/). */
  state?: FilterState;
}

/** The dead-letter fields a filter looks at. */
export interface DeadLike {
  buriedAt?: string;
  reason: string;
  sender?: string;
  recipients?: string[];
}

/** Case-insensitive: a glob when the pattern has * or ? (anchored), else a substring. */
export function textMatches(pattern: string, value: string): boolean {
  const p = pattern.toLowerCase();
  const v = value.toLowerCase();
  if (!/[*?]/.test(p)) return v.includes(p);
  const re = new RegExp("^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$", "s");
  return re.test(v);
}

function senderMatches(pattern: string, sender: string): boolean {
  if (pattern === "<>" || pattern === "") return sender === "";
  return textMatches(pattern, sender);
}

function ageOk(f: QueueFilter, sinceMs: number, nowMs: number): boolean {
  const age = nowMs - sinceMs;
  if (f.olderThanMs !== undefined && !(age >= f.olderThanMs)) return false;
  if (f.youngerThanMs !== undefined && !(age < f.youngerThanMs)) return false;
  return true;
}

/** Does a queued message match? (state "dead" never matches a queued message.) */
export function matchesMessage(m: MessageMeta, f: QueueFilter, nowMs: number): boolean {
  const state = f.state ?? "all";
  if (state === "dead") return false;
  if (state !== "all" && messageState(m) !== state) return false;
  if (f.domain !== undefined && !m.recipients.some((r) => r.domain === f.domain!.toLowerCase())) return false;
  if (f.sender !== undefined && !senderMatches(f.sender, m.sender)) return false;
  if (f.recipient !== undefined && !m.recipients.some((r) => textMatches(f.recipient!, r.address))) return false;
  if (!ageOk(f, Date.parse(m.receivedAt), nowMs)) return false;
  if (f.reason !== undefined) {
    const needle = f.reason.toLowerCase();
    if (!m.recipients.some((r) => (r.history[r.history.length - 1]?.reply ?? "").toLowerCase().includes(needle))) return false;
  }
  return true;
}

/** Does a dead letter match? Only with state "dead". */
export function matchesDead(d: DeadLike, f: QueueFilter, nowMs: number): boolean {
  if (f.state !== "dead") return false;
  const rcpts = d.recipients ?? [];
  if (f.domain !== undefined && !rcpts.some((r) => r.toLowerCase().endsWith("@" + f.domain!.toLowerCase()))) return false;
  if (f.sender !== undefined && (d.sender === undefined || !senderMatches(f.sender, d.sender))) return false;
  if (f.recipient !== undefined && !rcpts.some((r) => textMatches(f.recipient!, r))) return false;
  if ((f.olderThanMs !== undefined || f.youngerThanMs !== undefined) && (d.buriedAt === undefined || !ageOk(f, Date.parse(d.buriedAt), nowMs))) return false;
  if (f.reason !== undefined && !d.reason.toLowerCase().includes(f.reason.toLowerCase())) return false;
  return true;
}

/** Anything beyond a state: a bulk selection (as opposed to "every message"). */
export function isNarrowed(f: QueueFilter): boolean {
  return [f.domain, f.sender, f.recipient, f.olderThanMs, f.youngerThanMs, f.reason].some((v) => v !== undefined) || (f.state !== undefined && f.state !== "all");
}

/** Validate a filter from JSON (admin API) or the command line; throws with the field and bad value. */
export function parseFilter(o: Record<string, unknown>, parseDuration: (v: string | number) => number | undefined): QueueFilter {
  const f: QueueFilter = {};
  const known = new Set(["domain", "sender", "recipient", "olderThan", "youngerThan", "reason", "state"]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new Error(`unknown filter field ${JSON.stringify(k)}`);
  const str = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v.length > 320) throw new Error(`${k} must be a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const domain = str("domain");
  if (domain !== undefined) {
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[^\]]+\]$/.test(domain)) throw new Error(`domain must be a domain name, got ${JSON.stringify(domain)}`);
    f.domain = domain.toLowerCase();
  }
  for (const k of ["sender", "recipient", "reason"] as const) {
    const v = str(k);
    if (v !== undefined) f[k] = v;
  }
  for (const [k, out] of [["olderThan", "olderThanMs"], ["youngerThan", "youngerThanMs"]] as const) {
    const v = o[k];
    if (v === undefined) continue;
    const ms = typeof v === "string" || typeof v === "number" ? parseDuration(v) : undefined;
    if (ms === undefined) throw new Error(`${k} must be a duration like "30m", "2h", "7d", got ${JSON.stringify(v)}`);
    f[out] = ms;
  }
  const state = str("state");
  if (state !== undefined) {
    if (!FILTER_STATES.includes(state as FilterState)) throw new Error(`state must be one of ${FILTER_STATES.join(", ")}, got ${JSON.stringify(state)}`);
    f.state = state as FilterState;
  }
  return f;
}
