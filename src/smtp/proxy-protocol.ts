// PROXY protocol v1 and v2 (HAProxy, "The PROXY protocol", versions 1 and 2), receiver side.
// Pure: works on the bytes received so far and says whether they are a complete header, need
// more bytes, or can never become one. The caller accumulates chunks (bounded: it never
// holds more than `maxLength` octets before an answer other than need-more) and owns the
// socket, the timeout and who is trusted (smtp/server.ts).
//
// What the specification asks of a receiver, and where this module does it:
// - the header is the first thing on the connection; no guessing whether it is there (§1:
//   "MUST not try to guess"): anything that cannot be a header prefix is an error at once;
// - v1 is one line of at most 107 octets including CRLF (§2.1); "UNKNOWN" means "use the real
//   connection endpoints", the rest of its line is ignored;
// - v2 is a 16-octet block with the signature, version/command, family/transport and the
//   length of what follows (§2.2); command LOCAL (health checks, the proxy's own connections)
//   means "use the real endpoints and discard the address block"; family AF_UNSPEC (and
//   AF_UNIX, which carries no IP) likewise; after the addresses come TLVs (§2.2.7), skipped.
import { DEFAULT_MAX_LENGTH, V2_FIXED } from "../core/proxy-limits.js";
export { DEFAULT_MAX_LENGTH, MIN_MAX_LENGTH } from "../core/proxy-limits.js";
import { formatIPv6, parseIPv4, parseIPv6 } from "../core/cidr.js";

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export type ProxyHeader =
  | { version: 1 | 2; command: "proxy"; source: ProxyEndpoint; destination: ProxyEndpoint }
  /** v2 LOCAL: the proxy speaking for itself (health checks); use the real endpoints. */
  | { version: 2; command: "local" }
  /** v1 UNKNOWN, v2 AF_UNSPEC or AF_UNIX: no usable client address; use the real endpoints. */
  | { version: 1 | 2; command: "unknown" };

export type ProxyParse =
  | { status: "need-more" }
  /** `length`: octets the header took; `rest`: what followed it (the client's first bytes). */
  | { status: "done"; header: ProxyHeader; length: number; rest: Buffer }
  | { status: "error"; reason: string };

/** §2.1: "a receiver … 107 characters … including the CRLF". */
export const V1_MAX_LENGTH = 107;
/** §2.2: "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A". */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from("PROXY ", "latin1");

const ADDRESS_LENGTH: Record<number, number> = { 0x1: 12, 0x2: 36, 0x3: 216 };

/**
 * Parse the PROXY header at the start of `buf` (every byte received so far). `maxLength`
 * bounds a v2 header; v1 has its own 107-octet bound.
 */
export function parseProxyHeader(buf: Buffer, maxLength = DEFAULT_MAX_LENGTH): ProxyParse {
  if (buf.length === 0) return { status: "need-more" };
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf, maxLength);
  return { status: "error", reason: "no PROXY protocol header" };
}

