// The outbound SMTP client and the courier against hand-scripted raw TCP peers
// (test/helpers/raw-smtp-peer.ts): the test decides every byte the "server" sends and checks
// every byte the client sent, plus the per-recipient outcome. This file owns 127.0.0.61-79;
// peers listen on ephemeral ports and are reached through `routes` (no DNS).
// Every test ends with courier.close() and a check that the client closed every connection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { parseConfig } from "../../src/config.js";
import type { Resolver } from "../../src/io/resolver.js";
import { nodeConnector, type Connector } from "../../src/io/connector.js";
import { silentLogger } from "../../src/io/log.js";
import { SmtpCourier } from "../../src/delivery/smtp-courier.js";
import type { DeliveryRecipient, DeliveryRequest, RecipientResult } from "../../src/delivery/courier.js";
import { acceptTransaction, greet, startRawPeer, sleep, type PeerConn, type RawPeer } from "../helpers/raw-smtp-peer.js";
import { selfSignedCert } from "../helpers/mx-sink.js";

type T = { after: (fn: () => unknown) => void };

const noDns: Resolver = {
  mx: () => Promise.reject(new Error("no DNS in this test")),
  a: () => Promise.reject(new Error("no DNS in this test")),
  aaaa: () => Promise.reject(new Error("no DNS in this test")),
};

const SLOW = 4000; // every timeout not under test
type Timeouts = Partial<Record<"greeting" | "ehlo" | "mail" | "rcpt" | "data" | "dataBlock" | "dataEnd" | "tls", number>>;

function courier(t: T, hosts: string[], o: { timeouts?: Timeouts; maxMessagesPerConnection?: number } = {}, connector: Connector = nodeConnector): SmtpCourier {
  const config = parseConfig({
    hostname: "mxd.test",
    routes: { "d.test": hosts },
    delivery: {
      ...(o.maxMessagesPerConnection ? { maxMessagesPerConnection: o.maxMessagesPerConnection } : {}),
      timeouts: { connect: 2000, greeting: SLOW, ehlo: SLOW, mail: SLOW, rcpt: SLOW, data: SLOW, dataBlock: SLOW, dataEnd: SLOW, tls: 2000, ...o.timeouts },
    },
  });
  const c = new SmtpCourier({ config, resolver: noDns, connector, logger: silentLogger(), idleTimeoutMs: 3000 });
  t.after(() => c.close());
  return c;
}

let nextHost = 61;
/** A peer on its own loopback address (127.0.0.61 …), closed after the test. */
async function peer(t: T, script: (c: PeerConn) => Promise<void>): Promise<RawPeer> {
  const host = `127.0.0.${nextHost++}`;
  if (nextHost > 79) nextHost = 61;
  const p = await startRawPeer({ host, script });
  t.after(() => p.close());
  return p;
}

const MSG = "Subject: t\r\n\r\nhello\r\n";
let qn = 0;
function req(rcpts: (string | DeliveryRecipient)[], over: Partial<DeliveryRequest> = {}): DeliveryRequest {
  return {
    id: `S${++qn}`,
    sender: "s@o.test",
    domain: "d.test",
    recipients: rcpts.map((r) => (typeof r === "string" ? { address: r } : r)),
    openBody: () => Readable.from([Buffer.from(MSG)]),
    size: MSG.length,
    eightBit: false,
    smtputf8: false,
    ...over,
  };
}

const EHLO_EXT = ["PIPELINING", "8BITMIME", "SIZE 1000000"];
/** Greeting + EHLO with the given keywords (the EHLO must name us). */
const hello = (c: PeerConn, ext: string[] = EHLO_EXT) => greet(c, ext, /^EHLO mxd\.test$/);
/** A complete pipelined transaction from s@o.test; returns the data received. */
const transaction = (c: PeerConn, rcpts: string[], final?: string) => acceptTransaction(c, "s@o.test", rcpts, final);

async function finish(p: RawPeer[], c: SmtpCourier): Promise<void> {
  await c.close();
  for (const x of p) {
    await x.allClosed(2000);
    assert.deepEqual(x.errors.map((e) => e.message), [], `script errors at ${x.address}`);
  }
}

function outcomes(r: RecipientResult[]): string[] {
  return r.map((x) => `${x.recipient} ${x.outcome} ${x.reply}`);
}

