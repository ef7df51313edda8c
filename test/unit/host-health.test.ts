// HostHealth (delivery/host-health.ts) as a table of event sequences in virtual time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HostHealth, type Admission } from "../../src/delivery/host-health.js";

type Step =
  | ["at", number]
  | ["begin", string]
  | ["end", string]
  | ["failed", string, string]
  | ["succeeded", string]
  | ["admit", string, Admission["ok"] | "dead" | "busy"];

const A = "192.0.2.1|25";
const B = "192.0.2.2|25";

const cases: [name: string, opts: { perHostConcurrency: number; deadHostTime: number }, steps: Step[]][] = [
  ["a fresh host is admitted", { perHostConcurrency: 2, deadHostTime: 300_000 }, [["admit", A, true]]],
  [
    "at most perHostConcurrency in flight; a slot frees on end",
    { perHostConcurrency: 2, deadHostTime: 300_000 },
    [["begin", A], ["admit", A, true], ["begin", A], ["admit", A, "busy"], ["admit", B, true], ["end", A], ["admit", A, true]],
  ],
  [
    "a failed host is skipped for deadHostTime, for everyone, then admitted again",
    { perHostConcurrency: 5, deadHostTime: 300_000 },
    [["failed", A, "connection timed out"], ["admit", A, "dead"], ["admit", B, true], ["at", 299_999], ["admit", A, "dead"], ["at", 300_000], ["admit", A, true]],
  ],
  [
    "a new failure extends the time; a success forgets the failure",
    { perHostConcurrency: 5, deadHostTime: 100 },
    [["failed", A, "refused"], ["at", 50], ["failed", A, "refused"], ["at", 120], ["admit", A, "dead"], ["succeeded", A], ["admit", A, true]],
  ],
  ["deadHostTime 0: never skipped", { perHostConcurrency: 5, deadHostTime: 0 }, [["failed", A, "refused"], ["admit", A, true]]],
  [
    "dead wins over busy; end without begin does not go negative",
    { perHostConcurrency: 1, deadHostTime: 10 },
    [["end", A], ["begin", A], ["failed", A, "x"], ["admit", A, "dead"], ["at", 10], ["admit", A, "busy"], ["end", A], ["admit", A, true]],
  ],
];

test("HostHealth: admission by concurrency and recent failures", () => {
  for (const [name, opts, steps] of cases) {
    let now = 1_000_000;
    const t0 = now;
    const h = new HostHealth({ ...opts, now: () => now });
    steps.forEach((s, i) => {
      const where = `${name}, step ${i}`;
      if (s[0] === "at") now = t0 + s[1];
      else if (s[0] === "begin") h.begin(s[1]);
      else if (s[0] === "end") h.end(s[1]);
      else if (s[0] === "failed") h.failed(s[1], s[2]);
      else if (s[0] === "succeeded") h.succeeded(s[1]);
      else {
        const a = h.admit(s[1]);
        assert.equal(a.ok ? true : a.why, s[2], where);
      }
    });
  }
});

test("HostHealth: a skipped host says why and until when", () => {
  let now = 5_000;
  const h = new HostHealth({ perHostConcurrency: 3, deadHostTime: 60_000, now: () => now });
  h.failed(A, "no greeting (timed out)");
  assert.deepEqual(h.admit(A), { ok: false, why: "dead", reason: "no greeting (timed out)", until: 65_000 });
  for (let i = 0; i < 3; i++) h.begin(B);
  assert.deepEqual(h.admit(B), { ok: false, why: "busy", inFlight: 3 });
  assert.equal(h.active(B), 3);
  now = 65_000;
  assert.deepEqual(h.admit(A), { ok: true });
});

test("busy host: a bounded FIFO wait queue; end() wakes the first waiter; a full queue says no", async () => {
  const h = new HostHealth({ perHostConcurrency: 2, deadHostTime: 0, now: () => 0 });
  h.begin("k");
  h.begin("k");
  const order: string[] = [];
  const a = h.queueFor("k")!;
  const b = h.queueFor("k")!;
  assert.equal(h.queueFor("k"), undefined, "at most perHostConcurrency wait");
  void a.wait.then(() => order.push("a"));
  void b.wait.then(() => order.push("b"));
  h.end("k");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ["a"]);
  b.cancel();
  h.end("k");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ["a"], "a cancelled waiter is not woken");
  assert.ok(h.queueFor("k"), "places free again");
});
