// A synchronous, read-only look at a spool's journal for tests that poll ("is the queue empty
// yet?") or inspect what a daemon — possibly another process — has queued. It applies the
// records in order the way recovery does; a torn tail ends a segment.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { MessageMeta } from "../../src/core/envelope.js";
import { HEADER_SIZE, RecordType, FLAG_EXTERNAL_BODY, SEGMENT_HEADER_SIZE, readFrame, readSegmentHeader, segmentNumber } from "../../src/spool/journal-format.js";

export interface SnapshotEntry {
  id: string;
  meta: MessageMeta;
  eml: Buffer;
}

export function spoolSnapshot(spoolDir: string): Map<string, SnapshotEntry> {
  const out = new Map<string, SnapshotEntry>();
  const jdir = join(spoolDir, "journal");
  if (!existsSync(jdir)) return out;
  const segs = readdirSync(jdir)
    .filter((f) => segmentNumber(f) !== undefined)
    .sort();
  for (const f of segs) {
    let buf: Buffer;
    try {
      buf = readFileSync(join(jdir, f));
    } catch {
      continue; // deleted meanwhile (compaction)
    }
    const salt = readSegmentHeader(buf);
    if (!salt) continue;
    let off = SEGMENT_HEADER_SIZE;
    while (off < buf.length) {
      const fr = readFrame(buf, off, salt);
      if (!fr.ok) break;
      const { head } = fr;
      const state = buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + head.stateLen);
      if (head.type === RecordType.Done) out.delete(head.id);
      else if (head.type === RecordType.Msg) {
        const external = (head.flags & FLAG_EXTERNAL_BODY) !== 0;
        const eml = external ? Buffer.alloc(0) : Buffer.from(buf.subarray(off + HEADER_SIZE + head.stateLen, off + fr.size));
        out.set(head.id, { id: head.id, meta: JSON.parse(state.toString("utf8")) as MessageMeta, eml: external ? readBody(spoolDir, head.id) : eml });
      } else {
        const e = out.get(head.id);
        if (e) e.meta = JSON.parse(state.toString("utf8")) as MessageMeta;
      }
      off += fr.size;
    }
  }
  return out;
}

function readBody(spoolDir: string, id: string): Buffer {
  try {
    return readFileSync(join(spoolDir, "bodies", id + ".eml"));
  } catch {
    return Buffer.alloc(0);
  }
}

/** Ids of the queued messages, in arrival order. */
export function queuedIdsSync(spoolDir: string): string[] {
  return [...spoolSnapshot(spoolDir).keys()].sort();
}
