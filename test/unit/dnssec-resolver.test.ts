// The DNSSEC-aware stub resolver over a fake transport: query flags (RD, AD, EDNS0 DO), the
// AD bit → secure, rcodes, TCP retry on truncation, mismatched replies, timeouts.
import { test } from "node:test";
import assert from "node:assert/strict";
import dnsPacket, { type Answer, type Packet } from "dns-packet";
import { buildQuery, createDnssecResolver, createNodeDnssecResolver, type DnsExchange } from "../../src/io/dnssec-resolver.js";

/** A reply to `query` with the given flags, rcode and answers. */
function reply(query: Buffer, o: { ad?: boolean; tc?: boolean; rcode?: number; answers?: Answer[]; id?: number; qname?: string }): Buffer {
  const q = dnsPacket.decode(query);
  const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (o.ad ? dnsPacket.AUTHENTIC_DATA : 0) | (o.tc ? dnsPacket.TRUNCATED_RESPONSE : 0) | (o.rcode ?? 0);
  const p: Packet = { type: "response", id: o.id ?? q.id, flags, questions: o.qname ? [{ ...q.questions![0]!, name: o.qname }] : q.questions, answers: o.answers ?? [] };
  return dnsPacket.encode(p);
}

const tlsaAnswer = (name: string): Answer => ({ type: "TLSA", name, ttl: 60, class: "IN", data: { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 7) } });

function resolverWith(handler: (q: Buffer, transport: "udp" | "tcp") => Buffer | Promise<Buffer>, log: string[] = []) {
  const exchange: DnsExchange = async (q, transport) => {
    log.push(transport);
    return handler(q, transport);
  };
  return createDnssecResolver({ exchange, timeoutMs: 100, tries: 2 });
}

test("buildQuery: RD and AD set, EDNS0 OPT with the DO bit", () => {
  const q = dnsPacket.decode(buildQuery(4242, "_25._tcp.mx.example", "TLSA"));
  assert.equal(q.id, 4242);
  assert.equal(q.flag_rd, true);
  assert.equal(q.flag_ad, true);
  assert.deepEqual(q.questions, [{ name: "_25._tcp.mx.example", type: "TLSA", class: "IN" }]);
  const opt = q.additionals!.find((a) => a.type === "OPT") as unknown as { flag_do: boolean; udpPayloadSize: number };
  assert.equal(opt.flag_do, true);
  assert.equal(opt.udpPayloadSize, 1232);
});

test("the AD bit decides secure; records are converted; rcodes map to nodata / nxdomain / failed", async () => {
  const n = "_25._tcp.mx.example";
  assert.deepEqual(await resolverWith((q) => reply(q, { ad: true, answers: [tlsaAnswer(n)] })).tlsa(n), {
    kind: "records",
    secure: true,
    records: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 7) }],
  });
  assert.equal(((await resolverWith((q) => reply(q, { ad: false, answers: [tlsaAnswer(n)] })).tlsa(n)) as { secure: boolean }).secure, false);
  assert.deepEqual(await resolverWith((q) => reply(q, { ad: true })).tlsa(n), { kind: "nodata", secure: true });
  assert.deepEqual(await resolverWith((q) => reply(q, { ad: true, rcode: 3 })).tlsa(n), { kind: "nxdomain", secure: true });
  const sf = await resolverWith((q) => reply(q, { rcode: 2 })).tlsa(n);
  assert.equal(sf.kind, "failed");
  assert.match((sf as { reason: string }).reason, /SERVFAIL/);
  const mx = await resolverWith((q) => reply(q, { ad: true, answers: [{ type: "MX", name: "example.org", ttl: 60, class: "IN", data: { preference: 10, exchange: "mx.example.org" } }] })).mx("example.org");
  assert.deepEqual(mx, { kind: "records", secure: true, records: [{ exchange: "mx.example.org", priority: 10 }] });
  const cname = await resolverWith((q) =>
    reply(q, { ad: true, answers: [{ type: "CNAME", name: "alias.example.org", ttl: 60, class: "IN", data: "MX.example.org" }, { type: "A", name: "MX.example.org", ttl: 60, class: "IN", data: "192.0.2.8" }] }),
  ).a("alias.example.org");
  assert.deepEqual(cname, { kind: "records", secure: true, records: ["192.0.2.8"], canonical: "mx.example.org" }, "the CNAME target is reported");
  const a = await resolverWith((q) => reply(q, { ad: true, answers: [{ type: "A", name: "mx.example.org", ttl: 60, class: "IN", data: "192.0.2.7" }] })).a("mx.example.org");
  assert.deepEqual(a, { kind: "records", secure: true, records: ["192.0.2.7"] });
});

test("a truncated UDP reply is asked again over TCP (RFC 7766)", async () => {
  const log: string[] = [];
  const n = "_25._tcp.mx.example";
  const r = await resolverWith((q, t) => (t === "udp" ? reply(q, { tc: true, ad: true }) : reply(q, { ad: true, answers: [tlsaAnswer(n)] })), log).tlsa(n);
  assert.deepEqual(log, ["udp", "tcp"]);
  assert.equal(r.kind, "records");
});

test("a reply with another id or question is not believed; timeouts and garbage end in failed after the tries", async () => {
  const n = "_25._tcp.mx.example";
  const log: string[] = [];
  const wrongId = await resolverWith((q) => reply(q, { ad: true, answers: [tlsaAnswer(n)], id: (q.readUInt16BE(0) + 1) & 0xffff }), log).tlsa(n);
  assert.deepEqual(wrongId, { kind: "failed", reason: "reply does not match the query" });
  assert.deepEqual(log, ["udp", "udp"], "retried once (tries: 2)");
  const wrongName = await resolverWith((q) => reply(q, { ad: true, answers: [tlsaAnswer(n)], qname: "_25._tcp.evil.example" })).tlsa(n);
  assert.equal(wrongName.kind, "failed");
  const timeout = await resolverWith(() => Promise.reject(new Error("no reply within 100 ms"))).tlsa(n);
  assert.deepEqual(timeout, { kind: "failed", reason: "no reply within 100 ms" });
  const garbage = await resolverWith(() => Buffer.from([1, 2, 3])).tlsa(n);
  assert.equal(garbage.kind, "failed");
  assert.match((garbage as { reason: string }).reason, /malformed DNS reply/);
  let calls = 0;
  const second = await resolverWith((q) => (++calls === 1 ? Promise.reject(new Error("lost")) : reply(q, { ad: true }))).tlsa(n);
  assert.deepEqual(second, { kind: "nodata", secure: true }, "the second try answers");
});

test("only a loopback resolver is trusted unless allowed", () => {
  for (const server of ["10.0.0.1", "192.0.2.53:53", "[::2]:53", "128.0.0.1"]) assert.throws(() => createNodeDnssecResolver({ server, timeoutMs: 100, tries: 1 }), /not on loopback/, server);
  for (const server of ["127.0.0.205", "127.0.0.1:1053", "[::1]:53"]) assert.doesNotThrow(() => createNodeDnssecResolver({ server, timeoutMs: 100, tries: 1 }), server);
  assert.throws(() => createNodeDnssecResolver({ server: "192.0.2.53:53", timeoutMs: 100, tries: 1 }), /not on loopback/);
  assert.doesNotThrow(() => createNodeDnssecResolver({ server: "192.0.2.53", timeoutMs: 100, tries: 1, allowRemote: true }));
  assert.doesNotThrow(() => createNodeDnssecResolver({ server: "127.0.0.1:53", timeoutMs: 100, tries: 1 }));
});
