import { test } from "node:test";
import assert from "node:assert/strict";
import { matchesDead, matchesMessage, parseFilter, textMatches, type QueueFilter } from "../../src/queue/filter.js";
import { parseDuration } from "../../src/config.js";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";
import { requeueDeadState } from "../../src/queue/requeue.js";
import { bucketOf, reasonKey, ShapeBuilder } from "../../src/queue/shape.js";
import { idsFrom } from "../../src/cli/queue.js";
import { summary } from "../../src/admin/queue-actions.js";
import { describeParseError } from "../../src/cli/args.js";

const NOW = Date.UTC(2026, 0, 1, 12);
const H = 3_600_000;

function msg(sender: string, rcpts: string[], ageMs: number, o: { held?: boolean; reply?: string } = {}): MessageMeta {
  const m = { ...newMessage({ sender, recipients: rcpts.map(newRecipient), nowMs: NOW - ageMs, client: { ip: "127.0.0.1" } }), id: "01KB2X7Q9M4F8Z3H", size: 10 } as MessageMeta;
  if (o.held) m.held = true;
  if (o.reply) for (const r of m.recipients) Object.assign(r, { attempts: 1, history: [{ at: "x", outcome: "transient", status: "4.7.1", reply: o.reply }] });
  return m;
}

test("textMatches: substring or anchored glob, case-insensitive", () => {
  const table: [string, string, boolean][] = [
    ["shop", "App@Shop.example", true],
    ["app@*", "app@shop.example", true],
    ["*@shop.example", "app@shop.example", true],
    ["app@*", "x-app@shop.example", false],
    ["a?p@*", "APP@x", true],
    ["*.example", "a@b.example.org", false],
    ["a.b", "axb", false],
  ];
  for (const [p, v, want] of table) assert.equal(textMatches(p, v), want, `${p} ~ ${v}`);
});

test("matchesMessage: every filter, alone and combined", () => {
  const grey = msg("app@shop.example", ["a@grey.test"], 2 * H, { reply: "451 4.7.1 Greylisted" });
  const held = msg("", ["b@x.test"], 10 * 60_000, { held: true });
  const table: [QueueFilter, MessageMeta, boolean][] = [
    [{}, grey, true],
    [{ state: "deferred" }, grey, true],
    [{ state: "queued" }, grey, false],
    [{ state: "held" }, held, true],
    [{ state: "dead" }, grey, false],
    [{ domain: "GREY.test" }, grey, true],
    [{ domain: "grey" }, grey, false],
    [{ sender: "<>" }, held, true],
    [{ sender: "<>" }, grey, false],
    [{ recipient: "a@grey" }, grey, true],
    [{ olderThanMs: H }, grey, true],
    [{ olderThanMs: H }, held, false],
    [{ youngerThanMs: H }, held, true],
    [{ reason: "greylisted" }, grey, true],
    [{ reason: "greylisted" }, held, false],
    [{ domain: "grey.test", sender: "app@*", olderThanMs: H, reason: "4.7.1" }, grey, true],
    [{ domain: "grey.test", sender: "news@*" }, grey, false],
  ];
  for (const [f, m, want] of table) assert.equal(matchesMessage(m, f, NOW), want, JSON.stringify(f));
  const d = { buriedAt: new Date(NOW - 40 * 24 * H).toISOString(), reason: "bounce could not be delivered: 550 no such user", sender: "", recipients: ["s@origin.test"] };
  assert.equal(matchesDead(d, { state: "dead", olderThanMs: 30 * 24 * H }, NOW), true);
  assert.equal(matchesDead(d, { state: "dead", youngerThanMs: 30 * 24 * H }, NOW), false);
  assert.equal(matchesDead(d, { state: "dead", reason: "NO SUCH" }, NOW), true);
  assert.equal(matchesDead(d, { olderThanMs: 1 }, NOW), false, "dead letters only with state dead");
  assert.equal(matchesDead({ reason: "unreadable" }, { state: "dead", olderThanMs: 1 }, NOW), false, "no burial time: no age");
});

