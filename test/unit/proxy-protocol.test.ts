import { test } from "node:test";
import assert from "node:assert/strict";
import { parseProxyHeader, V1_MAX_LENGTH, type ProxyParse } from "../../src/smtp/proxy-protocol.js";
import { formatIPv6, parseIPv6 } from "../../src/core/cidr.js";
import { SIG, v1, v2 } from "../helpers/proxy-header.js";

const b = (s: string) => Buffer.from(s, "latin1");
const summary = (r: ProxyParse) =>
  r.status === "done"
    ? `${r.header.command}${r.header.command === "proxy" ? ` ${r.header.source.address}:${r.header.source.port} -> ${r.header.destination.address}:${r.header.destination.port}` : ""} v${r.header.version} len=${r.length} rest=${JSON.stringify(r.rest.toString("latin1"))}`
    : r.status === "error"
      ? `error: ${r.reason}`
      : "need-more";

test("v1: complete, partial and refused headers", () => {
  const cases: [Buffer, string][] = [
    [b("PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\nEHLO x\r\n"), 'proxy 192.0.2.7:56324 -> 198.51.100.1:25 v1 len=44 rest="EHLO x\\r\\n"'],
    [b("PROXY TCP6 2001:DB8:0:0::1 2001:db8::2 4000 25\r\n"), 'proxy 2001:db8::1:4000 -> 2001:db8::2:25 v1 len=48 rest=""'],
    [b("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), 'proxy ::ffff:192.0.2.1:1 -> ::1:2 v1 len=37 rest=""'],
    [b("PROXY UNKNOWN\r\n"), 'unknown v1 len=15 rest=""'],
    // §2.1: after UNKNOWN the receiver ignores everything up to the CRLF.
    [b("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nX"), 'unknown v1 len=35 rest="X"'],
    [b("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), 'proxy 0.0.0.0:0 -> 255.255.255.255:65535 v1 len=44 rest=""'],
    [b(""), "need-more"],
    [b("P"), "need-more"],
    [b("PROXY"), "need-more"],
    [b("PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r"), "need-more"],
    [b("PROXY TCP4 192.0.2.7 198.51.100.1 56324 25"), "need-more"],
    [b("EHLO client\r\n"), "error: no PROXY protocol header"],
    [b("PROXZ"), "error: no PROXY protocol header"],
    [b("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "error: no PROXY protocol header"],
    [b("PROXY\r\n"), "error: no PROXY protocol header"],
    [b("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "error: v1 header: LF without CR"],
    [b("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), "error: v1 header: unknown protocol"],
    [b("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), "error: v1 header: expected TCP4|TCP6 src dst sport dport"],
    [b("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "error: v1 header: expected TCP4|TCP6 src dst sport dport"],
    [b("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), "error: v1 header: bad TCP4 address"],
    [b("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), "error: v1 header: bad TCP4 address"],
    [b("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), "error: v1 header: bad TCP4 address"],
    [b("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), "error: v1 header: bad TCP6 address"],
    [b("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "error: v1 header: bad TCP6 address"],
    [b("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "error: v1 header: bad port"],
    [b("PROXY TCP4 1.2.3.4 5.6.7.8 025 2\r\n"), "error: v1 header: bad port"],
    [b("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), "error: v1 header: bad port"],
    [b("PROXY UNKNOWN " + "x".repeat(200)), `error: v1 header longer than ${V1_MAX_LENGTH} octets`],
  ];
  for (const [input, want] of cases) assert.equal(summary(parseProxyHeader(input)), want, JSON.stringify(input.toString("latin1")));
});

test("v1: the 107-octet bound includes the CRLF", () => {
  const fill = (n: number) => b("PROXY UNKNOWN " + "x".repeat(n - 16) + "\r\n");
  assert.equal(fill(107).length, 107);
  assert.equal(parseProxyHeader(fill(107)).status, "done");
  assert.equal(summary(parseProxyHeader(fill(108))), `error: v1 header longer than ${V1_MAX_LENGTH} octets`);
  // 106 octets without a CRLF yet: still possible.
  assert.equal(parseProxyHeader(fill(108).subarray(0, 106)).status, "need-more");
});

test("v2: PROXY over IPv4 and IPv6, LOCAL, AF_UNSPEC, AF_UNIX, TLVs, refusals", () => {
  const tlvs = [{ type: 0x01, value: b("smtp") }, { type: 0x04, value: Buffer.alloc(10) }, { type: 0xe0, value: Buffer.alloc(0) }];
  const cases: [string, Buffer, string][] = [
    ["ipv4", Buffer.concat([v2("192.0.2.7", "198.51.100.1", 56324, 25), b("EHLO")]), 'proxy 192.0.2.7:56324 -> 198.51.100.1:25 v2 len=28 rest="EHLO"'],
    ["ipv6", v2("2001:db8::7", "2001:db8::1", 1, 25), 'proxy 2001:db8::7:1 -> 2001:db8::1:25 v2 len=52 rest=""'],
    ["ipv4 with TLVs", v2("192.0.2.7", "198.51.100.1", 1, 25, { tlvs }), 'proxy 192.0.2.7:1 -> 198.51.100.1:25 v2 len=51 rest=""'],
    // §2.2: LOCAL — discard the whole block, whatever the family says.
    ["local", v2(undefined, undefined, 0, 0, { command: "local" }), 'local v2 len=16 rest=""'],
    ["local with addresses", v2("192.0.2.7", "198.51.100.1", 1, 25, { command: "local" }), 'local v2 len=28 rest=""'],
    ["local, odd family", Buffer.concat([v2(undefined, undefined, 0, 0, { command: "local", famByte: 0xff, len: 3 }), Buffer.alloc(3)]), 'local v2 len=19 rest=""'],
    ["AF_UNSPEC", v2(undefined, undefined, 0, 0, { famByte: 0x00 }), 'unknown v2 len=16 rest=""'],
    ["AF_UNSPEC with TLVs", v2(undefined, undefined, 0, 0, { famByte: 0x00, tlvs }), 'unknown v2 len=39 rest=""'],
    ["AF_UNIX", Buffer.concat([v2(undefined, undefined, 0, 0, { famByte: 0x31, len: 216 }), Buffer.alloc(216)]), 'unknown v2 len=232 rest=""'],
    ["INET, unspecified transport", v2("192.0.2.7", "198.51.100.1", 1, 25, { famByte: 0x10 }), 'unknown v2 len=28 rest=""'],
    ["datagram", v2("192.0.2.7", "198.51.100.1", 1, 25, { famByte: 0x12 }), "error: v2 header: not a stream transport"],
    ["bad family", v2("192.0.2.7", "198.51.100.1", 1, 25, { famByte: 0x41 }), "error: v2 header: family 4, transport 1"],
    ["version 1 in v2 block", v2("192.0.2.7", "198.51.100.1", 1, 25, { version: 1 }), "error: v2 header: version 1"],
    ["command 2", Buffer.concat([SIG, Buffer.from([0x22, 0x11, 0, 12]), Buffer.alloc(12)]), "error: v2 header: command 2"],
    ["too short for INET6", v2("192.0.2.7", "198.51.100.1", 1, 25, { famByte: 0x21 }), "error: v2 header: 12 octets is too short for family 2"],
    ["truncated TLV", Buffer.concat([v2("192.0.2.7", "198.51.100.1", 1, 25, { len: 14 }), Buffer.from([1, 0])]), "error: v2 header: truncated TLV"],
    ["TLV past the end", Buffer.concat([v2("192.0.2.7", "198.51.100.1", 1, 25, { len: 16 }), Buffer.from([1, 0, 9, 0])]), "error: v2 header: TLV runs past the header"],
    ["over the limit", v2("192.0.2.7", "198.51.100.1", 1, 25, { tlvs: [{ type: 0x04, value: Buffer.alloc(1000) }] }), "error: v2 header of 1031 octets exceeds the limit of 1024"],
    ["length field over the limit, body not sent", v2(undefined, undefined, 0, 0, { len: 65535 }), "error: v2 header of 65551 octets exceeds the limit of 1024"],
    ["signature prefix", SIG.subarray(0, 5), "need-more"],
    ["fixed part incomplete", v2("192.0.2.7", "198.51.100.1", 1, 25).subarray(0, 15), "need-more"],
    ["addresses incomplete", v2("192.0.2.7", "198.51.100.1", 1, 25).subarray(0, 27), "need-more"],
    ["bad signature", Buffer.concat([SIG.subarray(0, 11), b("X")]), "error: no PROXY protocol header"],
    ["CRLF then SMTP", b("\r\nEHLO"), "error: no PROXY protocol header"],
  ];
  for (const [name, input, want] of cases) assert.equal(summary(parseProxyHeader(input)), want, name);
});

test("v2: the limit is configurable", () => {
  const h = v2("192.0.2.7", "198.51.100.1", 1, 25, { tlvs: [{ type: 0x04, value: Buffer.alloc(300) }] });
  assert.equal(parseProxyHeader(h, 2048).status, "done");
  assert.equal(summary(parseProxyHeader(h, 300)), `error: v2 header of ${h.length} octets exceeds the limit of 300`);
});

test("formatIPv6: RFC 5952 text", () => {
  const cases: [string, string][] = [
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group is not shortened
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of equal runs
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["FE80::ABCD", "fe80::abcd"],
  ];
  for (const [input, want] of cases) assert.equal(formatIPv6(parseIPv6(input)!), want, input);
});
