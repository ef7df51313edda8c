// DNS queries whose answers say whether they were DNSSEC-validated, for DANE (RFC 7672).
// node:dns has no TLSA type and does not expose the AD bit, so this speaks the DNS protocol
// itself (messages encoded and decoded by dns-packet) to ONE configured validating resolver
// (a local unbound, say). mxd does not validate signatures: it trusts that resolver's AD bit
// (RFC 6840 §5.7: a stub may ask for AD by setting it in the query, and may trust it only over
// a secure path to a resolver it trusts), which is why a non-loopback resolver is refused
// unless the operator says the path is trusted (delivery.dane.allowRemoteResolver).
//
// UDP first with EDNS0 and the DO bit (RFC 3225 / RFC 6891), then TCP when the answer is
// truncated (RFC 7766); each try has a timeout; what comes back is bounded by the transport
// (65,535 bytes for one message).
import dgram from "node:dgram";
import net from "node:net";
import { randomInt } from "node:crypto";
import { createRequire } from "node:module";
import type { DecodedPacket, Answer } from "dns-packet";

// dns-packet is loaded when the first DNSSEC query is made, with require(): most daemons have
// no DANE resolver, and importing the CommonJS package from an ES module costs ~10 MB of RSS in
// each thread that does it (measured), against ~1 MB through require().
type DnsPacket = typeof import("dns-packet");
let loaded: DnsPacket | undefined;
const dnsPacket = (): DnsPacket => (loaded ??= createRequire(import.meta.url)("dns-packet") as DnsPacket);
import { parseHostPort } from "../core/host-port.js";
import { isLoopbackHost } from "../core/host-port.js";
import type { MxRecord } from "./resolver.js";
import type { TlsaRecord } from "../core/tlsa-record.js";

/** What a validating resolver said about one name and type. */
export type DnssecAnswer<T> =
  /**
   * NOERROR with records of the asked type. `canonical`: their owner name when the resolver
   * followed a CNAME chain to them (absent when they are at the name asked for).
   */
  | { kind: "records"; secure: boolean; records: T[]; canonical?: string }
  /** The name exists without records of that type. */
  | { kind: "nodata"; secure: boolean }
  | { kind: "nxdomain"; secure: boolean }
  /**
   * No usable answer: SERVFAIL (what a validating resolver answers for bogus data), REFUSED,
   * timeout, unreachable, malformed or mismatched reply.
   */
  | { kind: "failed"; reason: string };

export interface DnssecResolver {
  tlsa(name: string): Promise<DnssecAnswer<TlsaRecord>>;
  mx(domain: string): Promise<DnssecAnswer<MxRecord>>;
  a(host: string): Promise<DnssecAnswer<string>>;
  aaaa(host: string): Promise<DnssecAnswer<string>>;
}

type QType = "TLSA" | "MX" | "A" | "AAAA";

/** Sends one query message and returns the reply message (rejects on timeout or socket error). */
export type DnsExchange = (query: Buffer, transport: "udp" | "tcp", timeoutMs: number) => Promise<Buffer>;

/** The query message: RD, AD (ask for the validation status), EDNS0 with DO (RFC 3225). */
export function buildQuery(id: number, name: string, type: QType): Buffer {
  return dnsPacket().encode({
    type: "query",
    id,
    flags: dnsPacket().RECURSION_DESIRED | dnsPacket().AUTHENTIC_DATA,
    questions: [{ type, class: "IN", name }],
    additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232, flags: dnsPacket().DNSSEC_OK } as unknown as Answer],
  });
}

const sameName = (a: string, b: string) => a.toLowerCase().replace(/\.$/, "") === b.toLowerCase().replace(/\.$/, "");

/** Pure: a decoded reply → what it says. `mismatch` when it is not the reply to this query. */
export function interpretReply(res: DecodedPacket & { rcode?: string }, id: number, name: string, type: QType): DnssecAnswer<unknown> | { kind: "mismatch" } {
  const q = res.questions?.[0];
  if (res.type !== "response" || res.id !== id || !q || q.type !== type || !sameName(q.name, name)) return { kind: "mismatch" };
  const secure = res.flag_ad === true;
  switch (res.rcode) {
    case "NOERROR": {
      const found = (res.answers ?? []).filter((a) => a.type === type);
      const records = found.map((a) => (a as { data: unknown }).data);
      if (!records.length) return { kind: "nodata", secure };
      const owner = found[0]!.name.replace(/\.$/, "");
      return { kind: "records", secure, records, ...(sameName(owner, name) ? {} : { canonical: owner.toLowerCase() }) };
    }
    case "NXDOMAIN":
      return { kind: "nxdomain", secure };
    case "SERVFAIL":
      return { kind: "failed", reason: "SERVFAIL (DNSSEC bogus or lookup failure at the resolver)" };
    default:
      return { kind: "failed", reason: `rcode ${res.rcode ?? "?"}` };
  }
}

function convert(type: QType, data: unknown): unknown {
  if (type === "TLSA") {
    const t = data as { usage: number; selector: number; matchingType: number; certificate: Buffer };
    return { usage: t.usage, selector: t.selector, matchingType: t.matchingType, data: Buffer.from(t.certificate) } satisfies TlsaRecord;
  }
  if (type === "MX") {
    const m = data as { preference: number; exchange: string };
    return { exchange: m.exchange, priority: m.preference } satisfies MxRecord;
  }
  return data;
}

