// The test network: real peers on loopback addresses, each started as a child process (or, for
// Postfix, a daemon whose master PID is read from its pid file) and stopped by PID.
//
//   dnsmasq      serves MX/A records for the test domains (mxd's dns.servers points at it)
//   postfix      a private instance (own config dir, queue and maildir) as a domain's MX
//   smtp-sink    Postfix's test SMTP server, dumping every transaction to a file
//   aiosmtpd     Python's SMTP server, storing every message's raw bytes
//   mxd          the daemon itself (`node dist/src/cli.js serve --config FILE`)
//
// Every process started here is registered; `stopAllPeers()` (call it from an after hook) and
// a process "exit" handler kill whatever is left, by PID, so a failing test leaves nothing
// running. Also usable from the shell (test/peers.sh): `node dist/test/helpers/peers.js up DIR`
// starts dnsmasq + Postfix + smtp-sink + aiosmtpd and writes their PIDs to DIR/pids; `down DIR`
// stops them.
//
// Loopback plan (this suite owns 127.0.0.200–127.0.0.250):
//   .200 dnsmasq :5353 · .201 smtp-sink · .202 Postfix · .203 aiosmtpd · .210–.229 per-test sinks
//   .230–.250 hostile clients (source addresses)
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync, chownSync, statSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Resolver } from "node:dns/promises";
import { MXD_CLI, REPO_ROOT } from "./paths.js";

export { REPO_ROOT, MXD_CLI } from "./paths.js";
/** Debian's python (has python3-aiosmtpd); the pyenv python on PATH does not. */
export const SYSTEM_PYTHON = "/usr/bin/python3";

export const ADDR = {
  dns: "127.0.0.200",
  smtpSink: "127.0.0.201",
  postfix: "127.0.0.202",
  aiosmtpd: "127.0.0.203",
  haproxy: "127.0.0.204",
  unbound: "127.0.0.205",
  httpsServer: "127.0.0.206",
} as const;

// ---------------------------------------------------------------------------------------------
// Which peers are installed

export type PeerName =
  | "swaks"
  | "smtp-source"
  | "smtp-sink"
  | "postfix"
  | "dnsmasq"
  | "aiosmtpd"
  | "openssl"
  | "haproxy"
  | "unbound"
  | "dkimverify"
  | "ldns-signzone";

const BINARIES: Record<Exclude<PeerName, "aiosmtpd">, string[]> = {
  swaks: ["/usr/bin/swaks", "/usr/local/bin/swaks"],
  "smtp-source": ["/usr/sbin/smtp-source", "/usr/bin/smtp-source"],
  "smtp-sink": ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"],
  postfix: ["/usr/sbin/postfix"],
  dnsmasq: ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"],
  openssl: ["/usr/bin/openssl"],
  haproxy: ["/usr/sbin/haproxy"],
  unbound: ["/usr/sbin/unbound"],
  dkimverify: ["/usr/bin/dkimverify"],
  "ldns-signzone": ["/usr/bin/ldns-signzone"],
};

/** The Debian package that provides each peer (what the skip line names). */
export const PACKAGE: Record<PeerName, string> = {
  swaks: "swaks",
  "smtp-source": "postfix",
  "smtp-sink": "postfix",
  postfix: "postfix",
  dnsmasq: "dnsmasq-base",
  aiosmtpd: "python3-aiosmtpd",
  openssl: "openssl",
  haproxy: "haproxy",
  unbound: "unbound",
  dkimverify: "python3-dkim",
  "ldns-signzone": "ldnsutils",
};

const found = new Map<PeerName, string | undefined>();

/** Absolute path of the peer's program (for aiosmtpd: the python that can import it). */
export function peerPath(name: PeerName): string | undefined {
  if (found.has(name)) return found.get(name);
  let p: string | undefined;
  if (name === "aiosmtpd") {
    const r = existsSync(SYSTEM_PYTHON) ? spawnSync(SYSTEM_PYTHON, ["-c", "import aiosmtpd"], { stdio: "ignore", timeout: 10_000 }) : undefined;
    p = r && r.status === 0 ? SYSTEM_PYTHON : undefined;
  } else {
    p = BINARIES[name].find((c) => existsSync(c));
  }
  found.set(name, p);
  return p;
}

export const inCI = process.env.CI === "true" || process.env.CI === "1";

