// The seam between the outbound TLS policy (delivery/tls-policy.ts, smtp-courier.ts) and DANE
// (RFC 7672, delivery/dane.ts, built separately). The courier only needs these three calls.
import type { X509Certificate } from "node:crypto";

import type { TlsaRecord } from "../core/tlsa-record.js";
export type { TlsaRecord } from "../core/tlsa-record.js";

export type DaneLookup =
  | { kind: "usable"; records: TlsaRecord[] }   // DNSSEC-validated TLSA RRset with at least one usable record: TLS mandatory, authenticate with it
  // No DANE authentication for this host: validated denial, insecure zone, or (requireTls) a
  // secure TLSA RRset of unusable records only — the server publishes that it does TLS, so TLS
  // stays mandatory, unauthenticated (RFC 7672 §2.2, as Postfix does).
  | { kind: "none"; reason: string; requireTls?: boolean }
  | { kind: "defer"; reason: string };          // lookup failed or bogus: RFC 7672 says do not deliver to this host now

export interface Dane {
  /** TLSA for _PORT._tcp.HOST; secureMx says whether the MX RRset that named HOST was validated (RFC 7672 §2.2.1). */
  lookup(host: string, port: number, secureMx: boolean): Promise<DaneLookup>;
  /** Does the peer's chain (leaf first) match the records? (RFC 7672 §3; names for DANE-TA per §3.2.3) */
  verify(chain: X509Certificate[], records: TlsaRecord[], names: string[]): { ok: boolean; reason: string };
  /** Is the MX RRset of DOMAIN DNSSEC-validated? */
  mxSecure(domain: string): Promise<boolean>;
}
