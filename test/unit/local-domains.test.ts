import { test } from "node:test";
import assert from "node:assert/strict";
import { isLocalDomain, localMailbox } from "../../src/core/local-domains.js";

const domains = {
  "drop.test": { recipients: ["alice", "bob"] },
  "catch.test": { recipients: ["carol"], catchAll: "all" },
};

test("localMailbox: listed, catch-all, unknown, not local", () => {
  const cases: [string, string | undefined][] = [
    ["alice@drop.test", "alice"],
    ["Alice@DROP.test", "alice"],
    ["eve@drop.test", undefined],
    ["carol@catch.test", "carol"],
    ["dave@catch.test", "all"],
    ["alice@elsewhere.test", undefined],
    ["no-at-sign", undefined],
    ["\"a@b\"@drop.test", undefined],
  ];
  for (const [addr, want] of cases) assert.equal(localMailbox(domains, addr), want, addr);
});

test("isLocalDomain: case-insensitive, own keys only", () => {
  assert.equal(isLocalDomain(domains, "DROP.test"), true);
  assert.equal(isLocalDomain(domains, "elsewhere.test"), false);
  assert.equal(isLocalDomain(domains, "constructor"), false);
});
