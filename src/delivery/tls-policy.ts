// Outbound TLS policy, the pure decisions (docs/deliverability.md "Outbound TLS policy"):
//  - which security level applies to a destination domain (delivery.tls.policy);
//  - for one host of that domain, what TLS is required and how its certificate is judged,
//    combining the level, the domain's MTA-STS policy (RFC 8461) and DANE (RFC 7672);
//  - the verdict on a peer's certificate chain for that requirement.
// smtp-courier.ts applies them; the client only runs the verify callback it is given.
import type { X509Certificate } from "node:crypto";
import type { TLS_LEVELS } from "../config.js";
import type { TlsPeer } from "../io/connector.js";
import type { DaneLookup, TlsaRecord } from "./dane-types.js";
import { policyAllowsMx, type StsPolicy } from "./mta-sts.js";
import { findRoute } from "../core/routes.js";

export type TlsLevel = (typeof TLS_LEVELS)[number];

/** Where a level came from: delivery.tls.policy.default or .domains. */
export type LevelSource = "default" | "domain";

export interface DomainLevel {
  level: TlsLevel;
  source: LevelSource;
}

/** delivery.tls.policy: the domain's own entry (exact, then ".parent" suffixes), else the default. */
export function levelFor(policy: { default: TlsLevel; domains: Readonly<Record<string, TlsLevel>> }, domain: string): DomainLevel {
  const own = findRoute(policy.domains, domain);
  return own !== undefined ? { level: own, source: "domain" } : { level: policy.default, source: "default" };
}

/** What made TLS required (or not) for a host: the name in logs and `queue show`. */
export type PolicySource = "default" | "domain" | "mta-sts" | "mta-sts-testing" | "dane";

/** The TLS requirement for one connection. */
export interface HostTls {
  /** may: STARTTLS when offered; require: no STARTTLS (or a refused one) defers this host. */
  starttls: "may" | "require";
  /** After a failed handshake, retry this host in plain text (level may only). */
  plainFallback: boolean;
  /** How the certificate is judged: PKIX (system CAs + caFile, name = the MX host) or DANE. */
  verify: "pkix" | "dane";
  /** A failed verification defers this host; false: only recorded (verified: false) and reported. */
  enforce: boolean;
  /** Names the certificate must be valid for (the MX host name). */
  names: string[];
  records?: TlsaRecord[];
  /** TLS 1.2 at least whenever TLS is required (RFC 8461 §4.2, RFC 7672 §2.2 via RFC 8996). */
  minVersion?: "TLSv1.2";
  level: TlsLevel;
  source: PolicySource;
  /** MTA-STS testing: what enforce mode would have refused (logged, never acted on). */
  report?: string;
}

/** This host must not be used now (MTA-STS enforce mismatch, DANE failure). */
export interface HostSkip {
  skip: string;
  status: string;
  level: TlsLevel;
  source: PolicySource;
}

/** The domain's MTA-STS policy as it applies now, or undefined for none. */
export interface AppliedSts {
  policy: StsPolicy;
  id: string;
}

/**
 * The requirement for one host. Order of precedence:
 *  1. DANE (levels dane/dane-only): a usable TLSA RRset makes TLS mandatory, authenticated by
 *     the records, and MTA-STS is not consulted for this host (RFC 8461 §2: DANE wins); a
 *     failed TLSA lookup defers the host (RFC 7672 §2.2); no DANE falls through (dane) or
 *     defers (dane-only). `dane` undefined: no DANE resolver is configured (the insecure case).
 *  2. MTA-STS enforce (MX, implicit MX and fallback relays, never operator routes): a host
 *     not matching the policy's mx patterns is skipped; the others need TLS with a certificate
 *     valid for the host name. MTA-STS testing: everything as the level says, plus a report.
 *  3. The level: verify (PKIX, name = MX host), encrypt (TLS, any certificate), may.
 */
