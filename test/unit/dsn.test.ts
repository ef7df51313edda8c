// DSN rendering: golden files for the exact bytes, plus an independent parser (mailparser) for
// the structure a receiving MUA or bounce processor relies on.
//
// Golden files live in test/fixtures/dsn-*.eml. After an intended change to the output,
// regenerate them and review the diff:
//   UPDATE_GOLDEN=1 npx tsc -p . && UPDATE_GOLDEN=1 node --test dist/test/unit/dsn.test.js && git diff test/fixtures
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { simpleParser, type ParsedMail } from "mailparser";
import { buildDsn, dsnRecipientsFor, headerBlockFrom, mayReturnBody, type DsnInput } from "../../src/bounce/dsn.js";
import type { AttemptRecord, MessageMeta, RecipientState } from "../../src/core/envelope.js";
import { EXCERPT_MAX } from "../../src/core/smtp-reply.js";
import { FIXTURES_DIR } from "../helpers/paths.js";
import { pathToFileURL } from "node:url";

// Tests run from dist/test/unit: the fixtures are in the source tree.
const FIXTURES = pathToFileURL(FIXTURES_DIR + "/");

function golden(name: string, actual: Buffer): void {
  const url = new URL(name, FIXTURES);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(FIXTURES, { recursive: true });
    writeFileSync(url, actual);
    return;
  }
  let expected: Buffer;
  try {
    expected = readFileSync(url);
  } catch {
    assert.fail(`golden file ${fileURLToPath(url)} is missing; create it with UPDATE_GOLDEN=1 (see the top of this file)`);
  }
  if (!actual.equals(expected)) {
    // A readable diff first, then the byte-level verdict.
    assert.equal(actual.toString("latin1"), expected.toString("latin1"), `${name} differs from the golden file; if intended, regenerate with UPDATE_GOLDEN=1 and review git diff`);
    assert.fail(`${name} differs from the golden file at the byte level`);
  }
}

const T_RECEIVED = "2026-01-01T10:00:00.000Z";
const NOW = new Date("2026-01-06T10:00:00.000Z");
const BOUNDARY = "=_mxd-test-boundary_=";

const ORIGINAL_HEADERS = Buffer.from(
  [
    "Received: from client.example.com (client.example.com [192.0.2.1])",
    "\tby mx.example.com (mxd) with ESMTPS id 01JQ5Z8K2M;",
    "\tThu, 01 Jan 2026 10:00:00 +0000",
    "From: Alice Example <alice@example.com>",
    "To: bob@example.org, carol@example.net",
    "Subject: Quarterly report",
    "Date: Thu, 01 Jan 2026 09:59:58 +0000",
    "Message-ID: <20260101095958.1234@client.example.com>",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "",
  ].join("\r\n"),
);
const ORIGINAL_BODY = Buffer.from("Hello Bob,\r\n\r\nthe figures are attached.\r\n.hidden dot line\r\n");
const ORIGINAL_MESSAGE = Buffer.concat([ORIGINAL_HEADERS, Buffer.from("\r\n"), ORIGINAL_BODY]);

const BOB_REPLY =
  "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n550 5.1.1 double-checking the recipient's email address for typos or unnecessary spaces.";

function attempt(a: Partial<AttemptRecord> & Pick<AttemptRecord, "outcome" | "reply" | "status">): AttemptRecord {
  return { at: "2026-01-01T10:00:05.000Z", ...a };
}

function bob(extra: Partial<RecipientState> = {}): RecipientState {
  return {
    address: "bob@example.org",
    domain: "example.org",
    status: "failed",
    attempts: 1,
    orcpt: "rfc822;Bob@Example.ORG",
    notify: ["FAILURE", "DELAY"],
    finalAt: "2026-01-01T10:00:05.000Z",
    history: [attempt({ outcome: "permanent", reply: BOB_REPLY, status: "5.1.1", mx: "mx1.example.org", ip: "192.0.2.25", remote: true })],
    ...extra,
  };
}

