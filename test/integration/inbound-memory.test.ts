// Memory per connection stays bounded whatever the message size: a 64 MB message streams to the
// spool without 64 MB of heap, and arrives byte for byte (hash) in the .eml after the Received
// header.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { once } from "node:events";
import { cleanup, queuedId, session, startInbound } from "../helpers/inbound.js";
import { liveMemorySampler } from "../helpers/memory.js";

after(cleanup);

function* body(total: number): Generator<Buffer> {
  yield Buffer.from("Subject: big inbound\r\n\r\n");
  let made = 0;
  let i = 0;
  while (made < total) {
    const lines: string[] = [];
    let len = 0;
    while (len < 65536) {
      const l = `line ${i++} ` + "0123456789abcdefghijklmnopqrstuvwxyz".repeat(2) + "\r\n";
      lines.push(l);
      len += l.length;
    }
    made += len;
    yield Buffer.from(lines.join(""));
  }
}

test("a 64 MB message streams to disk with bounded memory and arrives byte for byte", { timeout: 60_000 }, async () => {
  const total = 64 * 1024 * 1024;
  const inb = await startInbound({ limits: { messageSize: "100MB", dataTimeout: "30s" } });
  const want = createHash("sha256");
  for (const b of body(total)) want.update(b);
  const wantHash = want.digest("hex");

  const sampler = liveMemorySampler();
  let peak = 0;
  try {
    const c = await session(inb.port);
    await c.cmd("MAIL FROM:<big@client.test>", 250);
    await c.cmd("RCPT TO:<rcpt@example.net>", 250);
    await c.cmd("DATA", 354);
    for (const b of body(total)) {
      if (!c.socket.write(b)) await once(c.socket, "drain");
    }
    c.write(".\r\n");
    const id = queuedId(await c.reply(30_000));
    peak = sampler.stop();
    // Hash the spool file past mxd's Received header (it ends at the first line not starting with TAB).
    const got = createHash("sha256");
    let skipping = true;
    let carry = Buffer.alloc(0);
    for await (const chunk of inb.spool.openBody(id)) {
      if (!skipping) {
        got.update(chunk as Buffer);
        continue;
      }
      carry = Buffer.concat([carry, chunk as Buffer]);
      const m = /^Received: [^\r]*\r\n(?:\t[^\r]*\r\n)*/.exec(carry.toString("latin1"));
      if (m) {
        got.update(carry.subarray(m[0].length));
        skipping = false;
      }
    }
    assert.equal(got.digest("hex"), wantHash, "spooled bytes differ from what was sent");
    // Buffering the message would hold >= 64 MB; the bound sits at half of that.
    assert.ok(peak < 32 * 1024 * 1024, `memory grew by ${(peak / 1048576).toFixed(1)} MB while receiving 64 MB`);
    console.log(`# inbound 64 MB: peak live memory growth ${(peak / 1048576).toFixed(1)} MB`);
  } finally {
    sampler.stop();
  }
});