/**
 * For `test(name, { skip: skipUnless(...) }, fn)`: locally, a missing peer skips the test with
 * one line naming the package; in CI it never skips (the test then fails in requirePeers).
 */
export function skipUnless(...names: PeerName[]): string | false {
  const missing = names.filter((n) => !peerPath(n));
  if (!missing.length || inCI) return false;
  return `missing package(s): ${[...new Set(missing.map((m) => PACKAGE[m]))].join(", ")} (apt-get install them to run this test)`;
}

/** Throws naming the package when a peer is missing (CI: a missing package fails the run). */
export function requirePeers(...names: PeerName[]): void {
  const missing = names.filter((n) => !peerPath(n));
  if (missing.length) throw new Error(`missing package(s) in CI: ${[...new Set(missing.map((m) => PACKAGE[m]))].join(", ")}`);
}

// ---------------------------------------------------------------------------------------------
// Process registry: everything started here is killed by PID at the end

interface Tracked {
  pid: number;
  name: string;
  kill: (sig: NodeJS.Signals) => void;
}
const live = new Map<number, Tracked>();

function track(pid: number, name: string, kill?: (sig: NodeJS.Signals) => void): void {
  live.set(pid, { pid, name, kill: kill ?? ((sig) => killPid(pid, sig)) });
}
function untrack(pid: number): void {
  live.delete(pid);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function killPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

process.on("exit", () => {
  for (const t of live.values()) t.kill("SIGKILL");
});

/** Kill every peer still registered (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopAllPeers(graceMs = 3000): Promise<string[]> {
  const names: string[] = [];
  const all = [...live.values()];
  for (const t of all) {
    names.push(`${t.name}[${t.pid}]`);
    t.kill("SIGTERM");
  }
  const end = Date.now() + graceMs;
  while (Date.now() < end && all.some((t) => pidAlive(t.pid))) await sleep(50);
  for (const t of all) {
    if (pidAlive(t.pid)) t.kill("SIGKILL");
    untrack(t.pid);
  }
  return names;
}

export function livePeers(): { pid: number; name: string }[] {
  return [...live.values()].map(({ pid, name }) => ({ pid, name }));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `cond` every 25–100 ms until true; throws naming `what` after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  let delay = 25;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(delay);
    delay = Math.min(100, delay * 2);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Resolves when something accepts TCP connections at host:port. */
export async function waitPort(host: string, port: number, ms = 10_000): Promise<void> {
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect({ host, port });
        const t = setTimeout(() => (s.destroy(), resolve(false)), 500);
        s.once("connect", () => (clearTimeout(t), s.destroy(), resolve(true)));
        s.once("error", () => (clearTimeout(t), resolve(false)));
      }),
    ms,
    `a listener on ${host}:${port}`,
  );
}

export interface Proc {
  name: string;
  proc: ChildProcess;
  pid: number;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, wait up to `ms`, then SIGKILL; resolves when the process is gone. */
  stop(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const MAX_KEPT_LINES = 20_000;
/** Shell mode (peers.sh up): peers outlive this process, so they get no pipes. */
let detachPeers = false;

/** Spawn a tracked child process; its output is kept line by line (bounded). */
export function spawnPeer(name: string, cmd: string, args: string[], opts: SpawnOptions & { onLine?: (line: string, stream: "stdout" | "stderr") => void } = {}): Proc {
  const proc = detachPeers
    ? spawn(cmd, args, { ...opts, stdio: "ignore", detached: true })
    : spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  if (proc.pid === undefined) throw new Error(`cannot start ${name} (${cmd})`);
  if (detachPeers) proc.unref();
  const pid = proc.pid;
  track(pid, name);
  const stdout: string[] = [];
  const stderr: string[] = [];
  for (const [stream, sink] of [["stdout", stdout], ["stderr", stderr]] as const) {
    let partial = "";
    proc[stream]?.setEncoding("utf8");
    proc[stream]?.on("data", (d: string) => {
      const lines = (partial + d).split("\n");
      partial = lines.pop()!;
      for (const l of lines) {
        if (sink.length < MAX_KEPT_LINES) sink.push(l);
        opts.onLine?.(l, stream);
      }
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once("exit", (code, signal) => {
      untrack(pid);
      resolve({ code, signal });
    });
    proc.once("error", () => {
      untrack(pid);
      resolve({ code: null, signal: null });
    });
  });
  return {
    name,
    proc,
    pid,
    stdout,
    stderr,
    exited,
    async stop(ms = 5000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        killPid(pid, "SIGTERM");
        const t = setTimeout(() => killPid(pid, "SIGKILL"), ms);
        const r = await exited;
        clearTimeout(t);
        return r;
      }
      return exited;
    },
  };
}

/** Run a command to completion with a time bound; output captured. */
export async function runTool(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const p = spawnPeer(cmd.split("/").pop()!, cmd, args, { stdio: [opts.input !== undefined ? "pipe" : "ignore", "pipe", "pipe"], env: opts.env ?? process.env, cwd: opts.cwd });
  if (opts.input !== undefined) p.proc.stdin!.end(opts.input);
  const t = setTimeout(() => killPid(p.pid, "SIGKILL"), opts.timeoutMs ?? 60_000);
  const r = await p.exited;
  clearTimeout(t);
  return { ...r, stdout: p.stdout.join("\n"), stderr: p.stderr.join("\n"), ms: Date.now() - started };
}

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o755); // Postfix daemons (user postfix) must reach their queue under it
  return d;
}

