// The journal spool (docs/spool.md): every accepted message and every state change is a
// checksummed record appended to a segment file and made durable by group commit
// (spool/group-commit.ts): one fdatasync per batch instead of two files, two fsyncs, two
// renames and a directory fsync per message.
//
// Layout under spoolDir:
//   journal/NNNNNNNN.seg   segments: MSG (state + body), STATE, RCPTS (recipient deltas) and DONE
//                          records (journal-format.ts, state-delta.ts)
//   bodies/<ID>.eml        bodies larger than inlineMax (written and fsynced on their own)
//   dead/                  entries that could not be read or delivered (<ID>.json, .eml, .reason)
//   queue/                 the previous per-message layout; migrated into the journal at start
//
// In memory there is one small entry per queued message: where its body and its current
// state are. States are read back from the segment when needed, so memory does not grow with
// the size of states. A message counts as queued exactly when its MSG record is intact and no
// DONE record follows it.
//
// Segments are deleted oldest first, once nothing in them is current: a DONE or STATE record
// must outlive the records it supersedes, so a segment waits for every older one. A deferred
// message would pin its segment — and so every newer one — forever: when the journal holds
// more than `compactAfterSegments` sealed segments, the live messages of the oldest are
// copied to the head (a new MSG record with the current state) and the segment is deleted.
//
// A message with many recipients is not rewritten whole for every domain that finishes: the
// caller of update() names the recipients it changed, and the spool appends an RCPTS record
// with only those (and the few message-level fields a delivery run changes) — a delta on the
// message's last full record — until the chain of deltas would outgrow that record, when it
// writes a full STATE again (state-delta.ts chooseRecord). The current state is the last full
// record with its chain folded in; every reader (load, scan, bury, salvage, compaction) folds.
import { promises as fsp, createReadStream, existsSync, readSync, constants as FS } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { MessageMeta, RecipientState } from "../core/envelope.js";
import { MxdError } from "../core/errors.js";
import type { BodyLocation, ScanProblem, Spool, SpoolWriter } from "./spool.js";
import { decodeMeta, decodeMetaForIndex, isQueueId, newQueueId, parseState, validateMeta } from "./format.js";
import { DEFAULT_CHAIN_LIMITS, changedIndices, chooseRecord, decodeDelta, deltaHead, encodeDelta, foldDelta, type ChainLimits } from "./state-delta.js";
import { FLAG_EXTERNAL_BODY, HEADER_SIZE, RecordType, encodeRecord, segmentName, segmentNumber } from "./journal-format.js";
import { GroupCommitLog } from "./group-commit.js";
import { replaySegment, type Damage } from "./journal-replay.js";
import { FsSpool } from "./fs-spool.js";
import { readDirOrEmpty, readFileHead, syncDir, writeFileSynced } from "../io/durable-file.js";
import { EnvelopeSalvager, type SalvagedEnvelope } from "./salvage.js";
import { RecentBodies } from "./recent-bodies.js";

/** Reads up to this many bytes are synchronous (readAt). */
const SYNC_READ_MAX = 64 * 1024;
/** Memory for the bodies of just-accepted messages (their first attempt reads none back). */
const RECENT_BODIES_BYTES = 8 * 1024 * 1024;

export interface JournalSpoolOptions {
  dir: string;
  now?: () => number;
  /** Skip fsync (tests of logic only; never in production). */
  noSync?: boolean;
  /** Rotate segments at this size (default 64 MB). */
  segmentSize?: number;
  /** Bodies up to this size are kept in the journal record (default 256 KB). */
  inlineMax?: number;
  /** Refuse new mail while the file system has less free space than this (bytes; 0 = never). */
  minFree?: number;
  /** Compact the oldest segment when more sealed segments than this exist (default 4). */
  compactAfterSegments?: number;
  /** Open for reading only: no new segment, no migration, no compaction (the CLI's list/show). */
  readOnly?: boolean;
  /** Test hook passed to the group commit (simulated write/sync failures). */
  faultHook?: (batchBytes: number) => void;
  /** Free bytes of the spool's file system (default: statfs); tests inject a full disk. */
  freeSpace?: () => Promise<number>;
  /** When update() writes a recipient delta instead of a full state (state-delta.ts). */
  chainLimits?: ChainLimits;
}

interface Entry {
  /** Segment of the MSG record; the body follows its state there unless `external` (bodies/). */
  msgSeg: number;
  external: boolean;
  bodyOff: number;
  bodyLen: number;
  /** Segment, offset and length of the current state JSON. */
  stSeg: number;
  stOff: number;
  stLen: number;
}

/** Bytes an entry keeps live in its MSG record's segment: the record's header and inline body. */
function msgCost(e: Entry): number {
  return HEADER_SIZE + e.bodyLen;
}

/**
 * Bytes its current state keeps live in stSeg: the state inside the MSG record (it ends where
 * the body starts; its header is counted in msgCost), or a STATE record with its own header.
 */
function stCost(e: Entry): number {
  return e.stLen + (e.stSeg === e.msgSeg && e.stOff + e.stLen === e.bodyOff ? 0 : HEADER_SIZE);
}

/** One RCPTS record of a message's chain: where its delta JSON is. */
interface DeltaRef {
  seg: number;
  off: number;
  len: number;
}

/** The deltas on a message's current full record, oldest first; bytes: their records' sizes. */
interface Chain {
  items: DeltaRef[];
  bytes: number;
}

/** Bytes a delta keeps live in its segment: its whole record. */
function deltaCost(d: DeltaRef): number {
  return HEADER_SIZE + d.len;
}

interface SegInfo {
  size: number;
  live: number;
  sealed: boolean;
  /** Open body streams: the file is not deleted under them. */
  readers: number;
}

