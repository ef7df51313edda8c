// Test helpers for the inbound side: an in-process SmtpServer on 127.0.0.1 with a temp spool,
// a tiny raw-socket SMTP client with bounded waits, spool inspection, a throw-away TLS cert,
// and the daemon as a child process. Everything started here is tracked so tests can clean up.
import net from "node:net";
import tls from "node:tls";
import os from "node:os";
import { join } from "node:path";
import { promises as fsp, readFileSync } from "node:fs";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { parseConfig, type Config } from "../../src/config.js";
import type { MessageMeta } from "../../src/core/envelope.js";
import { silentLogger } from "../../src/io/log.js";
import { systemClock } from "../../src/io/clock.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { SmtpServer } from "../../src/smtp/server.js";
import { tlsCredentialsFromPem } from "../../src/io/tls-credentials.js";

/** Repository root (tests run from dist/test/helpers). */
export const REPO_ROOT = new URL("../../../", import.meta.url).pathname;
export const CLI_JS = join(REPO_ROOT, "dist/src/cli.js");

export const HOSTNAME = "mx.test";

export async function tempDir(prefix = "mxd-test-"): Promise<string> {
  return fsp.mkdtemp(join(os.tmpdir(), prefix));
}

// ---------------------------------------------------------------------------------------------
// In-process server

export interface Overrides {
  limits?: Record<string, unknown>;
  relay?: { allowedNetworks?: string[] };
  listen?: { host?: string; port?: number; tls?: boolean }[];
  [k: string]: unknown;
}

export interface Inbound {
  server: SmtpServer;
  spool: JournalSpool;
  config: Config;
  dir: string;
  port: number;
  queued: MessageMeta[];
  close(): Promise<void>;
}

const liveServers = new Set<Inbound>();

