// DANE for SMTP (RFC 7672): what the DNSSEC-validated DNS says about one MX host's TLS, and
// the Dane seam (dane-types.ts) the courier calls. The DNS answers come from an injected
// DnssecResolver (io/dnssec-resolver.ts); the decisions here are pure functions.
import type { X509Certificate } from "node:crypto";
import type { Dane, DaneLookup, TlsaRecord } from "./dane-types.js";
import type { DnssecAnswer, DnssecResolver } from "../io/dnssec-resolver.js";
import { describeTlsa, usableTlsa, verifyChain } from "./tlsa.js";

/** The TLSA owner name: _25._tcp.mx.example.org (RFC 6698 §3, RFC 7672 §2.2.3). */
export function tlsaName(host: string, port: number): string {
  return `_${port}._tcp.${host.replace(/\.$/, "")}`;
}

/**
 * RFC 7672 §2.2.1–2.2.2: TLSA records are looked up only for a host whose address records are
 * secure. Any insecure answer means an unsigned zone: no DANE. A failure with no insecure
 * answer beside it may be an attacker hiding a signed host's addresses (§2.1.1): defer.
 */
export function addressStatus(a: DnssecAnswer<string>, aaaa: DnssecAnswer<string>): "secure" | "insecure" | "failed" | "absent" {
  const answers = [a, aaaa];
  if (answers.some((x) => x.kind === "records" && x.secure)) return "secure";
  if (answers.some((x) => x.kind !== "failed" && !x.secure)) return "insecure";
  if (answers.some((x) => x.kind === "failed")) return "failed";
  return "absent"; // securely denied: no addresses at all, the courier has nothing to reach
}

/** The CNAME-expanded name of a host whose address records are secure, when there is one. */
export function canonicalName(a: DnssecAnswer<string>, aaaa: DnssecAnswer<string>): string | undefined {
  for (const x of [a, aaaa]) if (x.kind === "records" && x.secure && x.canonical) return x.canonical;
  return undefined;
}

/** RFC 7672 §2.2: the TLSA answer → DANE usable, no DANE, or do not deliver to this host now. */
export function classifyTlsa(name: string, answer: DnssecAnswer<TlsaRecord>): DaneLookup {
  switch (answer.kind) {
    case "failed":
      // §2.2: a failed or bogus TLSA lookup for a secure host: the host is not used now (an
      // attacker who can make the lookup fail must not get a downgrade).
      return { kind: "defer", reason: `TLSA lookup for ${name} failed: ${answer.reason}` };
    case "nodata":
    case "nxdomain":
      return { kind: "none", reason: answer.secure ? `no TLSA records at ${name} (validated denial)` : `no TLSA records at ${name} (insecure denial)` };
    case "records": {
      // §2.2: TLSA records that are not DNSSEC-validated are ignored.
      if (!answer.secure) return { kind: "none", reason: `TLSA records at ${name} are not DNSSEC-validated` };
      const { usable, unusable } = usableTlsa(answer.records);
      if (usable.length) return { kind: "usable", records: usable };
      // §2.2 / §3.1: only unusable records: no DANE authentication.
      return { kind: "none", requireTls: true, reason: `only unusable TLSA records at ${name}: ${[...new Set(unusable)].join("; ")}` };
    }
  }
}

/**
 * Is the MX RRset of the domain validated? A secure NODATA (implicit MX, RFC 7672 §2.2.1)
 * counts. A failed lookup (bogus MX RRset, resolver down) is not evidence of an unsigned zone,
 * and "false" would turn DANE off — a downgrade anyone who can break the lookup could cause.
 * So it counts as secure: the host's own lookups decide, and when they fail too the host is
 * deferred (RFC 7672 §2.1.1: a failed or bogus lookup must not lead to a weaker policy).
 */
export function mxAnswerSecure(answer: DnssecAnswer<unknown>): boolean {
  if (answer.kind === "failed") return true;
  return (answer.kind === "records" || answer.kind === "nodata") && answer.secure;
}

export interface DaneDeps {
  resolver: DnssecResolver;
  /** Wall clock for DANE-TA validity periods (DANE-EE ignores them). */
  now?: () => number;
}

export function createDane(d: DaneDeps): Dane {
  const now = d.now ?? Date.now;
  return {
    async lookup(host: string, port: number, secureMx: boolean): Promise<DaneLookup> {
      // RFC 7672 §2.2.1: an MX host name from an insecure MX RRset could be an attacker's.
      // (Postfix does the same: its "dane" level downgrades such hosts to opportunistic TLS.)
      if (!secureMx) return { kind: "none", reason: `the MX records naming ${host} are not DNSSEC-validated` };
      const [a, aaaa] = await Promise.all([d.resolver.a(host), d.resolver.aaaa(host)]);
      const status = addressStatus(a, aaaa);
      if (status === "failed") return { kind: "defer", reason: `address lookup for ${host} at the DNSSEC resolver failed: ${a.kind === "failed" ? a.reason : aaaa.kind === "failed" ? aaaa.reason : ""}` };
      if (status === "insecure") return { kind: "none", reason: `the address records of ${host} are not DNSSEC-validated` };
      if (status === "absent") return { kind: "none", reason: `${host} has no address records (validated denial)` };
      // RFC 7672 §2.2.2: an MX host name that is a (secure) CNAME: TLSA at the expanded name
      // first, then, when that has none, at the name from the MX record.
      const target = canonicalName(a, aaaa);
      if (target && target !== host.toLowerCase().replace(/\.$/, "")) {
        const expanded = classifyTlsa(tlsaName(target, port), await d.resolver.tlsa(tlsaName(target, port)));
        if (expanded.kind !== "none") return expanded;
      }
      const name = tlsaName(host, port);
      return classifyTlsa(name, await d.resolver.tlsa(name));
    },
    verify(chain: X509Certificate[], records: TlsaRecord[], names: string[]) {
      return verifyChain(chain, records, names, now());
    },
    async mxSecure(domain: string): Promise<boolean> {
      return mxAnswerSecure(await d.resolver.mx(domain));
    },
  };
}

/** "3 1 1 …" lines for the log: what was published. */
export function describeRecords(records: readonly TlsaRecord[]): string {
  return records.map((r) => `${describeTlsa(r)} ${r.data.toString("hex").slice(0, 16)}…`).join(", ");
}
