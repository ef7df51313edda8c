// queue/operator-actions.ts as a table: each action on each kind of message — what changes in
// the state, what the plan tells the queue manager to do, what the operator reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newMessage, newRecipient, type MessageMeta } from "../../src/core/envelope.js";
import { planAction, type OperatorAction } from "../../src/queue/operator-actions.js";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");
const ISO = new Date(NOW).toISOString();

function msg(o: { held?: boolean; rcpts?: string[]; done?: string[] } = {}): MessageMeta {
  const m = { ...newMessage({ sender: "s@a.test", recipients: (o.rcpts ?? ["b@x.test", "c@y.test"]).map(newRecipient), nowMs: NOW - 3_600_000, client: { ip: "127.0.0.1" } }), id: "00000000000000AB", size: 10 } as MessageMeta;
  m.nextAttemptAt = new Date(NOW + 600_000).toISOString();
  if (o.held) m.held = true;
  for (const r of m.recipients) if (o.done?.includes(r.address)) r.status = "delivered";
  return m;
}

interface Row {
  name: string;
  action: OperatorAction;
  m: () => MessageMeta;
  offline?: boolean;
  paused?: string[];
  domain?: string;
  want: { kind: string; ok: boolean; status: string; then?: string; held?: boolean; due?: boolean; failed?: string[] };
}

const rows: Row[] = [
  { name: "flush, daemon", action: "flush", m: () => msg(), want: { kind: "attempt", ok: true, status: "flushed" } },
  { name: "flush, every destination paused", action: "flush", m: () => msg(), paused: ["x.test", "y.test"], want: { kind: "attempt", ok: true, status: "paused (not attempted until resumed)" } },
  { name: "flush, one of two paused", action: "flush", m: () => msg(), paused: ["x.test"], want: { kind: "attempt", ok: true, status: "flushed" } },
  { name: "flush offline: due now", action: "flush", m: () => msg(), offline: true, want: { kind: "update", then: "none", ok: true, status: "due now (attempted when mxd starts)", due: true } },
  { name: "flush offline, paused", action: "flush", m: () => msg(), offline: true, paused: ["x.test", "y.test"], want: { kind: "update", then: "none", ok: true, status: "due now, but its destination is paused", due: true } },
  { name: "flush held", action: "flush", m: () => msg({ held: true }), want: { kind: "refuse", ok: false, status: "held (release it first)", held: true } },
  { name: "flush, nothing pending", action: "flush", m: () => msg({ done: ["b@x.test", "c@y.test"] }), want: { kind: "refuse", ok: false, status: "nothing pending" } },
  { name: "hold", action: "hold", m: () => msg(), want: { kind: "update", then: "hold", ok: true, status: "held", held: true } },
  { name: "hold twice", action: "hold", m: () => msg({ held: true }), want: { kind: "refuse", ok: true, status: "already held", held: true } },
  { name: "release", action: "release", m: () => msg({ held: true }), want: { kind: "update", then: "release", ok: true, status: "released", due: true } },
  { name: "release, not held", action: "release", m: () => msg(), want: { kind: "refuse", ok: false, status: "not held" } },
  { name: "delete", action: "delete", m: () => msg(), want: { kind: "remove", ok: true, status: "deleted" } },
  { name: "delete recipients at one of two domains", action: "deleteRecipients", domain: "x.test", m: () => msg(), want: { kind: "update", then: "none", ok: true, status: "deleted 1 recipient(s) at x.test", failed: ["b@x.test"] } },
  { name: "delete recipients at the only pending domain", action: "deleteRecipients", domain: "y.test", m: () => msg({ done: ["b@x.test"] }), want: { kind: "remove", ok: true, status: "deleted" } },
  { name: "delete recipients, none there", action: "deleteRecipients", domain: "z.test", m: () => msg(), want: { kind: "refuse", ok: false, status: "no pending recipient at z.test" } },
  { name: "delete recipients, the one there is delivered", action: "deleteRecipients", domain: "x.test", m: () => msg({ done: ["b@x.test"] }), want: { kind: "refuse", ok: false, status: "no pending recipient at x.test" } },
  { name: "bounce", action: "bounce", m: () => msg({ done: ["b@x.test"] }), want: { kind: "bounce", ok: true, status: "bounced", failed: ["c@y.test"] } },
  { name: "bounce, nothing pending", action: "bounce", m: () => msg({ done: ["b@x.test", "c@y.test"] }), want: { kind: "refuse", ok: false, status: "nothing pending" } },
];

test("planAction: every action on every kind of message", () => {
  for (const r of rows) {
    const m = r.m();
    const before = JSON.stringify(m);
    const paused = new Set(r.paused ?? []);
    const plan = planAction(r.action, m, { nowMs: NOW, offline: !!r.offline, isPaused: (d) => paused.has(d), domain: r.domain });
    assert.equal(plan.kind, r.want.kind, r.name);
    assert.deepEqual(plan.result, { id: m.id, ok: r.want.ok, status: r.want.status }, r.name);
    if (r.want.then) assert.equal(plan.kind === "update" && plan.then, r.want.then, r.name);
    assert.equal(!!m.held, !!r.want.held, `${r.name}: held`);
    assert.equal(m.nextAttemptAt === ISO, !!r.want.due, `${r.name}: due now`);
    const failed = m.recipients.filter((x) => x.status === "failed").map((x) => x.address);
    assert.deepEqual(failed, r.want.failed ?? [], `${r.name}: failed recipients`);
    for (const x of m.recipients.filter((x) => x.status === "failed")) {
      assert.equal(x.finalAt, ISO, r.name);
      assert.equal(x.history.at(-1)?.status, "5.0.0", r.name);
    }
    // A plan that changes nothing leaves the state byte for byte as it was.
    if (plan.kind === "refuse" || plan.kind === "attempt" || plan.kind === "remove") assert.equal(JSON.stringify(m), before, `${r.name}: unchanged`);
    if (plan.kind === "bounce") assert.deepEqual(plan.failed.map((x) => x.address), r.want.failed, r.name);
  }
});

test("planAction bounce: the last error is quoted in the new history entry", () => {
  const m = msg({ rcpts: ["b@x.test"] });
  m.recipients[0]!.history.push({ at: ISO, outcome: "transient", status: "4.4.1", reply: "451 4.4.1 connection refused" });
  planAction("bounce", m, { nowMs: NOW, offline: false, isPaused: () => false });
  assert.equal(m.recipients[0]!.history.at(-1)!.reply, "delivery cancelled by the postmaster; last error: 451 4.4.1 connection refused");
});