export interface DnssecResolverOptions {
  exchange: DnsExchange;
  timeoutMs: number;
  tries: number;
  /** Query id source (tests pin it). */
  randomId?: () => number;
}

/** The resolver over any transport (tests pass a fake exchange). */
export function createDnssecResolver(opts: DnssecResolverOptions): DnssecResolver {
  const nextId = opts.randomId ?? (() => randomInt(0, 65536));
  async function query(name: string, type: QType): Promise<DnssecAnswer<unknown>> {
    let last = "no reply";
    for (let attempt = 0; attempt < opts.tries; attempt++) {
      const id = nextId();
      try {
        const msg = buildQuery(id, name, type);
        let res = decode(await opts.exchange(msg, "udp", opts.timeoutMs));
        // RFC 7766 §5: a truncated UDP answer is asked again over TCP.
        if (res.flag_tc) res = decode(await opts.exchange(msg, "tcp", opts.timeoutMs));
        const r = interpretReply(res, id, name, type);
        if (r.kind === "mismatch") {
          last = "reply does not match the query";
          continue;
        }
        if (r.kind === "records") return { ...r, records: r.records.map((d) => convert(type, d)) };
        return r;
      } catch (e) {
        last = (e as Error).message;
      }
    }
    return { kind: "failed", reason: last };
  }
  return {
    tlsa: (n) => query(n, "TLSA") as Promise<DnssecAnswer<TlsaRecord>>,
    mx: (d) => query(d, "MX") as Promise<DnssecAnswer<MxRecord>>,
    a: (h) => query(h, "A") as Promise<DnssecAnswer<string>>,
    aaaa: (h) => query(h, "AAAA") as Promise<DnssecAnswer<string>>,
  };
}

function decode(buf: Buffer): DecodedPacket & { rcode?: string } {
  try {
    return dnsPacket().decode(buf) as DecodedPacket & { rcode?: string };
  } catch (e) {
    throw new Error(`malformed DNS reply (${(e as Error).message})`);
  }
}

/** One UDP or TCP exchange with host:port. The socket is closed on every path. */
export function socketExchange(host: string, port: number): DnsExchange {
  return (query, transport, timeoutMs) => (transport === "udp" ? udpExchange(host, port, query, timeoutMs) : tcpExchange(host, port, query, timeoutMs));
}

function udpExchange(host: string, port: number, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? "udp6" : "udp4");
    const id = query.readUInt16BE(0);
    const done = (f: () => void) => {
      clearTimeout(timer);
      sock.close();
      f();
    };
    const timer = setTimeout(() => done(() => reject(new Error(`no reply from ${host}:${port} over UDP within ${timeoutMs} ms`))), timeoutMs);
    sock.on("error", (e) => done(() => reject(new Error(`UDP to ${host}:${port}: ${e.message}`))));
    sock.on("message", (msg, rinfo) => {
      // Only the resolver's reply to this id counts; anything else is ignored until the timeout.
      if (rinfo.port !== port || rinfo.address !== host || msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      done(() => resolve(msg));
    });
    sock.send(query, port, host);
  });
}

function tcpExchange(host: string, port: number, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const chunks: Buffer[] = [];
    let have = 0;
    const done = (f: () => void) => {
      clearTimeout(timer);
      sock.destroy();
      f();
    };
    const timer = setTimeout(() => done(() => reject(new Error(`no reply from ${host}:${port} over TCP within ${timeoutMs} ms`))), timeoutMs);
    sock.on("error", (e) => done(() => reject(new Error(`TCP to ${host}:${port}: ${e.message}`))));
    sock.on("connect", () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    // RFC 1035 §4.2.2: a two-byte length, then the message; at most 65,537 bytes are kept.
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      const all = Buffer.concat(chunks, have);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) done(() => resolve(all.subarray(2, 2 + all.readUInt16BE(0))));
    });
    sock.on("end", () => done(() => reject(new Error(`TCP to ${host}:${port}: closed before a whole reply`))));
  });
}

export interface NodeDnssecResolverOptions {
  /** "host:port" of the validating resolver (port 53 when omitted). */
  server: string;
  timeoutMs: number;
  tries: number;
  /** Trust the AD bit of a resolver that is not on loopback (the path must be secured otherwise). */
  allowRemote?: boolean;
}

/** Throws (a bug or a config that skipped validation) for a bad or untrusted server. */
export function createNodeDnssecResolver(opts: NodeDnssecResolverOptions): DnssecResolver {
  const hp = parseHostPort(opts.server, { defaultPort: 53 });
  if (!hp.ok) throw new Error(`DNSSEC resolver: ${hp.error}`);
  if (!opts.allowRemote && !isLoopbackHost(opts.server)) throw new Error(`DNSSEC resolver ${opts.server} is not on loopback; its AD bit is trusted only with allowRemoteResolver`);
  return createDnssecResolver({ exchange: socketExchange(hp.value.host, hp.value.port), timeoutMs: opts.timeoutMs, tries: opts.tries });
}