export interface SpoolCheckReport {
  segments: { seg: number; size: number; records: number; damage: Damage[] }[];
  messages: number;
  problems: string[];
}

export class JournalSpool implements Spool {
  readonly dir: string;
  readonly journalDir: string;
  readonly bodiesDir: string;
  readonly deadDir: string;
  readonly legacyQueueDir: string;
  private readonly now: () => number;
  private readonly sync: boolean;
  readonly inlineMax: number;
  /** Segments that existed before this process opened the spool (replayed by recover()). */
  private preexisting: number[] | undefined;
  private readonly o: JournalSpoolOptions;
  private readonly index = new Map<string, Entry>();
  /** Inline bodies of messages just accepted, for their first attempt (recent-bodies.ts). */
  private readonly recent = new RecentBodies(RECENT_BODIES_BYTES);
  private readonly segs = new Map<number, SegInfo>();
  private readonly readFds = new Map<number, Promise<fsp.FileHandle>>();
  private log: GroupCommitLog | undefined;
  private recovered: Promise<void> | undefined;
  private recoveryDone = false;
  private readonly locks = new Map<string, Promise<unknown>>();
  private compacting = false;
  private freeCache = { at: 0, bytes: Infinity };
  private writtenSinceStat = 0;
  readonly problems: ScanProblem[] = [];
  readonly damage: { seg: number; damage: Damage }[] = [];
  /**
   * Recipient deltas (only messages that have some): kept apart from the index so that the
   * 100,000 ordinary entries do not grow by a field.
   */
  private readonly chains = new Map<string, Chain>();
  /** Messages whose last update() failed: the next one writes the whole state (the failed delta's changes are in no record). */
  private readonly fullNext = new Set<string>();
  /** Recipient deltas found at replay that do not apply (their base or an earlier delta is missing); `mxd spool check` reports them. */
  readonly chainDamage: string[] = [];
  /** Deltas of ids not queued at that point of the replay, and where: damage unless a DONE or a MSG record follows. */
  private readonly orphanDeltas = new Map<string, string>();
  /**
   * Deltas found at replay that do not follow their message's current state, per message:
   * damage unless a later MSG record (compaction's copy, which supersedes every older record of
   * the message) or DONE follows.
   */
  private readonly strayDeltas = new Map<string, string[]>();

  constructor(opts: JournalSpoolOptions) {
    this.o = opts;
    this.dir = opts.dir;
    this.journalDir = join(opts.dir, "journal");
    this.bodiesDir = join(opts.dir, "bodies");
    this.deadDir = join(opts.dir, "dead");
    this.legacyQueueDir = join(opts.dir, "queue");
    this.now = opts.now ?? Date.now;
    this.sync = !opts.noSync;
    this.inlineMax = opts.inlineMax ?? 256 * 1024;
  }

  /**
   * Create the directories and open a new head segment. Fast whatever the queue size: the
   * existing segments are replayed by recover(), which may run while new mail is accepted
   * (new records go to the new segment; replay only reads older ones).
   */
  async init(): Promise<{ cleaned: number }> {
    if (this.o.readOnly) return { cleaned: 0 };
    for (const d of [this.dir, this.journalDir, this.bodiesDir, this.deadDir]) await fsp.mkdir(d, { recursive: true });
    const existing = await this.segmentNumbers();
    this.preexisting = existing;
    const first = (existing.length ? existing[existing.length - 1]! : 0) + 1;
    for (const n of existing) this.segs.set(n, { size: 0, live: 0, sealed: true, readers: 0 });
    this.log = new GroupCommitLog({
      dir: this.journalDir,
      firstSegment: first,
      segmentSize: this.o.segmentSize ?? 64 * 1024 * 1024,
      sync: this.sync,
      faultHook: this.o.faultHook,
      onSegment: (e) => {
        if (e.event === "created") this.segs.set(e.seg, { size: 0, live: 0, sealed: false, readers: 0 });
        else {
          const s = this.segs.get(e.seg);
          if (s) {
            s.sealed = true;
            s.size = e.size;
          }
          this.maybeCollect();
        }
      },
    });
    return { cleaned: 0 };
  }

  private async segmentNumbers(): Promise<number[]> {
    const names = await readDirOrEmpty(this.journalDir);
    return names
      .map(segmentNumber)
      .filter((n): n is number => n !== undefined)
      .sort((a, b) => a - b);
  }

  /** Replay the journal and migrate the old layout (once; later calls wait for the first). */
  recover(): Promise<void> {
    this.recovered ??= this.doRecover();
    return this.recovered;
  }

  private async doRecover(): Promise<void> {
    for (const n of this.preexisting ?? (await this.segmentNumbers())) await this.replay(n);
    for (const [id, where] of this.orphanDeltas) this.chainDamage.push(`${where}: recipient delta of ${id}, whose message record is missing; ignored`);
    this.orphanDeltas.clear();
    for (const found of this.strayDeltas.values()) this.chainDamage.push(...found);
    this.strayDeltas.clear();
    if (!this.o.readOnly) {
      await this.migrateLegacy();
      await this.cleanOrphanBodies();
    }
    this.recoveryDone = true;
    this.maybeCollect();
  }