// ---------------------------------------------------------------- reply parsing

test("replies split across TCP segments, multi-line replies, exact bytes on the wire", async (t) => {
  const p = await peer(t, async (c) => {
    await c.segments("22", "0-peer.test first line\r", "\n220 ready\r\n");
    await c.expect(/^EHLO mxd\.test$/);
    await c.segments("250-peer.test\r\n250-PIPE", "LINING\r\n250-8BITMIME\r\n250 SIZE 1000", "000\r\n");
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    await c.expect(/^RCPT /);
    await c.segments("250 2.1.0 ok\r\n25", "0 2.1.5 ok\r\n250 2.1.5 ok", "\r\n");
    await c.expect(/^DATA$/);
    await c.segments("354 ", "go\r\n");
    await c.data();
    await c.segments("250-2.0.0 first\r\n", "250 2.0.0 queued as ABC\r", "\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test", "b@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 first queued as ABC", "b@d.test delivered 250 2.0.0 first queued as ABC"]);
  assert.equal(r[0]!.remote, true);
  await finish([p], cr);
  assert.equal(
    p.conns[0]!.received,
    `EHLO mxd.test\r\nMAIL FROM:<s@o.test> SIZE=${MSG.length}\r\nRCPT TO:<a@d.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\n${MSG}.\r\nQUIT\r\n`,
  );
});

test("a multi-line reply whose code changes is a protocol error: connection dropped, next host", async (t) => {
  const bad = await peer(t, async (c) => {
    await hello(c, ["8BITMIME"]);
    await c.expect(/^MAIL /, "250-2.1.0 sender\r\n550 5.1.0 ok?\r\n");
    await c.waitClose();
  });
  const good = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [bad.address, good.address]);
  const r = await cr.deliver(req(["a@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued"]);
  assert.equal(r[0]!.ip, good.host);
  await finish([bad, good], cr);
  assert.doesNotMatch(bad.conns[0]!.received, /RCPT|DATA/);
});

test("a mismatched multi-line reply after the final dot: transient 4.4.2, no other host", async (t) => {
  const bad = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"], "250-2.0.0 queued\r\n451 4.3.0 or not\r\n");
    await c.waitClose();
  });
  const other = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [bad.address, other.address]);
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.equal(r!.outcome, "transient");
  assert.equal(r!.status, "4.4.2");
  assert.equal(other.conns.length, 0);
  await finish([bad, other], cr);
});

test("an endless multi-line reply is cut off (bounded memory), not waited out", async (t) => {
  const bad = await peer(t, async (c) => {
    c.write("220 peer.test\r\n");
    await c.expect(/^EHLO/);
    const line = "250-" + "x".repeat(70) + "\r\n";
    for (let i = 0; i < 200 && !c.closed; i++) {
      c.write(line.repeat(100));
      await sleep(1);
    }
    await c.waitClose(3000);
  });
  const cr = courier(t, [bad.address]);
  const t0 = Date.now();
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.equal(r!.outcome, "transient");
  assert.match(r!.reply, /multi-line reply/);
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  await finish([bad], cr);
});

// ---------------------------------------------------------------- pipelining and 421

test("PIPELINING: the server drops the connection mid-batch → every recipient goes to the next host", async (t) => {
  const drop = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^RCPT TO:<b@/);
    c.write("250 2.1.0 ok\r\n250 2.1.5 ok\r\n");
    await sleep(20);
    c.destroy();
  });
  const good = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test", "b@d.test"]);
  });
  const cr = courier(t, [drop.address, good.address]);
  const r = await cr.deliver(req(["a@d.test", "b@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued", "b@d.test delivered 250 2.0.0 queued"]);
  await finish([drop, good], cr);
  // DATA ends the pipelined group (RFC 2920 §3.1); nothing may follow it on the broken connection.
  assert.match(drop.conns[0]!.received, /RCPT TO:<b@d\.test>\r\nDATA\r\n$/);
});

