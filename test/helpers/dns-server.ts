// An authoritative-looking DNS server on loopback (dns2, UDP + TCP on the same port) serving
// MX / A / AAAA / TXT from a zone object the test can change at any time. A name missing from the
// zone answers NXDOMAIN; a name without records of the asked type answers NOERROR with no
// answer (NODATA); `fail` makes a name answer SERVFAIL (or any rcode) for some or all types.
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";

const require = createRequire(import.meta.url);

// dns2 ships no types: the small part we use, typed here.
interface Dns2Question {
  name: string;
  type: number;
}
interface Dns2Packet {
  header: { rcode: number; aa: number; ra: number; qr: number };
  questions: Dns2Question[];
  answers: object[];
  authorities: object[];
}
interface Dns2Server {
  on(ev: "request", fn: (req: Dns2Packet, send: (res: Dns2Packet) => void) => void): void;
  on(ev: "error" | "requestError", fn: (e: Error) => void): void;
  listen(o: { udp: { port: number; address: string }; tcp: { port: number; address: string } }): Promise<{ udp: AddressInfo; tcp: AddressInfo }>;
  close(): Promise<void>;
}
interface Dns2Module {
  Packet: {
    TYPE: Record<string, number>;
    CLASS: Record<string, number>;
    createResponseFromRequest(req: Dns2Packet): Dns2Packet;
  };
  createServer(o: { udp: boolean; tcp: boolean }): Dns2Server;
}
const dns2 = require("dns2") as Dns2Module;
const { Packet } = dns2;

export type RecordType = "MX" | "A" | "AAAA" | "TXT";
export type Rcode = "SERVFAIL" | "NXDOMAIN" | "REFUSED";

export interface ZoneEntry {
  mx?: { exchange: string; priority: number }[];
  a?: string[];
  aaaa?: string[];
  /** TXT records; each one string (split into 255-octet character-strings) or its character-strings (MTA-STS: [["v=STSv1; id=1"]]). */
  txt?: (string | string[])[];
  /** TTL of this name's records, in seconds (default 60). */
  ttl?: number;
  /** Answer this rcode instead: for every type (string) or for some types. */
  fail?: Rcode | Partial<Record<RecordType, Rcode>>;
}

/** Keys are lower-case names without the trailing dot. */
export type Zone = Record<string, ZoneEntry>;

export interface DnsServerHandle {
  host: string;
  port: number;
  /** "127.0.0.10:5353", ready for dns.servers / createNodeResolver. */
  address: string;
  zone: Zone;
  queries: { name: string; type: RecordType | string }[];
  close(): Promise<void>;
}

const RCODE: Record<Rcode, number> = { SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };

function typeName(t: number): string {
  return Object.keys(Packet.TYPE).find((k) => Packet.TYPE[k] === t) ?? String(t);
}

function answer(zone: Zone, req: Dns2Packet, log: DnsServerHandle["queries"]): Dns2Packet {
  const res = Packet.createResponseFromRequest(req);
  res.header.aa = 1;
  res.header.ra = 1;
  res.answers = [];
  res.authorities = [];
  const q = req.questions[0];
  if (!q) {
    res.header.rcode = 1; // FORMERR
    return res;
  }
  const name = q.name.toLowerCase().replace(/\.$/, "");
  const type = typeName(q.type);
  log.push({ name, type });
  const entry = zone[name];
  if (!entry) {
    res.header.rcode = RCODE.NXDOMAIN;
    return res;
  }
  const f = typeof entry.fail === "string" ? entry.fail : entry.fail?.[type as RecordType];
  if (f) {
    res.header.rcode = RCODE[f];
    return res;
  }
  const base = { name: q.name, class: Packet.CLASS.IN!, ttl: entry.ttl ?? 60 };
  if (type === "MX") for (const mx of entry.mx ?? []) res.answers.push({ ...base, type: Packet.TYPE.MX!, exchange: mx.exchange, priority: mx.priority });
  if (type === "A") for (const address of entry.a ?? []) res.answers.push({ ...base, type: Packet.TYPE.A!, address });
  if (type === "AAAA") for (const address of entry.aaaa ?? []) res.answers.push({ ...base, type: Packet.TYPE.AAAA!, address });
  if (type === "TXT") for (const data of entry.txt ?? []) res.answers.push({ ...base, type: Packet.TYPE.TXT!, data: typeof data === "string" ? splitTxt(data) : data });
  return res;
}

/** A long TXT value as character-strings of at most 255 octets (RFC 1035 §3.3.14). */
export function splitTxt(value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < value.length; i += 255) out.push(value.slice(i, i + 255));
  return out.length ? out : [""];
}

/** Start on `host` (default 127.0.0.10) at `port` (default: a free one, same for UDP and TCP). */
export async function startDnsServer(opts: { zone: Zone; host?: string; port?: number }): Promise<DnsServerHandle> {
  const host = opts.host ?? "127.0.0.10";
  const queries: DnsServerHandle["queries"] = [];
  let lastError: unknown;
  for (let tries = 0; tries < 20; tries++) {
    const port = opts.port ?? 20000 + Math.floor(Math.random() * 30000);
    const server = dns2.createServer({ udp: true, tcp: true });
    const handle: DnsServerHandle = {
      host,
      port,
      address: `${host}:${port}`,
      zone: opts.zone,
      queries,
      close: () => closeWithin(server, 2000),
    };
    server.on("request", (req, send) => send(answer(handle.zone, req, queries)));
    server.on("requestError", () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        server.on("error", reject);
        server.listen({ udp: { port, address: host }, tcp: { port, address: host } }).then(() => resolve(), reject);
      });
      return handle;
    } catch (e) {
      lastError = e;
      await closeWithin(server, 500).catch(() => {});
      if (opts.port !== undefined) break;
    }
  }
  throw lastError;
}

async function closeWithin(server: Dns2Server, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([server.close().catch(() => {}), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}