  private async replay(n: number): Promise<void> {
    const info = this.segs.get(n) ?? { size: 0, live: 0, sealed: true, readers: 0 };
    this.segs.set(n, info);
    const { size } = await replaySegment(
      join(this.journalDir, segmentName(n)),
      (r) => {
        const { head } = r;
        if (head.type === RecordType.Done) {
          this.drop(head.id);
          this.orphanDeltas.delete(head.id);
          this.strayDeltas.delete(head.id);
          return;
        }
        if (head.type === RecordType.Rcpts) {
          this.replayDelta(n, r.off, head.id, r.state);
          return;
        }
        const stOff = r.off + HEADER_SIZE;
        if (head.type === RecordType.Msg) {
          // A new copy of the message (compaction moved it): deltas left behind in a segment
          // that outlived the old copy's segment apply to nothing now, and that is no damage.
          this.orphanDeltas.delete(head.id);
          this.strayDeltas.delete(head.id);
          this.drop(head.id);
          const external = (head.flags & FLAG_EXTERNAL_BODY) !== 0;
          this.setEntry(head.id, msgEntry(n, r.off, head.stateLen, head.bodyLen, external));
          return;
        }
        // STATE of a message whose MSG record is gone (removed, then its segment deleted): ignore.
        const e = this.index.get(head.id);
        if (!e) return;
        this.charge(e.stSeg, -stCost(e));
        e.stSeg = n;
        e.stOff = stOff;
        e.stLen = head.stateLen;
        this.charge(n, stCost(e));
        this.dropChain(head.id);
      },
      (d) => this.damage.push({ seg: n, damage: d }),
    );
    info.size = size;
  }

  /**
   * An RCPTS record at replay: it joins the chain of its message when it names the message's
   * current full record and is the next delta on it; otherwise a record it depends on was lost
   * (damage in the middle of a segment) and it is ignored — the state stays the consistent
   * older one, so at worst a recipient is attempted again, never forgotten.
   */
  private replayDelta(seg: number, off: number, id: string, payload: Buffer): void {
    const where = `${segmentName(seg)} at ${off}`;
    const e = this.index.get(id);
    if (!e) {
      // Its message was removed and the MSG record's segment deleted (a DONE follows), or the
      // MSG record itself is damaged (no DONE follows: reported after the replay).
      this.orphanDeltas.set(id, where);
      return;
    }
    const h = deltaHead(payload);
    const chain = this.chains.get(id);
    const seq = (chain?.items.length ?? 0) + 1;
    if (!h || h.base[0] !== e.stSeg || h.base[1] !== e.stOff - HEADER_SIZE || h.seq !== seq) {
      const found = this.strayDeltas.get(id) ?? [];
      found.push(`${where}: recipient delta ${h ? h.seq : "?"} of ${id} does not follow its current state (expected delta ${seq} on the record at ${segmentName(e.stSeg)} ${e.stOff - HEADER_SIZE}); ignored`);
      this.strayDeltas.set(id, found);
      return;
    }
    this.addDelta(id, { seg, off: off + HEADER_SIZE, len: payload.length });
  }

  private addDelta(id: string, d: DeltaRef): void {
    let c = this.chains.get(id);
    if (!c) this.chains.set(id, (c = { items: [], bytes: 0 }));
    c.items.push(d);
    c.bytes += deltaCost(d);
    this.charge(d.seg, deltaCost(d));
  }

  private dropChain(id: string): void {
    const c = this.chains.get(id);
    if (!c) return;
    this.chains.delete(id);
    for (const d of c.items) this.charge(d.seg, -deltaCost(d));
  }

  private setEntry(id: string, e: Entry): void {
    this.index.set(id, e);
    this.charge(e.msgSeg, msgCost(e));
    this.charge(e.stSeg, stCost(e));
  }

  private drop(id: string): Entry | undefined {
    this.recent.drop(id);
    const e = this.index.get(id);
    if (!e) return undefined;
    this.index.delete(id);
    this.charge(e.msgSeg, -msgCost(e));
    this.charge(e.stSeg, -stCost(e));
    this.dropChain(id);
    this.fullNext.delete(id);
    return e;
  }

  private charge(seg: number, bytes: number): void {
    const s = this.segs.get(seg);
    if (s) s.live += bytes;
  }

  // ------------------------------------------------------------------ writing

  async begin(): Promise<SpoolWriter> {
    this.writable(); // a read-only or unopened spool refuses at once, before any body arrives
    if (this.o.minFree) {
      const free = await this.freeBytes();
      if (free < this.o.minFree) {
        throw new MxdError("MXD_SPOOL_FULL", `spool file system has ${free} bytes free, below the reserve of ${this.o.minFree} (spool.minFree)`);
      }
    }
    return new JournalWriter(this, newQueueId(this.now()));
  }

  private writable(): GroupCommitLog {
    if (!this.log) throw new MxdError("MXD_SPOOL_IO", this.o.readOnly ? "spool opened read-only" : "spool not initialised");
    return this.log;
  }

  /**
   * Free bytes of the spool's file system: statfs at most once a second, minus what this
   * spool wrote since (so a burst of mail cannot run past the reserve between two checks).
   */
  private async freeBytes(): Promise<number> {
    const t = this.now();
    if (t - this.freeCache.at < 1000) return this.freeCache.bytes - this.writtenSinceStat;
    let bytes: number;
    try {
      if (this.o.freeSpace) bytes = await this.o.freeSpace();
      else {
        const s = await fsp.statfs(this.dir);
        bytes = s.bavail * s.bsize;
      }
    } catch {
      bytes = Infinity;
    }
    this.freeCache = { at: t, bytes };
    this.writtenSinceStat = 0;
    return bytes;
  }

  /** A writer's message, made durable: the MSG record is appended and synced. */
  async commitMessage(id: string, meta: MessageMeta, inline: Buffer | null): Promise<void> {
    const log = this.writable();
    const state = encodeState(meta);
    const rec = encodeRecord(RecordType.Msg, id, state, inline, inline ? 0 : FLAG_EXTERNAL_BODY);
    this.writtenSinceStat += rec.length;
    const [p] = await log.append([rec]);
    this.setEntry(id, msgEntry(p!.seg, p!.off, state.length, inline?.length ?? 0, !inline));
    if (inline && inline.length <= SYNC_READ_MAX) this.recent.put(id, inline);
  }