test("PIPELINING: DATA ends the MAIL/RCPT group — the server sees it before answering anything", async (t) => {
  let group = "";
  const p = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^RCPT TO:<b@/);
    // Not a byte of reply yet: a client that waits for the RCPT replies before DATA stalls here.
    await c.expect(/^DATA$/);
    group = c.received;
    c.write("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n");
    await c.data();
    c.write("250 2.0.0 queued\r\n");
  });
  const cr = courier(t, [p.address], { timeouts: { rcpt: 1500, data: 1500 } });
  const r = await cr.deliver(req(["a@d.test", "b@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued", "b@d.test delivered 250 2.0.0 queued"]);
  assert.match(group, /MAIL FROM:<s@o\.test>[^\r]*\r\nRCPT TO:<a@d\.test>\r\nRCPT TO:<b@d\.test>\r\nDATA\r\n$/);
  await finish([p], cr);
});

test("PIPELINING: every RCPT refused and DATA answered 554 → no body sent, each keeps its own reply, RSET after", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^RCPT TO:<b@/);
    await c.expect(/^DATA$/);
    c.write("250 2.1.0 ok\r\n550 5.1.1 no such user a\r\n450 4.2.1 try b later\r\n554 5.5.1 no valid recipients\r\n");
    await c.expect(/^RSET$/, "250 2.0.0 ok\r\n");
    await c.expect(/^QUIT$/, "221 bye\r\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test", "b@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test permanent 550 5.1.1 no such user a", "b@d.test transient 450 4.2.1 try b later"]);
  await finish([p], cr);
  assert.doesNotMatch(p.conns[0]!.received, /Subject: t/, "no message data");
});

test("PIPELINING: every RCPT refused but DATA answered 354 → a lone dot ends the empty data, nothing is delivered", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^DATA$/);
    c.write("250 2.1.0 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n");
    await c.expect(/^\.$/, "554 5.5.1 no valid recipients\r\n");
    await c.expect(/^RSET$/, "250 2.0.0 ok\r\n");
    await c.expect(/^QUIT$/, "221 bye\r\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test permanent 550 5.1.1 no such user"]);
  await finish([p], cr);
  assert.doesNotMatch(p.conns[0]!.received, /Subject: t/, "no message data");
});

test("PIPELINING: every RCPT refused, then 421 to the group's DATA (an error limit) → each keeps its RCPT reply, nothing more is sent", async (t) => {
  // Postfix with smtpd_hard_error_limit reached by the refused RCPTs answers the DATA behind
  // them "421 4.7.0 Error: too many errors" and closes (test/interop/delivery.test.ts has the real one).
  const p = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^RCPT TO:<b@/);
    await c.expect(/^DATA$/);
    c.write("250 2.1.0 ok\r\n550 5.1.1 no such user a\r\n450 4.2.1 try b later\r\n421 4.7.0 d.test Error: too many errors\r\n");
    await c.waitClose(3000);
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test", "b@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test permanent 550 5.1.1 no such user a", "b@d.test transient 450 4.2.1 try b later"]);
  await finish([p], cr);
  assert.match(p.conns[0]!.received, /RCPT TO:<b@d\.test>\r\nDATA\r\n$/, "no body, no RSET after the 421");
});

test("421 in the middle of a pipelined batch (server keeps the socket open): no more commands, the 421 is reported, no waiting", async (t) => {
  const busy = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^RCPT TO:<b@/);
    c.write("250 2.1.0 ok\r\n250 2.1.5 ok\r\n421 4.3.2 shutting down\r\n");
    await c.waitClose(3000); // a compliant client closes; it must not send DATA or RSET
  });
  const cr = courier(t, [busy.address]);
  const t0 = Date.now();
  const r = await cr.deliver(req(["a@d.test", "b@d.test"]));
  assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
  assert.deepEqual(outcomes(r), ["a@d.test transient 421 4.3.2 shutting down", "b@d.test transient 421 4.3.2 shutting down"]);
  assert.equal(r[0]!.remote, true);
  await finish([busy], cr);
  // The group's own DATA aside, nothing after the 421: no body, no RSET, no QUIT.
  assert.match(busy.conns[0]!.received, /RCPT TO:<b@d\.test>\r\nDATA\r\n$/);
});

