// One fan-out through the real queue worker and journal spool, without a network: a message to
// `rcpts` recipients over `domains` domains, a courier that answers each domain after a random
// delay (delivered, deferred or failed as `outcome` says). Used by the fan-out journal test and
// by bench/fanout-journal.ts (journal records and bytes of one fan-out).
import { join } from "node:path";
import { readdirSync } from "node:fs";
import { parseConfig } from "../../src/config.js";
import { systemClock } from "../../src/io/clock.js";
import { silentLogger } from "../../src/io/log.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { QueueManager } from "../../src/queue/worker.js";
import type { Courier, RecipientResult } from "../../src/delivery/courier.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";
import { replaySegment } from "../../src/spool/journal-replay.js";
import { RecordType } from "../../src/spool/journal-format.js";
import type { ChainLimits } from "../../src/spool/state-delta.js";

export type FanoutOutcome = (address: string) => "delivered" | "transient" | "permanent";

export interface FanoutRun {
  id: string;
  /** The in-memory state the worker last had (read back from the spool before it was removed). */
  spool: JournalSpool;
  qm: QueueManager;
  /** Records and bytes appended, by record type, over the whole run (read back from the segments). */
  records: Record<"msg" | "state" | "rcpts" | "done", { n: number; bytes: number }>;
  ms: number;
  cpuMs: number;
}

export async function runFanout(o: { dir: string; rcpts: number; domains: number; outcome?: FanoutOutcome; delayMs?: [number, number]; sync?: boolean; random?: () => number; chainLimits?: ChainLimits }): Promise<FanoutRun> {
  const random = o.random ?? Math.random;
  const [lo, hi] = o.delayMs ?? [5, 30];
  const outcome = o.outcome ?? (() => "delivered");
  const config = parseConfig({
    hostname: "mxd.test",
    spoolDir: o.dir,
    delivery: { concurrency: 100, perDomainConcurrency: 100, perHostConcurrency: 100, retry: { minDelay: "1h", maxDelay: "4h", jitter: 0 } },
    limits: { recipientsPerMessage: Math.max(100, o.rcpts) },
  });
  const spool = new JournalSpool({ dir: o.dir, noSync: !o.sync, minFree: 0, chainLimits: o.chainLimits });
  await spool.init();
  await spool.recover();
  const replies = { delivered: ["250 2.0.0 ok", "2.0.0"], transient: ["451 4.3.0 try again later", "4.3.0"], permanent: ["550 5.1.1 no such user", "5.1.1"] } as const;
  const courier: Courier = {
    async deliver(req) {
      await new Promise((r) => setTimeout(r, lo + random() * (hi - lo)));
      return req.recipients.map((r): RecipientResult => {
        const out = outcome(r.address);
        return { recipient: r.address, outcome: out, reply: replies[out][0], status: replies[out][1], remote: true, mx: `mx.${req.domain}`, ip: "192.0.2.1" };
      });
    },
    async close() {},
  };
  const qm = new QueueManager({ config, spool, courier, clock: systemClock, logger: silentLogger(), random: () => 0.5 });
  await qm.start();
  const rcpts = Array.from({ length: o.rcpts }, (_, i) => newRecipient(`r${i}@d${i % o.domains}.test`));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const meta: MessageMeta = await spool.put(newMessage({ sender: "bench@origin.test", recipients: rcpts, nowMs: Date.now(), client: { ip: "127.0.0.1" } }), Buffer.from("Subject: fan-out\r\n\r\nhello\r\n"));
  qm.enqueue(meta);
  // Done when no delivery of it is in flight and it is either gone or waiting for its retry.
  for (;;) {
    await new Promise((r) => setTimeout(r, 10));
    if (qm.deliveriesInFlight === 0 && qm.counts().active === 0) break;
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const records = { msg: { n: 0, bytes: 0 }, state: { n: 0, bytes: 0 }, rcpts: { n: 0, bytes: 0 }, done: { n: 0, bytes: 0 } };
  const names = { [RecordType.Msg]: "msg", [RecordType.State]: "state", [RecordType.Rcpts]: "rcpts", [RecordType.Done]: "done" } as const;
  const jdir = join(o.dir, "journal");
  for (const f of readdirSync(jdir).sort()) {
    await replaySegment(join(jdir, f), (r) => {
      if (r.head.id !== meta.id) return;
      const k = names[r.head.type];
      records[k].n++;
      records[k].bytes += r.size;
    });
  }
  return { id: meta.id, spool, qm, records, ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}
