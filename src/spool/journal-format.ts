// Framing of the spool journal's records (pure; docs/spool.md "Journal format").
//
// A segment file starts with a 16-byte header — "MXJSEG01" and 8 random bytes, the segment's
// salt — followed by records, each:
//
//   offset  size  field
//   0       4     magic "MXJ1"
//   4       1     type: 1 = MSG (a new message: state + body), 2 = STATE (new state of a queued
//                 message), 3 = DONE (the message left the queue), 4 = RCPTS (the recipients
//                 and fields changed since the last MSG/STATE of the message: state-delta.ts)
//   5       1     flags: bit 0 = the body is in bodies/<ID>.eml, not in the record
//   6       2     reserved, 0
//   8       16    queue id, ASCII
//   24      4     length of the state (UTF-8 JSON; for RCPTS the delta JSON), little-endian
//   28      4     length of the inline body
//   32      4     CRC-32 of the salt, bytes 4..31 and the payload (state, then body)
//   36      ...   state JSON, then body bytes
//
// A record counts only when its magic, lengths and checksum are intact: a torn write at the
// end of a segment (crash mid-append) is recognised and ignored; damage in the middle is skipped
// by searching for the next magic whose record verifies. The salt keeps that search safe: a
// message body that contains a well-formed record (a forgery) cannot carry the right
// checksum, because the salt never leaves the spool.
import { crc32 } from "node:zlib";
import { MxdError } from "../core/errors.js";

export const MAGIC = Buffer.from("MXJ1", "latin1");
export const SEGMENT_MAGIC = Buffer.from("MXJSEG01", "latin1");
export const SEGMENT_HEADER_SIZE = 16;
export const SALT_SIZE = 8;
export const HEADER_SIZE = 36;
export const ID_SIZE = 16;
/**
 * A state larger than this is refused, when written and when read back. Bounded history and
 * reply excerpts keep real ones small, but not tiny: a message to 5,000 recipients is about
 * 1 MB after one attempt and grows by a few hundred octets per recipient and attempt.
 */
export const MAX_STATE = 64 * 1024 * 1024;
/** Inline bodies never exceed this (bigger ones live in bodies/). */
export const MAX_INLINE_BODY = 16 * 1024 * 1024;

export const enum RecordType {
  Msg = 1,
  State = 2,
  Done = 3,
  /** Recipient outcomes: a delta on the message's last MSG/STATE record (state-delta.ts). */
  Rcpts = 4,
}
export const FLAG_EXTERNAL_BODY = 1;

export interface RecordHead {
  type: RecordType;
  flags: number;
  id: string;
  stateLen: number;
  bodyLen: number;
}

/**
 * Encode one record; `body` only for MSG records with an inline body. The checksum is filled
 * in by sealRecord() when the segment (and so its salt) is known.
 */
export function encodeRecord(type: RecordType, id: string, state: Buffer | null, body: Buffer | null, flags = 0): Buffer {
  if (id.length !== ID_SIZE || !/^[0-9A-Z]{16}$/.test(id)) throw new Error(`bad queue id for journal: ${id}`);
  const s = state ?? Buffer.alloc(0);
  const b = body ?? Buffer.alloc(0);
  // What recovery would not read back must never be acknowledged (readFrame's bounds).
  if (s.length > MAX_STATE || b.length > MAX_INLINE_BODY) throw new MxdError("MXD_SPOOL_IO", `journal record for ${id} too large: state ${s.length} octets (at most ${MAX_STATE}), body ${b.length} (at most ${MAX_INLINE_BODY})`);
  const out = Buffer.allocUnsafe(HEADER_SIZE + s.length + b.length);
  MAGIC.copy(out, 0);
  out[4] = type;
  out[5] = flags;
  out.writeUInt16LE(0, 6);
  out.write(id, 8, ID_SIZE, "latin1");
  out.writeUInt32LE(s.length, 24);
  out.writeUInt32LE(b.length, 28);
  s.copy(out, HEADER_SIZE);
  b.copy(out, HEADER_SIZE + s.length);
  out.writeUInt32LE(0, 32);
  return out;
}

/** Write the checksum of an encoded record for a segment with this salt (in place). */
export function sealRecord(rec: Buffer, salt: Buffer): void {
  rec.writeUInt32LE(crc32(rec.subarray(HEADER_SIZE), crc32(rec.subarray(4, 32), crc32(salt))), 32);
}

export function segmentHeader(salt: Buffer): Buffer {
  return Buffer.concat([SEGMENT_MAGIC, salt]);
}

/** The salt of a segment from its first 16 bytes, or undefined when they are not a header. */
export function readSegmentHeader(buf: Buffer): Buffer | undefined {
  if (buf.length < SEGMENT_HEADER_SIZE || buf.compare(SEGMENT_MAGIC, 0, 8, 0, 8) !== 0) return undefined;
  return Buffer.from(buf.subarray(8, SEGMENT_HEADER_SIZE));
}

export type FrameResult =
  | { ok: true; head: RecordHead; size: number }
  | { ok: false; need: number } // more bytes are needed to judge (end of the buffer)
  | { ok: false; bad: string }; // not a valid record at this offset

/** Check the record starting at `buf[off]` without copying its payload. */
export function readFrame(buf: Buffer, off: number, salt: Buffer): FrameResult {
  if (buf.length - off < HEADER_SIZE) return { ok: false, need: HEADER_SIZE };
  if (buf.compare(MAGIC, 0, 4, off, off + 4) !== 0) return { ok: false, bad: "bad magic" };
  const type = buf[off + 4]!;
  if (type < RecordType.Msg || type > RecordType.Rcpts) return { ok: false, bad: `bad record type ${type}` };
  const stateLen = buf.readUInt32LE(off + 24);
  const bodyLen = buf.readUInt32LE(off + 28);
  if (stateLen > MAX_STATE || bodyLen > MAX_INLINE_BODY) return { ok: false, bad: "bad record length" };
  const size = HEADER_SIZE + stateLen + bodyLen;
  if (buf.length - off < size) return { ok: false, need: size };
  const want = buf.readUInt32LE(off + 32);
  const got = crc32(buf.subarray(off + HEADER_SIZE, off + size), crc32(buf.subarray(off + 4, off + 32), crc32(salt)));
  if (want !== got) return { ok: false, bad: "checksum mismatch" };
  const id = buf.toString("latin1", off + 8, off + 8 + ID_SIZE);
  if (!/^[0-9A-Z]{16}$/.test(id)) return { ok: false, bad: "bad id" };
  return { ok: true, head: { type, flags: buf[off + 5]!, id, stateLen, bodyLen }, size };
}

/** Segment file names: 8 decimal digits + ".seg", so lexical order is creation order. */
export function segmentName(n: number): string {
  return String(n).padStart(8, "0") + ".seg";
}

export function segmentNumber(name: string): number | undefined {
  const m = /^(\d{8})\.seg$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
