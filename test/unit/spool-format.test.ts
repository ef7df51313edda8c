// The state-file schema (spool/format.ts decodeMeta) and envelope salvage (spool/salvage.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { BadStateError, checkedMeta, decodeMeta, encodeMeta, messageMetaSchema, validateMeta } from "../../src/spool/format.js";
import { EnvelopeSalvager, salvageEnvelope } from "../../src/spool/salvage.js";
import type { MessageMeta } from "../../src/core/envelope.js";

const ID = "01KB2X7Q9M4F8Z3H";
function good(): MessageMeta {
  return {
    version: 1,
    id: ID,
    sender: "alice@origin.test",
    recipients: [{ address: "bob@remote.test", domain: "remote.test", status: "pending", attempts: 1, history: [{ at: "2026-11-25T12:00:00.000Z", outcome: "transient", status: "4.7.1", reply: "451 4.7.1 later", remote: true }] }],
    receivedAt: "2026-11-25T12:00:00.000Z",
    client: { ip: "127.0.0.1", helo: "c.test" },
    params: { ret: "HDRS", envid: "abc" },
    size: 10,
    eightBit: false,
    nextAttemptAt: "2026-11-25T12:05:00.000Z",
    kind: "message",
  };
}

test("decodeMeta: a valid state round-trips; unknown members are kept", () => {
  const m = { ...good(), futureField: { x: 1 } } as MessageMeta;
  assert.deepEqual(decodeMeta(encodeMeta(m), ID), m);
});

test("decodeMeta: what does not validate is a BadStateError naming the member", () => {
  const cases: [name: string, edit: (j: Record<string, any>) => void, want: RegExp][] = [
    ["notify a string (issue 9)", (j) => (j.recipients[0].notify = "FAILURE"), /recipients\.0\.notify/],
    ["envid a number (issue 9)", (j) => (j.params.envid = 42), /params\.envid/],
    ["ret not FULL/HDRS", (j) => (j.params.ret = "ALL"), /params\.ret/],
    ["history not an array", (j) => (j.recipients[0].history = "x"), /recipients\.0\.history/],
    ["a reply that is not text", (j) => (j.recipients[0].history[0].reply = 5), /history\.0\.reply/],
    ["attempts negative", (j) => (j.recipients[0].attempts = -1), /recipients\.0\.attempts/],
    ["bad recipient status", (j) => (j.recipients[0].status = "sent"), /recipients\.0\.status/],
    ["no recipients", (j) => (j.recipients = []), /no recipients/],
    ["sender not a string", (j) => (j.sender = null), /sender/],
    ["bad nextAttemptAt", (j) => (j.nextAttemptAt = "soon"), /nextAttemptAt/],
    ["size missing", (j) => delete j.size, /size/],
    ["kind unknown", (j) => (j.kind = "spam"), /kind/],
    ["version 2", (j) => (j.version = 2), /unsupported state version 2/],
    ["bad id", (j) => (j.id = "../x"), /id/],
  ];
  for (const [name, edit, want] of cases) {
    const j = JSON.parse(encodeMeta(good()).toString()) as Record<string, any>;
    edit(j);
    assert.throws(() => decodeMeta(Buffer.from(JSON.stringify(j))), (e: unknown) => e instanceof BadStateError && want.test((e as Error).message), name);
  }
  assert.throws(() => decodeMeta(Buffer.from("{\"version\": 1, \"id")), /state is not JSON/);
  assert.throws(() => decodeMeta(encodeMeta(good()), "01KB2X7Q9M4F8Z3J"), /does not match file name/);
});

test("decodeMeta: defaults for members older files lack; a stored reply longer than an excerpt is cut", () => {
  const j = JSON.parse(encodeMeta(good()).toString()) as Record<string, any>;
  delete j.recipients[0].attempts;
  delete j.recipients[0].history;
  delete j.kind;
  delete j.params;
  const m = decodeMeta(Buffer.from(JSON.stringify(j)));
  assert.equal(m.recipients[0]!.attempts, 0);
  assert.deepEqual(m.recipients[0]!.history, []);
  assert.equal(m.kind, "message");
  assert.deepEqual(m.params, {});
  const big = good();
  big.recipients[0]!.history[0]!.reply = "451 " + "x".repeat(100_000);
  assert.ok(decodeMeta(encodeMeta(big)).recipients[0]!.history[0]!.reply.length <= 512);
});

