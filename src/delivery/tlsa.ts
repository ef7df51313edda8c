// TLSA records for SMTP (RFC 7672 §3, RFC 6698 §2.1, RFC 7671): which records are usable and
// whether a server's certificate chain matches them. Pure apart from hashing.
import { createHash, type X509Certificate } from "node:crypto";
import type { TlsaRecord } from "./dane-types.js";

export const USAGE_NAME: Record<number, string> = { 0: "PKIX-TA(0)", 1: "PKIX-EE(1)", 2: "DANE-TA(2)", 3: "DANE-EE(3)" };
const SELECTOR_NAME: Record<number, string> = { 0: "Cert(0)", 1: "SPKI(1)" };
const MATCHING_NAME: Record<number, string> = { 0: "Full(0)", 1: "SHA2-256(1)", 2: "SHA2-512(2)" };
const DIGEST_LENGTH: Record<number, number> = { 1: 32, 2: 64 };

/** "3 1 1" as RFC 7218 mnemonics: "DANE-EE(3) SPKI(1) SHA2-256(1)". */
export function describeTlsa(r: TlsaRecord): string {
  return `${USAGE_NAME[r.usage] ?? `usage ${r.usage}`} ${SELECTOR_NAME[r.selector] ?? `selector ${r.selector}`} ${MATCHING_NAME[r.matchingType] ?? `matching type ${r.matchingType}`}`;
}

/** Why a record cannot be used for SMTP, or undefined when it can. */
export function tlsaUnusable(r: TlsaRecord): string | undefined {
  // RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not used for SMTP (no agreed CA list).
  if (r.usage === 0 || r.usage === 1) return `${USAGE_NAME[r.usage]} is not used with SMTP (RFC 7672 §3.1.3)`;
  if (r.usage !== 2 && r.usage !== 3) return `unknown certificate usage ${r.usage}`;
  if (r.selector !== 0 && r.selector !== 1) return `unknown selector ${r.selector}`;
  if (r.matchingType !== 0 && r.matchingType !== 1 && r.matchingType !== 2) return `unknown matching type ${r.matchingType}`;
  // RFC 7671 §4 / RFC 7672 §2.2: a record whose data cannot be a digest of that type is malformed.
  const want = DIGEST_LENGTH[r.matchingType];
  if (want !== undefined && r.data.length !== want) return `${MATCHING_NAME[r.matchingType]} data of ${r.data.length} bytes (expected ${want})`;
  if (r.matchingType === 0 && r.data.length === 0) return "empty Full(0) data";
  return undefined;
}

/** The usable records and, for the log, why the others are not. */
export function usableTlsa(records: readonly TlsaRecord[]): { usable: TlsaRecord[]; unusable: string[] } {
  const usable: TlsaRecord[] = [];
  const unusable: string[] = [];
  for (const r of records) {
    const why = tlsaUnusable(r);
    if (why) unusable.push(why);
    else usable.push(r);
  }
  return { usable, unusable };
}

/** The bytes a record's selector picks from a certificate: the DER certificate or its SubjectPublicKeyInfo. */
function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : (cert.publicKey.export({ type: "spki", format: "der" }) as Buffer);
}

/** Does this (usable) record's association data match the certificate? */
export function tlsaMatches(r: TlsaRecord, cert: X509Certificate): boolean {
  const bytes = selected(cert, r.selector);
  const value = r.matchingType === 0 ? bytes : createHash(r.matchingType === 1 ? "sha256" : "sha512").update(bytes).digest();
  return value.equals(r.data);
}

/** Does the certificate carry one of the reference names (RFC 7672 §3.2.3; a "*." wildcard covers one label)? */
export function certMatchesName(cert: X509Certificate, names: readonly string[]): string | undefined {
  for (const n of names) {
    const host = n.replace(/\.$/, "");
    if (host && cert.checkHost(host, { partialWildcards: false, multiLabelWildcards: false }) !== undefined) return host;
  }
  return undefined;
}

export interface VerifyResult {
  ok: boolean;
  reason: string;
}

/**
 * RFC 7672 §3.1: DANE-EE(3) matches the leaf alone, with no name and no validity check (§3.1.1).
 * DANE-TA(2) matches a certificate of the chain the server sent (which MUST include the trust
 * anchor, §3.1.2); from it down to the leaf every certificate must be issued and signed by the
 * next one up and be within its validity period, and the leaf must carry one of `names` (§3.2.3).
 */
export function verifyChain(chain: readonly X509Certificate[], records: readonly TlsaRecord[], names: readonly string[], now: number): VerifyResult {
  const leaf = chain[0];
  if (!leaf) return { ok: false, reason: "the server sent no certificate" };
  const { usable } = usableTlsa(records);
  if (!usable.length) return { ok: false, reason: "no usable TLSA record" };
  const failures: string[] = [];
  for (const r of usable.filter((x) => x.usage === 3)) {
    if (tlsaMatches(r, leaf)) return { ok: true, reason: `DANE verified: ${describeTlsa(r)} matched the server certificate` };
  }
  if (usable.some((x) => x.usage === 3)) failures.push("no DANE-EE(3) record matched the server certificate");
  const ta = usable.filter((x) => x.usage === 2);
  if (ta.length) {
    let anchored: { depth: number; record: TlsaRecord } | undefined;
    // Depth 0 is the leaf itself: a trust anchor is a certificate that issues the leaf's chain.
    for (let depth = 1; depth < chain.length && !anchored; depth++) {
      const record = ta.find((x) => tlsaMatches(x, chain[depth]!));
      if (record) anchored = { depth, record };
    }
    if (!anchored) failures.push("no DANE-TA(2) record matched a certificate of the chain");
    else {
      const broken = chainProblem(chain.slice(0, anchored.depth + 1), now);
      const name = certMatchesName(leaf, names);
      if (broken) failures.push(`DANE-TA(2) trust anchor at depth ${anchored.depth}: ${broken}`);
      else if (!name) failures.push(`DANE-TA(2): the certificate does not match ${names.join(", ") || "any name"} (RFC 7672 §3.2.3)`);
      else return { ok: true, reason: `DANE verified: ${describeTlsa(anchored.record)} matched the trust anchor at depth ${anchored.depth}; certificate name ${name}` };
    }
  }
  return { ok: false, reason: failures.join("; ") };
}

/** Every certificate below the anchor is issued and signed by the next one and valid now. */
function chainProblem(path: readonly X509Certificate[], now: number): string | undefined {
  for (let i = 0; i < path.length - 1; i++) {
    const cert = path[i]!;
    const issuer = path[i + 1]!;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return `certificate at depth ${i} is not signed by the one at depth ${i + 1}`;
    if (Date.parse(cert.validFrom) > now) return `certificate at depth ${i} is not valid before ${cert.validFrom}`;
    if (Date.parse(cert.validTo) < now) return `certificate at depth ${i} expired ${cert.validTo}`;
  }
  return undefined;
}
