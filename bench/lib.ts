// Measuring helpers for bench/bench.ts: process memory (mxd's own, Postfix's process tree),
// smtp-sink with a live message counter, a "first attempt" probe, a one-transaction fan-out
// client, statistics. Nothing here asserts anything.
import { closeSync, existsSync, rmSync, fstatSync, openSync, readFileSync, readSync, readdirSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { peerPath, spawnPeer, tempDir, waitPort, sleep } from "../test/helpers/peers.js";

// ---------------------------------------------------------------------------------------------
// Memory

/** VmRSS or VmHWM of one process in MB (0 when it is gone). */
/** Octets a process has caused to be written to storage so far (/proc/PID/io write_bytes; mxd: its journal and body files). */
export function storageWriteBytes(pid: number): number {
  try {
    const m = /^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far (/proc/PID/stat; clock ticks of 10 ms). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14 and 15)
  } catch {
    return 0;
  }
}

export function memMB(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** PIDs whose parent is `ppid`. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      // pid (comm) state ppid ...: comm may hold spaces and parentheses; split after the last ")".
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[1]) === ppid) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Sum of the proportional set size (Pss) of a Postfix master and its children, in MB. */
export function postfixPssMB(master: number): number {
  let kb = 0;
  for (const pid of [master, ...childrenOf(master)]) {
    try {
      const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
      if (m) kb += Number(m[1]);
    } catch {
      /* gone */
    }
  }
  return kb / 1024;
}

/** Samples `f` every `everyMs` until stopped; reports the peak. */
export function peakSampler(f: () => number, everyMs = 500): { stop(): number } {
  let peak = f();
  const t = setInterval(() => (peak = Math.max(peak, f())), everyMs);
  return {
    stop() {
      clearInterval(t);
      return Math.max(peak, f());
    },
  };
}

// ---------------------------------------------------------------------------------------------
// mxd's admin socket

export function adminGet(spoolDir: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: join(spoolDir, "admin.sock"), path, timeout: 30_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error(`admin ${path}: timeout`)));
    req.on("error", reject);
  });
}