/** Expired after transient failures; the worker appended a 4.4.7 marker record after the last real attempt. */
function carol(extra: Partial<RecipientState> = {}): RecipientState {
  return {
    address: "carol@example.net",
    domain: "example.net",
    status: "failed",
    attempts: 31,
    history: [
      attempt({ at: "2026-01-06T09:00:00.000Z", outcome: "transient", reply: "451 4.7.1 Greylisted, please try again later", status: "4.7.1", mx: "mx.example.net", ip: "198.51.100.7", remote: true }),
      attempt({ at: "2026-01-06T10:00:00.000Z", outcome: "permanent", reply: "delivery time expired after 120h; last error: 451 4.7.1 Greylisted, please try again later", status: "4.4.7", mx: "mx.example.net", remote: true }),
    ],
    ...extra,
  };
}

/** Never reached a server: DNS failure recorded locally. */
function dave(extra: Partial<RecipientState> = {}): RecipientState {
  return {
    address: "dave@nowhere.example",
    domain: "nowhere.example",
    status: "pending",
    attempts: 4,
    history: [attempt({ at: "2026-01-01T13:00:00.000Z", outcome: "transient", reply: "MX lookup for nowhere.example failed: SERVFAIL", status: "4.4.3", remote: false })],
    ...extra,
  };
}

function meta(extra: Partial<MessageMeta> = {}): MessageMeta {
  return {
    version: 1,
    id: "01JQ5Z8K2M",
    sender: "alice@example.com",
    recipients: [bob(), carol()],
    receivedAt: T_RECEIVED,
    client: { ip: "192.0.2.1", helo: "client.example.com" },
    params: { envid: "QQ314159", ret: "HDRS" },
    size: ORIGINAL_MESSAGE.length,
    eightBit: false,
    nextAttemptAt: T_RECEIVED,
    kind: "message",
    ...extra,
  };
}

function input(extra: Partial<DsnInput> = {}): DsnInput {
  const original = extra.original ?? meta();
  return {
    reportingMta: "mx.example.com",
    original,
    recipients: original.recipients,
    action: "failed",
    now: NOW,
    originalHeaders: ORIGINAL_HEADERS,
    originalBody: undefined,
    boundary: BOUNDARY,
    messageIdDomain: "mx.example.com",
    ...extra,
  };
}

function parse(body: Buffer): Promise<ParsedMail> {
  // keepDeliveryStatus: hand message/delivery-status over as an attachment instead of as text.
  return simpleParser(body, { keepDeliveryStatus: true } as Parameters<typeof simpleParser>[1]);
}

/** Split a message/delivery-status body into field groups (RFC 3464 §2.1): unfold, split on blank lines. */
function statusGroups(text: string): Map<string, string>[] {
  return text
    .replace(/\r\n(?=[ \t])/g, "")
    .split(/\r\n\r\n/)
    .filter((g) => g.trim() !== "")
    .map((g) => {
      const m = new Map<string, string>();
      for (const line of g.split("\r\n").filter(Boolean)) {
        const i = line.indexOf(":");
        m.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
      }
      return m;
    });
}

function assertWellFormed(body: Buffer): void {
  const s = body.toString("latin1");
  assert.ok(!/[^\r]\n/.test(s) && !/\r[^\n]/.test(s), "CRLF line ends only");
  assert.ok(s.endsWith("\r\n"), "ends with CRLF");
  for (const line of s.split("\r\n")) assert.ok(line.length <= 998, `line of ${line.length} octets`);
  const head = s.slice(0, s.indexOf("\r\n\r\n"));
  assert.ok(/^[\x00-\x7f]*$/.test(head), "7-bit header section");
}

test("failed DSN (RET=HDRS): golden file", () => {
  const dsn = buildDsn(input());
  golden("dsn-failed.eml", dsn.body);
  assertWellFormed(dsn.body);
  assert.equal(dsn.sender, "");
  assert.equal(dsn.recipient, "alice@example.com");
  assert.equal(dsn.eightBit, false);
  assert.equal(dsn.smtputf8, false);
});