test("421 in the middle of a pipelined group after a 550: that refusal stays final, the others go to the next host", async (t) => {
  // Postfix at smtpd_hard_error_limit: 550 for one recipient, then 421 and the connection ends.
  const busy = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^RCPT TO:<b@/);
    await c.expect(/^RCPT TO:<c@/);
    c.write("250 2.1.0 ok\r\n550 5.1.1 <a@d.test>: no such user\r\n421 4.7.0 too many errors\r\n");
    await c.waitClose(3000);
  });
  const good = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["b@d.test", "c@d.test"]);
  });
  const cr = courier(t, [busy.address, good.address]);
  const r = await cr.deliver(req(["a@d.test", "b@d.test", "c@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test permanent 550 5.1.1 <a@d.test>: no such user", "b@d.test delivered 250 2.0.0 queued", "c@d.test delivered 250 2.0.0 queued"]);
  await finish([busy, good], cr);
  assert.doesNotMatch(good.conns[0]!.received, /RCPT TO:<a@/, "the refused recipient is not offered again");
});

test("421 to MAIL (no PIPELINING) → next host, no RSET sent to the closing server", async (t) => {
  const busy = await peer(t, async (c) => {
    await hello(c, []);
    await c.expect(/^MAIL /, "421 4.7.0 too many connections\r\n");
    await c.waitClose(3000);
  });
  const good = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [busy.address, good.address]);
  const t0 = Date.now();
  const r = await cr.deliver(req(["a@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued"]);
  assert.ok(Date.now() - t0 < 1500);
  await finish([busy, good], cr);
  assert.doesNotMatch(busy.conns[0]!.received, /RSET/);
});

// ---------------------------------------------------------------- unexpected reply codes

test("RCPT answered 252 (any 2xx) counts as accepted: the message is sent, not silently dropped", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c, ["8BITMIME"]);
    await c.expect(/^MAIL /, "250 ok\r\n");
    await c.expect(/^RCPT /, "252 2.1.5 cannot verify, will attempt delivery\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    c.write("250 2.0.0 queued\r\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued"]);
  await finish([p], cr);
  assert.match(p.conns[0]!.received, /DATA\r\n/);
});

test("DATA answered 250 instead of 354 is a protocol error, never 'delivered'", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c, ["8BITMIME"]);
    await c.expect(/^MAIL /, "250 ok\r\n");
    await c.expect(/^RCPT /, "250 ok\r\n");
    await c.expect(/^DATA$/, "250 2.0.0 sure\r\n");
    await c.waitClose();
  });
  const cr = courier(t, [p.address]);
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.equal(r!.outcome, "transient");
  await finish([p], cr);
});

test("MAIL answered with a 3xx is a protocol error (transient), not a bounce", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c, ["8BITMIME"]);
    await c.expect(/^MAIL /, "354 what?\r\n");
    await c.waitClose();
  });
  const cr = courier(t, [p.address]);
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.equal(r!.outcome, "transient");
  await finish([p], cr);
});

// ---------------------------------------------------------------- data phase

test("connection lost after the final dot: transient 4.4.2 and no other host in this attempt", async (t) => {
  const lost = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    c.write("250 ok\r\n250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    c.destroy();
  });
  const other = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [lost.address, other.address]);
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.equal(r!.outcome, "transient");
  assert.equal(r!.status, "4.4.2");
  assert.match(r!.reply, /after end of data/);
  assert.equal(other.conns.length, 0);
  await finish([lost, other], cr);
});

const CHUNK = Buffer.alloc(12 * 5461, "abcdefghij\r\n"); // whole lines, ~64 KB
/** A body of n × 64 KB, streamed. */
function bigBody(n: number): () => Readable {
  return () =>
    Readable.from(
      (function* () {
        for (let i = 0; i < n; i++) yield CHUNK;
      })(),
    );
}

test("connection lost during DATA (before the dot) → next host, delivered once", async (t) => {
  const lost = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    c.write("250 ok\r\n250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.bytes();
    c.destroy();
  });
  let got: Buffer | undefined;
  const good = await peer(t, async (c) => {
    await hello(c);
    got = await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [lost.address, good.address]);
  const r = await cr.deliver(req(["a@d.test"], { openBody: bigBody(256), size: 10 }));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued"]);
  assert.equal(got!.length, 256 * CHUNK.length + 3);
  await finish([lost, good], cr);
});

