import { test } from "node:test";
import assert from "node:assert/strict";
import {
  capTargets,
  cutOwnHost,
  isNullMx,
  mxLookupFailure,
  orderAddresses,
  orderMx,
  parseAddressLiteral,
  planMx,
  type MxDeps,
  type ResolvedHost,
} from "../../src/delivery/mx.js";
import { findRoute } from "../../src/core/routes.js";
import { DnsError, type DnsErrorKind, type MxRecord, type Resolver } from "../../src/io/resolver.js";

/** A deterministic random() from a list of values (cycled). */
function seq(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

test("orderMx: lowest preference first", () => {
  const recs: MxRecord[] = [
    { exchange: "c.example", priority: 30 },
    { exchange: "a.example", priority: 10 },
    { exchange: "b.example.", priority: 20 },
  ];
  assert.deepEqual(orderMx(recs, Math.random).map((h) => h.name), ["a.example", "b.example", "c.example"]);
});

test("orderMx: equal preferences are shuffled with the injected random()", () => {
  const recs: MxRecord[] = [
    { exchange: "a", priority: 10 },
    { exchange: "b", priority: 10 },
    { exchange: "c", priority: 10 },
    { exchange: "z", priority: 5 },
  ];
  // Fisher–Yates from the end: i=2 j=floor(r*3), i=1 j=floor(r*2)
  const table: [number[], string[]][] = [
    [[0.99, 0.99], ["z", "a", "b", "c"]],
    [[0, 0], ["z", "b", "c", "a"]],
    [[0, 0.99], ["z", "c", "b", "a"]],
    [[0.5, 0], ["z", "c", "a", "b"]],
  ];
  for (const [r, want] of table) assert.deepEqual(orderMx(recs, seq(...r)).map((h) => h.name), want, JSON.stringify(r));
  // every permutation of the tie shows up over many seeds; the lower preference never moves
  const seen = new Set<string>();
  for (let k = 0; k < 200; k++) {
    const o = orderMx(recs, Math.random).map((h) => h.name);
    assert.equal(o[0], "z");
    seen.add(o.join(""));
  }
  assert.equal(seen.size, 6);
});

test("orderMx: duplicate exchanges collapse, root exchanges are dropped", () => {
  const o = orderMx([{ exchange: "A.example", priority: 10 }, { exchange: "a.example.", priority: 10 }, { exchange: ".", priority: 20 }], Math.random);
  assert.deepEqual(o, [{ name: "a.example", preference: 10 }]);
});

test("isNullMx (RFC 7505)", () => {
  assert.equal(isNullMx([{ exchange: "", priority: 0 }]), true);
  assert.equal(isNullMx([{ exchange: ".", priority: 0 }]), true);
  assert.equal(isNullMx([{ exchange: "mx.example", priority: 0 }]), false);
  assert.equal(isNullMx([{ exchange: "", priority: 0 }, { exchange: "mx.example", priority: 10 }]), false);
  assert.equal(isNullMx([]), false);
});

test("mxLookupFailure: nodata → implicit MX, nxdomain permanent, temporary transient", () => {
  assert.equal(mxLookupFailure("x.example", "nodata"), "implicit");
  const nx = mxLookupFailure("x.example", "nxdomain");
  assert.ok(nx !== "implicit" && nx.outcome === "permanent" && nx.status === "5.1.2");
  const tmp = mxLookupFailure("x.example", "temporary");
  assert.ok(tmp !== "implicit" && tmp.outcome === "transient" && tmp.status === "4.4.3");
});

const H = (name: string, preference: number, ...addresses: string[]): ResolvedHost => ({ name, preference, addresses });

test("cutOwnHost: keep only MX strictly better than our own best record", () => {
  const hosts = [H("mx1.example", 10, "192.0.2.1"), H("me.example", 20, "192.0.2.2"), H("mx3.example", 20, "192.0.2.3"), H("mx4.example", 30, "192.0.2.4")];
  const byName = cutOwnHost("example", hosts, { hostname: "ME.example.", localAddresses: [] });
  assert.deepEqual((byName as ResolvedHost[]).map((h) => h.name), ["mx1.example"]);
  const byAddr = cutOwnHost("example", hosts, { hostname: "other", localAddresses: ["::ffff:192.0.2.3"] });
  assert.deepEqual((byAddr as ResolvedHost[]).map((h) => h.name), ["mx1.example"]);
  const none = cutOwnHost("example", hosts, { hostname: "other", localAddresses: ["198.51.100.1"] });
  assert.equal((none as ResolvedHost[]).length, 4);
  const loop = cutOwnHost("example", hosts, { hostname: "mx1.example", localAddresses: [] });
  assert.ok(!Array.isArray(loop));
  assert.equal(loop.status, "5.4.6");
  assert.equal(loop.outcome, "permanent");
  assert.match(loop.reply, /loops back to myself/);
});

test("orderAddresses: preference per family", () => {
  const v4 = ["192.0.2.1", "192.0.2.2"];
  const v6 = ["2001:db8::1", "2001:db8::2", "2001:db8::3"];
  assert.deepEqual(orderAddresses(v4, v6, "ipv4"), ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2", "2001:db8::3"]);
  assert.deepEqual(orderAddresses(v4, v6, "ipv6"), ["2001:db8::1", "2001:db8::2", "2001:db8::3", "192.0.2.1", "192.0.2.2"]);
  assert.deepEqual(orderAddresses(v4, v6, "any"), ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2", "2001:db8::3"]);
  assert.deepEqual(orderAddresses(v4, [], "ipv6"), v4);
});

test("capTargets: at most N addresses over all hosts, in order, no duplicates", () => {
  const hosts = [H("a", 10, "192.0.2.1", "192.0.2.2"), H("b", 20, "192.0.2.2", "192.0.2.3"), H("c", 30, "192.0.2.4")];
  assert.deepEqual(capTargets(hosts, 3).map((t) => `${t.host}/${t.ip}`), ["a/192.0.2.1", "a/192.0.2.2", "b/192.0.2.3"]);
  assert.equal(capTargets(hosts, 10).length, 4);
  assert.equal(capTargets(hosts, 1).length, 1);
});

test("parseAddressLiteral", () => {
  assert.equal(parseAddressLiteral("[192.0.2.1]"), "192.0.2.1");
  assert.equal(parseAddressLiteral("[IPv6:2001:DB8::1]"), "2001:db8::1");
  assert.equal(parseAddressLiteral("[ipv6:::1]"), "::1");
  assert.equal(parseAddressLiteral("[300.1.1.1]"), undefined);
  assert.equal(parseAddressLiteral("[2001:db8::1]"), undefined); // the "IPv6:" tag is required (RFC 5321 §4.1.3)
  assert.equal(parseAddressLiteral("example.com"), undefined);
});

test("routes and host:port parsing", () => {
  const routes = { "example.com": ["a:2525"], ".example.com": ["b"], ".deep.example.com": ["c"] };
  assert.deepEqual(findRoute(routes, "example.com"), ["a:2525"]);
  assert.deepEqual(findRoute(routes, "x.example.com"), ["b"]);
  assert.deepEqual(findRoute(routes, "y.deep.example.com"), ["c"]);
  assert.equal(findRoute(routes, "notexample.com"), undefined);
  assert.equal(findRoute(routes, "other.org"), undefined);
});

// ---- planMx over a fake resolver ----------------------------------------------------------

type FakeZone = Record<string, { mx?: MxRecord[] | DnsErrorKind; a?: string[] | DnsErrorKind; aaaa?: string[] | DnsErrorKind }>;

function fakeResolver(zone: FakeZone): Resolver {
  const look = <T>(name: string, key: "mx" | "a" | "aaaa"): Promise<T> => {
    const e = zone[name];
    if (!e) return Promise.reject(new DnsError("nxdomain", name, "ENOTFOUND"));
    const v = e[key];
    if (v === undefined) return Promise.reject(new DnsError("nodata", name, "ENODATA"));
    if (typeof v === "string") return Promise.reject(new DnsError(v, name, "X"));
    return Promise.resolve(v as T);
  };
  return { mx: (d) => look(d, "mx"), a: (h) => look(h, "a"), aaaa: (h) => look(h, "aaaa") };
}

function deps(zone: FakeZone, over: Partial<MxDeps> = {}): MxDeps {
  return { resolver: fakeResolver(zone), random: () => 0.99, hostname: "mxd.local", localAddresses: [], addressPreference: "ipv4", maxAddresses: 5, ...over };
}

test("planMx: table", async () => {
  const zone: FakeZone = {
    "prio.example": { mx: [{ exchange: "mx2.prio.example", priority: 20 }, { exchange: "mx1.prio.example", priority: 10 }] },
    "mx1.prio.example": { a: ["192.0.2.1"], aaaa: ["2001:db8::1"] },
    "mx2.prio.example": { a: ["192.0.2.2"] },
    "implicit.example": { a: ["192.0.2.9"] },
    "nothing.example": {},
    "null.example": { mx: [{ exchange: "", priority: 0 }] },
    "fail.example": { mx: "temporary" },
    "loop.example": { mx: [{ exchange: "mxd.local", priority: 10 }, { exchange: "mx2.prio.example", priority: 20 }] },
    "backup.example": { mx: [{ exchange: "mx1.prio.example", priority: 5 }, { exchange: "self.example", priority: 10 }] },
    "self.example": { a: ["198.51.100.7"] },
    "dangling.example": { mx: [{ exchange: "gone.example", priority: 10 }] },
    "tempaddr.example": { mx: [{ exchange: "slowdns.example", priority: 10 }] },
    "slowdns.example": { a: "temporary", aaaa: "temporary" },
    "many.example": { mx: [{ exchange: "big.example", priority: 10 }, { exchange: "mx2.prio.example", priority: 20 }] },
    "big.example": { a: ["192.0.2.10", "192.0.2.11", "192.0.2.12"], aaaa: ["2001:db8::10"] },
  };
  type Want = { targets: string[]; implicit?: boolean } | { outcome: string; status: string };
  const table: [string, Partial<MxDeps>, Want][] = [
    ["prio.example", {}, { targets: ["mx1.prio.example/192.0.2.1", "mx1.prio.example/2001:db8::1", "mx2.prio.example/192.0.2.2"] }],
    ["prio.example", { addressPreference: "ipv6" }, { targets: ["mx1.prio.example/2001:db8::1", "mx1.prio.example/192.0.2.1", "mx2.prio.example/192.0.2.2"] }],
    ["prio.example", { maxAddresses: 2 }, { targets: ["mx1.prio.example/192.0.2.1", "mx1.prio.example/2001:db8::1"] }],
    ["implicit.example", {}, { targets: ["implicit.example/192.0.2.9"], implicit: true }],
    ["nothing.example", {}, { outcome: "permanent", status: "5.1.2" }],
    ["absent.example", {}, { outcome: "permanent", status: "5.1.2" }],
    ["null.example", {}, { outcome: "permanent", status: "5.1.10" }],
    ["fail.example", {}, { outcome: "transient", status: "4.4.3" }],
    ["loop.example", {}, { outcome: "permanent", status: "5.4.6" }],
    ["backup.example", { localAddresses: ["198.51.100.7"] }, { targets: ["mx1.prio.example/192.0.2.1", "mx1.prio.example/2001:db8::1"] }],
    ["dangling.example", {}, { outcome: "permanent", status: "5.4.4" }],
    ["tempaddr.example", {}, { outcome: "transient", status: "4.4.3" }],
    ["many.example", { maxAddresses: 3 }, { targets: ["big.example/192.0.2.10", "big.example/192.0.2.11", "big.example/192.0.2.12"] }],
  ];
  for (const [domain, over, want] of table) {
    const p = await planMx(domain, deps(zone, over));
    const label = `${domain} ${JSON.stringify(over)}`;
    if ("targets" in want) {
      assert.ok(p.ok, label + ": " + JSON.stringify(p));
      assert.deepEqual(p.targets.map((t) => `${t.host}/${t.ip}`), want.targets, label);
      assert.equal(p.implicit, want.implicit ?? false, label);
    } else {
      assert.ok(!p.ok, label);
      assert.equal(p.failure.outcome, want.outcome, label);
      assert.equal(p.failure.status, want.status, label);
    }
  }
});

test("planMx: null MX reply text carries 556 5.1.10", async () => {
  const p = await planMx("null.example", deps({ "null.example": { mx: [{ exchange: ".", priority: 0 }] } }));
  assert.ok(!p.ok);
  assert.match(p.failure.reply, /^556 5\.1\.10 /);
});
