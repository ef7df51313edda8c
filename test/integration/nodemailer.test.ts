// nodemailer as an independent SMTP client submitting to mxd, plain and with STARTTLS.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import nodemailer from "nodemailer";
import type Mail from "nodemailer/lib/mailer/index.js";
import { simpleParser } from "mailparser";
import { HOSTNAME, cleanup, closeClients, makeCert, queuedId, readEntry, splitReceived, startInbound, tempDir, type Inbound } from "../helpers/inbound.js";

afterEach(closeClients);
after(cleanup);

/**
 * A raw MIME message built here (nodemailer's composer only emits 7-bit transfer encodings):
 * an 8-bit UTF-8 text part with dot lines, and a base64 attachment. CRLF throughout.
 */
function buildRaw(bin: Buffer): Buffer {
  const b64 = bin.toString("base64").replace(/.{76}/g, "$&\r\n").replace(/\r\n$/, "");
  const text = [
    "From: Alice <alice@example.org>",
    "To: Bob <bob@example.net>, carol@example.net",
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= attachments",
    "Date: Fri, 02 Jan 2026 03:04:05 +0000",
    "Message-ID: <fixed-1@example.org>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="b1"',
    "",
    "--b1",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    "Hello Bob, \u00e4\u00f6\u00fc \u00df \u20ac",
    ".a line that starts with a dot",
    "..and two",
    ".",
    "bye",
    "--b1",
    'Content-Type: application/octet-stream; name="data.bin"',
    "Content-Transfer-Encoding: base64",
    'Content-Disposition: attachment; filename="data.bin"',
    "",
    b64,
    "--b1--",
    "",
  ].join("\r\n");
  return Buffer.from(text, "utf8");
}

function smtpTransport(port: number, extra: Record<string, unknown> = {}) {
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    name: "nm-client.test",
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 5000,
    ...extra,
  });
}

const BIN = randomBytes(300_000);
const RAW = buildRaw(BIN);