test("an early 552 during DATA, then close: the server's verdict is used (permanent), no other host", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    c.write("250 ok\r\n250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.bytes();
    c.write("552 5.3.4 message too big for this system\r\n");
    await sleep(20);
    c.destroy();
  });
  const other = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [p.address, other.address]);
  const r = await cr.deliver(req(["a@d.test"], { openBody: bigBody(256), size: 10 }));
  assert.deepEqual(outcomes(r), ["a@d.test permanent 552 5.3.4 message too big for this system"]);
  assert.equal(other.conns.length, 0);
  await finish([p, other], cr);
});

test("the body stream fails after 354: no final dot, connection dropped, transient, no other host; a 550 RCPT stays permanent", async (t) => {
  let data = "";
  const p = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT TO:<a@/);
    await c.expect(/^RCPT TO:<x@/);
    c.write("250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.waitClose();
    data = c.received.slice(c.received.indexOf("DATA\r\n") + 6);
  });
  const other = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const body = () => {
    const s = new Readable({ read() {} });
    s.push(Buffer.from("Subject: x\r\n\r\npart one\r\n"));
    setTimeout(() => s.destroy(new Error("EIO: spool read failed")), 30);
    return s;
  };
  const cr = courier(t, [p.address, other.address]);
  const r = await cr.deliver(req(["a@d.test", "x@d.test"], { openBody: body }));
  assert.equal(r[0]!.outcome, "transient");
  assert.equal(r[0]!.status, "4.3.0");
  assert.deepEqual(outcomes(r).slice(1), ["x@d.test permanent 550 5.1.1 no such user"]);
  assert.equal(other.conns.length, 0);
  await finish([p, other], cr);
  // What was sent is a prefix of the body (the last chunk is held back for the final dot), and
  // never the "." line.
  assert.ok("Subject: x\r\n\r\npart one\r\n".startsWith(data) && !data.includes("\r\n.\r\n"), JSON.stringify(data));
});

test("openBody throwing: transient local error, the connection is closed (no leak), deliver() does not throw", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    c.write("250 ok\r\n250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.waitClose();
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(
    req(["a@d.test"], {
      openBody: () => {
        throw new Error("ENOENT: spool file gone");
      },
    }),
  );
  assert.equal(r[0]!.outcome, "transient");
  assert.match(r[0]!.reply, /ENOENT/);
  await finish([p], cr);
});

test("dot-stuffing and bare CR/LF on the wire", async (t) => {
  let got = "";
  const p = await peer(t, async (c) => {
    await hello(c);
    got = (await transaction(c, ["a@d.test"])).toString("latin1");
  });
  const chunks = [".lead\r\n", "mid\n.", "x\r", "\n..two\rbare\r\n.", "\r\n", "end"];
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test"], { openBody: () => Readable.from(chunks.map((s) => Buffer.from(s))), size: 40 }));
  assert.equal(r[0]!.outcome, "delivered");
  assert.equal(got, "..lead\r\nmid\r\n..x\r\n...two\r\nbare\r\n..\r\nend\r\n.\r\n");
  await finish([p], cr);
});

// ---------------------------------------------------------------- timeouts

const phases: { phase: keyof Timeouts; script: (c: PeerConn) => Promise<void> }[] = [
  { phase: "greeting", script: async () => {} },
  {
    phase: "ehlo",
    script: async (c) => {
      c.write("220 hi\r\n");
      await c.expect(/^EHLO/);
    },
  },
  {
    phase: "mail",
    script: async (c) => {
      await hello(c, []);
      await c.expect(/^MAIL/);
    },
  },
  {
    phase: "rcpt",
    script: async (c) => {
      await hello(c, []);
      await c.expect(/^MAIL/, "250 ok\r\n");
      await c.expect(/^RCPT/);
    },
  },
  {
    phase: "data",
    script: async (c) => {
      await hello(c, []);
      await c.expect(/^MAIL/, "250 ok\r\n");
      await c.expect(/^RCPT/, "250 ok\r\n");
      await c.expect(/^DATA/);
    },
  },
];
for (const { phase, script } of phases) {
  test(`timeout "${phase}" from the config is applied (silent server → next host)`, async (t) => {
    const silent = await peer(t, async (c) => {
      await script(c);
      await c.waitClose(3000);
    });
    const good = await peer(t, async (c) => {
      await hello(c);
      await transaction(c, ["a@d.test"]);
    });
    const cr = courier(t, [silent.address, good.address], { timeouts: { [phase]: 250 } });
    const t0 = Date.now();
    const r = await cr.deliver(req(["a@d.test"]));
    const took = Date.now() - t0;
    assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued"]);
    assert.ok(took >= 240 && took < 2000, `took ${took} ms`);
    await finish([silent, good], cr);
  });
}

