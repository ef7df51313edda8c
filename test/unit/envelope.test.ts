import { test } from "node:test";
import assert from "node:assert/strict";
import { groupByDomain, newMessage, newRecipient } from "../../src/core/envelope.js";

test("newRecipient: pending, never tried, grouped by the lower-cased domain after the last @", () => {
  assert.deepEqual(newRecipient("Bob@Example.COM"), { address: "Bob@Example.COM", domain: "example.com", status: "pending", attempts: 0, history: [] });
  // A quoted local part may contain "@": the domain is what follows the last one.
  assert.equal(newRecipient('"a@b"@Mail.Test').domain, "mail.test");
  assert.equal(newRecipient("u@[192.0.2.1]").domain, "[192.0.2.1]");
  const g = groupByDomain(["x@A.test", "y@a.TEST", "z@b.test"].map(newRecipient));
  assert.deepEqual([...g].map(([d, r]) => [d, r.length]), [["a.test", 2], ["b.test", 1]]);
});

test("newMessage: due at once, received now, defaults for params, 8-bit and kind", () => {
  const now = Date.UTC(2026, 10, 25, 12, 0, 0);
  const m = newMessage({ sender: "", recipients: [newRecipient("a@b.test")], nowMs: now, client: { ip: "127.0.0.1" } });
  assert.equal(m.receivedAt, "2026-11-25T12:00:00.000Z");
  assert.equal(m.nextAttemptAt, m.receivedAt);
  assert.deepEqual([m.version, m.params, m.eightBit, m.kind], [1, {}, false, "message"]);
  assert.equal(newMessage({ sender: "", recipients: [], nowMs: now, client: { ip: "::1" }, kind: "bounce", eightBit: true }).kind, "bounce");
});
