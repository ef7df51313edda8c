import { test } from "node:test";
import assert from "node:assert/strict";
import { hostAndPort, hostKind, isHostName, parseHostPort } from "../../src/core/host-port.js";

test("parseHostPort: table", () => {
  const ok: [string, { defaultPort?: number; minPort?: number }, string, number, string][] = [
    ["mx.example.org", { defaultPort: 25 }, "mx.example.org", 25, "name"],
    ["mx.example.org:2525", {}, "mx.example.org", 2525, "name"],
    ["192.0.2.1:65535", {}, "192.0.2.1", 65535, "ipv4"],
    ["[::1]:8025", {}, "::1", 8025, "ipv6"],
    ["[2001:db8::1]", { defaultPort: 25 }, "2001:db8::1", 25, "ipv6"],
    ["127.0.0.1:0", { minPort: 0 }, "127.0.0.1", 0, "ipv4"],
    ["localhost:25", {}, "localhost", 25, "name"],
    ["relay.example.:25", {}, "relay.example.", 25, "name"],
  ];
  for (const [s, o, host, port, kind] of ok) assert.deepEqual(parseHostPort(s, o), { ok: true, value: { host, port, kind } }, s);
  const bad: [string, { defaultPort?: number; minPort?: number }, RegExp][] = [
    ["127.0.0.7:86000", {}, /port 86000 .* out of range \(1–65535\)/],
    ["relay.example:99999", {}, /port 99999/],
    ["relay.example:0", {}, /port 0 .* out of range/],
    ["relay.example:-1", {}, /port "-1" .* not a number/],
    ["relay.example:25x", {}, /not a number/],
    ["relay.example", {}, /no port/],
    ["300.1.1.1:25", {}, /not an IPv4 address/],
    ["10.0.0:25", {}, /not an IPv4 address/],
    ["::1", {}, /in brackets/],
    ["[::1", {}, /in brackets/],
    ["[zz::1]:25", {}, /not an IPv6 address/],
    ["-bad.example:25", {}, /not a host name/],
    ["a..b:25", {}, /not a host name/],
    ["", { defaultPort: 25 }, /expected "host"/],
    [" mx.example", { defaultPort: 25 }, /expected "host"/],
  ];
  for (const [s, o, re] of bad) {
    const r = parseHostPort(s, o);
    assert.equal(r.ok, false, s);
    if (!r.ok) assert.match(r.error, re, s);
  }
});

test("isHostName / hostKind", () => {
  for (const n of ["a", "mx1.example.org", "xn--bcher-kva.example", "a-b.c", "x".repeat(63) + ".example"]) assert.ok(isHostName(n), n);
  for (const n of ["", "-a", "a-", "a..b", "a_b", "1.2.3.4", "x".repeat(64) + ".example", "a b"]) assert.ok(!isHostName(n), n);
  assert.equal(hostKind("10.1.2.3"), "ipv4");
  assert.equal(hostKind("fe80::1"), "ipv6");
  assert.equal(hostKind("mail.example"), "name");
  assert.equal(hostKind("10.1.2.300"), undefined);
});

test("hostAndPort: checked config values, default port filled in", () => {
  assert.deepEqual(hostAndPort("relay.example:2525", 25), { host: "relay.example", port: 2525 });
  assert.deepEqual(hostAndPort("relay.example", 25), { host: "relay.example", port: 25 });
  assert.deepEqual(hostAndPort("[2001:db8::1]:587", 25), { host: "2001:db8::1", port: 587 });
  assert.deepEqual(hostAndPort("[::1]", 8025), { host: "::1", port: 8025 });
  assert.deepEqual(hostAndPort("192.0.2.1", 26), { host: "192.0.2.1", port: 26 });
  assert.deepEqual(hostAndPort("127.0.0.1:0", 8025), { host: "127.0.0.1", port: 0 });
});
