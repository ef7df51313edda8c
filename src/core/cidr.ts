// CIDR matching for relay control, IPv4 and IPv6 (IPv4-mapped IPv6 addresses match IPv4 ranges).
export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
}

export function parseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

export function parseIPv6(s: string): Uint8Array | undefined {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".")) {
    tail = parseIPv4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const parseGroups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = parseGroups(halves[0]!);
  const rest = halves.length === 2 ? parseGroups(halves[1]!) : [];
  const total = head.length + rest.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const groups = [...head, ...Array(8 - total).fill("0"), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

export function parseCidr(s: string): Cidr | undefined {
  const [addr, pfx, extra] = s.trim().split("/");
  if (extra !== undefined || !addr) return undefined;
  const v4 = parseIPv4(addr);
  const bytes = v4 ?? parseIPv6(addr);
  if (!bytes) return undefined;
  const family = v4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (pfx !== undefined) {
    if (!/^\d{1,3}$/.test(pfx)) return undefined;
    prefix = Number(pfx);
    if (prefix > max) return undefined;
  }
  return { family, bytes, prefix };
}

function matchBytes(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  let bits = prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2). */
function mappedIPv4(v6: Uint8Array): Uint8Array | undefined {
  return v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff ? v6.slice(12) : undefined;
}

/** An IPv4-mapped IPv6 address as the IPv4 address it is ("::ffff:10.0.0.1" → "10.0.0.1"); anything else as given. */
export function unmapIPv4(ip: string): string {
  if (!ip.includes(":")) return ip;
  const v6 = parseIPv6(ip);
  const v4 = v6 && mappedIPv4(v6);
  return v4 ? v4.join(".") : ip;
}

/** Canonical textual form for comparing addresses ("::ffff:127.0.0.1" = "127.0.0.1"). */
export function canonicalIp(ip: string): string {
  const v4 = parseIPv4(ip);
  if (v4) return v4.join(".");
  const v6 = parseIPv6(ip);
  if (!v6) return ip.toLowerCase();
  const mapped = mappedIPv4(v6);
  if (mapped) return mapped.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((v6[i]! << 8) | v6[i + 1]!).toString(16));
  return groups.join(":");
}

/** Does the textual IP address `ip` fall inside one of `nets`? */
export function ipInNetworks(ip: string, nets: readonly Cidr[]): boolean {
  let v4 = parseIPv4(ip);
  const v6 = v4 ? undefined : parseIPv6(ip);
  if (v6) v4 = mappedIPv4(v6);
  for (const n of nets) {
    if (n.family === 4 && v4 && matchBytes(v4, n.bytes, n.prefix)) return true;
    if (n.family === 6 && v6 && matchBytes(v6, n.bytes, n.prefix)) return true;
  }
  return false;
}

/** RFC 5952 text of a 16-byte IPv6 address: lower case, longest zero run (≥ 2 groups) as "::". */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted quad.
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