test("failed DSN parses as multipart/report with the RFC 3464 fields", async () => {
  const dsn = buildDsn(input());
  const mail = await parse(dsn.body);

  const ct = mail.headers.get("content-type") as { value: string; params: Record<string, string> };
  assert.equal(ct.value, "multipart/report");
  assert.equal(ct.params["report-type"], "delivery-status");
  assert.equal(ct.params["boundary"], BOUNDARY);
  assert.equal(mail.subject, "Undelivered Mail Returned to Sender");
  assert.equal(mail.from?.value[0]?.address, "MAILER-DAEMON@mx.example.com");
  assert.equal(mail.from?.value[0]?.name, "Mail Delivery System");
  assert.deepEqual(mail.to && !Array.isArray(mail.to) ? mail.to.value.map((a) => a.address) : [], ["alice@example.com"]);
  assert.equal(mail.headers.get("auto-submitted"), "auto-replied");
  assert.equal(mail.headers.get("mime-version"), "1.0");
  assert.equal(mail.messageId, dsn.messageId);
  assert.match(dsn.messageId, /^<[^<>@\s]+@mx\.example\.com>$/);
  assert.equal((mail.date as Date).toISOString(), NOW.toISOString());

  // Three parts: the text, the delivery status, the original's headers.
  assert.equal(dsn.body.toString("latin1").split(`\r\n--${BOUNDARY}\r\n`).length - 1, 3, "three part delimiters");
  assert.ok(dsn.body.toString("latin1").endsWith(`\r\n--${BOUNDARY}--\r\n`), "close delimiter last");
  assert.deepEqual(
    mail.attachments.map((a) => a.contentType),
    ["message/delivery-status", "text/rfc822-headers"],
  );

  // Part 1 names each recipient and quotes the remote reply.
  const text = mail.text ?? "";
  assert.match(text, /<bob@example\.org>: host mx1\.example\.org\[192\.0\.2\.25\] said:/);
  assert.match(text, /550 5\.1\.1 double-checking the recipient's email address/);
  assert.match(text, /<carol@example\.net>: gave up after 5 days in the queue/);
  assert.match(text, /451 4\.7\.1 Greylisted, please try again later/);

  // Part 2: per-message then per-recipient groups.
  const groups = statusGroups(mail.attachments[0]!.content.toString("latin1"));
  assert.equal(groups.length, 3);
  const [msg, b, c] = groups as [Map<string, string>, Map<string, string>, Map<string, string>];
  assert.equal(msg.get("reporting-mta"), "dns; mx.example.com");
  assert.equal(msg.get("original-envelope-id"), "QQ314159");
  assert.equal(msg.get("arrival-date"), "Thu, 01 Jan 2026 10:00:00 +0000");

  assert.equal(b.get("original-recipient"), "rfc822; Bob@Example.ORG");
  assert.equal(b.get("final-recipient"), "rfc822; bob@example.org");
  assert.equal(b.get("action"), "failed");
  assert.equal(b.get("status"), "5.1.1");
  assert.equal(b.get("remote-mta"), "dns; mx1.example.org");
  assert.equal(b.get("diagnostic-code"), "smtp; " + BOB_REPLY.replace("\r\n", " "));
  assert.equal(b.get("last-attempt-date"), "Thu, 01 Jan 2026 10:00:05 +0000");
  assert.equal(b.has("will-retry-until"), false);

  // Expired: Status from the expiry record, reply and date from the last real attempt.
  assert.equal(c.has("original-recipient"), false, "no ORCPT, no Original-Recipient");
  assert.equal(c.get("final-recipient"), "rfc822; carol@example.net");
  assert.equal(c.get("action"), "failed");
  assert.equal(c.get("status"), "4.4.7");
  assert.equal(c.get("remote-mta"), "dns; mx.example.net");
  assert.equal(c.get("diagnostic-code"), "smtp; 451 4.7.1 Greylisted, please try again later");
  assert.equal(c.get("last-attempt-date"), "Tue, 06 Jan 2026 09:00:00 +0000");

  // Part 3: the original header block.
  const hdrs = mail.attachments[1]!.content.toString("latin1");
  assert.match(hdrs, /^Subject: Quarterly report$/m);
  assert.ok(!hdrs.includes("the figures are attached"), "no body with RET=HDRS");
});

test("delayed DSN: golden file and fields", async () => {
  const m = meta({ recipients: [dave(), bob({ status: "delivered" })], params: {} });
  const dsn = buildDsn(input({ original: m, recipients: dsnRecipientsFor(m, m.recipients, "delayed"), action: "delayed", now: new Date("2026-01-01T14:00:00Z"), willRetryUntil: new Date("2026-01-06T10:00:00Z") }));
  golden("dsn-delayed.eml", dsn.body);
  assertWellFormed(dsn.body);
  const mail = await parse(dsn.body);
  assert.equal(mail.subject, "Delayed Mail (still being retried)");
  assert.match(mail.text ?? "", /<dave@nowhere\.example>: not delivered yet/);
  assert.match(mail.text ?? "", /MX lookup for nowhere\.example failed: SERVFAIL/);
  assert.match(mail.text ?? "", /You do not need to send the message again/);
  const groups = statusGroups(mail.attachments[0]!.content.toString("latin1"));
  assert.equal(groups.length, 2, "only the pending recipient");
  assert.equal(groups[0]!.has("original-envelope-id"), false, "no ENVID given");
  const d = groups[1]!;
  assert.equal(d.get("final-recipient"), "rfc822; dave@nowhere.example");
  assert.equal(d.get("action"), "delayed");
  assert.equal(d.get("status"), "4.4.3");
  assert.equal(d.has("remote-mta"), false, "no server answered");
  assert.equal(d.get("diagnostic-code"), "X-mxd; MX lookup for nowhere.example failed: SERVFAIL");
  assert.equal(d.get("will-retry-until"), "Tue, 06 Jan 2026 10:00:00 +0000");
});

test("RET=FULL with the message supplied: message/rfc822, golden file", async () => {
  const m = meta({ params: { ret: "FULL" }, recipients: [bob()] });
  const dsn = buildDsn(input({ original: m, originalBody: ORIGINAL_MESSAGE }));
  golden("dsn-failed-full.eml", dsn.body);
  assertWellFormed(dsn.body);
  const raw = dsn.body.toString("latin1");
  assert.match(raw, /\r\nContent-Type: message\/rfc822\r\n/);
  assert.ok(raw.includes(ORIGINAL_MESSAGE.toString("latin1")), "the whole original, byte for byte");
  const mail = await parse(dsn.body);
  const status = mail.attachments.find((a) => a.contentType === "message/delivery-status");
  assert.ok(status, "delivery-status part");
  const original = mail.attachments.find((a) => a.contentType === "message/rfc822");
  assert.ok(original, "message/rfc822 part");
  const inner = await simpleParser(original.content);
  assert.equal(inner.subject, "Quarterly report");
  assert.match(inner.text ?? "", /the figures are attached/);
});

test("RET=FULL: the body alone is joined to the headers; no body or RET=HDRS gives headers only", async () => {
  const full = meta({ params: { ret: "FULL" }, recipients: [bob()] });
  const a = buildDsn(input({ original: full, originalBody: ORIGINAL_MESSAGE }));
  const b = buildDsn(input({ original: full, originalBody: ORIGINAL_BODY }));
  assert.ok(a.body.equals(b.body), "whole message or body alone: same report");

  const noBody = buildDsn(input({ original: full, originalBody: undefined }));
  assert.match(noBody.body.toString("latin1"), /\r\nContent-Type: text\/rfc822-headers\r\n/);

  const hdrs = meta({ params: { ret: "HDRS" }, recipients: [bob()] });
  const c = buildDsn(input({ original: hdrs, originalBody: ORIGINAL_MESSAGE }));
  assert.match(c.body.toString("latin1"), /\r\nContent-Type: text\/rfc822-headers\r\n/);
  assert.ok(!c.body.toString("latin1").includes("the figures are attached"));

  const noRet = meta({ params: {}, recipients: [bob()] });
  const d = buildDsn(input({ original: noRet, originalBody: ORIGINAL_MESSAGE }));
  assert.ok(!d.body.toString("latin1").includes("the figures are attached"), "default is headers only");

  // A line over 998 octets cannot be carried in message/rfc822: headers only.
  const longLine = Buffer.concat([ORIGINAL_HEADERS, Buffer.from("\r\n" + "x".repeat(1200) + "\r\n")]);
  const e = buildDsn(input({ original: full, originalBody: longLine }));
  assert.match(e.body.toString("latin1"), /\r\nContent-Type: text\/rfc822-headers\r\n/);
  assertWellFormed(e.body);
});

test("dsnRecipientsFor: RFC 3461 NOTIFY rules", () => {
  const r = (notify: string[] | undefined, status: RecipientState["status"]) => ({ ...bob({ status }), notify, address: `${(notify ?? ["absent"]).join("+")}-${status}@example.org` });
  const table: [notify: string[] | undefined, status: RecipientState["status"], action: "failed" | "delayed", expected: boolean][] = [
    [undefined, "failed", "failed", true],
    [[], "failed", "failed", true],
    [["FAILURE"], "failed", "failed", true],
    [["SUCCESS", "FAILURE"], "failed", "failed", true],
    [["DELAY"], "failed", "failed", false],
    [["SUCCESS"], "failed", "failed", false],
    [["NEVER"], "failed", "failed", false],
    [["never"], "failed", "failed", false],
    [undefined, "pending", "delayed", true],
    [["DELAY"], "pending", "delayed", true],
    [["FAILURE", "DELAY"], "pending", "delayed", true],
    [["FAILURE"], "pending", "delayed", false],
    [["NEVER"], "pending", "delayed", false],
    // State must match the kind of report.
    [undefined, "pending", "failed", false],
    [undefined, "delivered", "failed", false],
    [undefined, "failed", "delayed", false],
    [["DELAY"], "delivered", "delayed", false],
  ];
  for (const [notify, status, action, expected] of table) {
    const rc = r(notify, status);
    const m = meta({ recipients: [rc] });
    assert.deepEqual(dsnRecipientsFor(m, [rc], action).length, expected ? 1 : 0, `NOTIFY=${notify?.join(",") ?? "(absent)"} status=${status} action=${action}`);
  }
  const mixed = meta({ recipients: [bob(), bob({ address: "x@example.org", notify: ["NEVER"] }), carol()] });
  assert.deepEqual(
    dsnRecipientsFor(mixed, mixed.recipients, "failed").map((x) => x.address),
    ["bob@example.org", "carol@example.net"],
  );
});

test("no DSN for the null sender or for our own bounces", () => {
  const nul = meta({ sender: "" });
  assert.deepEqual(dsnRecipientsFor(nul, nul.recipients, "failed"), []);
  assert.deepEqual(dsnRecipientsFor(nul, [dave()], "delayed"), []);
  const bounce = meta({ kind: "bounce" });
  assert.deepEqual(dsnRecipientsFor(bounce, bounce.recipients, "failed"), []);
  assert.throws(() => buildDsn(input({ original: nul })), /null sender/);
  assert.throws(() => buildDsn(input({ recipients: [] })), /no recipient/);
});

test("non-ASCII sender and recipient: 7-bit report, utf-8 address type, flagged SMTPUTF8", async () => {
  const r = bob({ address: "jörg+x=y@bücher.example", orcpt: "rfc822;jörg+x=y@bücher.example", history: [attempt({ outcome: "permanent", reply: "550 5.1.1 Benutzer unbekannt: jörg", status: "5.1.1", mx: "mx.xn--bcher-kva.example", remote: true })] });
  const m = meta({ sender: "zoë@example.com", recipients: [r] });
  const dsn = buildDsn(input({ original: m }));
  assert.equal(dsn.smtputf8, true);
  assert.equal(dsn.recipient, "zoë@example.com");
  const raw = dsn.body.toString("utf8");
  assert.match(raw, /^To: <zoë@example\.com>\r\n/m);
  // Everything after the To: header is 7-bit.
  assert.ok(/^[\x00-\x7f]*$/.test(raw.replace(/^To: .*$/m, "")), "7-bit apart from the UTF-8 To:");
  const mail = await parse(dsn.body);
  const groups = statusGroups(mail.attachments[0]!.content.toString("latin1"));
  assert.equal(groups[1]!.get("final-recipient"), "utf-8; j\\x{F6}rg\\x{2B}x\\x{3D}y@b\\x{FC}cher.example");
  assert.equal(groups[1]!.get("original-recipient"), "utf-8; j\\x{F6}rg\\x{2B}x\\x{3D}y@b\\x{FC}cher.example");
  assert.equal(groups[1]!.get("diagnostic-code"), "smtp; 550 5.1.1 Benutzer unbekannt: j?rg");
  assert.equal(groups[0]!.get("x-mxd-sender"), "utf-8; zo\\x{EB}@example.com");
  // The text part carries the real characters (quoted-printable UTF-8).
  assert.match(mail.text ?? "", /<jörg\+x=y@bücher\.example>: host mx\.xn--bcher-kva\.example said:/);
  assert.match(mail.text ?? "", /Benutzer unbekannt: jörg/);
  assertWellFormed(Buffer.from(raw.replace(/^To: .*$/m, "To: <x>"), "utf8"));
});

test("8-bit original headers: attached as 8bit and flagged for 8BITMIME", async () => {
  const hdrs = Buffer.concat([Buffer.from("From: a@example.com\r\nSubject: "), Buffer.from("Grüße", "utf8"), Buffer.from("\r\n")]);
  const dsn = buildDsn(input({ originalHeaders: hdrs }));
  assert.equal(dsn.eightBit, true);
  const raw = dsn.body.toString("latin1");
  const top = raw.slice(0, raw.indexOf("\r\n\r\n"));
  assert.match(top, /^Content-Transfer-Encoding: 8bit$/m);
  assert.match(raw, /Content-Type: text\/rfc822-headers\r\nContent-Transfer-Encoding: 8bit\r\n/);
});

test("original header block: bare LF normalised, over-long lines cut, empty block omitted", () => {
  const hdrs = Buffer.from("Subject: lf only\nX-Long: " + "y".repeat(2000) + "\n");
  const dsn = buildDsn(input({ originalHeaders: hdrs }));
  assertWellFormed(dsn.body);
  assert.match(dsn.body.toString("latin1"), /\r\nSubject: lf only\r\nX-Long: y{990}/);
  const none = buildDsn(input({ originalHeaders: Buffer.alloc(0) }));
  assert.ok(!none.body.toString("latin1").includes("rfc822-headers"), "no third part without headers");
});

test("boundary: default is deterministic and avoids the content; an injected one is validated", () => {
  const a = buildDsn(input({ boundary: undefined }));
  const b = buildDsn(input({ boundary: undefined }));
  assert.ok(a.body.equals(b.body), "same input, same bytes");
  const m = /boundary="([^"]+)"/.exec(a.body.toString("latin1"));
  assert.ok(m);
  const boundary = m[1]!;
  assert.equal(boundary, "01JQ5Z8K2M.1767693600000/mx.example.com");
  // An original that contains the default boundary (a crafted message) gets a different one.
  const hostile = Buffer.concat([ORIGINAL_HEADERS, Buffer.from(`X-Evil: --${boundary}\r\n`)]);
  const c = buildDsn(input({ boundary: undefined, originalHeaders: hostile }));
  const m2 = /boundary="([^"]+)"/.exec(c.body.toString("latin1"));
  assert.ok(m2 && m2[1] !== boundary);
  assert.equal(c.body.toString("latin1").split(`--${m2[1]}`).length - 1, 4, "3 delimiters and the close, nothing else");
  assert.throws(() => buildDsn(input({ boundary: "bad\"quote" })), RangeError);
  assert.throws(() => buildDsn(input({ boundary: "x".repeat(71) })), RangeError);
  assert.throws(() => buildDsn(input({ boundary: "Quarterly" })), /occurs in the content/);
});

