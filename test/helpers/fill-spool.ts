// Fill a spool with many messages fast (no fsync, one real put as the template): for tests of
// listing big queues and for the `mxd queue list` timing with 100,000 messages.
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FsSpool } from "../../src/spool/fs-spool.js";
import { newQueueId } from "../../src/spool/format.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";

export interface FillOptions {
  /** Recipient domain of message i (default "remote.test"). */
  domain?: (i: number) => string;
  /** Pending recipients tried this many times (default 0: "queued"). */
  attempts?: number;
  nowMs?: number;
}

/** Write n messages into spoolDir/queue; returns their ids in queue (arrival) order. */
export async function fillSpool(spoolDir: string, n: number, opts: FillOptions = {}): Promise<string[]> {
  const spool = new FsSpool({ dir: spoolDir, noSync: true });
  await spool.init();
  const now = opts.nowMs ?? Date.now();
  const iso = new Date(now).toISOString();
  const domain = opts.domain ?? (() => "remote.test");
  const template = await spool.put(
    { ...newMessage({ sender: "alice@origin.test", recipients: [newRecipient("bob@remote.test")], nowMs: now, client: { ip: "127.0.0.1", helo: "fill.test" } }), nextAttemptAt: new Date(now + 3_600_000).toISOString() },
    Buffer.from("Subject: filler\r\nFrom: alice@origin.test\r\n\r\nfiller body\r\n"),
  );
  const base = JSON.parse(readFileSync(spool.metaPath(template.id), "utf8")) as MessageMeta;
  const eml = join(spool.queueDir, template.id + ".eml");
  const ids: string[] = [template.id];
  for (let i = 1; i < n; i++) {
    // Strictly increasing timestamps keep the ids in the order they were made.
    const id = newQueueId(now + i, Buffer.from([i >>> 24, (i >>> 16) & 255, (i >>> 8) & 255, i & 255]));
    const d = domain(i);
    const at = opts.attempts ?? 0;
    const meta: MessageMeta = {
      ...base,
      id,
      recipients: [
        {
          address: `rcpt${i}@${d}`,
          domain: d,
          status: "pending",
          attempts: at,
          history: at ? [{ at: iso, outcome: "transient", status: "4.7.1", reply: "451 4.7.1 greylisted", remote: true }] : [],
        },
      ],
    };
    writeFileSync(spool.metaPath(id), JSON.stringify(meta));
    copyFileSync(eml, join(spool.queueDir, id + ".eml"));
    ids.push(id);
  }
  return ids;
}
