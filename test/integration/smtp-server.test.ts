// The inbound SMTP server over real loopback sockets, spooling into a temp dir.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import {
  RawClient,
  HOSTNAME,
  cleanup,
  closeClients,
  ehlo,
  eventually,
  listDir,
  makeCert,
  queueIds,
  queuedId,
  readAll,
  readEntry,
  sendMessage,
  session,
  sleep,
  splitReceived,
  startInbound,
  tempDir,
  type Inbound,
} from "../helpers/inbound.js";

const ENH = /^\d{3}[ -][245]\.\d{1,3}\.\d{1,3} /;

afterEach(closeClients);
after(cleanup);

async function spoolEmpty(s: Inbound): Promise<{ queue: string[]; tmp: string[] }> {
  return { queue: await queueIds(s.dir), tmp: await listDir(join(s.dir, "bodies")) };
}

describe("session basics", () => {
  let s: Inbound;
  before(async () => {
    s = await startInbound();
  });
  after(() => s.close());

  test("full session: greeting, EHLO extensions, MAIL/RCPT/DATA, queued, QUIT", async () => {
    const c = await RawClient.connect(s.port);
    const g = await c.reply();
    assert.equal(g.text, `220 ${HOSTNAME} ESMTP mxd`);
    const e = await c.cmd("EHLO client.example", 250);
    assert.equal(e.lines[0], `250-${HOSTNAME}`);
    const ext = e.lines.slice(1).map((l) => l.slice(4));
    for (const x of ["PIPELINING", `SIZE ${s.config.limits.messageSize}`, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"]) {
      assert.ok(ext.includes(x), `EHLO lacks ${x}: ${e.text}`);
    }
    assert.ok(!ext.includes("STARTTLS"), "STARTTLS must not be offered without a certificate");
    assert.ok(e.lines.slice(0, -1).every((l) => l.startsWith("250-")) && e.lines.at(-1)!.startsWith("250 "), e.text);
    assert.match((await c.cmd("MAIL FROM:<alice@example.org>", 250)).text, /^250 2\.1\.0 /);
    assert.match((await c.cmd("RCPT TO:<bob@example.net>", 250)).text, /^250 2\.1\.5 /);
    assert.match((await c.cmd("DATA", 354)).text, /^354 /);
    const body = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello Bob.\r\n";
    c.write(body + ".\r\n");
    const id = queuedId(await c.reply());
    assert.match((await c.cmd("QUIT", 221)).text, /^221 2\.0\.0 /);
    assert.ok(await c.closedWithin(2000), "server closes after QUIT");
    const entry = await readEntry(s.dir, id);
    const rec = splitReceived(entry.eml);
    assert.equal(rec.body.toString("latin1"), body);
    assert.equal(rec.helo, "client.example");
    assert.equal(rec.ip, "127.0.0.1");
    assert.equal(rec.by, HOSTNAME);
    assert.equal(rec.proto, "ESMTP");
    assert.equal(rec.id, id);
    assert.equal(rec.for, "bob@example.net");
    assert.equal(entry.meta.id, id);
    assert.equal(entry.meta.size, entry.eml.length);
    assert.ok(s.queued.some((m) => m.id === id), "onQueued called");
  });

  test("HELO: plain SMTP, no parameters allowed, Received says SMTP", async () => {
    const c = await RawClient.connect(s.port);
    await c.reply();
    assert.equal((await c.cmd("HELO old.example", 250)).text, `250 ${HOSTNAME}`);
    assert.match((await c.cmd("MAIL FROM:<a@example.org> SIZE=10", 555)).text, /^555 5\.5\.4 /);
    const r = await sendMessage(c, "a@example.org", ["b@example.net", "c@example.net"], "Subject: x\r\n\r\nx\r\n");
    const e = await readEntry(s.dir, queuedId(r));
    const rec = splitReceived(e.eml);
    assert.equal(rec.proto, "SMTP");
    assert.equal(rec.helo, "old.example");
    assert.equal(rec.for, undefined, "no 'for' clause with two recipients");
    assert.equal(e.meta.client.helo, "old.example");
  });

  test("commands are case-insensitive", async () => {
    const c = await RawClient.connect(s.port);
    await c.reply();
    await c.cmd("ehlo lower.example", 250);
    await c.cmd("mail from:<a@example.org> body=8bitmime", 250);
    await c.cmd("rcpt to:<b@example.net> notify=success", 250);
    await c.cmd("Rset", 250);
    await c.cmd("MaIl FrOm:<a@example.org>", 250);
    await c.cmd("rCpT tO:<b@example.net>", 250);
    await c.cmd("data", 354);
    c.write("x\r\n.\r\n");
    queuedId(await c.reply());
    await c.cmd("noop", 250);
    await c.cmd("quit", 221);
  });

  test("RSET, NOOP, VRFY, HELP, EXPN, unknown; enhanced status codes on every reply", async () => {
    const c = await session(s.port);
    const replies = [
      await c.cmd("NOOP", 250),
      await c.cmd("NOOP ignored argument", 250),
      await c.cmd("MAIL FROM:<a@example.org>", 250),
      await c.cmd("RCPT TO:<b@example.net>", 250),
      await c.cmd("RSET", 250),
      await c.cmd("RCPT TO:<b@example.net>", 503), // RSET dropped the transaction
      await c.cmd("VRFY bob", 252),
      await c.cmd("VRFY", 501),
      await c.cmd("HELP", 214),
      await c.cmd("EXPN list", 502),
      await c.cmd("FOOBAR", 500),
      await c.cmd("RSET now", 501),
    ];
    for (const r of replies) for (const l of r.lines) assert.match(l, ENH, `no enhanced status code: ${JSON.stringify(l)}`);
    // a new transaction works after RSET
    queuedId(await sendMessage(c, "a@example.org", ["b@example.net"], "x\r\n"));
    await c.cmd("QUIT", 221);
  });

  test("EHLO resets the transaction", async () => {
    const c = await session(s.port);
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    await ehlo(c);
    await c.cmd("RCPT TO:<b@example.net>", 503);
  });

  test("pipelining: MAIL/RCPT/RCPT(bad)/RCPT/DATA in one write → replies in order", async () => {
    const c = await session(s.port);
    c.write("MAIL FROM:<p@example.org>\r\nRCPT TO:<r1@example.net>\r\nRCPT TO:<bad address>\r\nRCPT TO:<r2@example.net>\r\nDATA\r\n");
    const rs = await c.replies(5);
    assert.deepEqual(
      rs.map((r) => r.text.slice(0, 9)),
      ["250 2.1.0", "250 2.1.5", "501 5.1.3", "250 2.1.5", "354 End d"],
      rs.map((r) => r.text).join(" | "),
    );
    c.write("Subject: p\r\n\r\npipelined\r\n.\r\n");
    const e = await readEntry(s.dir, queuedId(await c.reply()));
    assert.deepEqual(
      e.meta.recipients.map((r) => r.address),
      ["r1@example.net", "r2@example.net"],
    );
  });

  test("replies to a pipelined group are sent together (RFC 2920 §3.1), one write gets all", async () => {
    const c = await session(s.port);
    c.write("NOOP\r\nNOOP\r\nNOOP\r\n");
    const first = await c.reply();
    assert.equal(first.code, 250);
    // the other two are already there: a very short wait suffices
    const more = await c.replies(2, 500);
    assert.deepEqual(more.map((r) => r.code), [250, 250]);
  });

  test("bad sequence: 503 for MAIL before EHLO, RCPT before MAIL, nested MAIL; DATA before RCPT refused", async () => {
    const c = await RawClient.connect(s.port);
    await c.reply();
    assert.match((await c.cmd("MAIL FROM:<a@example.org>", 503)).text, /^503 5\.5\.1 /);
    assert.match((await c.cmd("RCPT TO:<b@example.net>", 503)).text, /^503 5\.5\.1 /);
    assert.match((await c.cmd("DATA", 503)).text, /^503 5\.5\.1 /);
    await ehlo(c);
    assert.match((await c.cmd("RCPT TO:<b@example.net>", 503)).text, /^503 5\.5\.1 /);
    assert.match((await c.cmd("DATA", 503)).text, /^503 5\.5\.1 /);
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    assert.match((await c.cmd("MAIL FROM:<a@example.org>", 503)).text, /^503 5\.5\.1 /);
    // DATA with no accepted recipient: RFC 5321 §3.3 allows 503 or 554 "no valid recipients"
    assert.match((await c.cmd("DATA")).text, /^(503|554) 5\.5\.1 /);
    // the transaction survives the errors
    await c.cmd("RCPT TO:<b@example.net>", 250);
    await c.cmd("DATA", 354);
    c.write("x\r\n.\r\n");
    queuedId(await c.reply());
  });

  test("syntax errors: 501 for bad arguments, 555 for unknown parameters", async () => {
    const s2 = await startInbound({ limits: { maxErrors: 50 } });
    const c = await session(s2.port);
    const cases: [string, RegExp][] = [
      ["MAIL FROM:a@example.org", /^501 5\.1\.7 /],
      ["MAIL TO:<a@example.org>", /^501 5\.5\.4 /],
      ["MAIL FROM:<a@@example.org>", /^501 5\.1\.7 /],
      ["MAIL FROM:<a@example.org> SIZE=abc", /^501 5\.5\.4 /],
      ["MAIL FROM:<a@example.org> BODY=9BIT", /^501 5\.5\.4 /],
      ["MAIL FROM:<a@example.org> RET=ALL", /^501 5\.5\.4 /],
      ["MAIL FROM:<a@example.org> SMTPUTF8=yes", /^501 5\.5\.4 /],
      ["MAIL FROM:<a@example.org> ENVID=a=b", /^501 5\.5\.4 /],
      ["MAIL FROM:<a@example.org> FOO=bar", /^555 5\.5\.4 /],
      ["MAIL FROM:<a@example.org> AUTH=<>", /^555 5\.5\.4 /],
      ["EHLO", /^501 5\.5\.4 /],
      ["EHLO two words", /^501 5\.5\.4 /],
      ["DATA now", /^501 5\.5\.4 /],
      ["STARTTLS", /^502 5\.5\.1 /],
    ];
    for (const [cmd, re] of cases) assert.match((await c.cmd(cmd)).text, re, cmd);
    await s2.close();
  });

  test("RCPT errors: 501 bad address, 555 unknown parameter, bad NOTIFY/ORCPT; null recipient refused", async () => {
    const s2 = await startInbound({ limits: { maxErrors: 50 } });
    const c = await session(s2.port);
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    const cases: [string, RegExp][] = [
      ["RCPT TO:b@example.net", /^501 5\.1\.3 /],
      ["RCPT TO:<>", /^501 5\.1\.3 /],
      ["RCPT TO:<b@example.net> FOO=1", /^555 5\.5\.4 /],
      ["RCPT TO:<b@example.net> NOTIFY=NEVER,SUCCESS", /^501 5\.5\.4 /],
      ["RCPT TO:<b@example.net> NOTIFY=SOMETIMES", /^501 5\.5\.4 /],
      ["RCPT TO:<b@example.net> ORCPT=garbage", /^501 5\.5\.4 /],
      ["RCPT FROM:<b@example.net>", /^501 5\.5\.4 /],
    ];
    for (const [cmd, re] of cases) assert.match((await c.cmd(cmd)).text, re, cmd);
    await s2.close();
  });

  test("a command line longer than 2048 octets → 500 5.5.2, the session continues; 2048 is fine", async () => {
    const c = await session(s.port);
    c.write("NOOP " + "x".repeat(3000) + "\r\n");
    assert.match((await c.reply()).text, /^500 5\.5\.2 /);
    await c.cmd("NOOP", 250);
    // exactly 2048 octets before CRLF is accepted
    const line = "NOOP " + "y".repeat(2048 - 5);
    assert.equal(line.length, 2048);
    await c.cmd(line, 250);
    // an endless line followed by a real command
    c.write("z".repeat(100_000) + "\r\nNOOP\r\n");
    const rs = await c.replies(2);
    assert.match(rs[0]!.text, /^500 /);
    assert.equal(rs[1]!.code, 250);
    await c.cmd("RSET", 250);
  });
});

describe("dot-stuffing and the spool files", () => {
  let s: Inbound;
  before(async () => {
    s = await startInbound();
  });
  after(() => s.close());

  test("lines starting with '.' arrive unstuffed; .eml = Received + submitted bytes; .json envelope", async () => {
    const c = await session(s.port, { helo: "sender.example" });
    const original =
      "From: a@example.org\r\nSubject: dots \u00e9\r\n\r\n" + ".leading dot\r\n..two dots\r\n.\r\n\r\n x.\r\n...\r\nend\r\n";
    const wire = original.replace(/^\./gm, "..");
    await c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME SIZE=500 RET=HDRS ENVID=abc+2Bdef", 250);
    await c.cmd("RCPT TO:<r1@Example.NET> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r1+2Bx@example.net", 250);
    await c.cmd("RCPT TO:<r2@example.net> NOTIFY=NEVER", 250);
    await c.cmd("RCPT TO:<R2@EXAMPLE.NET>", 250); // duplicate (case-insensitive) is not added twice
    await c.cmd("DATA", 354);
    c.write(Buffer.from(wire + ".\r\n", "utf8"));
    const id = queuedId(await c.reply());
    const e = await readEntry(s.dir, id);
    const rec = splitReceived(e.eml);
    assert.ok(rec.body.equals(Buffer.from(original, "utf8")), `body differs:\n${JSON.stringify(rec.body.toString("utf8"))}\n${JSON.stringify(original)}`);
    assert.equal(rec.helo, "sender.example");
    const m = e.meta;
    assert.equal(m.version, 1);
    assert.equal(m.id, id);
    assert.equal(m.sender, "a@example.org");
    assert.equal(m.kind, "message");
    assert.equal(m.eightBit, true);
    assert.equal(m.size, e.eml.length);
    assert.deepEqual(m.params, { body: "8BITMIME", size: 500, ret: "HDRS", envid: "abc+def" });
    assert.equal(m.client.ip, "127.0.0.1");
    assert.equal(m.client.helo, "sender.example");
    assert.equal(m.client.tls, false);
    assert.ok(!Number.isNaN(Date.parse(m.receivedAt)));
    assert.ok(!Number.isNaN(Date.parse(m.nextAttemptAt)));
    assert.deepEqual(m.recipients, [
      { address: "r1@Example.NET", domain: "example.net", status: "pending", attempts: 0, history: [], notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;r1+x@example.net" },
      { address: "r2@example.net", domain: "example.net", status: "pending", attempts: 0, history: [], notify: ["NEVER"] },
    ]);
  });

  test("7-bit message: eightBit false; null sender stored as empty string", async () => {
    const c = await session(s.port);
    const r = await sendMessage(c, "", ["b@example.net"], "Subject: bounce\r\n\r\nascii\r\n");
    const e = await readEntry(s.dir, queuedId(r));
    assert.equal(e.meta.sender, "");
    assert.equal(e.meta.eightBit, false);
    assert.deepEqual(e.meta.params, {});
  });

  test("commands pipelined right after the final dot are the next transaction's commands", async () => {
    const c = await session(s.port);
    await c.cmd("MAIL FROM:<first@example.org>", 250);
    await c.cmd("RCPT TO:<b@example.net>", 250);
    await c.cmd("DATA", 354);
    c.write("Subject: one\r\n\r\nfirst body\r\n.\r\nMAIL FROM:<second@example.org>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n");
    const rs = await c.replies(4);
    const id1 = queuedId(rs[0]!);
    assert.deepEqual(rs.slice(1).map((r) => r.code), [250, 250, 354], rs.map((r) => r.text).join(" | "));
    c.write("Subject: two\r\n\r\nsecond body\r\n.\r\nQUIT\r\n");
    const id2 = queuedId(await c.reply());
    assert.equal((await c.reply()).code, 221);
    const e1 = await readEntry(s.dir, id1);
    const e2 = await readEntry(s.dir, id2);
    assert.equal(splitReceived(e1.eml).body.toString(), "Subject: one\r\n\r\nfirst body\r\n");
    assert.equal(splitReceived(e2.eml).body.toString(), "Subject: two\r\n\r\nsecond body\r\n");
    assert.equal(e2.meta.sender, "second@example.org");
    assert.deepEqual(e2.meta.recipients.map((r) => r.address), ["c@example.net"]);
  });

  test("the message data may arrive in the same write as DATA and byte by byte", async () => {
    const c = await session(s.port);
    c.write("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: eager\r\n\r\n..x\r\n.\r\n");
    const rs = await c.replies(4);
    const e = await readEntry(s.dir, queuedId(rs[3]!));
    assert.equal(splitReceived(e.eml).body.toString(), "Subject: eager\r\n\r\n.x\r\n");
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    await c.cmd("RCPT TO:<b@example.net>", 250);
    await c.cmd("DATA", 354);
    const wire = "Subject: slow\r\n\r\n..a\r\nb\r\n.\r\n";
    for (const ch of wire) {
      c.write(ch);
      await sleep(1);
    }
    const e2 = await readEntry(s.dir, queuedId(await c.reply()));
    assert.equal(splitReceived(e2.eml).body.toString(), "Subject: slow\r\n\r\n.a\r\nb\r\n");
  });
});

describe("SMTP smuggling (SEC Consult)", () => {
  let s: Inbound;
  before(async () => {
    s = await startInbound();
  });
  after(() => s.close());

  const SEQS = ["\n.\n", "\r.\r", "\r\n.\r", "\n.\r\n", "\r.\r\n", "\n.\r"];
  // Variant "brief": the forged message carries its own "\r\n.\r\n", then the real "\r\n.\r\n"
  // follows (the receiver ends the data at the first one; the trailing "" and "." lines are junk
  // commands). Variant "canonical" (SEC Consult): the forged message ends with the real terminator.
  const VARIANTS: [string, (seq: string) => string][] = [
    ["brief", (seq) => `Subject: smuggle\r\n\r\nreal body${seq}MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n.\r\n` + "\r\n.\r\n"],
    ["canonical", (seq) => `Subject: smuggle\r\n\r\nreal body${seq}MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n` + "\r\n.\r\n"],
  ];
  for (const [variant, build] of VARIANTS) {
    for (const seq of SEQS) {
      test(`${variant}: ${JSON.stringify(seq)} never ends the data; no forged message is queued`, async () => {
        const before = new Set(await queueIds(s.dir));
        const c = await session(s.port);
        await c.cmd("MAIL FROM:<real@example.org>", 250);
        await c.cmd("RCPT TO:<rcpt@example.net>", 250);
        await c.cmd("DATA", 354);
        c.write(build(seq));
        const r = await c.reply();
        // mxd refuses bare CR/LF (550 5.6.11); a server that normalises would queue one message.
        assert.match(r.text, /^(550 5\.6\.11 |250 2\.0\.0 Ok: queued as )/, r.text);
        // The forged MAIL/RCPT/DATA were not executed as commands: no 250/354 follows. In the
        // "brief" variant the two junk lines after the data get 500 each; nothing else may come.
        const extra = await c.drain(300);
        const extraLines = extra.split("\r\n").filter(Boolean);
        if (variant === "canonical") assert.deepEqual(extraLines, [], `unexpected replies: ${JSON.stringify(extra)}`);
        else {
          assert.equal(extraLines.length, 2, `expected two 500 replies for the junk lines: ${JSON.stringify(extra)}`);
          for (const l of extraLines) assert.match(l, /^500 5\.5\.2 /);
        }
        await c.cmd("NOOP", 250); // the session is still in sync
        await c.cmd("RCPT TO:<x@example.net>", 503); // and no transaction is open
        const added = (await queueIds(s.dir)).filter((id) => !before.has(id));
        assert.ok(added.length <= 1, `queued ${added.length} messages`);
        if (r.code === 250) assert.deepEqual(added, [queuedId(r)]);
        else assert.equal(added.length, 0);
        for (const id of added) assert.equal((await readEntry(s.dir, id)).meta.sender, "real@example.org");
        for (const e of await readAll(s.dir)) assert.notEqual(e.meta.sender, "evil@x");
        assert.deepEqual(await listDir(join(s.dir, "bodies")), [], "refused message left a body file");
      });
    }
  }

  test("with CRLF only, the same bytes are one message whose body contains the 'commands'", async () => {
    const c = await session(s.port);
    await c.cmd("MAIL FROM:<real@example.org>", 250);
    await c.cmd("RCPT TO:<rcpt@example.net>", 250);
    await c.cmd("DATA", 354);
    const body = "Subject: s\r\n\r\nreal body\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n";
    c.write(body + ".\r\n");
    const e = await readEntry(s.dir, queuedId(await c.reply()));
    assert.equal(e.meta.sender, "real@example.org");
    assert.equal(splitReceived(e.eml).body.toString(), body);
    assert.equal(await c.drain(200), "");
  });
});

describe("limits", () => {
  test("SIZE= over the limit at MAIL → 552 5.3.4; at the limit → 250", async () => {
    const s = await startInbound({ limits: { messageSize: 1000 } });
    const c = await session(s.port);
    assert.match((await c.cmd("MAIL FROM:<a@example.org> SIZE=1001", 552)).text, /^552 5\.3\.4 /);
    await c.cmd("MAIL FROM:<a@example.org> SIZE=1000", 250);
    await s.close();
  });

  test("actual data over the limit → 552 5.3.4, nothing left in tmp/ or queue/; at the limit accepted", async () => {
    const s = await startInbound({ limits: { messageSize: 1000 } });
    const c = await session(s.port);
    const line = "x".repeat(98) + "\r\n"; // 100 octets
    const r = await sendMessage(c, "a@example.org", ["b@example.net"], line.repeat(15));
    assert.match(r.text, /^552 5\.3\.4 /);
    assert.deepEqual(await spoolEmpty(s), { queue: [], tmp: [] });
    // a large oversize message streamed in many writes
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    await c.cmd("RCPT TO:<b@example.net>", 250);
    await c.cmd("DATA", 354);
    for (let i = 0; i < 200; i++) c.write(line.repeat(50));
    c.write(".\r\n");
    assert.match((await c.reply(10_000)).text, /^552 5\.3\.4 /);
    assert.deepEqual(await spoolEmpty(s), { queue: [], tmp: [] });
    // exactly the limit (dot-stuffing doesn't count: the limit is on message octets)
    const ok = await sendMessage(c, "a@example.org", ["b@example.net"], line.repeat(9) + ".." + "y".repeat(97) + "\r\n");
    const e = await readEntry(s.dir, queuedId(ok));
    assert.equal(splitReceived(e.eml).body.length, 1000);
    await s.close();
  });

  test("recipientsPerMessage: past the limit 452 4.5.3, message keeps the accepted ones", async () => {
    const s = await startInbound({ limits: { recipientsPerMessage: 3 } });
    const c = await session(s.port);
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    for (const n of [1, 2, 3]) await c.cmd(`RCPT TO:<r${n}@example.net>`, 250);
    assert.match((await c.cmd("RCPT TO:<r4@example.net>", 452)).text, /^452 4\.5\.3 /);
    assert.match((await c.cmd("RCPT TO:<r5@example.net>", 452)).text, /^452 4\.5\.3 /);
    await c.cmd("DATA", 354);
    c.write("x\r\n.\r\n");
    const e = await readEntry(s.dir, queuedId(await c.reply()));
    assert.deepEqual(e.meta.recipients.map((r) => r.address), ["r1@example.net", "r2@example.net", "r3@example.net"]);
    await s.close();
  });

  test("UTF-8 addresses: 553 5.6.7 without SMTPUTF8, accepted with it", async () => {
    const s = await startInbound();
    const c = await session(s.port);
    const utf = "j\u00f6rg@ex\u00e4mple.de";
    assert.match((await c.cmd(`MAIL FROM:<${utf}>`, 553)).text, /^553 5\.6\.7 /);
    await c.cmd("MAIL FROM:<ascii@example.org>", 250);
    assert.match((await c.cmd(`RCPT TO:<${utf}>`, 553)).text, /^553 5\.6\.7 /);
    await c.cmd("RSET", 250);
    await c.cmd(`MAIL FROM:<${utf}> SMTPUTF8`, 250);
    await c.cmd(`RCPT TO:<\u7528\u6237@\u4f8b\u3048.jp>`, 250);
    await c.cmd("DATA", 354);
    c.write(Buffer.from("Subject: gr\u00fc\u00dfe\r\n\r\nhallo\r\n.\r\n", "utf8"));
    const e = await readEntry(s.dir, queuedId(await c.reply()));
    assert.equal(e.meta.sender, utf);
    assert.equal(e.meta.recipients[0]!.address, "\u7528\u6237@\u4f8b\u3048.jp");
    assert.equal(e.meta.params.smtputf8, true);
    assert.equal(e.meta.eightBit, true);
    // RFC 6531 §3.7.3 registers UTF8SMTP / UTF8SMTPS as the "with" protocol types.
    assert.equal(splitReceived(e.eml).proto, "UTF8SMTP");
    await s.close();
  });

  test("invalid UTF-8 in an address after SMTPUTF8 → 553 5.6.7, never stored as U+FFFD", async () => {
    const s = await startInbound();
    const c = await session(s.port);
    const latin1 = (t: string) => Buffer.from(t + "\r\n", "latin1"); // "ö" as the single octet 0xF6
    c.write(latin1("MAIL FROM:<j\u00f6rg@example.de> SMTPUTF8"));
    assert.match((await c.reply()).text, /^553 5\.6\.7 .*invalid UTF-8/);
    await c.cmd("MAIL FROM:<ok@example.de> SMTPUTF8", 250);
    c.write(latin1("RCPT TO:<j\u00f6rg@example.net>"));
    assert.match((await c.reply()).text, /^553 5\.6\.7 .*invalid UTF-8/);
    c.write(Buffer.concat([Buffer.from("RCPT TO:<"), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from("@example.net>\r\n")])); // a surrogate
    assert.match((await c.reply()).text, /^553 5\.6\.7 /);
    await c.cmd("RCPT TO:<j\u00f6rg@example.net>", 250); // the same address in UTF-8
    await c.cmd("DATA", 354);
    c.write("Subject: x\r\n\r\nx\r\n.\r\n");
    const e = await readEntry(s.dir, queuedId(await c.reply()));
    assert.equal(e.meta.sender, "ok@example.de");
    assert.deepEqual(e.meta.recipients.map((r) => r.address), ["j\u00f6rg@example.net"]);
    assert.ok(!JSON.stringify(e.meta).includes("\ufffd"), "no U+FFFD in the stored envelope");
    await s.close();
  });

  test("a DATA line longer than 1000 octets → 554, nothing spooled, session continues", async () => {
    const s = await startInbound();
    const c = await session(s.port);
    const r = await sendMessage(c, "a@example.org", ["b@example.net"], "Subject: long\r\n\r\n" + "x".repeat(1200) + "\r\n");
    assert.match(r.text, /^554 5\.6\.0 /);
    assert.deepEqual(await spoolEmpty(s), { queue: [], tmp: [] });
    queuedId(await sendMessage(c, "a@example.org", ["b@example.net"], "x".repeat(998) + "\r\n"));
    await s.close();
  });

  test("bare LF in the data → 550 5.6.11, nothing spooled", async () => {
    const s = await startInbound();
    const c = await session(s.port);
    const r = await sendMessage(c, "a@example.org", ["b@example.net"], "Subject: lf\r\n\r\nunix\nline\r\n");
    assert.match(r.text, /^550 5\.6\.11 /);
    assert.deepEqual(await spoolEmpty(s), { queue: [], tmp: [] });
    await s.close();
  });

  test("too many errors → 421 4.7.0 and disconnect", async () => {
    const s = await startInbound({ limits: { maxErrors: 3 } });
    const c = await session(s.port);
    await c.cmd("FOO", 500);
    await c.cmd("BAR", 500);
    c.write("BAZ\r\n");
    const rs = await c.replies(2);
    assert.equal(rs[0]!.code, 500);
    assert.match(rs[1]!.text, /^421 4\.7\.0 /);
    assert.ok(await c.closedWithin(2000), "connection not closed after 421");
    await s.close();
  });

  test("too many errors via overlong command lines → 421 4.7.0, disconnect, later commands not executed", async () => {
    const s = await startInbound({ limits: { maxErrors: 2 } });
    const c = await session(s.port);
    c.write("NOOP " + "x".repeat(3000) + "\r\n");
    assert.equal((await c.reply()).code, 500);
    c.write("NOOP " + "x".repeat(3000) + "\r\n");
    const rs = await c.replies(2);
    assert.equal(rs[0]!.code, 500);
    assert.match(rs[1]!.text, /^421 4\.7\.0 /);
    const closed = await c.closedWithin(1500);
    if (!closed) {
      // Show what the server does with a command sent after its 421.
      c.write("MAIL FROM:<after-421@example.org>\r\n");
      const late = await c.drain(500);
      assert.fail(`connection still open 1.5 s after "421 too many errors"; a later MAIL got ${JSON.stringify(late)}`);
    }
    await s.close();
  });

  test("relay refusal: 554 5.7.1 from a source address outside relay.allowedNetworks", async () => {
    const s = await startInbound({ relay: { allowedNetworks: ["127.0.0.1/32"] } });
    const bad = await session(s.port, { localAddress: "127.0.0.2" });
    await bad.cmd("MAIL FROM:<a@example.org>", 250);
    assert.match((await bad.cmd("RCPT TO:<victim@example.net>", 554)).text, /^554 5\.7\.1 /);
    assert.match((await bad.cmd("DATA")).text, /^(503|554) /);
    const good = await session(s.port, { localAddress: "127.0.0.1" });
    queuedId(await sendMessage(good, "a@example.org", ["b@example.net"], "x\r\n"));
    assert.equal((await queueIds(s.dir)).length, 1);
    await s.close();
  });

  test("RCPT TO:<Postmaster> is accepted from anyone (RFC 5321 §4.5.1) and goes to the postmaster address", async () => {
    // The postmaster address must be local or routed (never MX-delivered on a stranger's behalf).
    const s = await startInbound({ relay: { allowedNetworks: ["127.0.0.1/32"] }, postmaster: "hostmaster@example.org", routes: { "example.org": ["127.0.0.1:9"] } });
    const outsider = await session(s.port, { localAddress: "127.0.0.2" });
    await outsider.cmd("MAIL FROM:<someone@example.net>", 250);
    assert.match((await outsider.cmd("RCPT TO:<PostMaster>", 250)).text, /^250 2\.1\.5 /);
    // Only the bare reserved name: other recipients from outside are still refused.
    assert.match((await outsider.cmd("RCPT TO:<postmaster@example.net>", 554)).text, /^554 5\.7\.1 /);
    await outsider.cmd("DATA", 354);
    outsider.write("Subject: to the postmaster\r\n\r\nhello\r\n.\r\n");
    const id = queuedId(await outsider.reply(5000));
    const e = await readEntry(s.dir, id);
    assert.deepEqual(e.meta.recipients.map((r) => r.address), ["hostmaster@example.org"]);
    assert.equal(e.meta.client.relayAllowed, false, "the envelope marks the stranger");
    await s.close();
    // Without a configured address it is postmaster@<hostname>.
    const d = await startInbound({});
    const c = await session(d.port);
    const meta = (await readEntry(d.dir, queuedId(await sendMessage(c, "a@example.org", ["Postmaster"], "x\r\n")))).meta;
    assert.deepEqual(meta.recipients.map((x) => x.address), [`postmaster@${d.config.hostname}`]);
    assert.equal(meta.client.relayAllowed, true);
    await d.close();
  });

  test("connection limit (total) → 421 4.7.0 and close; a slot frees when a client leaves", async () => {
    const s = await startInbound({ limits: { connections: 2, connectionsPerClient: 10 } });
    const a = await RawClient.connect(s.port);
    assert.equal((await a.reply()).code, 220);
    const b = await RawClient.connect(s.port, { localAddress: "127.0.0.2" });
    assert.equal((await b.reply()).code, 220);
    const c = await RawClient.connect(s.port, { localAddress: "127.0.0.3" });
    assert.match((await c.reply()).text, /^421 4\.7\.0 /);
    assert.ok(await c.closedWithin(3000));
    await a.cmd("QUIT", 221);
    assert.ok(await a.closedWithin(2000));
    assert.ok(await eventually(() => s.server.connectionCount === 1, 2000));
    const d = await RawClient.connect(s.port);
    assert.equal((await d.reply()).code, 220);
    await s.close();
  });

  test("connection limit per client IP → 421 4.7.0; other IPs still served", async () => {
    const s = await startInbound({ limits: { connections: 10, connectionsPerClient: 2 } });
    const a = await RawClient.connect(s.port);
    assert.equal((await a.reply()).code, 220);
    const b = await RawClient.connect(s.port);
    assert.equal((await b.reply()).code, 220);
    const c = await RawClient.connect(s.port);
    assert.match((await c.reply()).text, /^421 4\.7\.0 /);
    assert.ok(await c.closedWithin(3000));
    const other = await RawClient.connect(s.port, { localAddress: "127.0.0.2" });
    assert.equal((await other.reply()).code, 220);
    a.destroy();
    assert.ok(await eventually(() => s.server.connectionCount === 2, 2000));
    const again = await RawClient.connect(s.port);
    assert.equal((await again.reply()).code, 220);
    await s.close();
  });

  test("overload: outsiders cannot take the reserved slots, and idle timeouts shrink to stressTimeout", { timeout: 30_000 }, async () => {
    // 10 slots, 2 reserved for relay clients (127.0.0.1); stress from 8 connections (80%).
    const s = await startInbound({
      relay: { allowedNetworks: ["127.0.0.1/32"] },
      limits: { connections: 10, connectionsPerClient: 10, reservedConnections: 2, commandTimeout: "60s", stressTimeout: "1s" },
    });
    // Control: one idle outsider on a quiet server keeps the normal timeout.
    const first = await RawClient.connect(s.port, { localAddress: "127.0.0.230" });
    assert.equal((await first.reply()).code, 220);
    assert.equal(await first.closedWithin(1800), false, "no stress, no short timeout");
    // 30 more outsiders: only 10 - 2 - 1 = 7 get a slot.
    const hogs = await Promise.all(Array.from({ length: 30 }, (_, i) => RawClient.connect(s.port, { localAddress: `127.0.0.${231 + (i % 15)}` })));
    const codes = await Promise.all(hogs.map((h) => h.reply(3000).then((r) => r.code)));
    assert.equal(codes.filter((c) => c === 220).length, 7, `greetings: ${codes.join(",")}`);
    assert.equal(codes.filter((c) => c === 421).length, 23);
    // A relay client still gets in at once and is served.
    const t0 = Date.now();
    const ok = await session(s.port);
    queuedId(await sendMessage(ok, "a@example.org", ["b@example.net"], "Subject: reserved\r\n\r\nin\r\n"));
    assert.ok(Date.now() - t0 < 2000, "served without waiting for the hogs");
    // Under stress every idle outsider (the first one too) is cut after stressTimeout, not 60 s.
    const held = [first, ...hogs.filter((_, i) => codes[i] === 220)];
    const cut = await Promise.all(held.map((h) => h.closedWithin(4000)));
    assert.equal(cut.filter(Boolean).length, held.length, "idle outsiders cut under stress");
    assert.match(await first.drain(0), /421 4\.4\.2 .*timeout exceeded/);
    // Stress over: the normal timeout again.
    ok.destroy();
    assert.ok(await eventually(() => s.server.connectionCount === 0, 3000));
    assert.equal(s.server.stressed, false);
    const later = await RawClient.connect(s.port, { localAddress: "127.0.0.230" });
    assert.equal((await later.reply()).code, 220);
    assert.equal(await later.closedWithin(1800), false, "normal timeout once the overload is over");
    await s.close();
  });

  test("command timeout → 421 4.4.2 and close", async () => {
    const s = await startInbound({ limits: { commandTimeout: "1s", dataTimeout: "5s" } });
    const c = await session(s.port);
    const t0 = Date.now();
    const r = await c.reply(3000);
    assert.match(r.text, /^421 4\.4\.2 /);
    assert.ok(Date.now() - t0 >= 800, "timed out too early");
    assert.ok(await c.closedWithin(2000));
    await s.close();
  });

  test("data timeout → 421 4.4.2, partial message discarded", async () => {
    const s = await startInbound({ limits: { commandTimeout: "5s", dataTimeout: "1s" } });
    const c = await session(s.port);
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    await c.cmd("RCPT TO:<b@example.net>", 250);
    await c.cmd("DATA", 354);
    c.write("Subject: stalled\r\n\r\npartial");
    const t0 = Date.now();
    const r = await c.reply(4000);
    assert.match(r.text, /^421 4\.4\.2 /);
    assert.ok(Date.now() - t0 < 3500, "data timeout did not use limits.dataTimeout");
    assert.ok(await c.closedWithin(2000));
    assert.ok(await eventually(async () => (await listDir(join(s.dir, "bodies"))).length === 0, 2000), "bodies/ not cleaned");
    assert.deepEqual(await queueIds(s.dir), []);
    await s.close();
  });

  test("client disconnecting mid-DATA leaves nothing in tmp/ or queue/", async () => {
    const s = await startInbound();
    const c = await session(s.port);
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    await c.cmd("RCPT TO:<b@example.net>", 250);
    await c.cmd("DATA", 354);
    c.write("Subject: gone\r\n\r\n" + "x".repeat(500) + "\r\n");
    await sleep(100);
    c.destroy();
    assert.ok(await eventually(async () => (await listDir(join(s.dir, "bodies"))).length === 0, 2000), "bodies/ not cleaned");
    assert.deepEqual(await queueIds(s.dir), []);
    await s.close();
  });
});

describe("STARTTLS", () => {
  let certDir: string;
  let creds: { cert: Buffer; key: Buffer };
  before(async () => {
    certDir = await tempDir("mxd-cert-");
    creds = makeCert(certDir);
  });
  after(() => fsp.rm(certDir, { recursive: true, force: true }));

  test("offered only with a certificate; after the handshake the state is reset", async () => {
    const s = await startInbound({}, { tlsCredentials: creds });
    const c = await RawClient.connect(s.port);
    await c.reply();
    assert.ok((await ehlo(c)).includes("STARTTLS"));
    await c.cmd("MAIL FROM:<a@example.org>", 250);
    assert.match((await c.cmd("STARTTLS", 220)).text, /^220 2\.0\.0 /);
    await c.startTls();
    assert.ok(c.encrypted);
    // RFC 3207 §4.2: everything before is forgotten, a new EHLO is required.
    assert.match((await c.cmd("MAIL FROM:<a@example.org>", 503)).text, /^503 5\.5\.1 /);
    const ext = await ehlo(c, "after-tls.example");
    assert.ok(!ext.includes("STARTTLS"), "STARTTLS offered again inside TLS");
    assert.match((await c.cmd("STARTTLS")).text, /^503 5\.5\.1 /);
    const r = await sendMessage(c, "a@example.org", ["b@example.net"], "Subject: tls\r\n\r\nsecret\r\n");
    const e = await readEntry(s.dir, queuedId(r));
    assert.equal(e.meta.client.tls, true);
    assert.equal(e.meta.client.helo, "after-tls.example");
    const rec = splitReceived(e.eml);
    assert.equal(rec.proto, "ESMTPS");
    assert.equal(rec.helo, "after-tls.example");
    assert.equal(rec.body.toString(), "Subject: tls\r\n\r\nsecret\r\n");
    await c.cmd("QUIT", 221);
    await s.close();
  });

  test("commands pipelined after STARTTLS in the same write are discarded (CVE-2011-0411)", async () => {
    const s = await startInbound({}, { tlsCredentials: creds });
    const c = await RawClient.connect(s.port);
    await c.reply();
    await ehlo(c, "honest.example");
    c.write("STARTTLS\r\nEHLO injected.example\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<victim@example.net>\r\n");
    const r = await c.reply();
    assert.equal(r.code, 220);
    assert.equal(await c.drain(200), "", "replies to injected commands in plaintext");
    await c.startTls();
    // No reply to the injected commands may show up inside TLS either.
    assert.equal(await c.drain(300), "", "injected commands were executed after the handshake");
    // No transaction or HELO state leaked in: MAIL needs a fresh EHLO.
    await c.cmd("MAIL FROM:<a@example.org>", 503);
    await ehlo(c, "honest.example");
    await c.cmd("RCPT TO:<b@example.net>", 503);
    const e = await readEntry(s.dir, queuedId(await sendMessage(c, "a@example.org", ["b@example.net"], "x\r\n")));
    assert.equal(splitReceived(e.eml).helo, "honest.example");
    await s.close();
  });

  test("STARTTLS with an argument → 501 5.5.4", async () => {
    const s = await startInbound({}, { tlsCredentials: creds });
    const c = await session(s.port);
    assert.match((await c.cmd("STARTTLS now")).text, /^501 5\.5\.4 /);
    await s.close();
  });

  test("implicit TLS listener: greeting over TLS, no STARTTLS, Received says ESMTPS", async () => {
    const s = await startInbound({ listen: [{ host: "127.0.0.1", port: 0, tls: true }], tls: { cert: "x", key: "y" } }, { tlsCredentials: creds });
    const c = await RawClient.connect(s.port, { tls: true });
    assert.equal((await c.reply()).code, 220);
    assert.ok(!(await ehlo(c)).includes("STARTTLS"));
    const e = await readEntry(s.dir, queuedId(await sendMessage(c, "a@example.org", ["b@example.net"], "x\r\n")));
    assert.equal(splitReceived(e.eml).proto, "ESMTPS");
    assert.equal(e.meta.client.tls, true);
    await s.close();
  });
});

describe("shutdown", () => {
  test("close(): idle sessions get 421 4.3.2, a transaction in DATA completes first", async () => {
    const s = await startInbound();
    const idle = await session(s.port);
    const busy = await session(s.port);
    await busy.cmd("MAIL FROM:<a@example.org>", 250);
    await busy.cmd("RCPT TO:<b@example.net>", 250);
    await busy.cmd("DATA", 354);
    busy.write("Subject: in flight\r\n\r\npart one\r\n");
    const closing = s.server.close(5000);
    assert.match((await idle.reply()).text, /^421 4\.3\.2 /);
    await sleep(100);
    busy.write("part two\r\n.\r\n");
    const id = queuedId(await busy.reply());
    assert.match((await busy.reply()).text, /^421 4\.3\.2 /);
    await closing;
    const e = await readEntry(s.dir, id);
    assert.equal(splitReceived(e.eml).body.toString(), "Subject: in flight\r\n\r\npart one\r\npart two\r\n");
    await s.close();
  });
});
