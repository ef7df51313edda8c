import { test } from "node:test";
import assert from "node:assert/strict";
import { describeHosts, mostInformative, orderedHosts, type HostReply } from "../../src/delivery/host-report.js";

const h = (host: string, kind: HostReply["kind"], remote: boolean, reply: string): HostReply => ({ host, ip: "192.0.2.1", port: 25, kind, reply, status: "4.4.1", remote });
const mxGrey = h("mx1", "mx", true, "451 4.7.1 Greylisted");
const mxDown = h("mx2", "mx", false, "connection refused");
const relayDown = h("relay", "fallback", false, "connection refused");
const relay421 = h("relay", "fallback", true, "421 4.3.2 shutting down");
const routeGrey = h("smart", "route", true, "450 4.2.0 busy");

test("mostInformative: remote words beat local diagnostics, the destination's hosts beat fallback relays", () => {
  const a = h("a", "mx", true, "451 a");
  const b = h("b", "mx", true, "451 b");
  const table: [HostReply[], HostReply | undefined][] = [
    [[], undefined],
    [[mxGrey, relayDown], mxGrey],
    [[mxDown, relayDown], mxDown],
    [[mxDown, relay421], relay421], // a relay's own reply beats an MX's local diagnostic
    [[mxGrey, mxDown, relay421], mxGrey],
    [[routeGrey, relayDown], routeGrey],
    [[mxDown, mxGrey], mxGrey],
    [[a, b], b], // among equals the last tried: the freshest word
  ];
  for (const [hosts, want] of table) assert.equal(mostInformative(hosts), want, hosts.map((x) => x.host).join(","));
});

test("orderedHosts / describeHosts: the reported one first, then the others in the order tried", () => {
  assert.deepEqual(orderedHosts([mxDown, mxGrey, relayDown]).map((x) => x.host), ["mx1", "mx2", "relay"]);
  assert.equal(describeHosts([mxGrey, relayDown]), "mx1[192.0.2.1]:25: 451 4.7.1 Greylisted; fallback relay[192.0.2.1]:25: connection refused");
});