export function hostTls(o: {
  level: DomainLevel;
  host: string;
  kind: "mx" | "implicit-mx" | "route" | "literal" | "fallback";
  sts?: AppliedSts | undefined;
  /** The TLSA lookup's outcome; undefined when the level is not dane*, or no DANE is configured. */
  dane?: DaneLookup | undefined;
}): HostTls | HostSkip {
  const { level } = o.level;
  const names = [o.host.toLowerCase().replace(/\.$/, "")];
  if (level === "dane" || level === "dane-only") {
    const d = o.dane;
    if (d?.kind === "usable") return { starttls: "require", plainFallback: false, verify: "dane", enforce: true, names, records: d.records, minVersion: "TLSv1.2", level, source: "dane" };
    if (d?.kind === "defer") return { skip: `DANE: ${d.reason}`, status: "4.7.5", level, source: "dane" };
    if (level === "dane-only") {
      return { skip: d ? `no usable DANE TLSA records (${d.reason}), and the level is dane-only` : "the level is dane-only but no DANE resolver is configured", status: "4.7.5", level, source: o.level.source };
    }
    // A secure RRset of unusable records only: TLS is still mandatory, unauthenticated (the
    // server published that it does TLS; RFC 7672 §2.2). Otherwise "insecure": as may (below).
    if (d?.kind === "none" && d.requireTls) return { starttls: "require", plainFallback: false, verify: "pkix", enforce: false, names, minVersion: "TLSv1.2", level, source: "dane" };
  }
  const stsApplies = o.sts && o.sts.policy.mode !== "none" && o.kind !== "route" && o.kind !== "literal";
  if (stsApplies && o.sts!.policy.mode === "enforce") {
    if (!policyAllowsMx(o.sts!.policy, o.host)) return { skip: `MX host ${o.host} does not match the MTA-STS policy (mx: ${o.sts!.policy.mx.join(", ")})`, status: "4.7.5", level, source: "mta-sts" };
    return { starttls: "require", plainFallback: false, verify: "pkix", enforce: true, names, minVersion: "TLSv1.2", level, source: "mta-sts" };
  }
  const base: HostTls =
    level === "verify"
      ? { starttls: "require", plainFallback: false, verify: "pkix", enforce: true, names, minVersion: "TLSv1.2", level, source: o.level.source }
      : level === "encrypt"
        ? { starttls: "require", plainFallback: false, verify: "pkix", enforce: false, names, minVersion: "TLSv1.2", level, source: o.level.source }
        : { starttls: "may", plainFallback: true, verify: "pkix", enforce: false, names, level, source: o.level.source };
  if (stsApplies && o.sts!.policy.mode === "testing") {
    const report = policyAllowsMx(o.sts!.policy, o.host) ? undefined : `MX host ${o.host} does not match the MTA-STS policy (mx: ${o.sts!.policy.mx.join(", ")})`;
    return { ...base, source: base.enforce ? base.source : "mta-sts-testing", ...(report ? { report } : {}) };
  }
  return base;
}

export function isSkip(r: HostTls | HostSkip): r is HostSkip {
  return "skip" in r;
}

export interface TlsVerdict {
  ok: boolean;
  reason: string;
}

/** How the requirement judges this peer (DANE needs the dane helper's verify). */
export function verifyPeer(req: Pick<HostTls, "verify" | "names" | "records">, peer: TlsPeer, daneVerify?: (chain: X509Certificate[], records: TlsaRecord[], names: string[]) => TlsVerdict): TlsVerdict {
  if (req.verify === "dane") {
    if (!daneVerify || !req.records) return { ok: false, reason: "DANE verification is not available" };
    return daneVerify(peer.chain, req.records, req.names);
  }
  const leaf = peer.leaf;
  if (!leaf) return { ok: false, reason: "the server sent no certificate" };
  // Node's `authorized` includes its own host name check (against the SNI name, the MX host):
  // ERR_TLS_CERT_ALTNAME_INVALID means the chain itself verified. The names are checked here.
  const trusted = peer.authorized || peer.authorizationError === "ERR_TLS_CERT_ALTNAME_INVALID";
  // RFC 8461 §4.2 / RFC 6125: a DNS-ID of the MX host (one leftmost wildcard label allowed).
  const match = req.names.find((n) => leaf.checkHost(n) !== undefined);
  const problems: string[] = [];
  if (!trusted) problems.push(`not trusted: ${peer.authorizationError ?? "unknown error"}`);
  if (!match) {
    // Say what the certificate does name: the first thing an operator asks.
    const alt = typeof leaf.subjectAltName === "string" ? leaf.subjectAltName.slice(0, 200) : undefined;
    problems.push(`not valid for ${req.names.join(", ")}${alt ? ` (it names ${alt})` : ""}`);
  }
  if (problems.length) return { ok: false, reason: `certificate ${problems.join("; ")}` };
  return { ok: true, reason: `certificate valid for ${match}` };
}

/** The label in logs and `queue show`: "verify (domain)", "may (default)", "mta-sts", … */
export function policyLabel(r: { level: TlsLevel; source: PolicySource }): string {
  if (r.source === "default" || r.source === "domain") return `${r.level} (${r.source})`;
  return `${r.source} (level ${r.level})`;
}