test("parseFilter: fields validated, errors name the field and value", () => {
  assert.deepEqual(parseFilter({ domain: "A.test", olderThan: "2h", youngerThan: 60000, state: "dead" }, parseDuration), { domain: "a.test", olderThanMs: 2 * H, youngerThanMs: 60000, state: "dead" });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ olderThan: "soon" }, /olderThan must be a duration .*"soon"/],
    [{ state: "stuck" }, /state must be one of .*"stuck"/],
    [{ domain: "a b" }, /domain must be a domain name, got "a b"/],
    [{ sender: 5 }, /sender must be a string, got 5/],
    [{ sendr: "x" }, /unknown filter field "sendr"/],
  ];
  for (const [o, re] of bad) assert.throws(() => parseFilter(o, parseDuration), re, JSON.stringify(o));
});

test("requeueDeadState: failed recipients pending again, due now, a fresh lifetime; delivered ones stay", () => {
  const m = msg("", ["a@x.test", "b@x.test"], 6 * 24 * H);
  m.recipients[0]!.status = "failed";
  m.recipients[0]!.finalAt = "2026-01-01T00:00:00.000Z";
  m.recipients[1]!.status = "delivered";
  const r = requeueDeadState(m, NOW);
  assert.deepEqual(r.recipients.map((x) => x.status), ["pending", "delivered"]);
  assert.equal(r.recipients[0]!.finalAt, undefined);
  assert.equal(r.nextAttemptAt, new Date(NOW).toISOString());
  assert.equal(r.receivedAt, new Date(NOW).toISOString());
  assert.match(r.recipients[0]!.history.at(-1)!.reply, /requeued from dead/);
  assert.equal(m.recipients[0]!.status, "failed", "the input is not changed");
});

test("qshape: buckets, totals, reasons grouped", () => {
  const table: [number, number][] = [[0, 0], [4.9 * 60_000, 0], [5 * 60_000, 1], [100 * 60_000, 5], [1279 * 60_000, 8], [1280 * 60_000, 9], [10 * 24 * H, 9]];
  for (const [age, b] of table) assert.equal(bucketOf(age), b, String(age));
  assert.equal(reasonKey("451 4.7.1 <a@b.test>: greylisted by [192.0.2.1]"), "451 4.7.1 <…>: greylisted by […]");
  const s = new ShapeBuilder();
  s.add(msg("x@y", ["a@grey.test", "b@grey.test"], 2 * H, { reply: "451 4.7.1 <a@grey.test> Greylisted" }), NOW);
  s.add(msg("x@y", ["c@grey.test", "d@other.test"], 60_000), NOW);
  const r = s.result();
  assert.equal(r.total.total, 4);
  assert.equal(r.messages, 2);
  assert.deepEqual(r.domains.map((d) => [d.domain, d.total]), [["grey.test", 3], ["other.test", 1]]);
  assert.deepEqual(r.domains[0]!.reasons, [{ reason: "451 4.7.1 <…> Greylisted", count: 2 }]);
  assert.deepEqual(r.total.buckets.slice(0, 6), [2, 0, 0, 0, 0, 2]);
});

test("idsFrom: list output, jq output, duplicates", () => {
  const text = "ID  STATE\n01KB2X7Q9M4F8Z3H  deferred  2h\n    pending <a@b>\n01KB2X7Q9M4F8Z3J\n01KB2X7Q9M4F8Z3H\n-- 2 message(s)\n";
  assert.deepEqual(idsFrom(text), ["01KB2X7Q9M4F8Z3H", "01KB2X7Q9M4F8Z3J"]);
});

test("bulk summary line", () => {
  assert.equal(summary("hold", [{ id: "a", ok: true, status: "held" }, { id: "b", ok: true, status: "held" }]), "held 2 messages");
  assert.equal(summary("release", [{ id: "a", ok: true, status: "released" }, { id: "b", ok: false, status: "not held" }, { id: "c", ok: false, status: "not held" }]), "released 1 message; 2 not (2 not held)");
  assert.equal(describeParseError("ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL", "Unexpected argument 'x'. This command does not take positional arguments", []), 'unexpected argument "x"; see --help');
});