test('timeout "dataEnd": no reply after the dot → transient 4.4.2, no other host', async (t) => {
  const silent = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    c.write("250 ok\r\n250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    await c.waitClose(3000);
  });
  const other = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [silent.address, other.address], { timeouts: { dataEnd: 250 } });
  const t0 = Date.now();
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(r!.outcome, "transient");
  assert.equal(r!.status, "4.4.2");
  assert.equal(other.conns.length, 0);
  await finish([silent, other], cr);
});

test('timeout "dataBlock": the server stops reading mid-DATA → the session is given up in time', async (t) => {
  const stuck = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    c.write("250 ok\r\n250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.bytes();
    c.socket.pause();
    await sleep(1000);
    c.socket.resume(); // (a paused socket would not notice the close)
    await c.waitClose(3000);
  });
  const body = bigBody(512); // 32 MB: more than the socket buffers hold
  const cr = courier(t, [stuck.address], { timeouts: { dataBlock: 300 } });
  const t0 = Date.now();
  const [r] = await cr.deliver(req(["a@d.test"], { openBody: body, size: 10 }));
  const took = Date.now() - t0;
  assert.equal(r!.outcome, "transient");
  assert.match(r!.reply, /data block/);
  assert.ok(took < 3000, `took ${took} ms`);
  await finish([stuck], cr);
});

// ---------------------------------------------------------------- EHLO / STARTTLS

test("EHLO refused with 500 → HELO, and no ESMTP parameters are used", async (t) => {
  const p = await peer(t, async (c) => {
    c.write("220 old.test SMTP\r\n");
    await c.expect(/^EHLO mxd\.test$/, "500 5.5.1 command unrecognized\r\n");
    await c.expect(/^HELO mxd\.test$/, "250 old.test\r\n");
    await c.expect(/^MAIL FROM:<s@o\.test>$/, "250 ok\r\n");
    await c.expect(/^RCPT TO:<a@d\.test>$/, "250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    c.write("250 ok\r\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test"], { eightBit: true }));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 ok"]);
  await finish([p], cr);
});

test("STARTTLS answered 454 → the session continues in clear text", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c, ["STARTTLS", "8BITMIME"]);
    await c.expect(/^STARTTLS$/, "454 4.7.0 TLS not available due to temporary reason\r\n");
    await c.expect(/^MAIL /, "250 ok\r\n");
    await c.expect(/^RCPT /, "250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    c.write("250 ok\r\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 ok"]);
  assert.equal(r[0]!.tls, undefined);
  await finish([p], cr);
  assert.equal(p.conns.length, 1);
});