  async put(meta: Omit<MessageMeta, "id" | "size">, body: Buffer): Promise<MessageMeta> {
    const id = newQueueId(this.now());
    const full = { ...meta, id, size: body.length } as MessageMeta;
    if (body.length > this.inlineMax) {
      await this.writeBodyFile(id, [body]);
      try {
        await this.commitMessage(id, full, null);
      } catch (e) {
        await fsp.rm(this.externalPath(id), { force: true }).catch(() => undefined);
        throw e;
      }
    } else await this.commitMessage(id, full, body);
    return full;
  }

  externalPath(id: string): string {
    return join(this.bodiesDir, id + ".eml");
  }

  /** Bytes a writer put into a body file (counted against the free-space reserve). */
  countWritten(n: number): void {
    this.writtenSinceStat += n;
  }

  async writeBodyFile(id: string, chunks: Buffer[]): Promise<fsp.FileHandle> {
    const fh = await fsp.open(this.externalPath(id), FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o640);
    try {
      for (const c of chunks) await fh.write(c);
    } catch (e) {
      await fh.close().catch(() => undefined);
      await fsp.rm(this.externalPath(id), { force: true }).catch(() => undefined);
      throw e;
    }
    return fh;
  }

  async syncBodyFile(fh: fsp.FileHandle): Promise<void> {
    if (this.sync) await fh.sync();
    await fh.close();
    if (this.sync) await syncDir(this.bodiesDir);
  }

