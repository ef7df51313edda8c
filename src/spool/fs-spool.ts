// The on-disk spool. Layout (docs/spool.md):
//   <spoolDir>/queue/<ID>.eml   the message, RFC 5322 bytes with CRLF line ends
//   <spoolDir>/queue/<ID>.json  envelope + per-recipient state (the commit marker)
//   <spoolDir>/tmp/             writes in progress; emptied at start
//   <spoolDir>/dead/            entries that could not be read or delivered (with .reason files)
//
// Commit order: body fsync → state fsync (in tmp/) → rename body → rename state → fsync queue/.
// A message counts as queued exactly when queue/<ID>.json exists; an .eml without its .json is
// a leftover and removed at start.
import { promises as fsp, createReadStream, constants as FS } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { MessageMeta } from "../core/envelope.js";
import type { ScanProblem, Spool, SpoolWriter } from "./spool.js";
import { BODY_EXT, META_EXT, BadStateError, decodeMeta, encodeMeta, isQueueId, newQueueId } from "./format.js";
import { EnvelopeSalvager, type SalvagedEnvelope } from "./salvage.js";
import { readFileHead, syncDir, writeFileSynced } from "../io/durable-file.js";
import { MxdError } from "../core/errors.js";

export class SpoolError extends MxdError {
  constructor(message: string, cause?: unknown) {
    super("MXD_SPOOL_IO", message, cause === undefined ? undefined : { cause });
    this.name = "SpoolError";
  }
}

export interface FsSpoolOptions {
  dir: string;
  now?: () => number;
  /** Skip fsync (tests of logic only; never in production). */
  noSync?: boolean;
  /** A state file larger than this is not loaded (bad state); default MAX_STATE_BYTES. */
  maxStateBytes?: number;
}

/**
 * Largest state file loaded. A valid one is small (history and remote replies are bounded);
 * one this large was written by a broken or older mxd, and parsing it would cost its size in
 * memory several times over, or fail outright past V8's string limit (~512 MB).
 */
export const MAX_STATE_BYTES = 64 * 1024 * 1024;

export class FsSpool implements Spool {
  readonly dir: string;
  readonly queueDir: string;
  readonly tmpDir: string;
  readonly deadDir: string;
  private readonly now: () => number;
  private readonly sync: boolean;
  private readonly maxStateBytes: number;

  constructor(opts: FsSpoolOptions) {
    this.dir = opts.dir;
    this.queueDir = join(opts.dir, "queue");
    this.tmpDir = join(opts.dir, "tmp");
    this.deadDir = join(opts.dir, "dead");
    this.now = opts.now ?? Date.now;
    this.sync = !opts.noSync;
    this.maxStateBytes = opts.maxStateBytes ?? MAX_STATE_BYTES;
  }

  async init(): Promise<{ cleaned: number }> {
    for (const d of [this.dir, this.queueDir, this.tmpDir, this.deadDir]) await fsp.mkdir(d, { recursive: true });
    let cleaned = 0;
    for (const f of await fsp.readdir(this.tmpDir)) {
      await fsp.rm(join(this.tmpDir, f), { force: true, recursive: true });
      cleaned++;
    }
    const names = new Set(await fsp.readdir(this.queueDir));
    for (const f of names) {
      if (f.endsWith(BODY_EXT)) {
        const id = f.slice(0, -BODY_EXT.length);
        if (!names.has(id + META_EXT)) {
          // Body renamed into place but the state never made it: not queued, never acknowledged.
          await fsp.rm(join(this.queueDir, f), { force: true });
          cleaned++;
        }
      } else if (!f.endsWith(META_EXT)) {
        await fsp.rm(join(this.queueDir, f), { force: true, recursive: true });
        cleaned++;
      }
    }
    return { cleaned };
  }

  bodyPath(id: string): string {
    return join(this.queueDir, id + BODY_EXT);
  }
  metaPath(id: string): string {
    return join(this.queueDir, id + META_EXT);
  }

