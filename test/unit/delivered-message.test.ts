// What a delivery sends: the stored DKIM-Signature fields, then the stored message; errors of
// the stored body reach the reader; without signatures the body stream is passed as it is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { deliveredMessage } from "../../src/queue/delivered-message.js";
import { deliverySize } from "../../src/core/envelope.js";

async function read(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test("signature fields first, then the stored bytes; the size counts both", async () => {
  const meta = { size: 12, dkim: ["DKIM-Signature: a\r\n", "DKIM-Signature: b\r\n"] };
  const out = await read(deliveredMessage(meta, () => Readable.from([Buffer.from("Received: x\r\n"), Buffer.from("\r\nhi")])));
  assert.equal(out.toString(), "DKIM-Signature: a\r\nDKIM-Signature: b\r\nReceived: x\r\n\r\nhi");
  assert.equal(deliverySize(meta), 12 + 38);
  assert.equal(deliverySize({ size: 12 }), 12);
});

test("no signatures: the body stream itself", () => {
  const body = Readable.from([Buffer.from("x")]);
  assert.equal(deliveredMessage({}, () => body), body);
  assert.equal(deliveredMessage({ dkim: [] }, () => body), body);
});

test("an error of the stored body ends the delivered stream with that error", async () => {
  const failing = new Readable({
    read() {
      this.destroy(new Error("segment ends early"));
    },
  });
  await assert.rejects(read(deliveredMessage({ dkim: ["DKIM-Signature: a\r\n"] }, () => failing)), /segment ends early/);
});
