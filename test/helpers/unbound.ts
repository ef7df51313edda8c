// A validating resolver for the DANE tests: Debian's unbound on loopback (ADDR.unbound, port
// 53), serving test zones that are signed here with ldns-keygen + ldns-signzone (ldnsutils).
//
// Each zone is an unbound auth-zone with `for-upstream: yes, for-downstream: no`: unbound then
// answers from the zone data as if it came from upstream and DNSSEC-validates it first (unbound
// .conf(5)), against the zone's key configured as its trust anchor. So a signed zone answers
// with AD, a zone changed after signing answers SERVFAIL (bogus), an unsigned zone (no anchor)
// answers without AD (insecure). `local-data` would not be validated, hence auth-zones.
// Started with a generated config, in the foreground, stopped by PID.
import { Resolver } from "node:dns/promises";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADDR, peerPath, runTool, spawnPeer, tempDir, waitFor } from "./peers.js";

export interface TestZone {
  /** "dane.test" */
  name: string;
  /** Zone file lines after the SOA and NS, names relative to the zone ("mx IN A 127.0.0.211"). */
  records: string[];
  /** Signed with a fresh key that unbound trusts (default true). */
  signed?: boolean;
  /** Change the signed zone text after signing (a bogus zone). */
  tamper?: (signedZone: string) => string;
}

export interface UnboundPeer {
  host: string;
  port: number;
  /** "127.0.0.205:53" */
  address: string;
  pid: number;
  /** unbound's log lines so far (validation failures are logged at val-log-level 2). */
  log(): string[];
  stop(): Promise<void>;
}

function zoneText(z: TestZone): string {
  const o = `${z.name}.`;
  return [`$ORIGIN ${o}`, "$TTL 300", `@ IN SOA ns.${o} hostmaster.${o} 1 3600 600 86400 300`, `@ IN NS ns.${o}`, `ns IN A ${ADDR.unbound}`, ...z.records, ""].join("\n");
}

async function tool(bin: string, args: string[], cwd: string): Promise<string> {
  const r = await runTool(bin, args, { cwd, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${bin} ${args.join(" ")} failed (${r.code ?? r.signal}): ${r.stderr}`);
  return r.stdout.trim();
}

export async function startUnbound(opts: { zones: TestZone[]; host?: string; port?: number }): Promise<UnboundPeer> {
  const unbound = peerPath("unbound");
  const signzone = peerPath("ldns-signzone");
  if (!unbound) throw new Error("unbound is not installed (package unbound)");
  if (!signzone) throw new Error("ldns-signzone is not installed (package ldnsutils)");
  const keygen = signzone.replace(/ldns-signzone$/, "ldns-keygen");
  const host = opts.host ?? ADDR.unbound;
  const port = opts.port ?? 53;
  const dir = tempDir("mxd-unbound-");
  const conf: string[] = [
    "server:",
    `  interface: ${host}`,
    `  port: ${port}`,
    "  do-daemonize: no",
    "  use-syslog: no",
    '  logfile: ""',
    "  verbosity: 1",
    "  val-log-level: 2",
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    '  pidfile: ""',
    "  num-threads: 1",
    "  so-reuseport: no",
    "  access-control: 127.0.0.0/8 allow",
    "  do-not-query-localhost: no",
    '  module-config: "validator iterator"',
    // unbound answers NXDOMAIN for the RFC 6761 name test. by default; our zones live under it.
    '  local-zone: "test." nodefault',
  ];
  const authZones: string[] = [];
  for (const z of opts.zones) {
    const zdir = join(dir, z.name);
    mkdirSync(zdir);
    writeFileSync(join(zdir, "zone"), zoneText(z));
    let file = join(zdir, "zone");
    if (z.signed !== false) {
      const key = await tool(keygen, ["-a", "ECDSAP256SHA256", "-k", z.name], zdir);
      await tool(signzone, ["-f", join(zdir, "zone.signed"), join(zdir, "zone"), join(zdir, key)], zdir);
      file = join(zdir, "zone.signed");
      if (z.tamper) writeFileSync(file, z.tamper(readFileSync(file, "utf8")));
      conf.push(`  trust-anchor-file: "${join(zdir, `${key}.key`)}"`);
    }
    authZones.push("auth-zone:", `  name: "${z.name}."`, `  zonefile: "${file}"`, "  for-downstream: no", "  for-upstream: yes", "  fallback-enabled: no");
  }
  const confFile = join(dir, "unbound.conf");
  writeFileSync(confFile, [...conf, ...authZones, "remote-control:", "  control-enable: no", ""].join("\n"));
  const p = spawnPeer("unbound", unbound, ["-d", "-c", confFile]);
  const probe = new Resolver({ timeout: 300, tries: 1 });
  probe.setServers([`${host}:${port}`]);
  try {
    await waitFor(async () => {
      if (p.proc.exitCode !== null) throw new Error(`unbound exited: ${p.stderr.join("\n")}`);
      try {
        await probe.resolveSoa(opts.zones[0]!.name);
        return true;
      } catch {
        return false;
      }
    }, 10_000, `unbound on ${host}:${port}`);
  } catch (e) {
    await p.stop(1000);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    host,
    port,
    address: `${host}:${port}`,
    pid: p.pid,
    log: () => [...p.stdout, ...p.stderr],
    async stop() {
      await p.stop(2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
