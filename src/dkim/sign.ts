// DKIM signing (RFC 6376 §5, RFC 8463): the DKIM-Signature header field for one message from
// its header fields and its body hash. Pure apart from node:crypto; the key, the time and the
// message come in as arguments.
import { createHash, sign as cryptoSign, type KeyObject } from "node:crypto";
import { canonHeader, type Canon, type HeaderField } from "./canonicalize.js";

export type DkimAlgorithm = "rsa-sha256" | "ed25519-sha256";

export interface SigningKey {
  /** The signing domain (d=). */
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  key: KeyObject;
}

export interface SignatureParams {
  key: SigningKey;
  header: Canon;
  body: Canon;
  /** The message's header fields, top to bottom. */
  fields: HeaderField[];
  /** Names of the fields to sign (one entry per instance, bottom-up, RFC 6376 §5.4.2). */
  signed: string[];
  /** base64 of the body hash (bh=). */
  bodyHash: string;
  /** Signature time, seconds since the epoch (t=). */
  timestamp: number;
  /** Expiry, seconds since the epoch (x=), if any. */
  expires?: number;
}

/**
 * The h= list for a message: every instance present of each name in `names` (a name listed
 * n times in the message appears n times), plus one more entry for each name in `oversign`
 * (RFC 6376 §8.15: an entry without an instance signs its absence, so nobody can add one).
 */
export function signedHeaderNames(fields: HeaderField[], names: readonly string[], oversign: readonly string[]): string[] {
  const count = new Map<string, number>();
  for (const f of fields) count.set(f.name.toLowerCase(), (count.get(f.name.toLowerCase()) ?? 0) + 1);
  const out: string[] = [];
  const seen = new Set<string>();
  for (const n of names) {
    const l = n.toLowerCase();
    if (seen.has(l)) continue;
    seen.add(l);
    const k = count.get(l) ?? 0;
    for (let i = 0; i < k; i++) out.push(l);
    if (oversign.some((o) => o.toLowerCase() === l) && k > 0) out.push(l);
  }
  return out;
}

/**
 * The header hash input (RFC 6376 §3.7): the signed fields in h= order, each instance taken
 * from the bottom up, then the DKIM-Signature field itself with an empty b= and no final CRLF.
 */
export function headerHashInput(fields: HeaderField[], signed: readonly string[], dkimField: string, canon: Canon): Buffer {
  const byName = new Map<string, HeaderField[]>();
  for (const f of fields) {
    const l = f.name.toLowerCase();
    const list = byName.get(l) ?? [];
    list.push(f);
    byName.set(l, list);
  }
  const parts: string[] = [];
  for (const n of signed) {
    const list = byName.get(n.toLowerCase());
    const f = list?.pop(); // bottom-up; a name with no instance left contributes nothing
    if (f) parts.push(canonHeader(f, canon));
  }
  const colon = dkimField.indexOf(":");
  const self = canonHeader({ name: dkimField.slice(0, colon), raw: dkimField }, canon);
  parts.push(self.replace(/\r\n$/, ""));
  return Buffer.from(parts.join(""), "latin1");
}

/** RSASSA-PKCS1-v1_5 over SHA-256 (RFC 6376 §3.3.1); Ed25519 over the SHA-256 digest (RFC 8463 §3). */
export function signData(algorithm: DkimAlgorithm, key: KeyObject, data: Buffer): Buffer {
  if (algorithm === "rsa-sha256") return cryptoSign("sha256", data, key);
  return cryptoSign(null, createHash("sha256").update(data).digest(), key);
}

/**
 * b= for a DKIM-Signature field given with an empty b= value (the field as it will be
 * written, b= last). Exposed so the RFC 8463 examples can be checked byte for byte.
 */
export function signatureValue(p: { algorithm: DkimAlgorithm; key: KeyObject; header: Canon; fields: HeaderField[]; signed: readonly string[]; unsignedField: string }): string {
  return signData(p.algorithm, p.key, headerHashInput(p.fields, p.signed, p.unsignedField, p.header)).toString("base64");
}

/** Break a base64 value into lines of `width` (FWS is allowed anywhere in b=, RFC 6376 §3.5). */
function foldBase64(v: string, first: number, width = 72): string {
  const out: string[] = [v.slice(0, first)];
  for (let i = first; i < v.length; i += width) out.push(v.slice(i, i + width));
  return out.filter((s, i) => i === 0 || s.length).join("\r\n ");
}

/** The h= value folded at colons (FWS is allowed around them) to lines of about 72 octets. */
function foldNames(names: readonly string[]): string {
  const lines: string[] = [];
  let line = " h=";
  for (const [i, n] of names.entries()) {
    const piece = n + (i < names.length - 1 ? ":" : ";");
    if (line.length + piece.length > 74 && line !== " h=") {
      lines.push(line);
      line = " " + piece;
    } else line += piece;
  }
  lines.push(line);
  return lines.join("\r\n");
}

/** The complete DKIM-Signature header field, CRLF included. */
export function signatureField(p: SignatureParams): string {
  const { key } = p;
  const unsigned =
    `DKIM-Signature: v=1; a=${key.algorithm}; c=${p.header}/${p.body}; d=${key.domain};\r\n` +
    ` s=${key.selector}; t=${p.timestamp};${p.expires !== undefined ? ` x=${p.expires};` : ""}\r\n` +
    `${foldNames(p.signed)}\r\n` +
    ` bh=${p.bodyHash};\r\n` +
    ` b=`;
  const b = signatureValue({ algorithm: key.algorithm, key: key.key, header: p.header, fields: p.fields, signed: p.signed, unsignedField: unsigned });
  return unsigned + foldBase64(b, 70) + "\r\n";
}