// ---------------------------------------------------------------------------------------------
// dnsmasq

export interface DnsRecords {
  /** domain → MX hosts (preference, host). */
  mx?: Record<string, { host: string; pref: number }[]>;
  /** host name → IPv4 addresses. */
  a?: Record<string, string[]>;
}

export interface DnsPeer {
  host: string;
  port: number;
  address: string;
  pid: number;
  /** Queries dnsmasq logged so far (counted only with `logQueries`; its probe queries included). */
  queries(): number;
  /** The same, per record type ("MX", "A", "AAAA", "TXT", …). */
  queriesByType(): Record<string, number>;
  stop(): Promise<void>;
}

export async function startDnsmasq(records: DnsRecords, opts: { host?: string; port?: number; logQueries?: boolean; localTtl?: number } = {}): Promise<DnsPeer> {
  const bin = peerPath("dnsmasq");
  if (!bin) throw new Error("dnsmasq is not installed (package dnsmasq-base)");
  const host = opts.host ?? ADDR.dns;
  const port = opts.port ?? 5353;
  const args = ["--no-daemon", "--no-resolv", "--no-hosts", "--no-poll", `--listen-address=${host}`, `--port=${port}`, "--bind-interfaces", "--local=/test/", "--log-facility=-", "--user=root", "--conf-file=/dev/null"];
  for (const [dom, mxs] of Object.entries(records.mx ?? {})) for (const m of mxs) args.push(`--mx-host=${dom},${m.host},${m.pref}`);
  for (const [name, ips] of Object.entries(records.a ?? {})) args.push(`--host-record=${name},${ips.join(",")}`);
  if (opts.logQueries) args.push("--log-queries");
  // dnsmasq answers its own records (--host-record) with TTL 0 unless told otherwise.
  if (opts.localTtl !== undefined) args.push(`--local-ttl=${opts.localTtl}`);
  let queries = 0;
  const byType: Record<string, number> = {};
  // dnsmasq logs each query as "query[MX] name from addr" (its answers on other lines).
  const onLine = (l: string) => {
    const m = / query\[(\w+)\]/.exec(l);
    if (!m) return;
    queries++;
    byType[m[1]!] = (byType[m[1]!] ?? 0) + 1;
  };
  const p = spawnPeer("dnsmasq", bin, args, { onLine });
  const r = new Resolver({ timeout: 300, tries: 1 });
  r.setServers([`${host}:${port}`]);
  const probe = Object.keys(records.mx ?? {})[0];
  try {
    await waitFor(async () => {
      if (p.proc.exitCode !== null) throw new Error(`dnsmasq exited: ${p.stderr.join("\n")}`);
      try {
        if (probe) await r.resolveMx(probe);
        else await r.resolve4("localhost.test").catch((e: NodeJS.ErrnoException) => (e.code === "ENOTFOUND" ? [] : Promise.reject(e)));
        return true;
      } catch {
        return false;
      }
    }, 5000, `dnsmasq on ${host}:${port}`);
  } catch (e) {
    await p.stop(1000);
    throw e;
  }
  return { host, port, address: `${host}:${port}`, pid: p.pid, queries: () => queries, queriesByType: () => ({ ...byType }), stop: async () => void (await p.stop(2000)) };
}

