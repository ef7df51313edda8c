// The octets a delivery sends for a queued message: the DKIM-Signature fields computed at
// acceptance (meta.dkim), then the stored message (which starts with mxd's Received field).
// The signature is not part of the stored bytes because it is known only at the end of DATA,
// when the body (in the journal or a body file) has already been written.
import { Readable } from "node:stream";
import type { MessageMeta } from "../core/envelope.js";
import type { BodyLocation } from "../spool/spool.js";

export function deliveredMessage(meta: Pick<MessageMeta, "dkim">, openBody: () => Readable): Readable {
  const fields = meta.dkim;
  if (!fields?.length) return openBody();
  const head = Buffer.from(fields.join(""), "latin1");
  return Readable.from(
    (async function* () {
      yield head;
      // for await: the body's errors end this stream; destroying this stream destroys the body.
      for await (const chunk of openBody()) yield chunk as Buffer;
    })(),
    { objectMode: false },
  );
}

/** The same for a courier in another thread: the fields to send first, and where the stored message is. */
export async function locateDelivered(meta: Pick<MessageMeta, "dkim">, locateBody: () => Promise<BodyLocation>): Promise<{ head?: string; body: BodyLocation }> {
  const body = await locateBody();
  return meta.dkim?.length ? { head: meta.dkim.join(""), body } : { body };
}