  /** Serialise every change to one message (update, remove, bury, compaction's copy). */
  private withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return run;
  }

  /**
   * Record the new state of a queued message. `changed`: the recipients (elements of
   * meta.recipients) changed since this message's previous update() — besides them only the
   * members in DELTA_FIELDS may differ — lets the spool append a delta instead of the whole
   * state (state-delta.ts decides); without it the whole state is written.
   */
  update(meta: MessageMeta, changed?: Iterable<RecipientState>): Promise<void> {
    return this.withLock(meta.id, async () => {
      const log = this.writable();
      const e = this.index.get(meta.id);
      if (!e) throw notFound(meta.id);
      let rec: ReturnType<JournalSpool["stateRecord"]>;
      let placed;
      try {
        rec = this.stateRecord(meta, e, changed);
        this.writtenSinceStat += rec.buf.length;
        [placed] = await log.append([rec.buf]);
      } catch (err) {
        // Whatever this record held is in no record now: the next one must be whole.
        this.fullNext.add(meta.id);
        throw err;
      }
      this.fullNext.delete(meta.id);
      const p = placed!;
      const cur = this.index.get(meta.id);
      if (!cur) return; // removed while the record was written: the DONE record came first
      if (rec.delta) {
        this.addDelta(meta.id, { seg: p.seg, off: p.off + HEADER_SIZE, len: rec.len });
      } else {
        this.charge(cur.stSeg, -stCost(cur));
        cur.stSeg = p.seg;
        cur.stOff = p.off + HEADER_SIZE;
        cur.stLen = rec.len;
        this.charge(cur.stSeg, stCost(cur));
        this.dropChain(meta.id);
      }
      this.maybeCollect();
    });
  }

  /** The record for a new state: a delta on the current full record when it pays, else the whole state. */
  private stateRecord(meta: MessageMeta, e: Entry, changed: Iterable<RecipientState> | undefined): { buf: Buffer; len: number; delta: boolean } {
    const limits = this.o.chainLimits ?? DEFAULT_CHAIN_LIMITS;
    const chain = this.chains.get(meta.id);
    const count = chain?.items.length ?? 0;
    // Cheap refusals first: no delta is encoded for a small state or a full chain.
    if (changed && !this.fullNext.has(meta.id) && e.stLen >= limits.minFull && count < limits.maxDeltas) {
      const at = changedIndices(meta.recipients, changed);
      if (at) {
        const d = encodeDelta([e.stSeg, e.stOff - HEADER_SIZE], count + 1, meta, at);
        if (chooseRecord({ fullLen: e.stLen, chainCount: count, chainBytes: chain?.bytes ?? 0, deltaLen: HEADER_SIZE + d.length }, limits) === "delta") {
          return { buf: encodeRecord(RecordType.Rcpts, meta.id, d, null), len: d.length, delta: true };
        }
      }
    }
    const state = encodeState(meta);
    return { buf: encodeRecord(RecordType.State, meta.id, state, null), len: state.length, delta: false };
  }

  remove(id: string): Promise<void> {
    return this.withLock(id, async () => {
      const log = this.writable();
      if (!this.index.has(id)) return;
      await log.append([encodeRecord(RecordType.Done, id, null, null)]);
      const e = this.drop(id);
      if (e?.external) await fsp.rm(this.externalPath(id), { force: true }).catch(() => undefined);
      this.maybeCollect();
    });
  }

  /** Move an entry to dead/ (<ID>.json as stored, <ID>.eml, <ID>.reason), then out of the queue. */
  bury(id: string, reason: string): Promise<void> {
    return this.withLock(id, async () => {
      const e = this.index.get(id);
      if (!e) return;
      const stamp = new Date(this.now()).toISOString();
      const state = await this.currentState(id, e);
      await writeFileSynced(join(this.deadDir, id + ".json"), state, this.sync);
      if (e.external) {
        await fsp.rename(this.externalPath(id), join(this.deadDir, id + ".eml")).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "ENOENT") throw err;
        });
      } else {
        await writeFileSynced(join(this.deadDir, id + ".eml"), await this.readAt(e.msgSeg, e.bodyOff, e.bodyLen), this.sync);
      }
      await writeFileSynced(join(this.deadDir, id + ".reason"), Buffer.from(`${stamp} ${reason}\n`), this.sync);
      if (this.sync) await syncDir(this.deadDir);
      await this.writable().append([encodeRecord(RecordType.Done, id, null, null)]);
      this.drop(id);
      this.maybeCollect();
    });
  }

  /** Remove a dead letter (all its files, the reason last). False when there is none. */
  async removeDead(id: string): Promise<boolean> {
    if (!isQueueId(id)) throw new MxdError("MXD_SPOOL_NOT_FOUND", `not a queue id: ${id}`);
    const reason = join(this.deadDir, id + ".reason");
    if (!existsSync(reason)) return false;
    for (const ext of [".json", ".eml"]) await fsp.rm(join(this.deadDir, id + ext), { force: true });
    await fsp.rm(reason, { force: true });
    if (this.sync) await syncDir(this.deadDir);
    return true;
  }

  /**
   * Move a dead letter back into the queue with the state `prepare` gives it: its MSG record
   * is made durable first, then the dead-letter files are removed — a crash leaves it queued
   * (and, at worst, still listed in dead/), never lost.
   */
  unbury(id: string, prepare: (meta: MessageMeta) => MessageMeta): Promise<MessageMeta> {
    if (!isQueueId(id)) return Promise.reject(new MxdError("MXD_SPOOL_NOT_FOUND", `not a queue id: ${id}`));
    return this.withLock(id, async () => {
      const deadBody = join(this.deadDir, id + ".eml");
      const meta = prepare(decodeMeta(await fsp.readFile(join(this.deadDir, id + ".json")), id));
      // Already queued: an earlier unbury wrote the MSG record and a crash came before dead/
      // was cleaned. The queued state is the truth (it may have been attempted since: a
      // recipient delivered then is pending in the dead copy); the leftover copy is dropped.
      const queued = this.index.has(id) ? await this.load(id) : undefined;
      if (!queued) {
        const size = (await fsp.stat(deadBody)).size;
        meta.size = size;
        if (size > this.inlineMax) {
          await fsp.rename(deadBody, this.externalPath(id));
          if (this.sync) await syncDir(this.bodiesDir);
          await this.commitMessage(id, meta, null);
        } else await this.commitMessage(id, meta, await fsp.readFile(deadBody));
      }
      for (const ext of [".json", ".eml"]) await fsp.rm(join(this.deadDir, id + ext), { force: true });
      await fsp.rm(join(this.deadDir, id + ".reason"), { force: true });
      if (this.sync) await syncDir(this.deadDir);
      return queued ?? meta;
    });
  }

  // ------------------------------------------------------------------ reading

  has(id: string): boolean {
    return this.index.has(id);
  }

  get size(): number {
    return this.index.size;
  }

  private fd(seg: number): Promise<fsp.FileHandle> {
    let p = this.readFds.get(seg);
    if (!p) {
      p = fsp.open(join(this.journalDir, segmentName(seg)), "r");
      p.catch(() => this.readFds.delete(seg));
      this.readFds.set(seg, p);
    }
    return p;
  }

  async readAt(seg: number, off: number, len: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(len);
    if (!len) return buf;
    const s = this.segs.get(seg);
    if (s) s.readers++;
    try {
      const fh = await this.fd(seg);
      // Small reads (states, inline bodies of ordinary size) are one pread on this thread:
      // an asynchronous read costs a thread-pool round trip of ~40 µs of CPU against ~4 µs
      // for a page-cache hit (docs/performance.md); a cold read of ≤ 64 KB blocks briefly.
      const small = len <= SYNC_READ_MAX;
      let got = 0;
      while (got < len) {
        const bytesRead = small ? readSync(fh.fd, buf, got, len - got, off + got) : (await fh.read(buf, got, len - got, off + got)).bytesRead;
        if (bytesRead === 0) throw new MxdError("MXD_SPOOL_IO", `segment ${segmentName(seg)} ends before offset ${off + len}`);
        got += bytesRead;
      }
      return buf;
    } finally {
      if (s) s.readers--;
    }
  }

  async load(id: string): Promise<MessageMeta> {
    if (!isQueueId(id)) throw new MxdError("MXD_SPOOL_NOT_FOUND", `not a queue id: ${id}`);
    const e = this.index.get(id);
    if (!e) throw notFound(id);
    // Read first (an I/O error is not a bad state), then fold and validate.
    const { base, deltas } = await this.readCurrent(id, e);
    try {
      return deltas.length ? validateMeta(foldState(base, deltas), id) : decodeMeta(base, id);
    } catch (err) {
      throw new MxdError("MXD_SPOOL_INVALID", (err as Error).message, { cause: err });
    }
  }

  /** The bytes of a message's current full record and the payloads of its deltas, oldest first. */
  private async readCurrent(id: string, e: Entry): Promise<{ base: Buffer; deltas: Buffer[] }> {
    // A snapshot of where they are: the reads below may interleave with a new update.
    const items = this.chains.get(id)?.items.slice() ?? [];
    const { stSeg, stOff, stLen } = e;
    const base = await this.readAt(stSeg, stOff, stLen);
    const deltas: Buffer[] = [];
    for (const d of items) deltas.push(await this.readAt(d.seg, d.off, d.len));
    return { base, deltas };
  }

  /**
   * The current state as one JSON text (dead/<ID>.json, compaction's copy): the full record,
   * with its deltas folded in when there are any. When they cannot be folded (the state is
   * not JSON, or a delta does not fit it: a state that load() refuses anyway) the full record
   * is taken as it is.
   */
  private async currentState(id: string, e: Entry): Promise<Buffer> {
    const { base, deltas } = await this.readCurrent(id, e);
    if (!deltas.length) return base;
    try {
      return Buffer.from(JSON.stringify(foldState(base, deltas)), "utf8");
    } catch {
      return base;
    }
  }

  /** The envelope of a state that does not decode (it is at most MAX_STATE octets). */
  async salvage(id: string): Promise<SalvagedEnvelope | undefined> {
    const e = this.index.get(id);
    if (!e) return undefined;
    const s = new EnvelopeSalvager();
    let cur: { base: Buffer; deltas: Buffer[] };
    try {
      cur = await this.readCurrent(id, e);
    } catch {
      return undefined;
    }
    let folded: Buffer | undefined;
    if (cur.deltas.length) {
      try {
        folded = Buffer.from(JSON.stringify(foldState(cur.base, cur.deltas)), "utf8");
      } catch {
        folded = undefined;
      }
    }
    s.push(folded ?? cur.base);
    const env = s.result();
    // The full record is not JSON: its deltas still say which recipients are final.
    if (env && !folded) for (const d of cur.deltas) overlayStatuses(env, d);
    return env;
  }

  openBody(id: string): Readable {
    const e = this.index.get(id);
    if (!e) {
      const r = new Readable({ read() {} });
      process.nextTick(() => r.destroy(notFound(id)));
      return r;
    }
    if (e.external) return createReadStream(this.externalPath(id), { highWaterMark: 64 * 1024 });
    if (e.bodyLen === 0) return Readable.from([]);
    if (e.bodyLen <= this.inlineMax) {
      // One positional read on the segment's cached descriptor (no open/close per delivery);
      // inline bodies are at most inlineMax, so this is the same bound as receiving them.
      // The segment is pinned (readers) from now until the read is done or abandoned, so
      // compaction cannot delete it under a delivery.
      const { msgSeg, bodyOff, bodyLen } = e;
      const release = this.pin(msgSeg);
      const r = Readable.from(
        (async function* (spool: JournalSpool) {
          try {
            yield await spool.readAt(msgSeg, bodyOff, bodyLen);
          } finally {
            release();
          }
        })(this),
        { objectMode: false },
      );
      r.once("close", release);
      return r;
    }
    const release = this.pin(e.msgSeg);
    const stream = createReadStream(join(this.journalDir, segmentName(e.msgSeg)), { start: e.bodyOff, end: e.bodyOff + e.bodyLen - 1, highWaterMark: 64 * 1024 });
    stream.once("close", release);
    stream.once("error", release);
    return stream;
  }

  /**
   * Where a queued message's bytes are, for a reader in another thread (the delivery thread):
   * small inline bodies as the bytes themselves (one read), larger ones as a file range. The
   * segment (or body file) stays in place until `release` is called (compaction waits).
   */
  async locateBody(id: string): Promise<BodyLocation> {
    const e = this.index.get(id);
    if (!e) throw notFound(id);
    if (e.external) return { kind: "file", path: this.externalPath(id), start: 0, release: () => undefined };
    if (e.bodyLen <= SYNC_READ_MAX) return { kind: "bytes", bytes: this.recent.take(id) ?? (await this.readAt(e.msgSeg, e.bodyOff, e.bodyLen)), release: () => undefined };
    const release = this.pin(e.msgSeg);
    return { kind: "file", path: join(this.journalDir, segmentName(e.msgSeg)), start: e.bodyOff, end: e.bodyOff + e.bodyLen - 1, release };
  }

  /** Keep segment `seg` from being deleted until the returned function is called (once or more). */
  private pin(seg: number): () => void {
    const s = this.segs.get(seg);
    if (s) s.readers++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (s) s.readers--;
      this.maybeCollect();
    };
  }

  async readHead(id: string, max: number): Promise<Buffer> {
    const e = this.index.get(id);
    if (!e) throw notFound(id);
    if (!e.external) {
      const recent = this.recent.get(id);
      if (recent) return recent.subarray(0, Math.min(max, recent.length));
      return this.readAt(e.msgSeg, e.bodyOff, Math.min(max, e.bodyLen));
    }
    return readFileHead(this.externalPath(id), max);
  }

  /** Ids of the queued messages in arrival order. */
  async listIds(): Promise<string[]> {
    await this.recover();
    return [...this.index.keys()].sort();
  }

  async *scan(onProblem?: (p: ScanProblem) => void): AsyncIterable<MessageMeta> {
    await this.recover();
    // States are read segment by segment in file order with large reads (a few reads per
    // 4 MB instead of one positional read per message): recovery of 100,000 messages is
    // bounded by decoding, not by system calls.
    const bySeg = new Map<number, { id: string; off: number; len: number }[]>();
    for (const [id, e] of this.index) {
      const list = bySeg.get(e.stSeg) ?? [];
      list.push({ id, off: e.stOff, len: e.stLen });
      bySeg.set(e.stSeg, list);
    }
    const CHUNK = 1024 * 1024;
    for (const seg of [...bySeg.keys()].sort((x, y) => x - y)) {
      const list = bySeg.get(seg)!.sort((x, y) => x.off - y.off);
      let i = 0;
      while (i < list.length) {
        // One read covering as many consecutive states as fit in CHUNK.
        const start = list[i]!.off;
        let j = i;
        while (j < list.length && list[j]!.off + list[j]!.len - start <= CHUNK) j++;
        if (j === i) j = i + 1;
        const last = list[j - 1]!;
        let buf: Buffer | undefined;
        const release = this.pin(seg);
        try {
          buf = await this.readAt(seg, start, last.off + last.len - start);
        } catch {
          buf = undefined; // fall back to one read per message below
        } finally {
          release();
        }
        for (let k = i; k < j; k++) {
          const { id, off, len } = list[k]!;
          const e = this.index.get(id);
          if (!e) continue; // removed meanwhile
          let meta: MessageMeta | undefined;
          try {
            // Changed since the snapshot (a delivery started meanwhile): read the current state.
            // A message with recipient deltas is folded and checked by load() (few are).
            if (buf && e.stSeg === seg && e.stOff === off && !this.chains.has(id)) meta = decodeMetaForIndex(buf.subarray(off - start, off - start + len), id);
            else meta = await this.load(id);
          } catch (err) {
            const code = (err as MxdError).code;
            if (code !== "MXD_SPOOL_NOT_FOUND") onProblem?.({ id, reason: (err as Error).message });
            continue;
          }
          meta.id = id; // the index's own string: one copy per message, however many maps hold it
          yield meta;
        }
        i = j;
      }
    }
  }

  // ------------------------------------------------------------------ upkeep

  /** Delete segments nothing refers to, oldest first; compact when old segments pile up. */
  /** Segment deletions and compactions still running (close() waits for them). */
  private readonly background = new Set<Promise<unknown>>();
  private closing = false;

  private inBackground(p: Promise<unknown>): void {
    const tracked = p.catch(() => undefined).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  private maybeCollect(): void {
    if (!this.recoveryDone || this.o.readOnly || !this.log || this.closing) return;
    const head = this.log.headSegment;
    const sealed = [...this.segs.keys()].filter((n) => n < head).sort((a, b) => a - b);
    for (const n of sealed) {
      const s = this.segs.get(n)!;
      if (s.live > 0 || s.readers > 0) break;
      this.segs.delete(n);
      const fd = this.readFds.get(n);
      this.readFds.delete(n);
      void fd?.then((f) => f.close()).catch(() => undefined);
      this.inBackground(fsp.rm(join(this.journalDir, segmentName(n)), { force: true }).catch(() => undefined));
    }
    const left = [...this.segs.keys()].filter((n) => n < head).sort((a, b) => a - b);
    const oldest = left.length ? this.segs.get(left[0]!)! : undefined;
    // Compact only a segment that something current still pins; one with open readers is
    // deleted once they finish.
    if (left.length > (this.o.compactAfterSegments ?? 4) && oldest && oldest.live > 0 && !this.compacting) {
      this.compacting = true;
      this.inBackground(
        this.compact(left[0]!).then((moved) => {
          this.compacting = false;
          // Nothing could be moved (I/O errors): try again later, not in a loop.
          if (moved) this.maybeCollect();
          else setTimeout(() => this.maybeCollect(), 10_000).unref();
        }),
      );
    }
  }

  /** Copy every message still current in segment n to the head, so n can be deleted. */
  async compact(n: number): Promise<number> {
    let moved = 0;
    const inSeg = (id: string, e: Entry) => e.msgSeg === n || e.stSeg === n || !!this.chains.get(id)?.items.some((d) => d.seg === n);
    const ids = [...this.index].filter(([id, e]) => inSeg(id, e)).map(([id]) => id);
    for (const id of ids) {
      await this.withLock(id, async () => {
        const e = this.index.get(id);
        if (!e || !inSeg(id, e)) return;
        // One full record with the deltas folded in (the new MSG record is the new base).
        const state = await this.currentState(id, e);
        const body = e.external ? null : await this.readAt(e.msgSeg, e.bodyOff, e.bodyLen);
        const [p] = await this.writable().append([encodeRecord(RecordType.Msg, id, state, body, body ? 0 : FLAG_EXTERNAL_BODY)]);
        // The copy is the state on disk: what a failed update() held is still in no record, so
        // the message's next update() must still be whole (drop() forgets that).
        const whole = this.fullNext.has(id);
        this.drop(id);
        this.setEntry(id, msgEntry(p!.seg, p!.off, state.length, body?.length ?? 0, !body));
        if (whole) this.fullNext.add(id);
        moved++;
      }).catch(() => undefined); // a failed copy leaves the message where it was
    }
    return moved;
  }

  /** The previous layout (queue/<ID>.json + .eml): copy each entry into the journal, then remove it. */
  private async migrateLegacy(): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.legacyQueueDir);
    } catch {
      return;
    }
    if (!names.some((n) => n.endsWith(".json"))) return;
    const old = new FsSpool({ dir: this.dir, now: this.now, noSync: !this.sync });
    await fsp.mkdir(join(this.dir, "tmp"), { recursive: true });
    await old.init();
    for await (const meta of old.scan((p) => this.problems.push(p))) {
      const id = meta.id;
      if (!this.index.has(id)) {
        if (meta.size > this.inlineMax) {
          await fsp.rename(old.bodyPath(id), this.externalPath(id));
          if (this.sync) await syncDir(this.bodiesDir);
          await this.commitMessage(id, meta, null);
        } else {
          await this.commitMessage(id, meta, await fsp.readFile(old.bodyPath(id)));
        }
      }
      await old.remove(id);
    }
    // Unreadable old entries go to dead/ with their reason, as before.
    for (const p of this.problems) {
      await old.bury(p.id, `unreadable spool entry (old layout): ${p.reason}`).catch(() => undefined);
    }
  }

  /** Body files without a queued message: the crash came between the body and its MSG record. */
  private async cleanOrphanBodies(): Promise<void> {
    for (const f of await fsp.readdir(this.bodiesDir).catch(() => [] as string[])) {
      const id = f.replace(/\.eml$/, "");
      if (!this.index.has(id) && !this.pendingBodies.has(id)) await fsp.rm(join(this.bodiesDir, f), { force: true }).catch(() => undefined);
    }
  }

  /** Ids whose body file is being written right now (not orphans). */
  readonly pendingBodies = new Set<string>();

  /** Verify every segment: records, damage, and whether every current state decodes. */
  async check(): Promise<SpoolCheckReport> {
    const report: SpoolCheckReport = { segments: [], messages: 0, problems: [] };
    for (const n of await this.segmentNumbers()) {
      const seg = { seg: n, size: 0, records: 0, damage: [] as Damage[] };
      const { size } = await replaySegment(join(this.journalDir, segmentName(n)), () => seg.records++, (d) => seg.damage.push(d));
      seg.size = size;
      report.segments.push(seg);
    }
    await this.recover();
    report.problems.push(...this.chainDamage);
    for await (const m of this.scan((p) => report.problems.push(`${p.id}: ${p.reason}`))) {
      void m;
      report.messages++;
    }
    for (const [id, e] of this.index) {
      if (e.external) {
        try {
          await fsp.access(this.externalPath(id));
        } catch {
          report.problems.push(`${id}: body file ${this.externalPath(id)} is missing`);
        }
      }
    }
    return report;
  }

  /** Is there a spool here at all (either layout)? A wrong spoolDir must not look like an empty queue. */
  exists(): boolean {
    return existsSync(this.journalDir) || existsSync(this.legacyQueueDir);
  }

  /** Stop writing: wait for the batch in flight. */
  async close(): Promise<void> {
    // No new compaction or deletion; those running finish first (a compaction appends to the log).
    this.closing = true;
    while (this.background.size) await Promise.all([...this.background]);
    await this.log?.close();
    for (const p of this.readFds.values()) void p.then((f) => f.close()).catch(() => undefined);
    this.readFds.clear();
  }

  get journalStats(): { batches: number; records: number; bytes: number; failures: number; segments: number } {
    return { ...(this.log?.stats ?? { batches: 0, records: 0, bytes: 0, failures: 0 }), segments: this.segs.size };
  }
}