// ---------------------------------------------------------------------------------------------
// A private Postfix instance as the MX of some domains

export interface PostfixPeer {
  host: string;
  port: number;
  dir: string;
  /** Master daemon PID (from its pid file). */
  pid: number;
  /** Maildir files delivered so far (new/), oldest first: raw bytes as Postfix stored them. */
  messages(): Buffer[];
  waitForMessages(n: number, ms: number): Promise<Buffer[]>;
  log(): string;
  stop(): Promise<void>;
}

function postfixCmd(dir: string, args: string[], timeoutMs = 30_000): { status: number | null; out: string } {
  // Postfix commands log their errors to syslog (absent here) unless stderr is a terminal;
  // `script` gives them one so a failure is explained.
  const r = existsSync("/usr/bin/script")
    ? spawnSync("/usr/bin/script", ["-qec", ["/usr/sbin/postfix", "-c", join(dir, "conf"), ...args].join(" "), "/dev/null"], { encoding: "utf8", timeout: timeoutMs })
    : spawnSync("/usr/sbin/postfix", ["-c", join(dir, "conf"), ...args], { encoding: "utf8", timeout: timeoutMs });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

export async function startPostfix(opts: { host?: string; port?: number; domains?: string[]; extraMainCf?: string } = {}): Promise<PostfixPeer> {
  if (!peerPath("postfix")) throw new Error("postfix is not installed (package postfix)");
  if (process.getuid?.() !== 0) throw new Error("a private Postfix instance needs root (its daemons switch to user postfix)");
  const host = opts.host ?? ADDR.postfix;
  const port = opts.port ?? 25;
  const domains = opts.domains ?? ["pf.test"];
  const dir = tempDir("mxd-postfix-");
  for (const d of ["conf", "queue", "data", "mail"]) mkdirSync(join(dir, d));
  const pw = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postfix:"));
  if (!pw) throw new Error("no postfix user in /etc/passwd");
  const [, , uid, gid] = pw.split(":");
  chownSync(join(dir, "mail"), Number(uid), Number(gid));
  chownSync(join(dir, "data"), Number(uid), Number(gid));
  writeFileSync(
    join(dir, "conf/main.cf"),
    `compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
myhostname = ${domains[0]}
mydomain = ${domains[0]}
myorigin = ${domains[0]}
mydestination =
# 127.0.0.x other than .1 is not an interface address; master.cf binds ${host}:${port} itself.
inet_interfaces = 127.0.0.1
proxy_interfaces = ${host}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = $myhostname ESMTP Postfix (mxd interop)
virtual_mailbox_domains = ${domains.join(", ")}
virtual_mailbox_base = ${dir}/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:${uid}
virtual_gid_maps = static:${gid}
virtual_mailbox_limit = 0
message_size_limit = 104857600
alias_maps =
alias_database =
local_header_rewrite_clients =
smtputf8_enable = yes
maillog_file_prefixes = ${dir}
maillog_file = ${dir}/maillog
${opts.extraMainCf ?? ""}
`,
  );
  const svc = (name: string, type: string, priv: string, unpriv: string, chroot: string, wakeup: string, maxproc: string, cmd: string) =>
    `${name} ${type} ${priv} ${unpriv} ${chroot} ${wakeup} ${maxproc} ${cmd}`;
  writeFileSync(
    join(dir, "conf/master.cf"),
    [
      svc(`${host}:${port}`, "inet", "n", "-", "n", "-", "-", "smtpd"),
      svc("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
      svc("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
      svc("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
      svc("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
      svc("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
      svc("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
      svc("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
      svc("verify", "unix", "-", "-", "n", "-", "1", "verify"),
      svc("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
      svc("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
      svc("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
      svc("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
      svc("showq", "unix", "n", "-", "n", "-", "-", "showq"),
      svc("error", "unix", "-", "-", "n", "-", "-", "error"),
      svc("retry", "unix", "-", "-", "n", "-", "-", "error"),
      svc("discard", "unix", "-", "-", "n", "-", "-", "discard"),
      svc("local", "unix", "-", "n", "n", "-", "-", "local"),
      svc("virtual", "unix", "-", "n", "n", "-", "-", "virtual"),
      svc("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
      svc("scache", "unix", "-", "-", "n", "-", "1", "scache"),
      svc("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
    ].join("\n") + "\n",
  );
  const r = postfixCmd(dir, ["start"]);
  const pidFile = join(dir, "queue/pid/master.pid");
  const log = () => (existsSync(join(dir, "maillog")) ? readFileSync(join(dir, "maillog"), "utf8") : "");
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`postfix start failed (exit ${r.status}): ${r.out}\n${log()}`);
  }
  let pid = 0;
  const stop = async () => {
    if (pid && pidAlive(pid)) {
      postfixCmd(dir, ["stop"], 10_000);
      await waitFor(() => !pidAlive(pid), 5000, "postfix master to exit").catch(() => killPid(pid, "SIGKILL"));
    }
    untrack(pid);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8").trim()) > 0, 10_000, "postfix master.pid");
    pid = Number(readFileSync(pidFile, "utf8").trim());
    track(pid, "postfix-master", (sig) => {
      if (sig === "SIGKILL") {
        // The master's children (smtpd, qmgr, ...) would outlive it; take the process group.
        killPid(-pid, "SIGKILL");
      }
      killPid(pid, sig);
    });
    await waitPort(host, port, 10_000);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${log()}`);
  }
  const newDir = join(dir, "mail/box/new");
  const messages = () =>
    existsSync(newDir)
      ? readdirSync(newDir)
          .map((f) => ({ f, t: statSync(join(newDir, f)).mtimeMs }))
          .sort((a, b) => a.t - b.t || a.f.localeCompare(b.f))
          .map(({ f }) => readFileSync(join(newDir, f)))
      : [];
  return {
    host,
    port,
    dir,
    pid,
    messages,
    async waitForMessages(n, ms) {
      let m: Buffer[] = [];
      await waitFor(() => (m = messages()).length >= n, ms, `${n} message(s) in Postfix's maildir (log:\n${log().split("\n").slice(-15).join("\n")})`);
      return m;
    },
    log,
    stop,
  };
}

/**
 * What Postfix's virtual(8) stored, turned back into the bytes it received: drop the headers it
 * prepends (Return-Path, X-Original-To, Delivered-To, its own Received with continuation lines)
 * and restore CRLF line ends (a maildir file uses LF).
 */
export function postfixReceivedBytes(stored: Buffer): Buffer {
  const text = stored.toString("latin1");
  const lines = text.split("\n");
  let i = 0;
  for (const h of [/^Return-Path:/i, /^X-Original-To:/i, /^Delivered-To:/i]) {
    while (i < lines.length && h.test(lines[i]!)) i++;
  }
  if (/^Received: .*/i.test(lines[i] ?? "") && lines.slice(i, i + 4).some((l) => /\(Postfix/.test(l))) {
    i++;
    while (i < lines.length && /^[ \t]/.test(lines[i]!)) i++;
  }
  return Buffer.from(lines.slice(i).join("\r\n"), "latin1");
}

// ---------------------------------------------------------------------------------------------
// Postfix's smtp-sink

export interface SinkPeer {
  host: string;
  port: number;
  pid: number;
  dumpDir: string;
  /** Dumped transactions (smtp-sink's X-* envelope lines, its Received, then the message). */
  dumps(): Buffer[];
  waitForMessages(n: number, ms: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startSmtpSink(opts: { host?: string; port?: number; dump?: boolean; extraArgs?: string[] } = {}): Promise<SinkPeer> {
  const bin = peerPath("smtp-sink");
  if (!bin) throw new Error("smtp-sink is not installed (package postfix)");
  const host = opts.host ?? ADDR.smtpSink;
  const port = opts.port ?? 25;
  const dumpDir = tempDir("mxd-smtp-sink-");
  const args: string[] = [];
  if (process.getuid?.() === 0) args.push("-u", "postfix");
  if (opts.dump !== false) {
    const pw = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postfix:"));
    if (pw) chownSync(dumpDir, Number(pw.split(":")[2]), Number(pw.split(":")[3]));
    args.push("-d", `${dumpDir}/%M.`);
  }
  args.push(...(opts.extraArgs ?? []), `${host}:${port}`, "1024");
  const p = spawnPeer("smtp-sink", bin, args);
  try {
    await waitPort(host, port, 5000);
  } catch (e) {
    await p.stop(1000);
    throw new Error(`${(e as Error).message}: ${p.stderr.join("\n")}`);
  }
  const dumps = () => readdirSync(dumpDir).sort().map((f) => readFileSync(join(dumpDir, f)));
  return {
    host,
    port,
    pid: p.pid,
    dumpDir,
    dumps,
    waitForMessages: (n, ms) => waitFor(() => readdirSync(dumpDir).length >= n, ms, `${n} message(s) at smtp-sink`),
    async stop() {
      await p.stop(2000);
      rmSync(dumpDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// aiosmtpd (Python)

export interface AioMessage {
  from: string;
  to: string[];
  mailOptions: string[];
  raw: Buffer;
}

export interface AioPeer {
  host: string;
  port: number;
  pid: number;
  messages(): AioMessage[];
  waitForMessages(n: number, ms: number): Promise<AioMessage[]>;
  stop(): Promise<void>;
}

const AIOSMTPD_SCRIPT = String.raw`
import asyncio, json, os, signal, sys
from aiosmtpd.smtp import SMTP
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = 0
class Handler:
    async def handle_DATA(self, server, session, envelope):
        global n
        n += 1
        base = os.path.join(out, "%06d" % n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos, "mailOptions": envelope.mail_options}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 OK aiosmtpd %d" % n
class FakeStartTls(Handler):
    # Advertises STARTTLS without a TLS context, so STARTTLS gets "454 TLS not available":
    # a remote whose TLS is broken or stripped.
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-STARTTLS"] + responses[-1:]
async def main():
    loop = asyncio.get_running_loop()
    handler = FakeStartTls() if len(sys.argv) > 4 and sys.argv[4] == "starttls-454" else Handler()
    srv = await loop.create_server(lambda: SMTP(handler, enable_SMTPUTF8=True, decode_data=False, hostname="aiosmtpd.test"), host, port)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    print("ready", flush=True)
    await stop
    srv.close()
asyncio.run(main())
`;

/** `starttls454`: advertise STARTTLS and answer it "454 TLS not available" (a broken or stripped TLS). */
export async function startAiosmtpd(opts: { host?: string; port?: number; starttls454?: boolean } = {}): Promise<AioPeer> {
  const py = peerPath("aiosmtpd");
  if (!py) throw new Error("aiosmtpd is not importable by /usr/bin/python3 (package python3-aiosmtpd)");
  const host = opts.host ?? ADDR.aiosmtpd;
  const port = opts.port ?? 25;
  const dir = tempDir("mxd-aiosmtpd-");
  const script = join(dir, "server.py");
  writeFileSync(script, AIOSMTPD_SCRIPT);
  const store = join(dir, "store");
  mkdirSync(store);
  const p = spawnPeer("aiosmtpd", py, [script, host, String(port), store, ...(opts.starttls454 ? ["starttls-454"] : [])]);
  try {
    await waitFor(() => {
      if (p.proc.exitCode !== null) throw new Error(`aiosmtpd exited: ${p.stderr.join("\n")}`);
      return true;
    }, 1000, "aiosmtpd to start");
    await waitPort(host, port, 10_000);
  } catch (e) {
    await p.stop(1000);
    throw e;
  }
  const messages = (): AioMessage[] =>
    readdirSync(store)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => {
        const j = JSON.parse(readFileSync(join(store, f), "utf8")) as { from: string; to: string[]; mailOptions: string[] };
        return { ...j, raw: readFileSync(join(store, f.replace(/\.json$/, ".eml"))) };
      });
  return {
    host,
    port,
    pid: p.pid,
    messages,
    async waitForMessages(n, ms) {
      let m: AioMessage[] = [];
      await waitFor(() => (m = messages()).length >= n, ms, `${n} message(s) at aiosmtpd`);
      return m;
    },
    async stop() {
      await p.stop(2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// mxd as a child process

export interface MxdPeer {
  pid: number;
  host: string;
  port: number;
  listen: { host: string; port: number; tls: boolean }[];
  configFile: string;
  spoolDir: string;
  proc: Proc;
  /** Parsed JSON log lines so far. */
  logs(): Record<string, unknown>[];
  kill(sig: NodeJS.Signals): void;
  stop(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `mxd serve --config FILE` with `config` (a plain object); resolves on the "ready" line. */
export async function startMxd(config: Record<string, unknown> & { spoolDir: string }, opts: { readyMs?: number; nodeArgs?: string[] } = {}): Promise<MxdPeer> {
  const configFile = join(config.spoolDir, "..", `mxd-${Date.now()}-${Math.random().toString(36).slice(2, 7)}.json`);
  mkdirSync(join(config.spoolDir, ".."), { recursive: true });
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const p = spawnPeer("mxd", process.execPath, [...(opts.nodeArgs ?? []), MXD_CLI, "serve", "--config", configFile]);
  let ready: { listen: { host: string; port: number; tls: boolean }[] } | undefined;
  try {
    await waitFor(() => {
      if (p.proc.exitCode !== null || p.proc.signalCode !== null) throw new Error(`mxd exited (${p.proc.exitCode ?? p.proc.signalCode}) before ready:\n${p.stderr.join("\n")}\n${p.stdout.slice(-20).join("\n")}`);
      for (const l of p.stdout) {
        if (l.includes('"msg":"ready"')) {
          ready = JSON.parse(l) as typeof ready;
          return true;
        }
      }
      return false;
    }, opts.readyMs ?? 20_000, "mxd ready");
  } catch (e) {
    await p.stop(1000);
    throw e;
  }
  const listen = ready!.listen;
  return {
    pid: p.pid,
    host: listen[0]!.host,
    port: listen[0]!.port,
    listen,
    configFile,
    spoolDir: config.spoolDir,
    proc: p,
    logs: () =>
      p.stdout.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    kill: (sig) => killPid(p.pid, sig),
    stop: (ms = 10_000) => p.stop(ms),
  };
}

// ---------------------------------------------------------------------------------------------
// Small SMTP client helpers for the tests

/** Throwaway certificate/key PEM files (openssl), for mxd's STARTTLS. */
export function makeCert(dir: string, cn = "mxd.test"): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const r = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}`, "-days", "2", "-keyout", key, "-out", cert], { stdio: "ignore", timeout: 30_000 });
  if (r.status !== 0) throw new Error("openssl could not make a test certificate");
  return { cert, key };
}

// ---------------------------------------------------------------------------------------------
// Shell entry point (test/peers.sh): up DIR | down DIR

async function cli(argv: string[]): Promise<number> {
  const [cmd, dir] = argv;
  if (!dir || (cmd !== "up" && cmd !== "down")) {
    console.error("usage: peers.js up|down STATE_DIR");
    return 2;
  }
  const pidsFile = join(dir, "pids");
  if (cmd === "down") {
    if (!existsSync(pidsFile)) return 0;
    for (const line of readFileSync(pidsFile, "utf8").split("\n").filter(Boolean)) {
      const [name, pid, extra] = line.split(" ");
      if (name === "postfix" && extra) postfixCmd(extra, ["stop"], 10_000);
      killPid(Number(pid), "SIGTERM");
      await sleep(300);
      if (pidAlive(Number(pid))) killPid(Number(pid), "SIGKILL");
      if (name === "postfix" && extra) rmSync(extra, { recursive: true, force: true });
      console.log(`stopped ${name} ${pid}`);
    }
    rmSync(pidsFile);
    return 0;
  }
  mkdirSync(dir, { recursive: true });
  detachPeers = true;
  const lines: string[] = [];
  const dns = await startDnsmasq({
    mx: { "pf.test": [{ host: "mx.pf.test", pref: 10 }], "sink.test": [{ host: "mx.sink.test", pref: 10 }], "aio.test": [{ host: "mx.aio.test", pref: 10 }] },
    a: { "mx.pf.test": [ADDR.postfix], "mx.sink.test": [ADDR.smtpSink], "mx.aio.test": [ADDR.aiosmtpd] },
  });
  lines.push(`dnsmasq ${dns.pid}`);
  const pf = await startPostfix();
  lines.push(`postfix ${pf.pid} ${pf.dir}`);
  const sk = await startSmtpSink({ dump: false });
  lines.push(`smtp-sink ${sk.pid}`);
  const aio = await startAiosmtpd();
  lines.push(`aiosmtpd ${aio.pid}`);
  writeFileSync(pidsFile, lines.join("\n") + "\n");
  for (const l of lines) console.log(`started ${l}`);
  console.log(`DNS ${dns.address}: pf.test → Postfix ${ADDR.postfix}:25, sink.test → smtp-sink ${ADDR.smtpSink}:25, aio.test → aiosmtpd ${ADDR.aiosmtpd}:25`);
  // Leave them running: forget them so the exit handler does not kill them.
  live.clear();
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  cli(process.argv.slice(2)).then(
    (c) => process.exit(c),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
