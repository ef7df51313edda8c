// The RFC 3461 (DSN) parameters of MAIL and RCPT, both ways: parsed from what clients send
// (smtp/server-session.ts), written for the next hop (smtp/client.ts) and back into reports
// (bounce/dsn.ts). ENVID and ORCPT travel as xtext (§4); the queue stores them decoded, so they
// are always encoded on the way out: a stored "a+41" must reach the next hop as "a+2B41", not
// be mistaken for already-encoded xtext.

/** RFC 3461 §4: xtext decoding ("+XX" hex escapes). Returns undefined when malformed. */
export function decodeXtext(s: string): string | undefined {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2b) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (c < 33 || c > 126 || c === 0x3d) return undefined;
    else out += s[i];
  }
  return out;
}

/** RFC 3461 §4: xtext encoding: "+", "=" and octets outside 33..126 as "+XX". */
export function encodeXtext(s: string): string {
  let out = "";
  for (const ch of Buffer.from(s, "utf8")) {
    if (ch < 33 || ch > 126 || ch === 0x2b || ch === 0x3d) out += "+" + ch.toString(16).toUpperCase().padStart(2, "0");
    else out += String.fromCharCode(ch);
  }
  return out;
}

/** Printable ASCII as it is, anything else xtext-encoded (ENVID in a report, RFC 3464 §2.2.1). */
export function sevenBitXtext(v: string): string {
  return /^[\x21-\x7e]+$/.test(v) ? v : encodeXtext(v);
}

const NOTIFY_VALUES = ["NEVER", "SUCCESS", "FAILURE", "DELAY"];

/** RFC 3461 §4.1: NEVER alone, or some of SUCCESS, FAILURE, DELAY (upper-case). */
function isNotifyList(vals: readonly string[]): boolean {
  return vals.every((x) => NOTIFY_VALUES.includes(x)) && !(vals.includes("NEVER") && vals.length > 1);
}

/** NOTIFY= as a client sent it: the values (upper-case), or undefined when it is malformed. */
export function parseNotify(v: string | undefined): string[] | undefined {
  if (!v) return undefined;
  const vals = v.toUpperCase().split(",");
  return isNotifyList(vals) ? vals : undefined;
}

/** NOTIFY= for the next hop; undefined = leave NOTIFY out (nothing valid to say). */
export function notifyParam(notify: readonly string[]): string | undefined {
  const v = [...new Set(notify.map((n) => n.toUpperCase()))];
  if (v.length === 0 || !isNotifyList(v)) return undefined;
  return v.join(",");
}

/** ORCPT= as a client sent it, decoded: "addr-type;address" (§4.2), at most 500 characters. */
export function parseOrcpt(v: string | undefined): string | undefined {
  const dec = v === undefined ? undefined : decodeXtext(v);
  if (!dec || !/^[A-Za-z0-9-]+;.+/.test(dec) || dec.length > 500) return undefined;
  return dec;
}

/** ORCPT= for the next hop. */
export function orcptParam(orcpt: string): string {
  const semi = orcpt.indexOf(";");
  // RFC 3461 §4.2: addr-type is an atom; anything else is taken as a whole rfc822 address, so
  // that no octet of it reaches the command line unencoded.
  if (semi < 0 || !/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(orcpt.slice(0, semi))) return `rfc822;${encodeXtext(orcpt)}`;
  return `${orcpt.slice(0, semi)};${encodeXtext(orcpt.slice(semi + 1))}`;
}

/** ENVID= as a client sent it, decoded (at most 100 characters), or undefined when malformed. */
export function parseEnvid(v: string | undefined): string | undefined {
  const envid = v === undefined ? undefined : decodeXtext(v);
  return envid === undefined || envid.length > 100 ? undefined : envid;
}
