// Fill a spool with many messages fast (no fsync, records appended in big batches): for tests
// of listing big queues and for the big-queue benchmark (100,000 and 1,000,000 messages).
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { newQueueId } from "../../src/spool/format.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";

export interface FillOptions {
  /** Recipient domain of message i (default "remote.test"). */
  domain?: (i: number) => string;
  /** Pending recipients tried this many times (default 0: "queued"). */
  attempts?: number;
  nowMs?: number;
}

/** Write n messages into spoolDir's journal; returns their ids in queue (arrival) order. */
export async function fillSpool(spoolDir: string, n: number, opts: FillOptions = {}): Promise<string[]> {
  const spool = new JournalSpool({ dir: spoolDir, noSync: true, minFree: 0 });
  await spool.init();
  await spool.recover();
  const now = opts.nowMs ?? Date.now();
  const iso = new Date(now).toISOString();
  const domain = opts.domain ?? (() => "remote.test");
  const body = Buffer.from("Subject: filler\r\nFrom: alice@origin.test\r\n\r\nfiller body\r\n");
  const base = {
    ...newMessage({ sender: "alice@origin.test", recipients: [newRecipient("bob@remote.test")], nowMs: now, client: { ip: "127.0.0.1", helo: "fill.test" } }),
    nextAttemptAt: new Date(now + 3_600_000).toISOString(),
    size: body.length,
  };
  const ids: string[] = [];
  const BATCH = 2000;
  for (let start = 0; start < n; start += BATCH) {
    const puts: Promise<void>[] = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) {
      // Strictly increasing timestamps keep the ids in the order they were made.
      const id = newQueueId(now + i, Buffer.from([i >>> 24, (i >>> 16) & 255, (i >>> 8) & 255, i & 255]));
      const d = i === 0 ? "remote.test" : domain(i);
      const at = opts.attempts ?? 0;
      const meta: MessageMeta = {
        ...base,
        id,
        recipients: [
          {
            address: i === 0 ? "bob@remote.test" : `rcpt${i}@${d}`,
            domain: d,
            status: "pending",
            attempts: i === 0 ? 0 : at,
            history: at && i ? [{ at: iso, outcome: "transient", status: "4.7.1", reply: "451 4.7.1 greylisted", remote: true }] : [],
          },
        ],
      };
      puts.push(spool.commitMessage(id, meta, body));
      ids.push(id);
    }
    await Promise.all(puts);
  }
  await spool.close();
  return ids;
}
