import { test } from "node:test";
import assert from "node:assert/strict";
import { admit, idleTimeout, underStress } from "../../src/smtp/admission.js";

test("admit: total and per-client limits; the reserved slots only for relay clients", () => {
  const limits = { connections: 10, connectionsPerClient: 4, reservedConnections: 2 };
  // [open connections, from this client, client inside relay.allowedNetworks, expected]
  const cases: [number, number, boolean, string][] = [
    [0, 0, false, "accept"],
    [7, 3, false, "accept"],
    [8, 0, false, "reserved"], // 10 - 2: the rest is kept for relay clients
    [9, 0, false, "reserved"],
    [8, 0, true, "accept"],
    [9, 3, true, "accept"],
    [10, 0, true, "total"],
    [10, 0, false, "total"],
    [3, 4, true, "per-client"],
    [3, 4, false, "per-client"],
  ];
  for (const [total, perClient, relayAllowed, want] of cases) {
    const a = admit({ total, perClient, relayAllowed, limits });
    assert.equal(a.accept ? "accept" : a.reason, want, `${total} open, ${perClient} from it, relay ${relayAllowed}`);
  }
  // Nothing reserved: outsiders may take every slot.
  assert.deepEqual(admit({ total: 9, perClient: 0, relayAllowed: false, limits: { ...limits, reservedConnections: 0 } }), { accept: true });
});

test("underStress: from 80% of limits.connections", () => {
  const cases: [number, number, boolean][] = [
    [0, 100, false],
    [79, 100, false],
    [80, 100, true],
    [100, 100, true],
    [7, 10, false],
    [8, 10, true],
    [1, 2, false],
    [2, 2, true],
    [0, 1, false],
    [1, 1, true],
  ];
  for (const [total, connections, want] of cases) assert.equal(underStress(total, connections), want, `${total}/${connections}`);
});

test("idleTimeout: the stress timeout applies only under stress and only when shorter", () => {
  const cases: [number, number, boolean, number][] = [
    [300_000, 10_000, false, 300_000],
    [300_000, 10_000, true, 10_000],
    [5_000, 10_000, true, 5_000],
  ];
  for (const [normal, stress, stressed, want] of cases) assert.equal(idleTimeout(normal, stress, stressed), want);
});