test("input validation: host names must be ASCII", () => {
  assert.throws(() => buildDsn(input({ reportingMta: "mx example" })), RangeError);
  assert.throws(() => buildDsn(input({ messageIdDomain: "bücher.example" })), RangeError);
  assert.throws(() => buildDsn(input({ now: new Date(NaN) })), RangeError);
});

test("long remote replies are folded in the status part and never exceed 998 octets", async () => {
  const reply = "554 5.7.1 " + Array.from({ length: 80 }, (_, i) => `word${i}`).join(" ") + " " + "z".repeat(1500);
  const r = bob({ history: [attempt({ outcome: "permanent", reply, status: "5.7.1", mx: "mx1.example.org", remote: true })] });
  const dsn = buildDsn(input({ original: meta({ recipients: [r] }) }));
  assertWellFormed(dsn.body);
  const mail = await parse(dsn.body);
  const g = statusGroups(mail.attachments[0]!.content.toString("latin1"))[1]!;
  assert.ok(g.get("diagnostic-code")!.startsWith("smtp; 554 5.7.1 word0 word1"));
  assert.ok(g.get("diagnostic-code")!.includes("word60"));
  // Quoted as an excerpt of EXCERPT_MAX characters (docs/security.md "Outbound bounds").
  assert.ok(!g.get("diagnostic-code")!.includes("z".repeat(100)), "the reply is cut");
  assert.ok(g.get("diagnostic-code")!.length <= "smtp; ".length + EXCERPT_MAX + 3, `${g.get("diagnostic-code")!.length}`);
});

