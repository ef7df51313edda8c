// The dead-letter folder (`spoolDir/dead/`): per entry <ID>.reason ("<ISO time> <reason>"),
// <ID>.json (the state, when it was readable) and <ID>.eml (the body). The spool writes it
// (journal-spool.ts: bury, removeDead, resurrect); this module is how the CLI and the admin
// API read it, so neither knows the file names.
import { promises as fsp, createReadStream, existsSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { MessageMeta } from "../core/envelope.js";
import { readDirOrEmpty, readFileHead } from "../io/durable-file.js";
import { isQueueId } from "./format.js";

/** Where the dead letters are: the spool (JournalSpool.deadDir). */
export interface DeadFolder {
  readonly deadDir: string;
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

/** What is on disk of one dead letter: the state file's text ("" when missing), the reason line, the head of the body. */
export interface DeadFiles {
  stateText: string;
  reasonLine?: string;
  head: string;
}

const HEAD_MAX = 64 * 1024;
const STAMPED = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) ([\s\S]*)$/;

export function isDead(spool: DeadFolder, id: string): boolean {
  return existsSync(join(spool.deadDir, id + ".reason"));
}

/** One entry per <ID>.reason, with the envelope when it is readable, in id order. */
export async function listDead(spool: DeadFolder): Promise<DeadEntry[]> {
  const names = await readDirOrEmpty(spool.deadDir);
  const out: DeadEntry[] = [];
  for (const f of names.filter((n) => n.endsWith(".reason")).sort()) {
    const id = f.slice(0, -".reason".length);
    if (!isQueueId(id)) continue;
    const text = (await fsp.readFile(join(spool.deadDir, f), "utf8").catch(() => "")).trim();
    const m = STAMPED.exec(text);
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

export async function countDead(spool: DeadFolder): Promise<number> {
  try {
    return (await fsp.readdir(spool.deadDir)).filter((n) => n.endsWith(".reason")).length;
  } catch {
    return 0;
  }
}

export async function readDeadFiles(spool: DeadFolder, id: string): Promise<DeadFiles> {
  const stateText = await fsp.readFile(join(spool.deadDir, id + ".json"), "utf8").catch(() => "");
  const reasonLine = await fsp.readFile(join(spool.deadDir, id + ".reason"), "utf8").then((s) => s.trim(), () => undefined);
  const head = await readFileHead(join(spool.deadDir, id + ".eml"), HEAD_MAX).then((b) => b.toString("utf8"), () => "");
  return { stateText, ...(reasonLine !== undefined ? { reasonLine } : {}), head };
}

export function openDeadBody(spool: DeadFolder, id: string): Readable {
  return createReadStream(join(spool.deadDir, id + ".eml"));
}

/** One dead letter as `GET /queue/ID` gives it: state file (when readable), reason, headers. */
export async function readDead(spool: DeadFolder, id: string): Promise<Record<string, unknown>> {
  const f = await readDeadFiles(spool, id);
  const text = f.reasonLine ?? "";
  const m = STAMPED.exec(text);
  let meta: Record<string, unknown> = { id };
  if (f.stateText !== "") {
    try {
      meta = JSON.parse(f.stateText) as Record<string, unknown>;
    } catch {
      meta = { id, unreadable: f.stateText.slice(0, 2000) };
    }
  }
  const end = f.head.indexOf("\r\n\r\n");
  return { ...meta, state: "dead", deadReason: m ? m[2]! : text, ...(m ? { buriedAt: m[1]! } : {}), headers: end >= 0 ? f.head.slice(0, end + 2) : f.head };
}
