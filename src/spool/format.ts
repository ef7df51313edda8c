// Spool file names, queue ids and the versioned envelope/state JSON (pure).
import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { MessageMeta } from "../core/envelope.js";
import { EXCERPT_MAX, excerpt } from "../core/smtp-reply.js";
import { MxdError } from "../core/errors.js";

// Crockford base32: sortable, case-insensitive-safe, no I/L/O/U.
const B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * Queue ids: 10 characters of millisecond timestamp + 6 random characters, e.g.
 * "01KB2X7Q9M4F8Z3H". Fixed width, so lexical order is arrival order; safe in file names.
 */
/** Random bytes for queue ids, drawn 4 at a time from a pool (one randomBytes call per 1,024 ids). */
let pool = Buffer.alloc(0);
let poolAt = 0;
function idRandom(): Buffer {
  if (poolAt + 4 > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  poolAt += 4;
  return pool.subarray(poolAt - 4, poolAt);
}

export function newQueueId(nowMs: number, rand: Buffer = idRandom()): string {
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

const isoTime = z.string().refine((v) => !Number.isNaN(Date.parse(v)), "expected an ISO date");
/** Remote text kept in the history is an excerpt, also when an older mxd stored more. */
const replyText = z.string().transform((v) => (v.length > EXCERPT_MAX ? excerpt(v) : v));

const attemptSchema = z
  .object({
    at: z.string(),
    outcome: z.enum(["delivered", "transient", "permanent"]),
    reply: replyText,
    status: z.string(),
    mx: z.string().optional(),
    ip: z.string().optional(),
    remote: z.boolean().optional(),
    tls: z.object({ version: z.string(), cipher: z.string(), verified: z.boolean() }).passthrough().optional(),
    tlsPolicy: z.string().optional(),
  })
  .passthrough();

const recipientSchema = z
  .object({
    address: z.string(),
    domain: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int().nonnegative().default(0),
    history: z.array(attemptSchema).default([]),
    notify: z.array(z.string()).optional(),
    orcpt: z.string().optional(),
    finalAt: z.string().optional(),
  })
  .passthrough();

/**
 * The state file of one message, version 1. Every record read back from the spool is checked
 * against it (design.md: what does not validate goes to dead/ with the reason; it never loops).
 * Unknown keys are kept (passthrough), so a newer field survives a load/update round trip.
 */
export const messageMetaSchema = z
  .object({
    version: z.literal(1),
    id: z.string().regex(QUEUE_ID_RE, "expected a queue id"),
    sender: z.string(),
    recipients: z.array(recipientSchema).min(1, "no recipients"),
    receivedAt: isoTime,
    client: z
      .object({ ip: z.string(), port: z.number().optional(), helo: z.string().optional(), tls: z.boolean().optional(), reverseName: z.string().optional(), user: z.string().optional() })
      .passthrough()
      .default({ ip: "unknown" }),
    params: z
      .object({
        body: z.enum(["7BIT", "8BITMIME"]).optional(),
        smtputf8: z.boolean().optional(),
        size: z.number().optional(),
        ret: z.enum(["FULL", "HDRS"]).optional(),
        envid: z.string().optional(),
        auth: z.string().optional(),
      })
      .passthrough()
      .default({}),
    size: z.number().int().nonnegative(),
    eightBit: z.boolean().default(false),
    nextAttemptAt: isoTime,
    kind: z.enum(["message", "bounce"]).default("message"),
    held: z.boolean().optional(),
    delayWarned: z.boolean().optional(),
    // Header fields mxd wrote itself (at most one signature per configured key, a few KB each).
    dkim: z.array(z.string().max(16_384).regex(/^DKIM-Signature:[\x20-\x7e\t\r\n]*\r\n$/, "expected DKIM-Signature header fields")).max(8).optional(),
  })
  .passthrough();

/** A state file that is not a valid version-1 entry (torn, hand-edited, wrong shape). */
export class BadStateError extends MxdError {
  constructor(message: string) {
    super("MXD_SPOOL_INVALID", message);
    this.name = "BadStateError";
  }
}

function describe(issues: z.ZodIssue[]): string {
  return issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join(".") : "(top level)"}: ${i.message}`)
    .join("; ");
}

/** Parse a state's JSON (not yet checked); throws BadStateError when it is not JSON. */
export function parseState(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString("utf8"));
  } catch (e) {
    throw new BadStateError(`state is not JSON: ${(e as Error).message}`);
  }
}

/** Check a parsed state (with its recipient deltas folded in); throws BadStateError with a reason when it is not a valid version-1 entry. */
export function validateMeta(json: unknown, expectId?: string): MessageMeta {
  const fast = checkedMeta(json);
  if (fast) {
    if (expectId && fast.id !== expectId) throw new BadStateError(`id ${fast.id} does not match file name ${expectId}`);
    return fast;
  }
  return schemaMeta(json, expectId);
}

/** The schema's verdict (and its reason): the slow path, taken when checkedMeta refuses. */
export function schemaMeta(json: unknown, expectId?: string): MessageMeta {
  if (!json || typeof json !== "object") throw new BadStateError("state is not an object");
  const v = (json as { version?: unknown }).version;
  if (v !== 1) throw new BadStateError(`unsupported state version ${excerpt(String(v), 40)}`);
  const r = messageMetaSchema.safeParse(json);
  if (!r.success) throw new BadStateError(`bad state: ${excerpt(describe(r.error.issues), 300)}`);
  const m = r.data as MessageMeta;
  if (expectId && m.id !== expectId) throw new BadStateError(`id ${m.id} does not match file name ${expectId}`);
  return m;
}

/** Parse and check a state file; throws BadStateError with a reason when it is not a valid version-1 entry. */
export function decodeMeta(buf: Buffer, expectId?: string): MessageMeta {
  return validateMeta(parseState(buf), expectId);
}

const STATUSES = new Set(["pending", "delivered", "failed"]);
const OUTCOMES = new Set(["delivered", "transient", "permanent"]);
const DKIM_FIELD = /^DKIM-Signature:[\x20-\x7e\t\r\n]*\r\n$/;

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === "number" && !Number.isNaN(v);
const isCount = (v: unknown): boolean => typeof v === "number" && Number.isInteger(v) && v >= 0;
const opt = (v: unknown, is: (v: unknown) => boolean): boolean => v === undefined || is(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isIso = (v: unknown): boolean => typeof v === "string" && !Number.isNaN(Date.parse(v));

function attemptOk(a: unknown): boolean {
  if (!isObj(a)) return false;
  const tls = a.tls;
  return (
    isStr(a.at) &&
    OUTCOMES.has(a.outcome as string) &&
    isStr(a.reply) &&
    isStr(a.status) &&
    opt(a.mx, isStr) &&
    opt(a.ip, isStr) &&
    opt(a.remote, isBool) &&
    (tls === undefined || (isObj(tls) && isStr(tls.version) && isStr(tls.cipher) && isBool(tls.verified))) &&
    opt(a.tlsPolicy, isStr)
  );
}

function recipientOk(r: unknown): boolean {
  if (!isObj(r)) return false;
  const h = r.history;
  const n = r.notify;
  return (
    isStr(r.address) &&
    isStr(r.domain) &&
    STATUSES.has(r.status as string) &&
    opt(r.attempts, isCount) &&
    (h === undefined || (Array.isArray(h) && h.every(attemptOk))) &&
    (n === undefined || (Array.isArray(n) && n.every(isStr))) &&
    opt(r.orcpt, isStr) &&
    opt(r.finalAt, isStr)
  );
}

/**
 * messageMetaSchema written out by hand, for every load(): the schema builds a deep copy of the
 * state (about 30 ms for a 5,000-recipient message, and garbage for every ordinary one), while
 * this checks the parsed JSON in place and then fills in the same defaults and cuts the same
 * replies. It accepts nothing the schema refuses and yields what the schema would (compared over
 * random mutations in test/unit/spool-format.test.ts); anything it does not accept goes to the
 * schema, which gives the reason. Keep the two in step.
 */
export function checkedMeta(json: unknown): MessageMeta | undefined {
  if (!isObj(json)) return undefined;
  const j = json;
  const c = j.client;
  const p = j.params;
  const dkim = j.dkim;
  const ok =
    j.version === 1 &&
    isStr(j.id) &&
    QUEUE_ID_RE.test(j.id) &&
    isStr(j.sender) &&
    Array.isArray(j.recipients) &&
    j.recipients.length > 0 &&
    j.recipients.every(recipientOk) &&
    isIso(j.receivedAt) &&
    (c === undefined || (isObj(c) && isStr(c.ip) && opt(c.port, isNum) && opt(c.helo, isStr) && opt(c.tls, isBool) && opt(c.reverseName, isStr) && opt(c.user, isStr))) &&
    (p === undefined ||
      (isObj(p) &&
        (p.body === undefined || p.body === "7BIT" || p.body === "8BITMIME") &&
        opt(p.smtputf8, isBool) &&
        opt(p.size, isNum) &&
        (p.ret === undefined || p.ret === "FULL" || p.ret === "HDRS") &&
        opt(p.envid, isStr) &&
        opt(p.auth, isStr))) &&
    isCount(j.size) &&
    opt(j.eightBit, isBool) &&
    isIso(j.nextAttemptAt) &&
    (j.kind === undefined || j.kind === "message" || j.kind === "bounce") &&
    opt(j.held, isBool) &&
    opt(j.delayWarned, isBool) &&
    (dkim === undefined || (Array.isArray(dkim) && dkim.length <= 8 && dkim.every((f) => isStr(f) && f.length <= 16_384 && DKIM_FIELD.test(f))));
  if (!ok) return undefined;
  // Valid: the schema's defaults and transforms, in place.
  for (const r of j.recipients as Json[]) {
    r.attempts ??= 0;
    const h = (r.history ??= []) as Json[];
    for (const a of h) if ((a.reply as string).length > EXCERPT_MAX) a.reply = excerpt(a.reply as string);
  }
  j.client ??= { ip: "unknown" };
  j.params ??= {};
  j.eightBit ??= false;
  j.kind ??= "message";
  return j as unknown as MessageMeta;
}

/**
 * The start-up scan's decoder: JSON.parse and a structural check of what the queue index
 * needs (id, sender, recipients with address/domain/status, the dates), without the schema's
 * deep copy — an eighth of the time and no garbage per message, so recovering 100,000 states
 * costs little memory. Anything unexpected goes through decodeMeta for the precise reason.
 * Every `load()` (each delivery attempt and operator action) still validates with the schema,
 * so a record that passes here but not there is buried at its first use.
 */
export function decodeMetaForIndex(buf: Buffer, expectId?: string): MessageMeta {
  let m: unknown;
  try {
    m = JSON.parse(buf.toString("utf8"));
  } catch {
    return decodeMeta(buf, expectId); // the precise reason
  }
  return metaForIndex(m, expectId);
}

/** decodeMetaForIndex's check of a state already parsed (and its deltas folded in). */
export function metaForIndex(json: unknown, expectId?: string): MessageMeta {
  const m = json as MessageMeta | null;
  const ok =
    !!m &&
    typeof m === "object" &&
    m.version === 1 &&
    typeof m.id === "string" &&
    (!expectId || m.id === expectId) &&
    typeof m.sender === "string" &&
    Array.isArray(m.recipients) &&
    m.recipients.length > 0 &&
    m.recipients.every((r) => !!r && typeof r.address === "string" && typeof r.domain === "string" && STATUSES.has(r.status) && (r.attempts === undefined || typeof r.attempts === "number") && (r.history === undefined || Array.isArray(r.history))) &&
    typeof m.nextAttemptAt === "string" &&
    !Number.isNaN(Date.parse(m.nextAttemptAt)) &&
    typeof m.receivedAt === "string" &&
    !Number.isNaN(Date.parse(m.receivedAt)) &&
    (m.held === undefined || typeof m.held === "boolean");
  if (!ok) return validateMeta(json, expectId);
  for (const r of m!.recipients) {
    r.attempts ??= 0;
    r.history ??= [];
  }
  m!.params ??= {};
  m!.kind ??= "message";
  return m!;
}
