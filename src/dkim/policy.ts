// The signing policy from the config's `dkim` section: which keys sign for which From domain,
// with the per-domain overrides applied. Keys are read through the injected `readFile` at
// start; a missing or broken key is a ConfigError naming the key and its file.
import type { Config } from "../config.js";
import { ConfigError } from "../config.js";
import type { Canon } from "./canonicalize.js";
import { DkimKeyError, parsePrivateKey } from "./keys.js";
import type { DkimPolicy, DomainSigning } from "./message-signer.js";
import type { SigningKey } from "./sign.js";

export type DkimConfig = Config["dkim"];

function canons(c: DkimConfig["canonicalization"]): { header: Canon; body: Canon } {
  const [header, body] = c.split("/") as [Canon, Canon];
  return { header, body };
}

/** The per-domain settings (pure: keys already loaded). */
export function domainSigning(dkim: DkimConfig, domain: string, keys: SigningKey[]): DomainSigning {
  const d = dkim.domains[domain]!;
  const expire = d.expire ?? dkim.expire ?? undefined;
  return {
    keys,
    ...canons(d.canonicalization ?? dkim.canonicalization),
    headers: d.headers ?? dkim.headers,
    oversign: dkim.oversign,
    expireSeconds: expire ? Math.max(1, Math.round(expire / 1000)) : undefined,
  };
}

/** Load every configured key; undefined when no domain is configured (mxd signs nothing). */
export function loadDkimPolicy(dkim: DkimConfig, readFile: (path: string) => Buffer): DkimPolicy | undefined {
  const domains = Object.keys(dkim.domains);
  if (!domains.length) return undefined;
  const table = new Map<string, DomainSigning>();
  const problems: string[] = [];
  for (const domain of domains) {
    const d = dkim.domains[domain]!;
    const keys: SigningKey[] = [];
    for (const [i, k] of d.keys.entries()) {
      const where = `dkim.domains.${domain}.keys.${i}.privateKey`;
      let pem: Buffer;
      try {
        pem = readFile(k.privateKey);
      } catch (e) {
        problems.push(`${where}: cannot read DKIM key file ${k.privateKey}: ${(e as Error).message}`);
        continue;
      }
      try {
        keys.push({ domain: d.signingDomain ?? domain, selector: k.selector, algorithm: k.algorithm, key: parsePrivateKey(pem, k.algorithm, k.privateKey) });
      } catch (e) {
        if (!(e instanceof DkimKeyError)) throw e;
        problems.push(`${where}: ${e.message}`);
      }
    }
    table.set(domain, domainSigning(dkim, domain, keys));
  }
  if (problems.length) throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`, problems);
  return { maxSize: dkim.maxSize, lookup: (fromDomain) => table.get(fromDomain) };
}
