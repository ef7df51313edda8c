// Opens a message body that another thread located (spool/spool.ts BodyBytes): the octets
// themselves, or a range of a file (a journal segment, a body file), preceded by `head` (the
// stored DKIM-Signature fields) when there is one. Each call is a fresh stream (one per host).
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import type { BodyBytes } from "../spool/spool.js";

export function openBodyBytes(body: BodyBytes, head?: string): Readable {
  const first = head ? [Buffer.from(head, "latin1")] : [];
  if (body.kind === "bytes") {
    // Through postMessage a Buffer arrives as a plain Uint8Array: view the same memory as a Buffer.
    const u8: Uint8Array = body.bytes;
    const bytes = Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    return Readable.from([...first, ...(bytes.length ? [bytes] : [])], { objectMode: false });
  }
  const file = () => createReadStream(body.path, { start: body.start, ...(body.end !== undefined ? { end: body.end } : {}), highWaterMark: 64 * 1024 });
  if (!first.length) return file();
  return Readable.from(
    (async function* () {
      yield first[0]!;
      for await (const chunk of file()) yield chunk as Buffer;
    })(),
    { objectMode: false },
  );
}
