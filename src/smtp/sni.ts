// Which certificate answers a TLS client that named a server (SNI, RFC 6066 §3): an exact
// name first, then a "*.example.org" entry for one more label (RFC 6125 §6.4.3: the wildcard
// stands for exactly one left-most label). No match: the default certificate (undefined here).

/** The index in `names` of the certificate for `servername`, or undefined for the default one. */
export function selectCertificate(servername: string, names: readonly string[]): number | undefined {
  // RFC 6066 §3: the name is a host name without a trailing dot; compare case-insensitively.
  const want = servername.toLowerCase().replace(/\.$/, "");
  if (want === "") return undefined;
  const exact = names.findIndex((n) => n.toLowerCase() === want);
  if (exact >= 0) return exact;
  const dot = want.indexOf(".");
  if (dot <= 0) return undefined;
  const parent = want.slice(dot);
  const wild = names.findIndex((n) => n.startsWith("*.") && n.slice(1).toLowerCase() === parent);
  return wild >= 0 ? wild : undefined;
}