async function checkSpooled(s: Inbound, response: string, raw: Buffer, tls: boolean): Promise<void> {
  const id = queuedId({ code: 250, lines: [response], text: response });
  const e = await readEntry(s.dir, id);
  const rec = splitReceived(e.eml);
  assert.ok(rec.body.equals(raw), `spooled bytes differ from what nodemailer sent (${rec.body.length} vs ${raw.length})`);
  // Received: from <helo> ([127.0.0.1])\r\n\tby <hostname> (mxd) with ESMTP id <ID>
  assert.ok(
    e.eml.toString("latin1").startsWith(`Received: from nm-client.test ([127.0.0.1])\r\n\tby ${HOSTNAME} (mxd) with ${tls ? "ESMTPS" : "ESMTP"} id ${id};\r\n\t`),
    JSON.stringify(e.eml.subarray(0, 160).toString("latin1")),
  );
  const dateAge = Date.now() - Date.parse(rec.date);
  assert.ok(dateAge >= -2000 && dateAge < 60_000, `Received date ${rec.date}`);
  const m = e.meta;
  assert.equal(m.id, id);
  assert.equal(m.sender, "alice@example.org");
  assert.deepEqual(
    m.recipients.map((r) => ({ address: r.address, status: r.status, notify: r.notify, orcpt: r.orcpt })),
    [
      { address: "bob@example.net", status: "pending", notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;bob@example.net" },
      { address: "carol@example.net", status: "pending", notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;bob@example.net" },
    ],
  );
  assert.deepEqual(m.params, { body: "8BITMIME", size: raw.length, ret: "HDRS", envid: "env-42" });
  assert.deepEqual({ ip: m.client.ip, helo: m.client.helo, tls: m.client.tls }, { ip: "127.0.0.1", helo: "nm-client.test", tls });
  assert.equal(m.eightBit, true);
  assert.equal(m.size, e.eml.length);
  // Parsed back, the attachments are intact.
  const parsed = await simpleParser(rec.body);
  assert.equal(parsed.subject, "Gr\u00fc\u00dfe attachments");
  assert.equal(parsed.attachments.length, 1);
  assert.ok(parsed.attachments[0]!.content.equals(BIN));
  assert.equal(parsed.text, "Hello Bob, \u00e4\u00f6\u00fc \u00df \u20ac\n.a line that starts with a dot\n..and two\n.\nbye");
}

const DSN = { id: "env-42", return: "headers" as const, notify: ["SUCCESS", "FAILURE"] as ("SUCCESS" | "FAILURE")[], recipient: "bob@example.net" };

describe("nodemailer submits to mxd", () => {
  let s: Inbound;
  let certDir: string;
  before(async () => {
    certDir = await tempDir("mxd-cert-");
    s = await startInbound({}, { tlsCredentials: makeCert(certDir) });
  });
  after(async () => {
    await s.close();
    await fsp.rm(certDir, { recursive: true, force: true });
  });

  test("plain: exact bytes, envelope JSON with DSN params, Received header", async () => {
    const raw = RAW;
    const t = smtpTransport(s.port, { ignoreTLS: true });
    const info = await t.sendMail({
      envelope: { from: "alice@example.org", to: ["bob@example.net", "carol@example.net"], use8BitMime: true, size: raw.length } as unknown as Mail.Envelope,
      raw,
      dsn: DSN,
    });
    t.close();
    assert.deepEqual(info.accepted, ["bob@example.net", "carol@example.net"]);
    await checkSpooled(s, info.response, raw, false);
  });

  test("STARTTLS (requireTLS): exact bytes, tls recorded, ESMTPS", async () => {
    const raw = RAW;
    const t = smtpTransport(s.port, { requireTLS: true, tls: { rejectUnauthorized: false } });
    const info = await t.sendMail({
      envelope: { from: "alice@example.org", to: ["bob@example.net", "carol@example.net"], use8BitMime: true, size: raw.length } as unknown as Mail.Envelope,
      raw,
      dsn: DSN,
    });
    t.close();
    await checkSpooled(s, info.response, raw, true);
  });

  test("a message composed by the SMTP transport itself (text, html, attachments, UTF-8 headers)", async () => {
    const t = smtpTransport(s.port, { requireTLS: true, tls: { rejectUnauthorized: false } });
    const info = await t.sendMail({
      from: "alice@example.org",
      to: "dave@example.com",
      subject: "\u65e5\u672c\u8a9e subject",
      text: "plain \u00e9\n.leading dot\n",
      html: "<p>html \u00e9</p>",
      attachments: [{ filename: "r\u00e9sum\u00e9.pdf", content: randomBytes(50_000) }],
    });
    t.close();
    const id = queuedId({ code: 250, lines: [info.response], text: info.response });
    const e = await readEntry(s.dir, id);
    const rec = splitReceived(e.eml);
    assert.equal(rec.for, "dave@example.com");
    assert.equal(rec.proto, "ESMTPS");
    const parsed = await simpleParser(rec.body);
    assert.equal(parsed.subject, "\u65e5\u672c\u8a9e subject");
    assert.equal(parsed.text?.trim(), "plain \u00e9\n.leading dot");
    assert.equal(parsed.messageId, info.messageId);
    assert.equal(parsed.attachments.length, 1);
    assert.equal(parsed.attachments[0]!.filename, "r\u00e9sum\u00e9.pdf");
    assert.equal(parsed.attachments[0]!.size, 50_000);
    assert.equal(e.meta.sender, "alice@example.org");
    assert.deepEqual(e.meta.recipients.map((r) => r.address), ["dave@example.com"]);
  });

  test("SMTPUTF8 addresses through nodemailer", async () => {
    const t = smtpTransport(s.port, { ignoreTLS: true });
    const info = await t.sendMail({ from: "j\u00f6rg@ex\u00e4mple.de", to: "\u7528\u6237@\u4f8b\u3048.jp", subject: "eai", text: "hi\n" });
    t.close();
    const e = await readEntry(s.dir, queuedId({ code: 250, lines: [info.response], text: info.response }));
    // nodemailer converts IDN domains to A-labels itself; the UTF-8 local parts need SMTPUTF8.
    assert.equal(e.meta.sender, info.envelope.from);
    assert.match(e.meta.sender, /^j\u00f6rg@/);
    assert.equal(e.meta.params.smtputf8, true);
    assert.deepEqual(e.meta.recipients.map((r) => r.address), info.envelope.to);
    assert.match(e.meta.recipients[0]!.address, /^\u7528\u6237@/);
  });

  test("nodemailer sees mxd's refusal of an oversize message (552 5.3.4)", async () => {
    const small = await startInbound({ limits: { messageSize: "10KB" } });
    const t = smtpTransport(small.port, { ignoreTLS: true });
    await assert.rejects(
      t.sendMail({ from: "a@example.org", to: "b@example.net", subject: "big", text: "x".repeat(20_000) }),
      (e: Error & { responseCode?: number; response?: string }) => e.responseCode === 552 && /5\.3\.4/.test(e.response ?? ""),
    );
    t.close();
    await small.close();
  });
});
