// Reading a journal segment back: every intact record in order, with its place. Damage is
// reported and skipped — a torn tail ends the segment, damage in the middle is passed by
// searching for the next magic whose record verifies — so one bad record never hides the
// good ones after it. Payloads are not copied out (bodies are skipped, not parsed).
import { promises as fsp } from "node:fs";
import { HEADER_SIZE, MAGIC, SEGMENT_HEADER_SIZE, readFrame, readSegmentHeader, type RecordHead } from "./journal-format.js";

export interface ReplayedRecord {
  head: RecordHead;
  /** Offset of the record in the segment. */
  off: number;
  size: number;
  /** The state JSON bytes (MSG and STATE records): a view, valid only during the callback. */
  state: Buffer;
}

export interface Damage {
  off: number;
  reason: string;
  /** Bytes skipped until the next intact record (or the end). */
  skipped: number;
}

const CHUNK = 1024 * 1024;

/** Replay one segment file; `onRecord` sees every intact record in file order. */
export async function replaySegment(path: string, onRecord: (r: ReplayedRecord) => void, onDamage?: (d: Damage) => void): Promise<{ size: number; end: number }> {
  const fh = await fsp.open(path, "r");
  try {
    const size = (await fh.stat()).size;
    const hb = Buffer.alloc(SEGMENT_HEADER_SIZE);
    const { bytesRead: hn } = await fh.read(hb, 0, SEGMENT_HEADER_SIZE, 0);
    const salt = readSegmentHeader(hb.subarray(0, hn));
    if (!salt) {
      // Created but never written (crash right after rotation), or not a segment at all.
      if (size > 0) onDamage?.({ off: 0, reason: "no segment header", skipped: size });
      return { size, end: 0 };
    }
    let buf = Buffer.alloc(0);
    let bufStart = SEGMENT_HEADER_SIZE; // file offset of buf[0]
    let pos = SEGMENT_HEADER_SIZE; // offset of the next unexamined byte (within the file)
    let damageAt = -1;
    let lastGoodEnd = SEGMENT_HEADER_SIZE;
    const fill = async (need: number): Promise<boolean> => {
      // Make buf hold at least `need` bytes from pos on; false at end of file.
      const have = bufStart + buf.length - pos;
      if (have >= need) return true;
      const fileLeft = size - (bufStart + buf.length);
      if (fileLeft <= 0) return false;
      const keep = buf.subarray(pos - bufStart);
      const want = Math.min(fileLeft, Math.max(CHUNK, need - keep.length));
      const next = Buffer.allocUnsafe(keep.length + want);
      keep.copy(next, 0);
      const { bytesRead } = await fh.read(next, keep.length, want, bufStart + buf.length);
      buf = next.subarray(0, keep.length + bytesRead);
      bufStart = pos;
      return bufStart + buf.length - pos >= need;
    };
    const endDamage = (at: number) => {
      if (damageAt >= 0) onDamage?.({ off: damageAt, reason: damageReason, skipped: at - damageAt });
      damageAt = -1;
    };
    let damageReason = "";
    while (pos < size) {
      if (!(await fill(HEADER_SIZE))) {
        if (damageAt < 0) {
          damageAt = pos;
          damageReason = "torn record at end of segment";
        }
        break;
      }
      let f = readFrame(buf, pos - bufStart, salt);
      if (!f.ok && "need" in f) {
        if (await fill(f.need)) f = readFrame(buf, pos - bufStart, salt);
      }
      if (f.ok) {
        endDamage(pos);
        const o = pos - bufStart + HEADER_SIZE;
        onRecord({ head: f.head, off: pos, size: f.size, state: buf.subarray(o, o + f.head.stateLen) });
        pos += f.size;
        lastGoodEnd = pos;
        continue;
      }
      if (damageAt < 0) {
        damageAt = pos;
        damageReason = "need" in f ? "torn record at end of segment" : f.bad;
      }
      // Look for the next magic after this offset.
      const i = buf.indexOf(MAGIC, pos - bufStart + 1);
      if (i >= 0) {
        pos = bufStart + i;
        continue;
      }
      // None in the buffer: keep the last 3 bytes (a magic may straddle chunks) and read on.
      pos = Math.max(pos + 1, bufStart + buf.length - 3);
      if (bufStart + buf.length >= size) {
        pos = size;
        break;
      }
    }
    endDamage(size);
    return { size, end: lastGoodEnd };
  } finally {
    await fh.close();
  }
}
