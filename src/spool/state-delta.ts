// Recipient-outcome records (RCPTS, journal record type 4; docs/spool.md "Recipient deltas"):
// what changed in a message's state since its last full record, so that a message to 5,000
// recipients is not re-encoded whole for every domain that finishes. Pure: encoding, decoding,
// folding a delta into a parsed state, and the choice between a delta and a full state.
//
// A delta is compact JSON:
//
//   {"base":[3,1234],"seq":2,"fields":{"nextAttemptAt":"…","messageId":"…"},"rcpts":[[17,{…}],[18,{…}]]}
//
// - base: segment number and record offset of the full record (MSG or STATE) it applies to;
// - seq: its place in the chain of deltas on that base (1, 2, …), so that a lost delta in the
//   middle is noticed instead of folding the later ones onto the wrong state;
// - fields: the message-level members that a delivery run changes (DELTA_FIELDS), as they are
//   now — one of them absent here is absent from the state;
// - rcpts: [index in `recipients`, the recipient's whole new state] for each changed recipient.
import type { MessageMeta, RecipientState } from "../core/envelope.js";
import { BadStateError } from "./format.js";

/** The message-level members a delta carries; any other change needs a full state record. */
export const DELTA_FIELDS = ["nextAttemptAt", "delayWarned", "messageId", "held"] as const;

export interface StateDelta {
  /** Segment and record offset of the full record this delta applies to. */
  base: [number, number];
  seq: number;
  fields: Partial<Pick<MessageMeta, (typeof DELTA_FIELDS)[number]>>;
  rcpts: [number, RecipientState][];
}

/** Encode the delta of `meta` whose recipients at `indices` (ascending) changed. */
export function encodeDelta(base: [number, number], seq: number, meta: MessageMeta, indices: readonly number[]): Buffer {
  const fields: Record<string, unknown> = {};
  for (const k of DELTA_FIELDS) if (meta[k] !== undefined) fields[k] = meta[k];
  // Built by hand so that each recipient is stringified once and no intermediate array of
  // pairs is made; the result is ordinary JSON (decodeDelta parses it with JSON.parse).
  let s = `{"base":[${base[0]},${base[1]}],"seq":${seq},"fields":${JSON.stringify(fields)},"rcpts":[`;
  for (let i = 0; i < indices.length; i++) {
    const at = indices[i]!;
    s += `${i ? "," : ""}[${at},${JSON.stringify(meta.recipients[at])}]`;
  }
  return Buffer.from(s + "]}", "utf8");
}

const isIndex = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

/** Parse a delta record's payload; throws BadStateError when it is not one. */
export function decodeDelta(buf: Buffer): StateDelta {
  let d: Partial<StateDelta> | null;
  try {
    d = JSON.parse(buf.toString("utf8")) as Partial<StateDelta> | null;
  } catch (e) {
    throw new BadStateError(`recipient delta is not JSON: ${(e as Error).message}`);
  }
  if (!d || typeof d !== "object") throw new BadStateError("recipient delta is not an object");
  if (!Array.isArray(d.base) || d.base.length !== 2 || !d.base.every(isIndex)) throw new BadStateError("recipient delta: bad base");
  if (!isIndex(d.seq) || d.seq < 1) throw new BadStateError("recipient delta: bad seq");
  if (!d.fields || typeof d.fields !== "object" || Array.isArray(d.fields)) throw new BadStateError("recipient delta: bad fields");
  if (!Array.isArray(d.rcpts) || !d.rcpts.every((p) => Array.isArray(p) && p.length === 2 && isIndex(p[0]) && !!p[1] && typeof p[1] === "object" && !Array.isArray(p[1]))) {
    throw new BadStateError("recipient delta: bad rcpts");
  }
  return d as StateDelta;
}

const HEAD_RE = /^\{"base":\[(\d{1,10}),(\d{1,12})\],"seq":([1-9]\d{0,9}),/;

/**
 * The base and seq of a delta without parsing all of it (the replay checks every delta's place
 * in its chain; encodeDelta writes them first). Undefined when the payload is not a delta.
 */
export function deltaHead(buf: Buffer): { base: [number, number]; seq: number } | undefined {
  const m = HEAD_RE.exec(buf.toString("latin1", 0, Math.min(buf.length, 64)));
  if (m) return { base: [Number(m[1]), Number(m[2])], seq: Number(m[3]) };
  try {
    const d = decodeDelta(buf);
    return { base: d.base, seq: d.seq };
  } catch {
    return undefined;
  }
}

/**
 * Apply a delta to a parsed (not yet validated) state, in place. A recipient index outside the
 * state's recipients is damage: BadStateError (the caller treats the message like any state
 * that does not validate). The result is validated by the caller as a whole.
 */
export function foldDelta(state: unknown, d: StateDelta): void {
  const s = state as { recipients?: unknown } & Record<string, unknown>;
  if (!s || typeof s !== "object" || !Array.isArray(s.recipients)) throw new BadStateError(`recipient delta ${d.seq}: the state it applies to has no recipients`);
  const rcpts = s.recipients as unknown[];
  for (const [at, r] of d.rcpts) {
    if (at >= rcpts.length) throw new BadStateError(`recipient delta ${d.seq}: recipient index ${at} outside the ${rcpts.length} recipients`);
    rcpts[at] = r;
  }
  for (const k of DELTA_FIELDS) {
    if (Object.prototype.hasOwnProperty.call(d.fields, k)) s[k] = (d.fields as Record<string, unknown>)[k];
    else delete s[k];
  }
}

/** Indices (ascending) of the recipients of `meta` that are in `changed`; undefined when one of them is not in it. */
export function changedIndices(recipients: readonly RecipientState[], changed: Iterable<RecipientState>): number[] | undefined {
  const want = changed instanceof Set ? (changed as ReadonlySet<RecipientState>) : new Set(changed);
  const out: number[] = [];
  if (want.size === 0) return out;
  for (let i = 0; i < recipients.length; i++) if (want.has(recipients[i]!)) out.push(i);
  return out.length === want.size ? out : undefined;
}

export interface ChainLimits {
  /** A full state smaller than this is always rewritten whole (a delta saves little, costs a read). */
  minFull: number;
  /** Most deltas on one base (each is one more read and parse at every load). */
  maxDeltas: number;
  /** The chain's octets stay within this many times the full record's. */
  maxRatio: number;
}

export const DEFAULT_CHAIN_LIMITS: ChainLimits = { minFull: 4096, maxDeltas: 64, maxRatio: 1 };

/**
 * Delta or full state? A delta when the last full record is big enough to be worth sparing,
 * the chain is not too long, and the chain with the new delta stays no larger than that full
 * record — so a load reads at most about twice the state, and the journal never holds more
 * delta bytes for a message than one more copy of its state.
 */
export function chooseRecord(o: { fullLen: number; chainCount: number; chainBytes: number; deltaLen: number }, limits: ChainLimits = DEFAULT_CHAIN_LIMITS): "delta" | "full" {
  if (o.fullLen < limits.minFull) return "full";
  if (o.chainCount >= limits.maxDeltas) return "full";
  if (o.chainBytes + o.deltaLen > o.fullLen * limits.maxRatio) return "full";
  return "delta";
}