test("Status falls back to a class-consistent code when the record has none", async () => {
  const none = bob({ history: [] });
  const weird = bob({ address: "w@example.org", history: [attempt({ outcome: "permanent", reply: "huh", status: "garbage" })] });
  const m = meta({ recipients: [none, weird] });
  const mail = await parse(buildDsn(input({ original: m })).body);
  const g = statusGroups(mail.attachments[0]!.content.toString("latin1"));
  assert.equal(g[1]!.get("status"), "5.0.0");
  assert.equal(g[2]!.get("status"), "5.0.0");
  const p = dave({ history: [attempt({ outcome: "transient", reply: "x", status: "5.1.1" })] });
  const mail2 = await parse(buildDsn(input({ original: meta({ recipients: [p] }), recipients: [p], action: "delayed" })).body);
  assert.equal(statusGroups(mail2.attachments[0]!.content.toString("latin1"))[1]!.get("status"), "4.0.0");
});

test("headerBlockFrom", () => {
  const table: [name: string, input: string, expected: string][] = [
    ["CRLF message", "A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n", "A: 1\r\nB: 2\r\n"],
    ["folded header", "A: 1\r\n\tcont\r\n\r\nbody", "A: 1\r\n\tcont\r\n"],
    ["bare LF", "A: 1\nB: 2\n\nbody\n", "A: 1\nB: 2\n"],
    ["no body", "A: 1\r\nB: 2\r\n", "A: 1\r\nB: 2\r\n"],
    ["cut mid-line (64 KB read)", "A: 1\r\nB: 2\r\nC: trunc", "A: 1\r\nB: 2\r\n"],
    ["empty header section", "\r\nbody\r\n", ""],
    ["empty buffer", "", ""],
    ["only a partial line", "Subject: no end", ""],
  ];
  for (const [name, inp, expected] of table) {
    assert.equal(headerBlockFrom(Buffer.from(inp)).toString("latin1"), expected, name);
  }
});

