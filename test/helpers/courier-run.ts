// Small pieces shared by the courier-level TLS tests (tls-policy, mta-sts): a logger whose
// JSON lines the test reads, a remote MX sink stopped with the test, a one-recipient request.
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/io/log.js";
import type { Courier, DeliveryRequest, RecipientResult } from "../../src/delivery/courier.js";
import { startMxSink, type MxSink, type SinkOptions } from "./mx-sink.js";

type TestContext = { after: (fn: () => unknown) => void };

/** A debug-level logger whose lines are parsed into `lines`. */
export function memoryLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString("utf8").split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger("debug", out), lines };
}

export async function sink(t: TestContext, o: SinkOptions): Promise<MxSink> {
  const s = await startMxSink(o);
  t.after(() => s.close());
  return s;
}

const MSG = "From: a@origin.test\r\nTo: b@example\r\nSubject: tls\r\n\r\nhello\r\n";

/** One message from a@origin.test to u@DOMAIN, with the queue id `id`. */
export function oneRecipient(domain: string, id: string): DeliveryRequest {
  return { id, sender: "a@origin.test", domain, recipients: [{ address: `u@${domain}` }], openBody: () => Readable.from([Buffer.from(MSG)]), size: MSG.length, eightBit: false, smtputf8: false };
}

export async function deliverOne(c: Courier, domain: string, id: string): Promise<RecipientResult> {
  const r = await c.deliver(oneRecipient(domain, id));
  assert.equal(r.length, 1);
  return r[0]!;
}
