// Spool file names, queue ids and the versioned envelope/state JSON (pure).
import { randomBytes } from "node:crypto";
import type { MessageMeta } from "../core/envelope.js";

// Crockford base32: sortable, case-insensitive-safe, no I/L/O/U.
const B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * Queue ids: 10 characters of millisecond timestamp + 6 random characters, e.g.
 * "01KB2X7Q9M4F8Z3H". Fixed width, so lexical order is arrival order; safe in file names.
 */
export function newQueueId(nowMs: number, rand: Buffer = randomBytes(4)): string {
  let t = Math.floor(nowMs);
  let ts = "";
  for (let i = 0; i < 10; i++) {
    ts = B32[t % 32] + ts;
    t = Math.floor(t / 32);
  }
  let r = (rand.readUInt32BE(0) >>> 2) & 0x3fffffff; // 30 bits
  let rs = "";
  for (let i = 0; i < 6; i++) {
    rs = B32[r % 32] + rs;
    r = Math.floor(r / 32);
  }
  return ts + rs;
}

export const QUEUE_ID_RE = /^[0-9A-HJKMNP-TV-Z]{16}$/;

export function isQueueId(s: string): boolean {
  return QUEUE_ID_RE.test(s);
}

/** Time encoded in a queue id (ms since epoch). */
export function queueIdTime(id: string): number {
  let t = 0;
  for (const c of id.slice(0, 10)) t = t * 32 + B32.indexOf(c);
  return t;
}

export const BODY_EXT = ".eml";
export const META_EXT = ".json";

export function encodeMeta(m: MessageMeta): Buffer {
  return Buffer.from(JSON.stringify(m, null, 2) + "\n", "utf8");
}

/** Parse and check a state file; throws with a reason when it is not a valid version-1 entry. */
export function decodeMeta(buf: Buffer, expectId?: string): MessageMeta {
  const m = JSON.parse(buf.toString("utf8")) as MessageMeta;
  if (!m || typeof m !== "object") throw new Error("state is not an object");
  if (m.version !== 1) throw new Error(`unsupported state version ${String((m as { version?: unknown }).version)}`);
  if (typeof m.id !== "string" || !isQueueId(m.id)) throw new Error("bad id");
  if (expectId && m.id !== expectId) throw new Error(`id ${m.id} does not match file name ${expectId}`);
  if (typeof m.sender !== "string") throw new Error("bad sender");
  if (!Array.isArray(m.recipients) || m.recipients.length === 0) throw new Error("no recipients");
  for (const r of m.recipients) {
    if (!r || typeof r.address !== "string" || typeof r.domain !== "string") throw new Error("bad recipient");
    if (!["pending", "delivered", "failed"].includes(r.status)) throw new Error(`bad recipient status ${String(r.status)}`);
    if (!Array.isArray(r.history)) r.history = [];
    if (typeof r.attempts !== "number") r.attempts = 0;
  }
  if (typeof m.nextAttemptAt !== "string" || Number.isNaN(Date.parse(m.nextAttemptAt))) throw new Error("bad nextAttemptAt");
  if (typeof m.receivedAt !== "string" || Number.isNaN(Date.parse(m.receivedAt))) throw new Error("bad receivedAt");
  m.kind ??= "message";
  m.params ??= {};
  return m;
}
