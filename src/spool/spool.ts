// The spool interface: the only way the rest of mxd touches queued mail.
//
// Contract (see docs/spool.md):
// - A message becomes queued only when commit()/put() resolves: its bytes and its envelope
//   are then on stable storage and the next scan() will find it. Until then nothing counts.
// - A crash at any instant leaves each message either fully queued or absent; init() removes
//   leftovers of interrupted writes.
// - update() is atomic: the new state is one record (a whole state, or a delta of the
//   recipients that changed), durable when update() resolves, or nothing.
// - Bodies are streamed, never loaded whole.
import type { Readable } from "node:stream";
import type { MessageMeta, RecipientState } from "../core/envelope.js";
import type { SalvagedEnvelope } from "./salvage.js";

/** Receives one message body as it arrives; nothing is queued until commit(). */
export interface SpoolWriter {
  readonly id: string;
  /** Append bytes; resolves when the chunk is accepted (back-pressure). */
  write(chunk: Buffer): Promise<void>;
  /** Bytes written so far. */
  readonly size: number;
  /** Make the message durable and queued. meta.id and meta.size are filled in by the spool. */
  commit(meta: Omit<MessageMeta, "id" | "size">): Promise<MessageMeta>;
  /** Drop everything written (oversize, client gone, error). Never throws. */
  abort(): Promise<void>;
}

export interface ScanProblem {
  id: string;
  reason: string;
}

/**
 * Where a message's octets are, for a reader that cannot take a stream (another thread): the
 * octets themselves or a file range (`end` inclusive; to the end of the file when absent).
 */
export type BodyBytes = { kind: "bytes"; bytes: Buffer } | { kind: "file"; path: string; start: number; end?: number };

/** A located body; `release` lets the spool reclaim the file again (call it once the read is over). */
export type BodyLocation = BodyBytes & { release(): void };

export interface Spool {
  /** Create directories and clean leftovers of interrupted writes. */
  init(): Promise<{ cleaned: number }>;
  begin(): Promise<SpoolWriter>;
  /** Queue a whole message held in memory (bounces, which are small). */
  put(meta: Omit<MessageMeta, "id" | "size">, body: Buffer): Promise<MessageMeta>;
  openBody(id: string): Readable;
  /** The body's place for a reader in another thread (journal spool only). */
  locateBody?(id: string): Promise<BodyLocation>;
  /** The first `max` octets of the message (header block for bounces; small bodies whole). */
  readHead(id: string, max: number): Promise<Buffer>;
  /** Move an entry to the dead-letter folder with a reason. */
  bury(id: string, reason: string): Promise<void>;
  /** The state of a queued message; a state file that is not valid rejects with BadStateError. */
  load(id: string): Promise<MessageMeta>;
  /**
   * What can still be read of the envelope (sender, recipients) of an entry that load() refused,
   * in bounded memory; undefined when not even that is readable.
   */
  salvage(id: string): Promise<SalvagedEnvelope | undefined>;
  /**
   * Atomically replace the state of a queued message. `changed`, when the caller knows it: the
   * recipients (elements of meta.recipients) changed since this message's previous update(),
   * the rest of the state unchanged except the members in state-delta.ts DELTA_FIELDS; the
   * spool may then record only those (a recipient delta). Without it the whole state is written.
   */
  update(meta: MessageMeta, changed?: Iterable<RecipientState>): Promise<void>;
  /** Remove a message (all recipients final). */
  remove(id: string): Promise<void>;
  /** Every queued message's state; entries that cannot be read are reported through onProblem. */
  scan(onProblem?: (p: ScanProblem) => void): AsyncIterable<MessageMeta>;
}
