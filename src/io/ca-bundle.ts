// The CAs outbound TLS trusts: Node's bundled roots plus delivery.tls.caFile (read once, kept).
// Used by the SMTP STARTTLS handshake (verify level, MTA-STS) and the MTA-STS policy fetch.
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";

const cache = new Map<string, string[]>();

/** System roots + the PEM file's certificates; throws naming the key when the file is unreadable. */
export function caBundle(caFile: string): string[] {
  const hit = cache.get(caFile);
  if (hit) return hit;
  let pem: string;
  try {
    pem = readFileSync(caFile, "utf8");
  } catch (e) {
    throw new Error(`cannot read delivery.tls.caFile ${caFile}: ${(e as Error).message}`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`delivery.tls.caFile ${caFile} holds no PEM certificate`);
  const bundle = [...rootCertificates, pem];
  cache.set(caFile, bundle);
  return bundle;
}