test("salvage: sender and recipients of torn, wrong-shape and huge files, in any chunking", () => {
  const two = good();
  two.recipients.push({ address: "carol@other.test", domain: "other.test", status: "delivered", attempts: 1, history: [] });
  two.recipients.push({ address: "dan@other.test", domain: "other.test", status: "failed", attempts: 1, history: [] });
  const text = encodeMeta(two).toString();
  const cases: [name: string, input: string, want: ReturnType<typeof salvageEnvelope>][] = [
    [
      "a whole file",
      text,
      {
        sender: "alice@origin.test",
        recipients: [{ address: "bob@remote.test", status: "pending" }, { address: "carol@other.test", status: "delivered" }, { address: "dan@other.test", status: "failed" }],
        receivedAt: "2026-11-25T12:00:00.000Z",
        kind: "message",
      },
    ],
    ["torn after the first recipient's status", text.slice(0, text.indexOf("\"attempts\"")), { sender: "alice@origin.test", recipients: [{ address: "bob@remote.test", status: "pending" }] }],
    ["no sender", '{"recipients": [{"address": "x@y"}]}', undefined],
    ["no recipient", '{"sender": "a@b"}', undefined],
    ["a reply that quotes member names cannot add a recipient", JSON.stringify({ sender: "a@b", recipients: [{ address: "r@s", history: [{ reply: '"address": "evil@x", "sender": "z"' }] }] }), { sender: "a@b", recipients: [{ address: "r@s" }] }],
    ["escapes and UTF-8 in values", JSON.stringify({ sender: "j\u00f6rg@b\u00fccher.test", recipients: [{ address: "q\"x@y" }] }), { sender: "jörg@bücher.test", recipients: [{ address: 'q"x@y' }] }],
  ];
  for (const [name, input, want] of cases) {
    assert.deepEqual(salvageEnvelope(Buffer.from(input)), want, name);
    for (const size of [1, 7, 100, 4096]) {
      const s = new EnvelopeSalvager();
      const b = Buffer.from(input);
      for (let i = 0; i < b.length; i += size) s.push(b.subarray(i, i + size));
      assert.deepEqual(s.result(), want, `${name}, chunks of ${size}`);
    }
  }
  // The file: a reply of 60 MB between the recipients; found in bounded memory.
  const huge = good();
  huge.recipients[0]!.history[0]!.reply = "";
  const [head, tail] = encodeMeta(huge).toString().split('"reply": ""');
  const s = new EnvelopeSalvager();
  s.push(Buffer.from(head + '"reply": "'));
  const chunk = Buffer.alloc(64 * 1024, "\xff".charCodeAt(0));
  for (let i = 0; i < 1000; i++) s.push(chunk);
  s.push(Buffer.from('"' + tail));
  assert.deepEqual(s.result()?.recipients, [{ address: "bob@remote.test", status: "pending" }]);
});

test("checkedMeta (load()'s hand-written check) accepts exactly what the schema accepts and yields what it yields", () => {
  const rich = (): Record<string, any> => ({
    ...good(),
    recipients: [
      { ...good().recipients[0]!, notify: ["FAILURE", "DELAY"], orcpt: "rfc822;bob@remote.test", finalAt: "2026-11-25T12:06:00.000Z", dsnOwed: true },
      {
        address: "carol@remote.test",
        domain: "remote.test",
        status: "delivered",
        attempts: 2,
        history: [{ at: "2026-11-25T12:00:00.000Z", outcome: "delivered", status: "2.0.0", reply: "250 ok", mx: "mx.remote.test", ip: "192.0.2.1", remote: true, tls: { version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", verified: true }, tlsPolicy: "may", hosts: [] }],
      },
    ],
    client: { ip: "127.0.0.1", port: 2525, helo: "c.test", tls: true, reverseName: "c.test", user: "u", relayAllowed: true },
    params: { body: "8BITMIME", smtputf8: true, size: 100, ret: "FULL", envid: "e", auth: "" },
    held: false,
    delayWarned: true,
    messageId: "<m@x>",
    dkim: ["DKIM-Signature: v=1; a=rsa-sha256\r\n"],
  });
  const values: unknown[] = [undefined, null, 0, -1, 1.5, 7, "", "x", "FULL", "HDRS", "7BIT", "8BITMIME", "message", "bounce", "pending", "delivered", "failed", "transient", "permanent", true, false, [], ["a"], [1], {}, { ip: "1.2.3.4" }, "2026-11-25T12:00:00.000Z", ID, "01KB2X7Q9M4F8Z3I", "DKIM-Signature: v=1\r\n", "r".repeat(600), "\x01".repeat(3)];
  const extraKeys = ["notify", "orcpt", "finalAt", "tls", "mx", "ip", "remote", "tlsPolicy", "port", "body", "ret", "auth", "held", "dkim", "client", "params", "history", "attempts", "verified", "unknownMember"];
  let seed = 42;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  /** Every (object, key) of the state, and the keys each object could have but lacks. */
  const places = (v: unknown, out: [Record<string, unknown> | unknown[], string | number][] = []): typeof out => {
    if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), places(x, out)));
    else if (v && typeof v === "object") {
      for (const k of Object.keys(v)) out.push([v as Record<string, unknown>, k]), places((v as Record<string, unknown>)[k], out);
      for (const k of extraKeys) if (!(k in v)) out.push([v as Record<string, unknown>, k]);
    }
    return out;
  };
  const tally = { both: 0, neither: 0 };
  for (let i = 0; i < 4000; i++) {
    const j = rich();
    for (let k = rand(3); k >= 0; k--) {
      const all = places(j);
      const [obj, key] = all[rand(all.length)]!;
      const v = values[rand(values.length)];
      if (v === undefined && !Array.isArray(obj)) delete (obj as Record<string, unknown>)[key];
      else (obj as Record<string | number, unknown>)[key] = typeof v === "object" && v !== null ? JSON.parse(JSON.stringify(v)) : v;
    }
    const text = JSON.stringify(j);
    const fast = checkedMeta(JSON.parse(text));
    const schema = messageMetaSchema.safeParse(JSON.parse(text));
    assert.equal(!!fast, schema.success, `fast ${!!fast}, schema ${schema.success}: ${text}${schema.success ? "" : "\n" + JSON.stringify(schema.error.issues[0])}`);
    if (fast && schema.success) assert.deepEqual(fast, schema.data, text);
    tally[fast ? "both" : "neither"]++;
  }
  assert.ok(tally.both > 500 && tally.neither > 500, JSON.stringify(tally));
  // Through validateMeta: the fast path and the schema's reasons.
  assert.deepEqual(validateMeta(rich(), ID), messageMetaSchema.parse(rich()));
  assert.throws(() => validateMeta({ ...rich(), sender: 5 }, ID), /bad state: sender/);
  assert.throws(() => validateMeta(rich(), "01KB2X7Q9M4F8Z3J"), /does not match/);
});