/** The entry for a MSG record at `off` in segment `seg`. */
function msgEntry(seg: number, off: number, stateLen: number, bodyLen: number, external: boolean): Entry {
  const stOff = off + HEADER_SIZE;
  return { msgSeg: seg, external, bodyOff: stOff + stateLen, bodyLen, stSeg: seg, stOff, stLen: stateLen };
}

/** A full state with its deltas folded in, parsed but not validated; BadStateError when that fails. */
function foldState(base: Buffer, deltas: Buffer[]): unknown {
  const s = parseState(base);
  for (const d of deltas) foldDelta(s, decodeDelta(d));
  return s;
}

/** Recipient statuses a delta records, over an envelope salvaged from a full record that is not JSON. */
function overlayStatuses(env: SalvagedEnvelope, payload: Buffer): void {
  let d;
  try {
    d = decodeDelta(payload);
  } catch {
    return;
  }
  for (const [at, r] of d.rcpts) {
    const got = env.recipients[at];
    if (got && got.address === r.address && (r.status === "pending" || r.status === "delivered" || r.status === "failed")) got.status = r.status;
  }
}

/** A state as the journal stores it: compact JSON (the records are read by mxd and its tools). */
function encodeState(meta: MessageMeta): Buffer {
  return Buffer.from(JSON.stringify(meta), "utf8");
}

