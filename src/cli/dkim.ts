// `mxd dkim keygen DOMAIN` writes a new private key (mode 0600) and prints the TXT record to
// publish; `mxd dkim check DOMAIN` looks up the published records of the configured keys and
// says whether each matches (docs/deliverability.md).
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { resolve } from "node:path";
import { parseOptions, UsageError } from "./args.js";
import { resolveConfig } from "./resolve-config.js";
import { checkRecord, generateKey, recordName, zoneLine } from "../dkim/keys.js";
import { loadDkimPolicy } from "../dkim/policy.js";
import type { DkimAlgorithm } from "../dkim/sign.js";

const HELP = `usage: mxd dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [--out FILE]
       mxd dkim check DOMAIN [--config FILE]

keygen  writes a new private key (PKCS#8 PEM, mode 0600; RSA keys have 2048 bits) to FILE
        (default ./DOMAIN.SELECTOR.pem; never overwritten) and prints the DNS TXT record to
        publish at SELECTOR._domainkey.DOMAIN and the dkim.domains entry for the config.
        Default selector: mxd-rsa or mxd-ed25519.
check   resolves SELECTOR._domainkey.DOMAIN for every key configured under dkim.domains.DOMAIN
        (with the config's dns.servers) and says whether the published key matches.
        Exit 0: every key matches; 1: a record is missing or differs; 2: usage or config error.`;

const DOMAIN_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;
const SELECTOR_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

export async function dkimCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "keygen") return keygen(rest);
  if (sub === "check") return check(rest);
  throw new UsageError(`mxd dkim: unknown subcommand ${JSON.stringify(sub)}; see mxd dkim --help`);
}

function domainArg(cmd: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`${cmd}: one DOMAIN expected, got ${positionals.length}; see mxd dkim --help`);
  const d = positionals[0]!.toLowerCase().replace(/\.$/, "");
  if (!DOMAIN_RE.test(d)) throw new UsageError(`${cmd}: ${JSON.stringify(positionals[0])} is not a domain name`);
  return d;
}

function keygen(argv: string[]): number {
  const { values, positionals } = parseOptions("mxd dkim keygen", argv, { selector: { type: "string", short: "s" }, algorithm: { type: "string", short: "a" }, out: { type: "string", short: "o" }, help: { type: "boolean", short: "h" } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const domain = domainArg("mxd dkim keygen", positionals);
  const alg = values.algorithm ?? "rsa";
  if (alg !== "rsa" && alg !== "ed25519") throw new UsageError(`mxd dkim keygen: --algorithm is rsa or ed25519, got ${JSON.stringify(alg)}`);
  const algorithm: DkimAlgorithm = alg === "rsa" ? "rsa-sha256" : "ed25519-sha256";
  const selector = values.selector ?? `mxd-${alg}`;
  if (!SELECTOR_RE.test(selector)) throw new UsageError(`mxd dkim keygen: ${JSON.stringify(selector)} is not a selector (letters, digits and "-", labels separated by dots)`);
  const out = resolve(values.out ?? `${domain}.${selector}.pem`);
  const { pem, record } = generateKey(algorithm);
  try {
    // "wx": an existing key is never replaced (its record may be published and in use).
    writeFileSync(out, pem, { mode: 0o600, flag: "wx" });
    chmodSync(out, 0o600);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(`mxd dkim keygen: cannot write ${out}: ${err.code === "EEXIST" ? "the file exists (remove it or choose --out)" : err.message}`);
    return 1;
  }
  const name = recordName(selector, domain);
  console.log(`private key written to ${out} (mode 0600)\n`);
  console.log(`publish this TXT record at ${name}:\n\n  ${record}\n\nas a zone file line:\n\n  ${zoneLine(name, record)}\n`);
  console.log(`then add the key to the config and run \`mxd dkim check ${domain}\`:\n`);
  console.log(JSON.stringify({ dkim: { domains: { [domain]: { keys: [{ selector, algorithm, privateKey: out }] } } } }, null, 2));
  return 0;
}

async function check(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions("mxd dkim check", argv, { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const domain = domainArg("mxd dkim check", positionals);
  const config = resolveConfig(values.config);
  if (!Object.hasOwn(config.dkim.domains, domain)) {
    throw new UsageError(`mxd dkim check: the config has no dkim.domains.${domain} (configured: ${Object.keys(config.dkim.domains).join(", ") || "none"})`);
  }
  const policy = loadDkimPolicy({ ...config.dkim, domains: { [domain]: config.dkim.domains[domain]! } }, (p) => readFileSync(p));
  const keys = policy!.lookup(domain)!.keys;
  const resolver = new Resolver({ timeout: config.dns.timeout, tries: config.dns.tries });
  if (config.dns.servers.length) resolver.setServers(config.dns.servers);
  let failed = 0;
  for (const key of keys) {
    const name = recordName(key.selector, key.domain);
    let answers: string[] | undefined;
    try {
      answers = (await resolver.resolveTxt(name)).map((strings) => strings.join(""));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOTFOUND" && code !== "ENODATA") {
        console.log(`FAIL ${key.algorithm} ${name}: DNS lookup failed (${code ?? (e as Error).message})`);
        failed++;
        continue;
      }
    }
    const r = checkRecord(key, answers);
    console.log(`${r.ok ? "OK  " : "FAIL"} ${key.algorithm} ${r.message}`);
    if (!r.ok) failed++;
  }
  return failed ? 1 : 0;
}
