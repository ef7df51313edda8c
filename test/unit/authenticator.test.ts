// The credential check: one password verification whatever the outcome (unknown users against
// the dummy hash), and the same refusal for every kind of wrong.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Authenticator } from "../../src/auth/authenticator.js";
import { DUMMY_HASH } from "../../src/auth/password-hash.js";
import type { UserEntry } from "../../src/auth/users-file.js";

const alice: UserEntry = { name: "alice", hash: "$scrypt$alice", senders: ["*"] };

test("every check costs exactly one verification; unknown users are verified against DUMMY_HASH", async () => {
  const calls: [string, string][] = [];
  const verify = async (pw: string, hash: string) => {
    calls.push([pw, hash]);
    return hash === alice.hash && pw === "right";
  };
  const a = new Authenticator({ lookup: async (n) => (n === "alice" ? alice : undefined) }, verify);
  const cases: [Parameters<Authenticator["check"]>[0], string, string][] = [
    // [credentials, result, hash verified against]
    [{ authcid: "alice", authzid: "", password: "right" }, "ok", alice.hash],
    [{ authcid: "alice", authzid: "alice", password: "right" }, "ok", alice.hash],
    [{ authcid: "alice", authzid: "", password: "wrong" }, "bad password", alice.hash],
    [{ authcid: "mallory", authzid: "", password: "right" }, "unknown user", DUMMY_HASH],
    [{ authcid: "alice", authzid: "bob", password: "right" }, "authzid", alice.hash],
    [{ authcid: "Alice", authzid: "", password: "right" }, "unknown user", DUMMY_HASH],
  ];
  for (const [creds, want, hash] of cases) {
    calls.length = 0;
    const r = await a.check(creds);
    assert.equal(r.ok ? "ok" : r.reason, want, JSON.stringify(creds));
    assert.deepEqual(calls, [[creds.password, hash]], `${JSON.stringify(creds)}: one verification`);
  }
});

test("a users file that cannot be read, or a verification that throws: unavailable (454), not a failure", async () => {
  const broken = new Authenticator({ lookup: async () => Promise.reject(new Error("EACCES")) });
  assert.deepEqual(await broken.check({ authcid: "a", authzid: "", password: "p" }), { ok: false, reason: "unavailable", error: "EACCES" });
  const throwing = new Authenticator({ lookup: async () => alice }, async () => Promise.reject(new Error("scrypt: memory")));
  assert.equal((await throwing.check({ authcid: "alice", authzid: "", password: "p" })).ok, false);
});

test("at most `concurrency` verifications run at once; the others wait their turn", async () => {
  let running = 0;
  let peak = 0;
  const verify = async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    return true;
  };
  const a = new Authenticator({ lookup: async () => alice }, verify, 2);
  const results = await Promise.all(Array.from({ length: 7 }, () => a.check({ authcid: "alice", authzid: "", password: "x" })));
  assert.ok(results.every((r) => r.ok));
  assert.equal(peak, 2);
});