function notFound(id: string): MxdError {
  const e = new MxdError("MXD_SPOOL_NOT_FOUND", `no such message: ${id}`);
  (e as unknown as { errno: string }).errno = "ENOENT";
  return e;
}

/** Receives one body: in memory up to inlineMax, then spilled to bodies/<ID>.eml. */
class JournalWriter implements SpoolWriter {
  size = 0;
  private chunks: Buffer[] = [];
  private fh: fsp.FileHandle | undefined;
  private done = false;
  constructor(private readonly spool: JournalSpool, readonly id: string) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.done) throw new MxdError("MXD_SPOOL_IO", "spool writer is closed");
    try {
      if (this.fh) {
        await this.fh.write(chunk);
        this.spool.countWritten(chunk.length);
      } else {
        this.chunks.push(chunk);
        if (this.size + chunk.length > this.spool.inlineMax) {
          this.spool.pendingBodies.add(this.id);
          this.fh = await this.spool.writeBodyFile(this.id, this.chunks);
          this.chunks = [];
        }
      }
      this.size += chunk.length;
    } catch (e) {
      throw new MxdError("MXD_SPOOL_IO", `spool write failed: ${(e as Error).message}`, { cause: e });
    }
  }

  async commit(partial: Omit<MessageMeta, "id" | "size">): Promise<MessageMeta> {
    if (this.done) throw new MxdError("MXD_SPOOL_IO", "spool writer is closed");
    const meta = { ...partial, id: this.id, size: this.size } as MessageMeta;
    try {
      if (this.fh) {
        const fh = this.fh;
        this.fh = undefined;
        await this.spool.syncBodyFile(fh);
        await this.spool.commitMessage(this.id, meta, null);
      } else {
        await this.spool.commitMessage(this.id, meta, this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks));
      }
      this.done = true;
      this.chunks = [];
      this.spool.pendingBodies.delete(this.id);
      return meta;
    } catch (e) {
      await this.abort();
      throw e instanceof MxdError ? e : new MxdError("MXD_SPOOL_IO", `spool commit failed: ${(e as Error).message}`, { cause: e });
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.chunks = [];
    if (this.fh) await this.fh.close().catch(() => undefined);
    this.fh = undefined;
    if (this.spool.pendingBodies.delete(this.id)) await fsp.rm(this.spool.externalPath(this.id), { force: true }).catch(() => undefined);
  }
}