test("STARTTLS 220 then garbage instead of a TLS handshake → same host again in clear text, once", async (t) => {
  const p = await peer(t, async (c) => {
    if (c.index === 0) {
      await hello(c, ["STARTTLS", "PIPELINING"]);
      await c.expect(/^STARTTLS$/, "220 2.0.0 ready\r\n");
      await c.bytes(); // the ClientHello
      c.write("HTTP/1.0 400 Bad Request\r\n\r\n");
      await c.waitClose();
      return;
    }
    await hello(c, ["STARTTLS", "PIPELINING"]); // offered again, but the client must not use it
    await transaction(c, ["a@d.test"]);
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 2.0.0 queued"]);
  assert.equal(p.conns.length, 2);
  await finish([p], cr);
  assert.doesNotMatch(p.conns[1]!.received, /STARTTLS/);
});

test("STARTTLS: clear text the server sent after its 220 is discarded; EHLO is repeated inside TLS", async (t) => {
  const cert = selfSignedCert();
  const p = await peer(t, async (c) => {
    await hello(c, ["STARTTLS"]);
    await c.expect(/^STARTTLS$/);
    c.write("220 2.0.0 go ahead\r\n250-injected\r\n250 PIPELINING\r\n");
    await c.startTls(cert);
    await c.expect(/^EHLO mxd\.test$/, "250-peer.test\r\n250 8BITMIME\r\n");
    await c.expect(/^MAIL /, "250 ok\r\n"); // not pipelined: PIPELINING came only in clear text
    await c.expect(/^RCPT /, "250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    c.write("250 ok\r\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req(["a@d.test"]));
  assert.deepEqual(outcomes(r), ["a@d.test delivered 250 ok"]);
  assert.ok(r[0]!.tls?.version);
  await finish([p], cr);
});

// ---------------------------------------------------------------- connection reuse

test("reuse: RSET refused on the pooled connection → it is discarded, a fresh one delivers", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
    if (c.index === 0) {
      await c.expect(/^RSET$/, "500 5.5.1 confused\r\n");
      await c.waitClose();
    }
  });
  const cr = courier(t, [p.address]);
  assert.equal((await cr.deliver(req(["a@d.test"])))[0]!.outcome, "delivered");
  assert.deepEqual(outcomes(await cr.deliver(req(["a@d.test"]))), ["a@d.test delivered 250 2.0.0 queued"]);
  assert.equal(p.conns.length, 2);
  await finish([p], cr);
  assert.equal((p.conns[1]!.received.match(/^DATA$/gm) ?? []).length, 1);
});

test("reuse: the server closed the idle connection → fresh connection, delivered once", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, [c.index === 0 ? "a@d.test" : "b@d.test"]);
    if (c.index === 0) {
      await sleep(30);
      c.write("421 4.4.2 idle timeout\r\n");
      c.end();
    }
  });
  const cr = courier(t, [p.address]);
  assert.equal((await cr.deliver(req(["a@d.test"])))[0]!.outcome, "delivered");
  await sleep(150);
  assert.deepEqual(outcomes(await cr.deliver(req(["b@d.test"]))), ["b@d.test delivered 250 2.0.0 queued"]);
  assert.equal(p.conns.length, 2);
  await finish([p], cr);
});

test("reuse: the server drops the pooled connection on the RSET (race) → fresh connection, delivered once", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, [c.index === 0 ? "a@d.test" : "b@d.test"]);
    if (c.index === 0) {
      await c.expect(/^RSET$/);
      c.destroy();
    }
  });
  const cr = courier(t, [p.address]);
  assert.equal((await cr.deliver(req(["a@d.test"])))[0]!.outcome, "delivered");
  assert.deepEqual(outcomes(await cr.deliver(req(["b@d.test"]))), ["b@d.test delivered 250 2.0.0 queued"]);
  assert.equal(p.conns.length, 2);
  await finish([p], cr);
});

test("reuse: 421 to MAIL on a pooled connection → fresh connection to the same host, not a failure", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, [c.index === 0 ? "a@d.test" : "b@d.test"]);
    if (c.index === 0) {
      await c.expect(/^RSET$/, "250 ok\r\n");
      await c.expect(/^MAIL /);
      await c.expect(/^RCPT /);
      c.write("421 4.4.2 connection limit reached\r\n");
      c.end();
    }
  });
  const cr = courier(t, [p.address]);
  assert.equal((await cr.deliver(req(["a@d.test"])))[0]!.outcome, "delivered");
  assert.deepEqual(outcomes(await cr.deliver(req(["b@d.test"]))), ["b@d.test delivered 250 2.0.0 queued"]);
  assert.equal(p.conns.length, 2);
  await finish([p], cr);
});

// ---------------------------------------------------------------- command hygiene, SIZE

test("CR/LF in ORCPT or NOTIFY never reaches the wire as an extra command", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c, ["DSN", "8BITMIME"]);
    await c.expect(/^MAIL /, "250 ok\r\n");
    await c.expect(/^RCPT TO:<a@d\.test>/, "250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    c.write("250 ok\r\n");
  });
  const cr = courier(t, [p.address]);
  const r = await cr.deliver(req([{ address: "a@d.test", orcpt: "rfc822\r\nRSET\r\nX;a@d.test", notify: ["SUCCESS\r\nNOOP"] }]));
  assert.equal(r[0]!.outcome, "delivered");
  await finish([p], cr);
  const lines = p.conns[0]!.received.split("\r\n");
  assert.ok(!lines.includes("RSET") && !lines.includes("NOOP") && !lines.some((l) => l.startsWith("X;")), JSON.stringify(lines.slice(0, 4)));
});