/** Messages queued (queued + deferred + held), from /metrics: cheap to poll. */
export async function queuedNow(spoolDir: string): Promise<number> {
  const text = await adminGet(spoolDir, "/metrics");
  let n = 0;
  for (const m of text.matchAll(/^mxd_queue_messages\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
  return n;
}

export async function metric(spoolDir: string, re: RegExp): Promise<number> {
  const m = re.exec(await adminGet(spoolDir, "/metrics"));
  return m ? Number(m[1]) : NaN;
}

// ---------------------------------------------------------------------------------------------
// smtp-sink with its running counter (-c: "sess=N quit=N mesg=N\r", updated at every ".")

export interface CountingSink {
  pid: number;
  /** Messages received so far (DATA completed). */
  messages(): number;
  stop(): Promise<void>;
}

export async function startCountingSink(listen: { host: string; port: number }): Promise<CountingSink> {
  const bin = peerPath("smtp-sink");
  if (!bin) throw new Error("smtp-sink is not installed (package postfix)");
  const dir = tempDir("mxd-bench-sink-");
  const file = join(dir, "counter");
  const fd = openSync(file, "w+");
  const args = [...(process.getuid?.() === 0 ? ["-u", "postfix"] : []), "-c", "-m", "1000", `${listen.host}:${listen.port}`, "1024"];
  const p = spawnPeer("smtp-sink", bin, args, { stdio: ["ignore", fd, "pipe"] });
  const probeHost = listen.host === "0.0.0.0" ? "127.0.0.201" : listen.host;
  try {
    await waitPort(probeHost, listen.port, 5000);
  } catch (e) {
    await p.stop(1000);
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(e as Error).message}: ${p.stderr.join("\n")}`);
  }
  const buf = Buffer.alloc(96);
  return {
    pid: p.pid,
    messages() {
      const size = fstatSync(fd).size;
      const start = Math.max(0, size - buf.length);
      const n = readSync(fd, buf, 0, Math.min(buf.length, size), start);
      const all = [...buf.subarray(0, n).toString("latin1").matchAll(/mesg=(\d+)/g)];
      return all.length ? Number(all[all.length - 1]![1]) : 0;
    },
    async stop() {
      await p.stop(2000);
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// First-attempt probe: a listener that notes its first connection and answers 421 (the attempt
// is deferred; only its start is measured).

export interface Probe {
  firstAt(): number | undefined;
  connections(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startProbe(host: string, port: number): Promise<Probe> {
  let first: number | undefined;
  let n = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    first ??= performance.now();
    n++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.end("421 4.3.2 bench probe: try again later\r\n");
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen({ host, port }, () => resolve());
  });
  return {
    firstAt: () => first,
    connections: () => n,
    reset() {
      first = undefined;
      n = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

/** Polls host:port every 10 ms until a 220 greeting arrives; resolves performance.now() then. */
export async function waitGreeting(host: string, port: number, timeoutMs: number): Promise<number> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const t = await new Promise<number | undefined>((resolve) => {
      const s = net.connect({ host, port });
      let got = "";
      const timer = setTimeout(() => (s.destroy(), resolve(undefined)), 5000);
      s.setEncoding("latin1");
      s.on("data", (d: string) => {
        got += d;
        if (got.includes("\n")) {
          clearTimeout(timer);
          const at = performance.now();
          s.end("QUIT\r\n");
          s.destroy();
          resolve(got.startsWith("220") ? at : undefined);
        }
      });
      s.on("error", () => (clearTimeout(timer), resolve(undefined)));
      s.on("close", () => (clearTimeout(timer), resolve(undefined)));
    });
    if (t !== undefined) return t;
    await sleep(10);
  }
  throw new Error(`no 220 greeting at ${host}:${port} within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------------------------
// One SMTP transaction with many recipients (fan-out), pipelined when the server offers it.

export async function sendOneToMany(host: string, port: number, from: string, rcpts: string[], body: string, timeoutMs = 300_000): Promise<{ ok: boolean; detail: string; accepted: number }> {
  const s = net.connect({ host, port });
  s.setEncoding("latin1");
  let buf = "";
  const replies: string[] = [];
  let cur: string[] = [];
  let waiter: (() => void) | undefined;
  let failed: Error | undefined;
  s.on("data", (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf("\r\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      cur.push(line);
      if (!/^\d{3}-/.test(line)) {
        replies.push(cur.join("\n"));
        cur = [];
      }
    }
    waiter?.();
  });
  const closed = new Promise<void>((resolve) => s.on("close", () => resolve()));
  s.on("error", (e) => ((failed = e), waiter?.()));
  s.on("close", () => ((failed ??= new Error("connection closed")), waiter?.()));
  const timer = setTimeout(() => s.destroy(new Error("fan-out submission timed out")), timeoutMs);
  const next = async (): Promise<string> => {
    while (!replies.length) {
      if (failed) throw failed;
      await new Promise<void>((r) => (waiter = r));
      waiter = undefined;
    }
    return replies.shift()!;
  };
  try {
    const expect = async (code: string, what: string) => {
      const r = await next();
      if (!r.startsWith(code)) throw new Error(`${what}: ${r}`);
      return r;
    };
    await expect("220", "greeting");
    s.write("EHLO bench.test\r\n");
    const ehlo = await expect("250", "EHLO");
    const pipelining = /^250[- ]PIPELINING/im.test(ehlo);
    s.write(`MAIL FROM:<${from}>\r\n`);
    await expect("250", "MAIL");
    let accepted = 0;
    if (pipelining) {
      s.write(rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join(""));
      for (let i = 0; i < rcpts.length; i++) if ((await next()).startsWith("250")) accepted++;
    } else {
      for (const r of rcpts) {
        s.write(`RCPT TO:<${r}>\r\n`);
        if ((await next()).startsWith("250")) accepted++;
      }
    }
    s.write("DATA\r\n");
    await expect("354", "DATA");
    s.write(body.replace(/^\./gm, "..") + "\r\n.\r\n");
    const end = await expect("250", "end of data");
    s.write("QUIT\r\n");
    await next().catch(() => "");
    s.end();
    return { ok: accepted === rcpts.length, detail: end, accepted };
  } catch (e) {
    s.destroy();
    return { ok: false, detail: (e as Error).message, accepted: 0 };
  } finally {
    clearTimeout(timer);
    await closed;
  }
}

/** A message of about `size` octets: a few headers and 76-character lines. */
export function makeMessage(size: number, subject: string): string {
  const head = `From: <bench@bench.test>\r\nTo: <list@bench.test>\r\nSubject: ${subject}\r\nMessage-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@bench.test>\r\n\r\n`;
  const line = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmn\r\n";
  const lines = Math.max(1, Math.ceil((size - head.length) / line.length));
  return head + line.repeat(lines).slice(0, -2);
}

// ---------------------------------------------------------------------------------------------
// Files and statistics

/** Files below `dir` (recursive); 0 when absent. */
export function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

/** Paths of the files below `dir` (recursive). */
export function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

export function stats(xs: number[]): { min: number; median: number; max: number; n: number } {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { min: NaN, median: NaN, max: NaN, n: 0 };
  const mid = v.length >> 1;
  return { min: v[0]!, median: v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2, max: v[v.length - 1]!, n: v.length };
}