/** Do the first bytes of `buf` agree with `prefix` as far as both go? */
function agrees(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

const PORT_RE = /^(0|[1-9]\d{0,4})$/;

function parseV1(buf: Buffer): ProxyParse {
  if (!agrees(buf, V1_PREFIX)) return { status: "error", reason: "no PROXY protocol header" };
  // The line ends at the first LF, which must follow a CR (decided by the first LF alone, so
  // every longer input gets the same answer).
  const lf = buf.subarray(0, V1_MAX_LENGTH).indexOf(0x0a);
  if (lf < 0) {
    if (buf.length >= V1_MAX_LENGTH) return { status: "error", reason: `v1 header longer than ${V1_MAX_LENGTH} octets` };
    return { status: "need-more" };
  }
  if (buf[lf - 1] !== 0x0d) return { status: "error", reason: "v1 header: LF without CR" };
  const crlf = lf - 1;
  const length = lf + 1;
  const done = (header: ProxyHeader): ProxyParse => ({ status: "done", header, length, rest: buf.subarray(length) });
  const line = buf.toString("latin1", V1_PREFIX.length, crlf);
  // §2.1: "PROXY UNKNOWN" — the receiver must ignore the rest of the line.
  if (line === "UNKNOWN" || line.startsWith("UNKNOWN ")) return done({ version: 1, command: "unknown" });
  const parts = line.split(" ");
  if (parts.length !== 5) return { status: "error", reason: "v1 header: expected TCP4|TCP6 src dst sport dport" };
  const [proto, src, dst, sport, dport] = parts as [string, string, string, string, string];
  if (proto !== "TCP4" && proto !== "TCP6") return { status: "error", reason: "v1 header: unknown protocol" };
  const addr = (s: string): string | undefined => {
    if (proto === "TCP4") {
      const b = parseIPv4(s);
      // No leading zeros: "010" is octal to some parsers, decimal to others.
      return b && b.join(".") === s ? s : undefined;
    }
    const b = s.includes("%") ? undefined : parseIPv6(s);
    return b ? formatIPv6(b) : undefined;
  };
  const port = (s: string): number | undefined => (PORT_RE.test(s) && Number(s) <= 65535 ? Number(s) : undefined);
  const sa = addr(src);
  const da = addr(dst);
  const sp = port(sport);
  const dp = port(dport);
  if (sa === undefined || da === undefined) return { status: "error", reason: `v1 header: bad ${proto} address` };
  if (sp === undefined || dp === undefined) return { status: "error", reason: "v1 header: bad port" };
  return done({ version: 1, command: "proxy", source: { address: sa, port: sp }, destination: { address: da, port: dp } });
}

function parseV2(buf: Buffer, maxLength: number): ProxyParse {
  if (!agrees(buf, V2_SIGNATURE)) return { status: "error", reason: "no PROXY protocol header" };
  if (buf.length < V2_FIXED) return { status: "need-more" };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { status: "error", reason: `v2 header: version ${verCmd >> 4}` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { status: "error", reason: `v2 header: command ${cmd}` };
  const fam = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  const len = buf.readUInt16BE(14);
  const length = V2_FIXED + len;
  if (length > maxLength) return { status: "error", reason: `v2 header of ${length} octets exceeds the limit of ${maxLength}` };
  if (buf.length < length) return { status: "need-more" };
  const rest = buf.subarray(length);
  // §2.2: LOCAL — "the receiver must accept this connection as valid and must use the real
  // connection endpoints and discard the protocol block including the family".
  if (cmd === 0) return { status: "done", header: { version: 2, command: "local" }, length, rest };
  if (fam > 3 || transport > 2) return { status: "error", reason: `v2 header: family ${fam}, transport ${transport}` };
  const need = ADDRESS_LENGTH[fam] ?? 0;
  if (len < need) return { status: "error", reason: `v2 header: ${len} octets is too short for family ${fam}` };
  const tlvs = checkTlvs(buf.subarray(V2_FIXED + need, length));
  if (tlvs) return { status: "error", reason: tlvs };
  // AF_UNSPEC (or an unspecified transport) and AF_UNIX carry no IP client: real endpoints.
  if (fam === 0 || fam === 3 || transport === 0) return { status: "done", header: { version: 2, command: "unknown" }, length, rest };
  // An SMTP listener is a stream; a datagram source address would be nonsense here.
  if (transport !== 1) return { status: "error", reason: "v2 header: not a stream transport" };
  const a = buf.subarray(V2_FIXED, V2_FIXED + need);
  let source: ProxyEndpoint;
  let destination: ProxyEndpoint;
  if (fam === 1) {
    source = { address: [...a.subarray(0, 4)].join("."), port: a.readUInt16BE(8) };
    destination = { address: [...a.subarray(4, 8)].join("."), port: a.readUInt16BE(10) };
  } else {
    source = { address: formatIPv6(a.subarray(0, 16)), port: a.readUInt16BE(32) };
    destination = { address: formatIPv6(a.subarray(16, 32)), port: a.readUInt16BE(34) };
  }
  return { status: "done", header: { version: 2, command: "proxy", source, destination }, length, rest };
}

/** §2.2.7: type (1 octet), length (2, big endian), value. Skipped, but they must fit exactly. */
function checkTlvs(b: Buffer): string | undefined {
  let i = 0;
  while (i < b.length) {
    if (b.length - i < 3) return "v2 header: truncated TLV";
    const l = b.readUInt16BE(i + 1);
    if (i + 3 + l > b.length) return "v2 header: TLV runs past the header";
    i += 3 + l;
  }
  return undefined;
}
