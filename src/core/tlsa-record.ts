// One TLSA record (RFC 6698 §2.1): read from DNS by io/dnssec-resolver.ts, judged and matched
// by delivery/tlsa.ts and delivery/dane.ts.
export interface TlsaRecord {
  /** 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE (only 2 and 3 are usable for SMTP, RFC 7672 §3.1). */
  usage: number;
  /** 0 full certificate, 1 SubjectPublicKeyInfo. */
  selector: number;
  /** 0 exact, 1 SHA-256, 2 SHA-512. */
  matchingType: number;
  data: Buffer;
}