test("SIZE: over the advertised limit → permanent 552 5.3.4, nothing sent but QUIT", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c, ["SIZE 10"]);
  });
  const cr = courier(t, [p.address]);
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.equal(r!.outcome, "permanent");
  assert.equal(r!.status, "5.3.4");
  await finish([p], cr);
  assert.equal(p.conns[0]!.received, "EHLO mxd.test\r\nQUIT\r\n");
});

test("the connection breaks while the final dot is still being written: treated as after the dot (no second host)", async (t) => {
  // The socket reports back-pressure on the write that carries the final dot, then dies before
  // 'drain': the server may have the whole message, so another host must not get it too.
  const first = await peer(t, async (c) => {
    await hello(c);
    await c.expect(/^MAIL /);
    await c.expect(/^RCPT /);
    c.write("250 ok\r\n250 ok\r\n");
    await c.expect(/^DATA$/, "354 go\r\n");
    await c.data();
    await c.waitClose();
  });
  const second = await peer(t, async (c) => {
    await hello(c);
    await transaction(c, ["a@d.test"]);
  });
  const connector: Connector = {
    async connect(o) {
      const s = await nodeConnector.connect(o);
      if (o.host !== first.host) return s;
      const write = s.write.bind(s) as (d: string | Uint8Array) => boolean;
      s.write = ((d: string | Uint8Array) => {
        const ok = write(d);
        const text = Buffer.from(d).toString("latin1");
        if (text === ".\r\n" || text.endsWith("\r\n.\r\n")) {
          setTimeout(() => s.destroy(), 50);
          return false;
        }
        return ok;
      }) as typeof s.write;
      return s;
    },
    upgradeTls: nodeConnector.upgradeTls,
  };
  const cr = courier(t, [first.address, second.address], {}, connector);
  const t0 = Date.now();
  const [r] = await cr.deliver(req(["a@d.test"]));
  assert.ok(Date.now() - t0 < 1500, "decided by the broken write, not by the dataEnd timeout");
  assert.equal(r!.outcome, "transient");
  assert.equal(r!.status, "4.4.2");
  assert.equal(second.conns.length, 0);
  await finish([first, second], cr);
});

test("a non-ASCII address needs SMTPUTF8 even when the request did not say so: not sent raw", async (t) => {
  const p = await peer(t, async (c) => {
    await hello(c, ["8BITMIME", "PIPELINING"]);
  });
  const cr = courier(t, [p.address]);
  const [r] = await cr.deliver(req(["jürgen@d.test"]));
  assert.equal(r!.outcome, "permanent");
  assert.equal(r!.status, "5.6.7");
  await finish([p], cr);
  assert.equal(p.conns[0]!.received, "EHLO mxd.test\r\nQUIT\r\n");
});

test("AUTH= (RFC 4954 §5) goes out on MAIL only when the server offers AUTH, <> and xtext as stored", async (t) => {
  const cases: [string[], string | undefined, RegExp][] = [
    [["PIPELINING", "AUTH PLAIN LOGIN"], "a+b@o.test", /^MAIL FROM:<s@o\.test> AUTH=a\+2Bb@o\.test$/],
    [["PIPELINING", "AUTH PLAIN LOGIN"], "", /^MAIL FROM:<s@o\.test> AUTH=<>$/],
    [["PIPELINING", "AUTH PLAIN LOGIN"], undefined, /^MAIL FROM:<s@o\.test>$/],
    [["PIPELINING"], "a@o.test", /^MAIL FROM:<s@o\.test>$/],
  ];
  for (const [ext, auth, want] of cases) {
    const p = await peer(t, async (c) => {
      await hello(c, ext);
      await transaction(c, ["a@d.test"]);
    });
    const cr = courier(t, [p.address]);
    const r = await cr.deliver(req(["a@d.test"], auth === undefined ? {} : { auth }));
    assert.equal(r[0]!.outcome, "delivered", JSON.stringify(r));
    await finish([p], cr);
    const mail = p.conns[0]!.received.split("\r\n").find((l) => l.startsWith("MAIL "));
    assert.match(mail!, want, `${ext} ${auth}`);
  }
});
