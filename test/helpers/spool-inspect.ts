// Reading a spool from a test: ids, entries (state and bytes), the Received: header mxd adds.
import { readDirOrEmpty } from "../../src/io/durable-file.js";
import type { MessageMeta } from "../../src/core/envelope.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";

export async function listDir(dir: string): Promise<string[]> {
  return (await readDirOrEmpty(dir)).sort();
}

/** A read-only view of a spool (replays the journal; works while a daemon writes to it). */
async function view<T>(spoolDir: string, fn: (s: JournalSpool) => Promise<T>): Promise<T> {
  const s = new JournalSpool({ dir: spoolDir, readOnly: true });
  try {
    await s.recover();
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Ids of the queued messages, in arrival order. */
export async function queueIds(spoolDir: string): Promise<string[]> {
  return view(spoolDir, (s) => s.listIds());
}

export interface Entry {
  id: string;
  eml: Buffer;
  meta: MessageMeta;
}

async function entryOf(s: JournalSpool, id: string): Promise<Entry> {
  const chunks: Buffer[] = [];
  for await (const c of s.openBody(id)) chunks.push(c as Buffer);
  return { id, eml: Buffer.concat(chunks), meta: await s.load(id) };
}

export async function readEntry(spoolDir: string, id: string): Promise<Entry> {
  return view(spoolDir, (s) => entryOf(s, id));
}

export async function readAll(spoolDir: string): Promise<Entry[]> {
  return view(spoolDir, async (s) => {
    const out: Entry[] = [];
    for (const id of await s.listIds()) out.push(await entryOf(s, id));
    return out;
  });
}

/** The spooled file is `Received: ...` (a folded header) followed by exactly the message bytes. */
export const RECEIVED_RE =
  /^Received: from (\S+) \(\[([^\]]+)\]\)\r\n\tby (\S+) \(mxd\) with (\S+) id ([0-9A-Z]{16})(?:\r\n\tfor <([^>]*)>)?;\r\n\t((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4})\r\n/;

export function splitReceived(eml: Buffer): { helo: string; ip: string; by: string; proto: string; id: string; for?: string; date: string; body: Buffer } {
  const head = eml.subarray(0, Math.min(eml.length, 1024)).toString("latin1");
  const m = RECEIVED_RE.exec(head);
  if (!m) throw new Error(`spool file does not start with a Received header: ${JSON.stringify(head.slice(0, 300))}`);
  return { helo: m[1]!, ip: m[2]!, by: m[3]!, proto: m[4]!, id: m[5]!, for: m[6], date: m[7]!, body: eml.subarray(Buffer.byteLength(m[0], "latin1")) };
}
