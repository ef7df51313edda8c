// core/cidr.ts: address parsing, CIDR matching and IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2).
import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalIp, ipInNetworks, parseCidr, parseIPv4, parseIPv6, unmapIPv4 } from "../../src/core/cidr.js";

test("parseIPv4 / parseIPv6: valid and invalid literals", () => {
  assert.deepEqual([...parseIPv4("192.0.2.1")!], [192, 0, 2, 1]);
  for (const bad of ["192.0.2", "192.0.2.1.5", "256.0.0.1", "1.2.3.x", "01234.1.1.1", ""]) assert.equal(parseIPv4(bad), undefined, bad);
  assert.deepEqual([...parseIPv6("::1")!], [...Array(15).fill(0), 1]);
  assert.deepEqual([...parseIPv6("2001:db8::")!].slice(0, 4), [0x20, 0x01, 0x0d, 0xb8]);
  assert.deepEqual([...parseIPv6("::ffff:10.0.0.1")!].slice(10), [0xff, 0xff, 10, 0, 0, 1]);
  assert.deepEqual([...parseIPv6("fe80::1%eth0")!].slice(0, 2), [0xfe, 0x80]);
  for (const bad of ["1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "::g", "::ffff:300.0.0.1"]) assert.equal(parseIPv6(bad), undefined, bad);
});

test("parseCidr: prefix defaults to the whole address, bounded by the family", () => {
  assert.deepEqual(parseCidr("10.0.0.0/8"), { family: 4, bytes: new Uint8Array([10, 0, 0, 0]), prefix: 8 });
  assert.equal(parseCidr("10.0.0.1")!.prefix, 32);
  assert.equal(parseCidr("2001:db8::/32")!.prefix, 32);
  assert.equal(parseCidr("::1")!.prefix, 128);
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/8/8", "/8", "10.0.0.0/x", "example.com/24"]) assert.equal(parseCidr(bad), undefined, bad);
});

test("ipInNetworks: IPv4, IPv6 and IPv4-mapped clients", () => {
  const nets = ["10.0.0.0/8", "192.0.2.128/25", "2001:db8::/32"].map((s) => parseCidr(s)!);
  const cases: [string, boolean][] = [
    ["10.1.2.3", true],
    ["11.0.0.1", false],
    ["192.0.2.200", true],
    ["192.0.2.100", false],
    ["::ffff:10.9.9.9", true],
    ["::ffff:11.0.0.1", false],
    ["2001:db8:1::5", true],
    ["2001:db9::5", false],
    ["not an address", false],
  ];
  for (const [ip, want] of cases) assert.equal(ipInNetworks(ip, nets), want, ip);
  assert.equal(ipInNetworks("10.0.0.1", []), false);
  assert.equal(ipInNetworks("::1", [parseCidr("::/0")!]), true);
});

test("unmapIPv4 and canonicalIp", () => {
  assert.equal(unmapIPv4("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(unmapIPv4("::FFFF:10.0.0.1"), "10.0.0.1");
  assert.equal(unmapIPv4("10.0.0.1"), "10.0.0.1");
  assert.equal(unmapIPv4("2001:db8::1"), "2001:db8::1");
  assert.equal(unmapIPv4("::1"), "::1");
  assert.equal(canonicalIp("::FFFF:10.0.0.1"), "10.0.0.1");
  assert.equal(canonicalIp("2001:0db8:0:0:0:0:0:1"), "2001:db8:0:0:0:0:0:1");
  assert.equal(canonicalIp("2001:db8::1"), canonicalIp("2001:DB8:0::1"));
  assert.equal(canonicalIp("Host.Example"), "host.example");
});