  async begin(): Promise<SpoolWriter> {
    for (let tries = 0; ; tries++) {
      const id = newQueueId(this.now());
      const path = join(this.tmpDir, id + BODY_EXT);
      try {
        const fh = await fsp.open(path, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o640);
        return new FsSpoolWriter(this, id, fh, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST" && tries < 5) continue;
        throw new SpoolError(`cannot create spool file: ${(e as Error).message}`, e);
      }
    }
  }

  async put(meta: Omit<MessageMeta, "id" | "size">, body: Buffer): Promise<MessageMeta> {
    const w = await this.begin();
    try {
      await w.write(body);
      return await w.commit(meta);
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /** Steps 2–5 of the commit order, shared by writers. */
  async commitFiles(id: string, tmpBody: string, meta: MessageMeta): Promise<void> {
    const tmpMeta = join(this.tmpDir, id + META_EXT);
    await this.writeFileSynced(tmpMeta, encodeMeta(meta));
    await fsp.rename(tmpBody, this.bodyPath(id));
    await fsp.rename(tmpMeta, this.metaPath(id));
    await this.syncDir(this.queueDir);
  }

  writeFileSynced(path: string, data: Buffer): Promise<void> {
    return writeFileSynced(path, data, this.sync);
  }

  async syncDir(dir: string): Promise<void> {
    if (this.sync) await syncDir(dir);
  }

  get fsync(): boolean {
    return this.sync;
  }

  openBody(id: string): Readable {
    return createReadStream(this.bodyPath(id), { highWaterMark: 64 * 1024 });
  }

  readHead(id: string, max: number): Promise<Buffer> {
    return readFileHead(this.bodyPath(id), max);
  }

  async load(id: string): Promise<MessageMeta> {
    if (!isQueueId(id)) throw new SpoolError(`not a queue id: ${id}`);
    const fh = await fsp.open(this.metaPath(id), "r");
    try {
      const { size } = await fh.stat();
      if (size > this.maxStateBytes) throw new BadStateError(`state file too large (${size} octets, at most ${this.maxStateBytes} are loaded)`);
      return decodeMeta(await fh.readFile(), id);
    } finally {
      await fh.close();
    }
  }

  async salvage(id: string): Promise<SalvagedEnvelope | undefined> {
    if (!isQueueId(id)) return undefined;
    const s = new EnvelopeSalvager();
    try {
      for await (const chunk of createReadStream(this.metaPath(id), { highWaterMark: 64 * 1024 })) s.push(chunk as Buffer);
    } catch {
      return undefined;
    }
    return s.result();
  }

  async update(meta: MessageMeta): Promise<void> {
    const tmp = join(this.tmpDir, `${meta.id}.upd-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    try {
      await this.writeFileSynced(tmp, encodeMeta(meta));
      await fsp.rename(tmp, this.metaPath(meta.id));
      await this.syncDir(this.queueDir);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw new SpoolError(`cannot update state of ${meta.id}: ${(e as Error).message}`, e);
    }
  }

  async remove(id: string): Promise<void> {
    // State first: once it is gone the message no longer counts as queued.
    await fsp.rm(this.metaPath(id), { force: true });
    await fsp.rm(this.bodyPath(id), { force: true });
  }

  /** Move an entry to dead/ with a reason file (unreadable state, undeliverable bounce). */
  async bury(id: string, reason: string): Promise<void> {
    const stamp = new Date(this.now()).toISOString();
    await this.writeFileSynced(join(this.deadDir, id + ".reason"), Buffer.from(`${stamp} ${reason}\n`));
    for (const ext of [META_EXT, BODY_EXT]) {
      await fsp.rename(join(this.queueDir, id + ext), join(this.deadDir, id + ext)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      });
    }
    await this.syncDir(this.queueDir);
  }

  /** Remove a dead letter (all its files, the reason last). False when there is none. */
  async removeDead(id: string): Promise<boolean> {
    if (!isQueueId(id)) throw new SpoolError(`not a queue id: ${id}`);
    const reason = join(this.deadDir, id + ".reason");
    if (!(await exists(reason))) return false;
    for (const ext of [META_EXT, BODY_EXT]) await fsp.rm(join(this.deadDir, id + ext), { force: true });
    await fsp.rm(reason, { force: true });
    await this.syncDir(this.deadDir);
    return true;
  }

  /**
   * Move a dead letter back into the queue with the state `prepare` gives it (queue/requeue.ts):
   * the state is written to queue/ first under a tmp name, then the body and state renamed in
   * the commit order, then the reason removed — a crash leaves it queued or still dead.
   */
  async unbury(id: string, prepare: (meta: MessageMeta) => MessageMeta): Promise<MessageMeta> {
    if (!isQueueId(id)) throw new SpoolError(`not a queue id: ${id}`);
    const deadMeta = join(this.deadDir, id + META_EXT);
    const meta = prepare(decodeMeta(await fsp.readFile(deadMeta), id));
    await fsp.access(join(this.deadDir, id + BODY_EXT));
    const tmpMeta = join(this.tmpDir, id + META_EXT);
    await this.writeFileSynced(tmpMeta, encodeMeta(meta));
    await fsp.rename(join(this.deadDir, id + BODY_EXT), this.bodyPath(id));
    await fsp.rename(tmpMeta, this.metaPath(id));
    await this.syncDir(this.queueDir);
    await fsp.rm(deadMeta, { force: true });
    await fsp.rm(join(this.deadDir, id + ".reason"), { force: true });
    await this.syncDir(this.deadDir);
    return meta;
  }

  async listIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const f of await fsp.readdir(this.queueDir)) {
      if (f.endsWith(META_EXT)) {
        const id = f.slice(0, -META_EXT.length);
        if (isQueueId(id)) ids.push(id);
      }
    }
    return ids.sort();
  }

  async *scan(onProblem?: (p: ScanProblem) => void): AsyncIterable<MessageMeta> {
    for (const id of await this.listIds()) {
      try {
        const meta = await this.load(id);
        await fsp.access(this.bodyPath(id));
        yield meta;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT" && !(await exists(this.metaPath(id)))) continue; // removed meanwhile
        onProblem?.({ id, reason: (e as Error).message });
      }
    }
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

class FsSpoolWriter implements SpoolWriter {
  size = 0;
  private done = false;
  constructor(private readonly spool: FsSpool, readonly id: string, private fh: fsp.FileHandle | null, private readonly path: string) {}

  async write(chunk: Buffer): Promise<void> {
    if (!this.fh || this.done) throw new SpoolError("spool writer is closed");
    try {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
      this.size += chunk.length;
    } catch (e) {
      throw new SpoolError(`spool write failed: ${(e as Error).message}`, e);
    }
  }

  async commit(partial: Omit<MessageMeta, "id" | "size">): Promise<MessageMeta> {
    if (!this.fh || this.done) throw new SpoolError("spool writer is closed");
    const meta: MessageMeta = { ...partial, id: this.id, size: this.size } as MessageMeta;
    try {
      if (this.spool.fsync) await this.fh.sync();
      await this.fh.close();
      this.fh = null;
      await this.spool.commitFiles(this.id, this.path, meta);
      this.done = true;
      return meta;
    } catch (e) {
      await this.abort();
      // If the state file reached queue/ before the failure, take it back: the client is told
      // 451 and will retry, so keeping it would duplicate the message.
      await fsp.rm(this.spool.metaPath(this.id), { force: true }).catch(() => undefined);
      await fsp.rm(this.spool.bodyPath(this.id), { force: true }).catch(() => undefined);
      throw e instanceof SpoolError ? e : new SpoolError(`spool commit failed: ${(e as Error).message}`, e);
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      await this.fh?.close();
    } catch {
      /* already closed */
    }
    this.fh = null;
    await fsp.rm(this.path, { force: true }).catch(() => undefined);
    await fsp.rm(join(this.spool.tmpDir, this.id + META_EXT), { force: true }).catch(() => undefined);
  }
}
