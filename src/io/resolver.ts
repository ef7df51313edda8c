// DNS lookups as an injected dependency. The Node implementation uses node:dns/promises with
// the servers from `dns.servers` (empty = system resolver). Errors are mapped to three kinds so
// that policy code never sees node error codes.
import { Resolver as NodeResolver } from "node:dns/promises";
import { MxdError } from "../core/errors.js";

export interface MxRecord {
  exchange: string;
  priority: number;
}

export type DnsErrorKind = "nxdomain" | "nodata" | "temporary";

export class DnsError extends MxdError {
  constructor(readonly kind: DnsErrorKind, readonly name_: string, /** The resolver's code (ENOTFOUND, ESERVFAIL, …). */ readonly dnsCode: string) {
    super("MXD_DNS", `DNS ${kind} for ${name_} (${dnsCode})`);
    this.name = "DnsError";
  }
}

export interface Resolver {
  /** MX records; throws DnsError("nodata") when the name exists without MX, ("nxdomain") when it does not exist. */
  mx(domain: string): Promise<MxRecord[]>;
  a(host: string): Promise<string[]>;
  aaaa(host: string): Promise<string[]>;
  /** TXT records, each as its list of strings (MTA-STS). Optional: test doubles without it mean "no TXT records anywhere". */
  txt?(name: string): Promise<string[][]>;
}

export function classifyDnsCode(code: string | undefined): DnsErrorKind {
  switch (code) {
    case "ENOTFOUND": // NXDOMAIN
      return "nxdomain";
    case "ENODATA": // name exists, no records of this type
      return "nodata";
    default: // ESERVFAIL, ETIMEOUT, ECONNREFUSED, EREFUSED, ...
      return "temporary";
  }
}

export interface NodeResolverOptions {
  /** "host" or "host:port" ("[v6]:port"). */
  servers?: readonly string[];
  timeoutMs?: number;
  tries?: number;
}

export function createNodeResolver(opts: NodeResolverOptions = {}): Resolver {
  const r = new NodeResolver({ timeout: opts.timeoutMs ?? 5000, tries: opts.tries ?? 2 });
  if (opts.servers && opts.servers.length) r.setServers([...opts.servers]);
  const wrap = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new DnsError(classifyDnsCode(code), name, code ?? "UNKNOWN");
    }
  };
  return {
    mx: (d) => wrap(d, () => r.resolveMx(d)),
    a: (h) => wrap(h, () => r.resolve4(h)),
    aaaa: (h) => wrap(h, () => r.resolve6(h)),
    txt: (n) => wrap(n, () => r.resolveTxt(n)),
  };
}