test("mayReturnBody: RET=FULL only, and never for a client without relay rights", () => {
  const client = (relayAllowed?: boolean) => ({ ip: "192.0.2.1", ...(relayAllowed === undefined ? {} : { relayAllowed }) });
  // [RET, client.relayAllowed, body returned]
  const cases: [("FULL" | "HDRS" | undefined), boolean | undefined, boolean][] = [
    ["FULL", true, true],
    ["FULL", undefined, true], // entries written before the marker existed
    ["FULL", false, false],
    ["HDRS", true, false],
    ["HDRS", false, false],
    [undefined, true, false],
    [undefined, false, false],
  ];
  for (const [ret, relayAllowed, want] of cases) {
    assert.equal(mayReturnBody({ params: ret ? { ret } : {}, client: client(relayAllowed) }), want, `RET=${ret} relayAllowed=${relayAllowed}`);
  }
});

test("a stranger's message (client.relayAllowed false) with RET=FULL: headers only, even when the body is supplied", async () => {
  const m = meta({ params: { ret: "FULL" }, recipients: [bob()], client: { ip: "192.0.2.66", helo: "stranger.example", relayAllowed: false } });
  const dsn = buildDsn(input({ original: m, originalBody: ORIGINAL_MESSAGE }));
  const raw = dsn.body.toString("latin1");
  assert.match(raw, /\r\nContent-Type: text\/rfc822-headers\r\n/);
  assert.doesNotMatch(raw, /message\/rfc822/);
  assert.ok(!raw.includes("the figures are attached"), "no body text");
  assertWellFormed(dsn.body);
});
