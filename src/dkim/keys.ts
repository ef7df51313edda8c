// DKIM keys: loading the configured private keys (a broken one is a config error naming its
// file), generating new ones, the DNS TXT record to publish (RFC 6376 §3.6.1, RFC 8463 §4.2)
// and comparing a published record with a key. File reading comes in as a function, so this
// module does no I/O of its own.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import type { DkimAlgorithm, SigningKey } from "./sign.js";

/** RFC 8301 §3.2 allows 1024 bits; the issue asks for 2048 (and Gmail treats 1024 as weak). */
export const MIN_RSA_BITS = 2048;

export class DkimKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DkimKeyError";
  }
}

/** Parse a PEM private key for `algorithm`; throws DkimKeyError saying what is wrong with `file`. */
export function parsePrivateKey(pem: Buffer | string, algorithm: DkimAlgorithm, file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch (e) {
    throw new DkimKeyError(`DKIM key file ${file} is not a PEM private key: ${(e as Error).message}`);
  }
  const type = key.asymmetricKeyType;
  if (algorithm === "rsa-sha256") {
    if (type !== "rsa") throw new DkimKeyError(`DKIM key file ${file} holds a ${type} key, but its algorithm is rsa-sha256`);
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw new DkimKeyError(`DKIM key file ${file} is a ${bits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`);
  } else if (type !== "ed25519") {
    throw new DkimKeyError(`DKIM key file ${file} holds a ${type} key, but its algorithm is ed25519-sha256`);
  }
  return key;
}

/** The p= value: base64 SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), the raw 32 octets for Ed25519 (RFC 8463 §4.2). */
export function publicKeyData(key: KeyObject, algorithm: DkimAlgorithm): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  const der = pub.export({ type: "spki", format: "der" });
  // An Ed25519 SPKI is a fixed 12-octet prefix followed by the 32-octet key.
  return (algorithm === "ed25519-sha256" ? der.subarray(der.length - 32) : der).toString("base64");
}

/** The TXT record text to publish at <selector>._domainkey.<domain>. */
export function keyRecord(key: KeyObject, algorithm: DkimAlgorithm): string {
  return `v=DKIM1; k=${algorithm === "rsa-sha256" ? "rsa" : "ed25519"}; p=${publicKeyData(key, algorithm)}`;
}

/** The owner name of a key's record. */
export function recordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}`;
}

/** A record as a zone-file line: TXT strings are at most 255 octets (RFC 1035 §3.3.14), so long ones are split. */
export function zoneLine(name: string, record: string): string {
  const parts: string[] = [];
  for (let i = 0; i < record.length; i += 255) parts.push(`"${record.slice(i, i + 255)}"`);
  return `${name}. IN TXT ( ${parts.join(" ")} )`;
}

/** A new private key (PKCS#8 PEM) and its record. */
export function generateKey(algorithm: DkimAlgorithm): { pem: string; record: string } {
  const pair = algorithm === "rsa-sha256" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ed25519");
  return { pem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), record: keyRecord(pair.privateKey, algorithm) };
}

/** Tags of a DKIM key record (RFC 6376 §3.6.1 tag=value list; FWS ignored). */
export function parseKeyRecord(text: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of text.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name && !tags.has(name)) tags.set(name, part.slice(eq + 1).replace(/[ \t\r\n]+/g, ""));
  }
  return tags;
}

export type RecordCheck =
  | { ok: true; message: string }
  | { ok: false; message: string };

/**
 * Does what DNS answers at the key's name match the key? `answers` are the TXT records found
 * (each the concatenation of its strings); undefined = the name does not exist.
 */
export function checkRecord(key: SigningKey, answers: string[] | undefined): RecordCheck {
  const name = recordName(key.selector, key.domain);
  if (!answers || answers.length === 0) return { ok: false, message: `${name}: no TXT record published` };
  const dkim = answers.filter((a) => /^\s*v\s*=\s*DKIM1\s*(;|$)/.test(a) || /(^|;)\s*p\s*=/.test(a));
  if (dkim.length === 0) return { ok: false, message: `${name}: no DKIM key record among ${answers.length} TXT record(s)` };
  if (dkim.length > 1) return { ok: false, message: `${name}: ${dkim.length} DKIM key records; verifiers need exactly one` };
  const tags = parseKeyRecord(dkim[0]!);
  const k = tags.get("k") ?? "rsa";
  const want = key.algorithm === "rsa-sha256" ? "rsa" : "ed25519";
  if (k !== want) return { ok: false, message: `${name}: record has k=${k}, the configured key is ${want}` };
  const p = tags.get("p");
  if (p === undefined) return { ok: false, message: `${name}: record has no p= tag` };
  if (p === "") return { ok: false, message: `${name}: the key is revoked (empty p=)` };
  if (p !== publicKeyData(key.key, key.algorithm)) return { ok: false, message: `${name}: the published key does not match the configured private key` };
  const t = tags.get("t");
  const testing = t?.split(":").includes("y") ? " (t=y: testing mode, verifiers may ignore failures)" : "";
  return { ok: true, message: `${name}: published key matches${testing}` };
}
