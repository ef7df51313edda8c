// Group commit for the spool journal: records are appended to the head segment and made
// durable by one fdatasync per batch.
//
// - At most one write+sync is in flight. Every record handed in before it started is part of
//   it and is acknowledged when the sync completes; whatever arrives meanwhile forms the next
//   batch. No artificial delay is added to grow batches; a batch is bounded in bytes.
// - A failed write or sync (EIO, ENOSPC) rejects every record of that batch; the segment is
//   truncated back to where the batch began, or, if even that fails, sealed, and the next
//   batch starts a new segment. Nothing of a failed batch is ever acknowledged.
// - Segments rotate at `segmentSize`; a new segment's directory entry is synced before any
//   record in it is acknowledged.
import { promises as fsp, constants as FS, writevSync } from "node:fs";
import { join } from "node:path";
import { MxdError } from "../core/errors.js";
import { syncDir } from "../io/durable-file.js";
import { randomBytes } from "node:crypto";
import { SALT_SIZE, SEGMENT_HEADER_SIZE, sealRecord, segmentHeader, segmentName } from "./journal-format.js";

/**
 * Batches up to this many bytes are written synchronously (a copy into the page cache, tens of
 * µs); bigger ones go through the thread pool so that the event loop is not held for long.
 */
const SYNC_WRITE_MAX = 256 * 1024;

export interface Placed {
  seg: number;
  /** Offset of the record's first byte in the segment. */
  off: number;
}

interface Pending {
  bufs: Buffer[];
  bytes: number;
  resolve: (p: Placed[]) => void;
  reject: (e: Error) => void;
}

export interface GroupCommitOptions {
  dir: string;
  /** Number of the first segment this writer creates (greater than every existing one). */
  firstSegment: number;
  segmentSize: number;
  maxBatchBytes?: number;
  sync: boolean;
  /** A segment was created (n) or sealed (size known); the journal keeps its bookkeeping. */
  onSegment?: (e: { seg: number; event: "created" | "sealed"; size: number }) => void;
  /** Test hook: called before each batch's write; a throw simulates a failed write/sync. */
  faultHook?: (batchBytes: number) => void;
}

export class GroupCommitLog {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private fh: fsp.FileHandle | undefined;
  private seg: number;
  private off = 0;
  private salt: Buffer = Buffer.alloc(SALT_SIZE);
  private needNewSegment = true;
  private closed = false;
  readonly stats = { batches: 0, records: 0, bytes: 0, failures: 0 };

  constructor(private readonly o: GroupCommitOptions) {
    this.seg = o.firstSegment - 1;
  }

  /** The segment currently written to (records go here until it rotates). */
  get headSegment(): number {
    return this.seg;
  }

  /** Append records, in order, in one batch; resolves with their places once durable. */
  append(bufs: Buffer[]): Promise<Placed[]> {
    if (this.closed) return Promise.reject(new MxdError("MXD_SPOOL_IO", "spool journal is closed"));
    return new Promise<Placed[]>((resolve, reject) => {
      this.queue.push({ bufs, bytes: bufs.reduce((n, b) => n + b.length, 0), resolve, reject });
      this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
    });
  }

  private async flush(): Promise<void> {
    const max = this.o.maxBatchBytes ?? 8 * 1024 * 1024;
    while (this.queue.length) {
      const batch: Pending[] = [];
      let bytes = 0;
      while (this.queue.length && (batch.length === 0 || bytes + this.queue[0]!.bytes <= max)) {
        const p = this.queue.shift()!;
        batch.push(p);
        bytes += p.bytes;
      }
      await this.writeBatch(batch, bytes);
    }
  }

