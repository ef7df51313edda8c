// Builds PROXY protocol headers (HAProxy's specification) for tests: v1 lines and v2 binary
// blocks with optional TLVs. Independent of src/smtp/proxy-protocol.ts (it writes, that reads).
import { parseIPv4, parseIPv6 } from "../../src/core/cidr.js";

export const SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

export function v1(src: string, dst: string, sport: number, dport: number): Buffer {
  const proto = src.includes(":") ? "TCP6" : "TCP4";
  return Buffer.from(`PROXY ${proto} ${src} ${dst} ${sport} ${dport}\r\n`, "latin1");
}

export interface V2Options {
  command?: "local" | "proxy";
  /** family/transport octet (default: from the address family, STREAM). */
  famByte?: number;
  tlvs?: { type: number; value: Buffer }[];
  /** Override the length field. */
  len?: number;
  version?: number;
}

export function v2(src: string | undefined, dst: string | undefined, sport = 0, dport = 0, o: V2Options = {}): Buffer {
  let addr = Buffer.alloc(0);
  let fam = 0x00;
  if (src && dst) {
    const s4 = parseIPv4(src);
    if (s4) {
      fam = 0x11;
      addr = Buffer.alloc(12);
      addr.set(s4, 0);
      addr.set(parseIPv4(dst)!, 4);
      addr.writeUInt16BE(sport, 8);
      addr.writeUInt16BE(dport, 10);
    } else {
      fam = 0x21;
      addr = Buffer.alloc(36);
      addr.set(parseIPv6(src)!, 0);
      addr.set(parseIPv6(dst)!, 16);
      addr.writeUInt16BE(sport, 32);
      addr.writeUInt16BE(dport, 34);
    }
  }
  const tlv = Buffer.concat((o.tlvs ?? []).map((t) => {
    const h = Buffer.alloc(3);
    h[0] = t.type;
    h.writeUInt16BE(t.value.length, 1);
    return Buffer.concat([h, t.value]);
  }));
  const head = Buffer.alloc(4);
  head[0] = ((o.version ?? 2) << 4) | (o.command === "local" ? 0 : 1);
  head[1] = o.famByte ?? fam;
  head.writeUInt16BE(o.len ?? addr.length + tlv.length, 2);
  return Buffer.concat([SIG, head, addr, tlv]);
}