export async function startInbound(overrides: Overrides = {}, opts: { tlsCredentials?: { cert: Buffer; key: Buffer } } = {}): Promise<Inbound> {
  const dir = await tempDir("mxd-spool-");
  const { limits, relay, ...rest } = overrides;
  const config = parseConfig({
    hostname: HOSTNAME,
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir: dir,
    delivery: { enabled: false },
    ...rest,
    limits: { ...(limits ?? {}) },
    relay: { allowedNetworks: ["127.0.0.0/8"], ...(relay ?? {}) },
  });
  const spool = new JournalSpool({ dir, minFree: 0 });
  await spool.init();
  await spool.recover();
  const queued: MessageMeta[] = [];
  const server = new SmtpServer({
    config,
    spool,
    logger: silentLogger(),
    clock: systemClock,
    ...(opts.tlsCredentials ? { tls: tlsCredentialsFromPem(config.tls, opts.tlsCredentials) } : {}),
    onQueued: (m) => queued.push(m),
  });
  await server.listen();
  const inbound: Inbound = {
    server,
    spool,
    config,
    dir,
    port: server.addresses[0]!.port,
    queued,
    async close() {
      liveServers.delete(inbound);
      await server.close(200);
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
  liveServers.add(inbound);
  return inbound;
}

// ---------------------------------------------------------------------------------------------
// Raw SMTP client

export interface Reply {
  code: number;
  lines: string[];
  /** All lines joined with "\n". */
  text: string;
}

const liveClients = new Set<RawClient>();

/**
 * A deliberately dumb SMTP client: write exactly the bytes given, read replies one at a time.
 * Every read is bounded by a timeout.
 */
export class RawClient {
  private buf = "";
  private waiters: (() => void)[] = [];
  closed = false;
  socket!: net.Socket;

  private constructor() {}

  static async connect(port: number, opts: { host?: string; localAddress?: string; timeoutMs?: number; tls?: boolean } = {}): Promise<RawClient> {
    const c = new RawClient();
    liveClients.add(c);
    const host = opts.host ?? "127.0.0.1";
    const sock = opts.tls
      ? tls.connect({ host, port, localAddress: opts.localAddress, rejectUnauthorized: false, servername: "mx.test" } as tls.ConnectionOptions)
      : net.connect({ host, port, localAddress: opts.localAddress });
    c.attach(sock);
    await withTimeout(once(sock, opts.tls ? "secureConnect" : "connect"), opts.timeoutMs ?? 3000, "connect");
    return c;
  }

  private attach(sock: net.Socket): void {
    this.socket = sock;
    sock.setNoDelay(true);
    sock.on("data", (d: Buffer) => {
      this.buf += d.toString("utf8");
      this.wake();
    });
    sock.on("error", () => undefined);
    sock.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private waitChange(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  /** Try to take one complete reply off the buffer. */
  private take(): Reply | undefined {
    let pos = 0;
    const lines: string[] = [];
    for (;;) {
      const nl = this.buf.indexOf("\n", pos);
      if (nl < 0) return undefined;
      const line = this.buf.slice(pos, nl).replace(/\r$/, "");
      pos = nl + 1;
      lines.push(line);
      if (/^\d{3}(?: |$)/.test(line) || !/^\d{3}-/.test(line)) {
        this.buf = this.buf.slice(pos);
        return { code: Number(line.slice(0, 3)), lines, text: lines.join("\n") };
      }
    }
  }

  /** Next reply, waiting at most timeoutMs. */
  async reply(timeoutMs = 3000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed while waiting for a reply (buffered: ${JSON.stringify(this.buf)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buf)})`);
      await this.waitChange(left);
    }
  }

  async replies(n: number, timeoutMs = 3000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.reply(timeoutMs));
    return out;
  }

  /** Whatever arrives within ms (for asserting that nothing more comes). */
  async drain(ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) break;
      await this.waitChange(left);
    }
    const s = this.buf;
    this.buf = "";
    return s;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Send one command line and read its reply; if `expect` is given, assert the code. */
  async cmd(line: string, expect?: number | RegExp, timeoutMs = 3000): Promise<Reply> {
    this.write(line + "\r\n");
    const r = await this.reply(timeoutMs);
    if (expect !== undefined) {
      const ok = typeof expect === "number" ? r.code === expect : expect.test(r.text);
      if (!ok) throw new Error(`${JSON.stringify(line.slice(0, 80))}: expected ${String(expect)}, got ${JSON.stringify(r.text)}`);
    }
    return r;
  }

  /** True when the server closes the connection within ms. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.waitChange(left);
    }
    return true;
  }

  /** Upgrade this connection to TLS (after a 220 to STARTTLS). */
  async startTls(timeoutMs = 3000): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners("data");
    raw.removeAllListeners("close");
    raw.on("close", () => {
      this.closed = true;
      this.wake();
    });
    const s = tls.connect({ socket: raw, rejectUnauthorized: false, servername: "mx.test" });
    this.attach(s);
    await withTimeout(once(s, "secureConnect"), timeoutMs, "TLS handshake");
  }

  get encrypted(): boolean {
    return (this.socket as tls.TLSSocket).encrypted === true;
  }

  destroy(): void {
    liveClients.delete(this);
    this.socket?.destroy();
  }
}

/** EHLO and return the extension keywords (upper-case, without the greeting line). */
export async function ehlo(c: RawClient, name = "client.test"): Promise<string[]> {
  const r = await c.cmd(`EHLO ${name}`, 250);
  return r.lines.slice(1).map((l) => l.slice(4));
}

/** Connect, read the greeting, EHLO. */
export async function session(port: number, opts: { localAddress?: string; helo?: string } = {}): Promise<RawClient> {
  const c = await RawClient.connect(port, opts);
  const g = await c.reply();
  if (g.code !== 220) throw new Error(`greeting: ${g.text}`);
  await ehlo(c, opts.helo);
  return c;
}

/** MAIL/RCPT/DATA/body; body must be the wire form (dot-stuffed, CRLF) without the final ".". Returns the final reply. */
export async function sendMessage(c: RawClient, from: string, to: string[], wireBody: string | Buffer, mailParams = ""): Promise<Reply> {
  await c.cmd(`MAIL FROM:<${from}>${mailParams ? " " + mailParams : ""}`, 250);
  for (const t of to) await c.cmd(`RCPT TO:<${t}>`, 250);
  await c.cmd("DATA", 354);
  c.write(wireBody);
  c.write(".\r\n");
  return c.reply(5000);
}

export function queuedId(r: Reply): string {
  const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{16})$/.exec(r.text);
  if (!m) throw new Error(`not a queued reply: ${JSON.stringify(r.text)}`);
  return m[1]!;
}

// ---------------------------------------------------------------------------------------------
// Spool inspection

export async function listDir(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

/** A read-only view of a spool (replays the journal; works while a daemon writes to it). */
async function view<T>(spoolDir: string, fn: (s: JournalSpool) => Promise<T>): Promise<T> {
  const s = new JournalSpool({ dir: spoolDir, readOnly: true });
  try {
    await s.recover();
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Ids of the queued messages, in arrival order. */
export async function queueIds(spoolDir: string): Promise<string[]> {
  return view(spoolDir, (s) => s.listIds());
}

export interface Entry {
  id: string;
  eml: Buffer;
  meta: MessageMeta;
}

async function entryOf(s: JournalSpool, id: string): Promise<Entry> {
  const chunks: Buffer[] = [];
  for await (const c of s.openBody(id)) chunks.push(c as Buffer);
  return { id, eml: Buffer.concat(chunks), meta: await s.load(id) };
}

export async function readEntry(spoolDir: string, id: string): Promise<Entry> {
  return view(spoolDir, (s) => entryOf(s, id));
}

export async function readAll(spoolDir: string): Promise<Entry[]> {
  return view(spoolDir, async (s) => {
    const out: Entry[] = [];
    for (const id of await s.listIds()) out.push(await entryOf(s, id));
    return out;
  });
}

/** The spooled file is `Received: ...` (a folded header) followed by exactly the message bytes. */
export const RECEIVED_RE =
  /^Received: from (\S+) \(\[([^\]]+)\]\)\r\n\tby (\S+) \(mxd\) with (\S+) id ([0-9A-Z]{16})(?:\r\n\tfor <([^>]*)>)?;\r\n\t((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4})\r\n/;

export function splitReceived(eml: Buffer): { helo: string; ip: string; by: string; proto: string; id: string; for?: string; date: string; body: Buffer } {
  const head = eml.subarray(0, Math.min(eml.length, 1024)).toString("latin1");
  const m = RECEIVED_RE.exec(head);
  if (!m) throw new Error(`spool file does not start with a Received header: ${JSON.stringify(head.slice(0, 300))}`);
  return { helo: m[1]!, ip: m[2]!, by: m[3]!, proto: m[4]!, id: m[5]!, for: m[6], date: m[7]!, body: eml.subarray(Buffer.byteLength(m[0], "latin1")) };
}

// ---------------------------------------------------------------------------------------------
// TLS material

export function makeCert(dir: string): { cert: Buffer; key: Buffer; certPath: string; keyPath: string } {
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-subj", "/CN=mx.test", "-days", "1"], {
    stdio: "ignore",
    timeout: 20_000,
  });
  return { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath, keyPath };
}

// ---------------------------------------------------------------------------------------------
// The daemon as a child process

const liveChildren = new Set<ChildProcess>();

export interface Daemon {
  child: ChildProcess;
  port: number;
  /** Every stdout line so far. */
  lines: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startDaemon(configFile: string, timeoutMs = 10_000): Promise<Daemon> {
  const child = spawn(process.execPath, [CLI_JS, "serve", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"], cwd: REPO_ROOT });
  liveChildren.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    }),
  );
  const lines: string[] = [];
  let err = "";
  let partial = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`daemon not ready within ${timeoutMs} ms; stdout: ${lines.join("\n")} stderr: ${err}`)), timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      partial += d.toString();
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        lines.push(line);
        try {
          const j = JSON.parse(line) as { msg?: string; listen?: { port: number }[] };
          if (j.msg === "ready" && j.listen?.[0]) {
            clearTimeout(t);
            resolve(j.listen[0].port);
          }
        } catch {
          /* not JSON */
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(t);
      reject(new Error(`daemon exited before ready (code ${code}, signal ${signal}); stderr: ${err}`));
    });
  });
  return { child, port, lines, stderr: () => err, exited };
}

// ---------------------------------------------------------------------------------------------
// Cleanup and utilities

/** Destroy every raw client (use in afterEach; servers shared by a describe block survive). */
export function closeClients(): void {
  for (const c of [...liveClients]) c.destroy();
}

/** Destroy clients, kill children, close servers (use in after). */
export async function cleanup(): Promise<void> {
  closeClients();
  for (const ch of [...liveChildren]) ch.kill("SIGKILL");
  await Promise.all([...liveServers].map((s) => s.close()));
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll fn until it returns true or ms pass. */
export async function eventually(fn: () => Promise<boolean> | boolean, ms: number, step = 25): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(step);
  }
}