  private async writeBatch(batch: Pending[], bytes: number): Promise<void> {
    let start = 0;
    try {
      if (this.needNewSegment || (this.off > SEGMENT_HEADER_SIZE && this.off + bytes > this.o.segmentSize)) await this.rotate();
      start = this.off;
      this.o.faultHook?.(bytes);
      const bufs = batch.flatMap((p) => p.bufs);
      for (const b of bufs) sealRecord(b, this.salt);
      // A batch of ordinary size is copied into the page cache on this thread: a thread-pool
      // round trip costs more CPU than the copy (docs/performance.md). Only the sync waits.
      if (bytes <= SYNC_WRITE_MAX) writeAllAtSync(this.fh!.fd, bufs, start);
      else await writeAllAt(this.fh!, bufs, start);
      if (this.o.sync) await this.fh!.datasync();
    } catch (e) {
      this.stats.failures++;
      await this.rollBack(start);
      const err = new MxdError("MXD_SPOOL_IO", `spool journal write failed: ${(e as Error).message}`, { cause: e });
      for (const p of batch) p.reject(err);
      return;
    }
    let off = start;
    this.off = start + bytes;
    this.stats.batches++;
    this.stats.bytes += bytes;
    for (const p of batch) {
      const placed: Placed[] = [];
      for (const b of p.bufs) {
        placed.push({ seg: this.seg, off });
        off += b.length;
      }
      this.stats.records += p.bufs.length;
      p.resolve(placed);
    }
  }

  /** Undo a failed batch: cut the segment back to where it began, else seal the segment. */
  private async rollBack(start: number): Promise<void> {
    if (!this.fh) return;
    try {
      await this.fh.truncate(start);
      if (this.o.sync) await this.fh.datasync();
      this.off = start;
    } catch {
      // The torn bytes stay; recovery ignores them (checksums). Never write after them.
      this.needNewSegment = true;
    }
  }

  private async rotate(): Promise<void> {
    // Until a new segment is open, every batch must try again to open one.
    this.needNewSegment = true;
    if (this.fh) {
      const size = this.off;
      await this.fh.close().catch(() => undefined);
      this.fh = undefined;
      this.o.onSegment?.({ seg: this.seg, event: "sealed", size });
    }
    const n = this.seg + 1;
    const salt = randomBytes(SALT_SIZE);
    const fh = await fsp.open(join(this.o.dir, segmentName(n)), FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o640);
    try {
      await writeAllAt(fh, [segmentHeader(salt)], 0);
      if (this.o.sync) await syncDir(this.o.dir);
    } catch (e) {
      await fh.close().catch(() => undefined);
      await fsp.rm(join(this.o.dir, segmentName(n)), { force: true }).catch(() => undefined);
      throw e;
    }
    this.seg = n;
    this.fh = fh;
    this.salt = salt;
    this.off = SEGMENT_HEADER_SIZE;
    this.needNewSegment = false;
    this.o.onSegment?.({ seg: n, event: "created", size: 0 });
  }

  /** Seal the head segment now (the next append opens a new one). */
  async seal(): Promise<void> {
    await this.flushing;
    if (!this.fh) return;
    this.needNewSegment = true;
    const size = this.off;
    await this.fh.close().catch(() => undefined);
    this.fh = undefined;
    this.o.onSegment?.({ seg: this.seg, event: "sealed", size });
  }

  /** Wait for what is in flight, then close. */
  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.closed = true;
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }
}

// writev may write less than asked (signals, ENOSPC on the tail): both writers continue where
// it stopped. IOV_MAX is 1024 on Linux.

async function writeAllAt(fh: fsp.FileHandle, bufs: Buffer[], pos: number): Promise<void> {
  let list = bufs;
  while (list.length) {
    const chunk = list.length > 1024 ? list.slice(0, 1024) : list;
    const { bytesWritten } = await fh.writev(chunk, pos);
    pos += bytesWritten;
    list = unwritten(list, chunk, bytesWritten);
  }
}

function writeAllAtSync(fd: number, bufs: Buffer[], pos: number): void {
  let list = bufs;
  while (list.length) {
    const chunk = list.length > 1024 ? list.slice(0, 1024) : list;
    const bytesWritten = writevSync(fd, chunk, pos);
    pos += bytesWritten;
    list = unwritten(list, chunk, bytesWritten);
  }
}

/** What is left of `list` after a writev of its first buffers (`chunk`) wrote `bytesWritten`. */
function unwritten(list: Buffer[], chunk: Buffer[], bytesWritten: number): Buffer[] {
  const want = chunk.reduce((n, b) => n + b.length, 0);
  if (bytesWritten === 0 && want > 0) throw new Error("write returned 0 bytes");
  if (bytesWritten === want) return list.slice(chunk.length);
  // Partial: drop what was written and go on with the rest.
  let left = bytesWritten;
  const rest: Buffer[] = [];
  for (const b of list) {
    if (left >= b.length) {
      left -= b.length;
      continue;
    }
    rest.push(left ? b.subarray(left) : b);
    left = 0;
  }
  return rest;
}
