// What a delivery result does to a recipient, and what happens to a message after a run:
// pure decisions (no I/O, no clock of their own), table-tested in test/unit/outcome.test.ts.
// The worker applies them and turns the returned events into logs, metrics and DSNs.
import type { AttemptRecord, RecipientState } from "../core/envelope.js";
import { excerpt } from "../core/smtp-reply.js";
import type { RecipientResult } from "../delivery/courier.js";
import { isExpired, nextAttemptAt, type RetryPolicy } from "./retry-policy.js";

/**
 * Attempts kept per recipient (newest last), so a long-deferred message's state stays small;
 * each reply in it is an excerpt (core/smtp-reply.ts EXCERPT_MAX).
 */
export const HISTORY_MAX = 20;

export type ResultEvent = "delivered" | "bounced" | "deferred" | "busy";

/**
 * Record one result on recipient `r` (mutated): an attempt in its bounded history, and its new
 * status. A permanent failure owes a DSN from the same record on (`dsnOwed`). A "busy" result
 * (every host taken by our own deliveries) is not an attempt and changes nothing.
 */
export function recordResult(r: RecipientState, res: RecipientResult, nowIso: string, hosts?: AttemptRecord["hosts"]): { event: ResultEvent; record?: AttemptRecord } {
  // Whatever the courier says is kept as a short excerpt: a remote's reply never grows the
  // state file, a log line or a bounce (couriers bound it already; this holds for any).
  const reply = excerpt(res.reply);
  if (res.retrySoon && res.outcome === "transient") return { event: "busy" };
  const record: AttemptRecord = { at: nowIso, outcome: res.outcome, reply, status: excerpt(res.status, 16), remote: res.remote };
  if (res.mx) record.mx = excerpt(res.mx, 255);
  if (res.ip) record.ip = res.ip;
  if (res.tls) record.tls = { version: excerpt(res.tls.version, 32), cipher: excerpt(res.tls.cipher, 100), verified: res.tls.verified === true };
  if (res.tlsPolicy) record.tlsPolicy = excerpt(res.tlsPolicy, 64);
  if (hosts) record.hosts = hosts;
  r.attempts++;
  r.history.push(record);
  if (r.history.length > HISTORY_MAX) r.history.splice(0, r.history.length - HISTORY_MAX);
  if (res.outcome === "delivered") {
    r.status = "delivered";
    r.finalAt = nowIso;
    return { event: "delivered", record };
  }
  if (res.outcome === "permanent") {
    r.status = "failed";
    r.finalAt = nowIso;
    r.dsnOwed = true;
    return { event: "bounced", record };
  }
  return { event: "deferred", record };
}

/** Fail a pending recipient whose time in the queue is over (4.4.7, the last error quoted); owes a DSN. */
export function expireRecipient(r: RecipientState, nowMs: number, maxQueueTimeMs: number): AttemptRecord {
  const last = r.history[r.history.length - 1];
  const at = new Date(nowMs).toISOString();
  const record: AttemptRecord = {
    at,
    outcome: "permanent",
    status: "4.4.7",
    reply: `delivery time expired after ${Math.round(maxQueueTimeMs / 3_600_000)}h${last ? `; last error: ${last.reply}` : ""}`,
    remote: last?.remote,
    mx: last?.mx,
    ip: last?.ip,
  };
  r.status = "failed";
  r.finalAt = at;
  r.history.push(record);
  if (r.history.length > HISTORY_MAX) r.history.splice(0, r.history.length - HISTORY_MAX);
  r.dsnOwed = true;
  return record;
}

export type AfterRun =
  /** Nothing left to attempt now (every recipient final or at a paused destination). */
  | { kind: "none" }
  /** Only busy hosts this time (no attempt made): again in 1–2 s, not after a backoff. */
  | { kind: "soon"; at: number }
  | { kind: "retry"; at: number }
  /** Out of time: the pending recipients fail now. */
  | { kind: "expire" };

/** When the pending (not paused) recipients of a message are next attempted, or whether they expire. */
export function afterRun(o: {
  pending: readonly RecipientState[];
  busy: ReadonlySet<RecipientState>;
  receivedAtMs: number;
  nowMs: number;
  policy: RetryPolicy;
  maxQueueTime: number;
  random: () => number;
}): AfterRun {
  if (!o.pending.length) return { kind: "none" };
  const expired = isExpired(o.receivedAtMs, o.nowMs, o.maxQueueTime);
  if (!expired && o.pending.every((r) => o.busy.has(r))) return { kind: "soon", at: o.nowMs + 1000 + Math.floor(o.random() * 1000) };
  const attempts = Math.max(...o.pending.map((r) => r.attempts));
  const next = nextAttemptAt({ attempts, receivedAtMs: o.receivedAtMs, nowMs: o.nowMs, policy: o.policy, maxQueueTime: o.maxQueueTime, random: o.random });
  if (next === null || expired) return { kind: "expire" };
  return { kind: "retry", at: next };
}
