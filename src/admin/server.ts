// The admin HTTP API (docs/admin-api.md): JSON in and out, Prometheus text on /metrics.
// Always served on the local socket `spoolDir/admin.sock` (mode 0600: whoever may read the
// spool may manage it; this is what `mxd queue …` talks to), and optionally on TCP
// `admin.listen`, where `admin.token` is required as a bearer token when configured.
import http from "node:http";
import net from "node:net";
import { createHash, timingSafeEqual } from "node:crypto";
import { promises as fsp, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { Logger } from "../io/log.js";
import type { JournalSpool } from "../spool/journal-spool.js";
import type { OpResult, QueueManager } from "../queue/worker.js";
import { isQueueId } from "../spool/format.js";
import { toListEntry } from "./queue-view.js";
import { listDead, readDead } from "../spool/dead-letters.js";
import { matchesDead, matchesMessage, parseFilter, type QueueFilter } from "../queue/filter.js";
import { parseDuration } from "../config.js";
import { hostAndPort } from "../core/host-port.js";
import { STATUS_PAGE_HTML } from "./status-page-html.js";
import type { StatusReply } from "./status-reply.js";
import { ACTIONS, isDeadLetter, runAction, selectTargets, type Action } from "./queue-actions.js";
import { MxdError } from "../core/errors.js";
import { bodyTypeProblem, checkAccess } from "./access.js";
import type { ReloadResult } from "../reload-plan.js";

/** Longest Unix socket path that binds everywhere (sun_path: 108 bytes on Linux, 104 on macOS/BSD, with the NUL). */
export const MAX_SOCKET_PATH = 103;

/** In spoolDir: where the socket is when spoolDir/admin.sock would be too long (one line, the path). */
export const SOCKET_POINTER = "admin.sock.path";

/**
 * Where the CLI finds the daemon: `spoolDir/admin.sock`. A named pipe on Windows, where
 * sockets are not files. When that path is too long for a Unix socket (libuv would silently
 * bind a truncated path elsewhere), the daemon binds in a fresh private directory
 * (`<tmpdir>/mxd-XXXXXX/`, mode 0700, a random name nobody can create first) and writes the
 * socket's path to `spoolDir/admin.sock.path`; undefined when there is no such file (then no
 * daemon serves this spool).
 */
export function adminSocketPath(spoolDir: string): string | undefined {
  if (process.platform === "win32") return pipeName(spoolDir);
  const p = join(spoolDir, "admin.sock");
  if (Buffer.byteLength(p) <= MAX_SOCKET_PATH) return p;
  try {
    const target = readFileSync(join(spoolDir, SOCKET_POINTER), "utf8").trim();
    return isAbsolute(target) ? target : undefined;
  } catch {
    return undefined;
  }
}

function pipeName(spoolDir: string): string {
  return `\\\\.\\pipe\\mxd-${createHash("sha256").update(resolve(spoolDir)).digest("hex").slice(0, 16)}`;
}

export interface AdminOptions {
  logger: Logger;
  token?: string | undefined;
  /** Host names the TCP listener answers to besides IP literals and localhost (the configured hostname). */
  hostnames?: readonly string[];
  /** How long an action may wait for a delivery in progress before the answer says "pending". */
  actionWaitMs?: number;
  /** Slow-client limits (ms): request headers, whole request, a response the client stops reading. Tests shorten them. */
  timeouts?: { headers?: number; request?: number; writeStall?: number };
}

/** What the API serves; attached once the daemon is wired (until then: 503). */
export interface AdminTarget {
  queue: QueueManager;
  spool: JournalSpool;
  metrics: () => string;
  status: () => Promise<StatusReply>;
  /** The live status page's latest snapshot (admin/status-page.ts). */
  live?: () => object | undefined;
  /** POST /reload: re-read and apply the configuration (main.ts). */
  reload?: () => Promise<ReloadResult>;
  now?: () => number;
}

class HttpError extends MxdError {
  constructor(readonly status: number, message: string, readonly allow?: string) {
    super("MXD_ADMIN_BAD_REQUEST", message);
  }
}

export const MAX_BODY = 1024 * 1024;
/** A response the client does not read for this long is abandoned (GET /queue over a big queue). */
const WRITE_STALL_MS = 60_000;
const OPS = ACTIONS;
type Op = Action;

export class AdminServer {
  private readonly servers: http.Server[] = [];
  readonly addresses: string[] = [];
  private socketPath: string | undefined;
  private target: AdminTarget | undefined;
  /** Open status page event streams (ended at close). */
  private readonly streams = new Set<http.ServerResponse>();

  constructor(private opts: AdminOptions) {}

  /** A reload: the token and host names in force from the next request on. */
  reconfigure(o: { token?: string | undefined; hostnames?: readonly string[] }): void {
    this.opts = { ...this.opts, token: o.token, ...(o.hostnames ? { hostnames: o.hostnames } : {}) };
  }

  attach(target: AdminTarget): void {
    this.target = target;
  }

  private get deps(): AdminTarget & AdminOptions {
    if (!this.target) throw new HttpError(503, "mxd is starting");
    return { ...this.opts, ...this.target };
  }

  /** Listen on the spool socket (refusing to start when another daemon answers there) and on `tcp`. */
  async listen(spoolDir: string, tcp: string | null): Promise<void> {
    await fsp.mkdir(spoolDir, { recursive: true });
    let path = adminSocketPath(spoolDir);
    if (process.platform !== "win32") {
      if (path !== undefined && (await answers(path))) {
        // With a code, the CLI reports it as an operator problem (message, no stack).
        throw new MxdError("MXD_ALREADY_RUNNING", `another mxd is already running on spool ${spoolDir} (${path} answers)`);
      }
      if (path !== undefined) await removeStaleSocket(spoolDir, path); // left by a daemon that did not stop cleanly
      if (path === undefined || path !== join(spoolDir, "admin.sock")) path = await this.privateSocket(spoolDir);
    }
    await this.start({ path: path! }, true);
    if (process.platform !== "win32") await fsp.chmod(path!, 0o600);
    this.socketPath = path;
    this.addresses.push(path!);
    if (tcp) {
      const { host, port } = hostAndPort(tcp, 8025);
      try {
        const srv = await this.start({ host, port }, false);
        const a = srv.address() as net.AddressInfo;
        this.addresses.push(a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
      } catch (e) {
        // Another mxd on this host (another spool) has the port: the API stays available on
        // this daemon's socket; `mxd status` and the log say which addresses are served.
        if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e;
        this.opts.logger.warn({ admin: tcp }, "admin TCP address in use (another mxd?); admin API on the spool socket only");
      }
    }
  }

  private async start(where: net.ListenOptions, local: boolean): Promise<http.Server> {
    const t = this.opts.timeouts ?? {};
    const headersTimeout = t.headers ?? 10_000;
    // Node checks the header and request deadlines every connectionsCheckingInterval (30 s by default).
    const srv = http.createServer({ connectionsCheckingInterval: Math.min(1000, headersTimeout) }, (req, res) => void this.handle(req, res, local, (srv.address() as net.AddressInfo | null)?.port ?? 0));
    // Slow clients: headers within 10 s, the whole request (body included) within 30 s, an idle
    // keep-alive connection closed after 5 s; a bounded number of connections per listener.
    srv.headersTimeout = headersTimeout;
    srv.requestTimeout = t.request ?? 30_000;
    srv.keepAliveTimeout = 5_000;
    srv.maxConnections = 64;
    srv.maxHeadersCount = 50;
    await new Promise<void>((ok, fail) => {
      srv.once("error", fail);
      srv.listen(where, () => {
        srv.off("error", fail);
        ok();
      });
    });
    srv.on("error", (e) => this.opts.logger.error({ err: e.message }, "admin listener error"));
    this.servers.push(srv);
    return srv;
  }

  /** spoolDir/admin.sock is too long: a socket in a new 0700 directory, named in spoolDir/admin.sock.path. */
  private async privateSocket(spoolDir: string): Promise<string> {
    const dir = await fsp.mkdtemp(join(tmpdir(), "mxd-"));
    const path = join(dir, "admin.sock");
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      await fsp.rmdir(dir);
      throw Object.assign(new Error(`admin socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter spoolDir or TMPDIR`), { code: "EMXDSOCKET" });
    }
    const pointer = join(spoolDir, SOCKET_POINTER);
    await fsp.writeFile(pointer + ".tmp", path + "\n", { mode: 0o644 });
    await fsp.rename(pointer + ".tmp", pointer);
    this.privateDir = { dir, pointer };
    return path;
  }
  private privateDir: { dir: string; pointer: string } | undefined;

  async close(): Promise<void> {
    for (const r of this.streams) r.destroy();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((ok) => {
            s.close(() => ok());
            s.closeAllConnections();
          }),
      ),
    );
    if (this.socketPath && process.platform !== "win32") await fsp.rm(this.socketPath, { force: true });
    if (this.privateDir) {
      await fsp.rm(this.privateDir.pointer, { force: true });
      await fsp.rmdir(this.privateDir.dir).catch(() => undefined);
      this.privateDir = undefined;
    }
  }

  /** Do the request's credentials match admin.token? undefined when no token is configured. */
  private tokenMatches(req: http.IncomingMessage): boolean | undefined {
    const token = this.opts.token;
    if (!token) return undefined;
    // The scheme is case-insensitive (RFC 7235 §2.1); the token is compared in constant time
    // (digests of equal length, so neither content nor length leaks through timing).
    // Bearer for tools; Basic (any user name, the token as password) for the status page in a
    // browser, which can prompt for it and sends it along with its EventSource requests.
    const h = req.headers.authorization ?? "";
    const basic = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(h);
    const given = basic ? Buffer.from(basic[1]!, "base64").toString("utf8").replace(/^[^:]*:/, "") : /^Bearer +(\S+) *$/i.exec(h)?.[1];
    if (given === undefined) return false;
    const a = createHash("sha256").update(given).digest();
    const b = createHash("sha256").update(token).digest();
    return timingSafeEqual(a, b);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, local: boolean, port: number): Promise<void> {
    let path = "?";
    try {
      // Parsed inside the try: a request target like "http://[" must be a 400, not a crash.
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://admin");
      } catch {
        throw new HttpError(400, "bad request target");
      }
      path = url.pathname.replace(/\/+$/, "") || "/";
      const method = req.method ?? "GET";
      const verdict = checkAccess({
        local,
        method,
        path,
        host: req.headers.host,
        origin: req.headers.origin,
        tokenOk: local ? undefined : this.tokenMatches(req),
        port,
        hostnames: this.opts.hostnames ?? [],
      });
      if (!verdict.ok) {
        if (verdict.wwwAuthenticate) res.setHeader("WWW-Authenticate", verdict.wwwAuthenticate);
        // Do not read (or wait for) the body of a refused request.
        res.setHeader("Connection", "close");
        res.once("finish", () => req.destroy());
        throw new HttpError(verdict.status, verdict.message);
      }
      if (path === "/healthz") return this.need(method, "GET", () => json(res, 200, { status: "ok" }));
      if (path === "/") {
        this.need(method, "GET");
        // Self-contained and read-only; nothing on it may be framed or load anything else.
        res.writeHead(200, {
          "Content-Type": "text/html; charset=utf-8",
          "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
          "X-Content-Type-Options": "nosniff",
          "Cache-Control": "no-store",
        });
        res.end(STATUS_PAGE_HTML);
        return;
      }
      if (path === "/live") {
        this.need(method, "GET");
        const snap = this.deps.live?.();
        if (!snap) throw new HttpError(503, "mxd is starting");
        return json(res, 200, snap);
      }
      if (path === "/events") {
        this.need(method, "GET");
        return this.events(res);
      }
      if (path === "/metrics") {
        this.need(method, "GET");
        const text = this.deps.metrics(); // 503 while starting, before any header is sent
        res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(text);
        return;
      }
      if (path === "/status") {
        this.need(method, "GET");
        return json(res, 200, await this.deps.status());
      }
      if (path === "/queue") {
        this.need(method, "GET");
        return await this.list(url, res);
      }
      const show = /^\/queue\/([^/]+)$/.exec(path);
      if (show && !(OPS as readonly string[]).includes(show[1]!)) {
        if (method === "DELETE") return json(res, 200, await this.deleteOne(show[1]!));
        if (method !== "GET") throw new HttpError(405, "use GET or DELETE", "GET, DELETE");
        return await this.show(show[1]!, res);
      }
      const op = /^\/queue\/(flush|delete|bounce|hold|release|retry|requeue)$/.exec(path);
      if (op) {
        this.need(method, "POST");
        const body = await readJson(req, local);
        return json(res, 200, { results: await this.op(op[1] as Op, body) });
      }
      if (path === "/reload") {
        this.need(method, "POST");
        const body = await readJson(req, local);
        for (const k of Object.keys(body)) throw new HttpError(400, `unknown field ${JSON.stringify(k)}`);
        const reload = this.deps.reload;
        if (!reload) throw new HttpError(404, "this daemon cannot reload");
        return json(res, 200, await reload());
      }
      if (path === "/pause" || path === "/resume") {
        this.need(method, "POST");
        const body = await readJson(req, local);
        // A typo ({"domian": …}) must not pause everything.
        for (const k of Object.keys(body)) if (k !== "domain") throw new HttpError(400, `unknown field ${JSON.stringify(k)}`);
        const domain = optDomain(body);
        const q = this.deps.queue;
        const state = path === "/pause" ? await q.pause(domain) : await q.resume(domain);
        return json(res, 200, state);
      }
      throw new HttpError(404, `no such endpoint: ${path}`);
    } catch (e) {
      if (e instanceof HttpError) {
        if (res.headersSent) return void res.destroy();
        if (e.status === 405) res.setHeader("Allow", e.allow!);
        if (e.status === 413 || e.status === 415) {
          // Do not read (or wait for) the rest of an oversized or refused body.
          res.setHeader("Connection", "close");
          res.once("finish", () => req.destroy());
        }
        return json(res, e.status, { error: e.message });
      }
      this.opts.logger.error({ err: (e as Error).stack, path }, "admin request failed");
      if (!res.headersSent) json(res, 500, { error: (e as Error).message });
      else res.destroy();
    }
  }

  /** Server-Sent Events: the latest snapshot once a second until the page goes away. */
  private events(res: http.ServerResponse): void {
    const live = this.deps.live;
    if (!live) throw new HttpError(503, "mxd is starting");
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no" });
    res.socket?.setTimeout(0);
    const send = () => {
      // A page that does not read gets no backlog: frames are skipped while the socket is full.
      if (res.writableNeedDrain) return;
      const snap = live();
      if (snap) res.write(`data: ${JSON.stringify(snap)}\n\n`);
    };
    res.write("retry: 2000\n\n");
    send();
    const t = setInterval(send, 1000);
    this.streams.add(res);
    res.once("close", () => {
      clearInterval(t);
      this.streams.delete(res);
    });
  }

  private need(method: string, want: string, then?: () => void): void {
    if (method !== want) throw new HttpError(405, `use ${want}`, want);
    then?.();
  }

  private async list(url: URL, res: http.ServerResponse): Promise<void> {
    let filter: QueueFilter;
    try {
      filter = parseFilter(Object.fromEntries(url.searchParams), parseDuration);
    } catch (e) {
      throw new HttpError(400, (e as Error).message.replace("filter field", "parameter"));
    }
    const state = filter.state ?? "all";
    const deps = this.deps; // 503 before the 200 header, while starting
    // Respect back-pressure: a slow client must not make us buffer the whole queue, and one
    // that stops reading (or goes away) must not keep the scan open forever.
    const write = async (line: string): Promise<boolean> => {
      if (res.destroyed) return false;
      if (res.write(line)) return true;
      return new Promise<boolean>((ok) => {
        const done = (v: boolean) => {
          clearTimeout(t);
          res.off("drain", onDrain);
          res.off("close", onClose);
          ok(v);
        };
        const onDrain = () => done(true);
        const onClose = () => done(false);
        const t = setTimeout(() => {
          res.destroy();
          done(false);
        }, this.opts.timeouts?.writeStall ?? WRITE_STALL_MS);
        res.once("drain", onDrain);
        res.once("close", onClose);
      });
    };
    res.writeHead(200, { "Content-Type": "application/x-ndjson; charset=utf-8" });
    if (state === "dead") {
      const now = (deps.now ?? Date.now)();
      for (const d of await listDead(deps.spool)) {
        if (!matchesDead(d, filter, now)) continue;
        if (!(await write(JSON.stringify(d) + "\n"))) return;
      }
      res.end();
      return;
    }
    const control = deps.queue.pauseState;
    const now = (deps.now ?? Date.now)();
    for await (const m of deps.spool.scan()) {
      if (!matchesMessage(m, filter, now)) continue;
      if (!(await write(JSON.stringify(toListEntry(m, now, control)) + "\n"))) return;
    }
    res.end();
  }

  private async show(id: string, res: http.ServerResponse): Promise<void> {
    if (!isQueueId(id)) throw new HttpError(400, `not a queue id: ${id}`);
    if (isDeadLetter(this.deps.spool, id)) return json(res, 200, await readDead(this.deps.spool, id));
    try {
      const meta = await this.deps.spool.load(id);
      const head = await this.deps.spool.readHead(id, 64 * 1024);
      const text = head.toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      json(res, 200, { ...meta, headers: end >= 0 ? text.slice(0, end + 2) : text });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "MXD_SPOOL_NOT_FOUND") throw new HttpError(404, `no such message: ${id}`);
      throw e;
    }
  }

  /** DELETE /queue/ID: a queued message or a dead letter, without a bounce. */
  private async deleteOne(id: string): Promise<OpResult> {
    if (!isQueueId(id)) throw new HttpError(400, `not a queue id: ${id}`);
    const r = await runAction(this.deps.queue, this.deps.spool, "delete", { id, dead: isDeadLetter(this.deps.spool, id) });
    if (!r.ok && r.status === "no such message") throw new HttpError(404, `no such message: ${id}`);
    return r;
  }

  /** {ids:[…]}, {domain}, {filter:{…}} (or {all:true} for delete and flush). */
  private async op(op: Op, body: Record<string, unknown>): Promise<OpResult[]> {
    const q = this.deps.queue;
    const ids = body.ids;
    const domain = optDomain(body);
    const all = body.all === true;
    const known = new Set(["ids", "domain", "all", "filter"]);
    for (const k of Object.keys(body)) if (!known.has(k)) throw new HttpError(400, `unknown field ${JSON.stringify(k)}`);
    let filter: QueueFilter | undefined;
    if (body.filter !== undefined) {
      if (!body.filter || typeof body.filter !== "object" || Array.isArray(body.filter)) throw new HttpError(400, "filter must be an object");
      try {
        filter = parseFilter(body.filter as Record<string, unknown>, parseDuration);
      } catch (e) {
        throw new HttpError(400, (e as Error).message);
      }
    }
    if ([ids !== undefined, domain !== undefined, all, filter !== undefined].filter(Boolean).length !== 1) throw new HttpError(400, "give exactly one of ids, domain, all, filter");
    let sel: { ids?: string[]; filter?: QueueFilter };
    if (ids !== undefined) {
      if (!Array.isArray(ids) || !ids.length || !ids.every((x) => typeof x === "string")) throw new HttpError(400, "ids must be a non-empty list of queue ids");
      const bad = ids.filter((x) => !isQueueId(x as string));
      if (bad.length) throw new HttpError(400, `not a queue id: ${bad.join(", ")}`);
      sel = { ids: ids as string[] };
    } else {
      if ((op === "bounce" || op === "hold" || op === "release") && all) throw new HttpError(400, `${op} takes ids, a domain or a filter`);
      sel = { filter: filter ?? (domain !== undefined ? { domain } : {}) };
    }
    const targets = await selectTargets(this.deps.spool, q, op, sel, (this.deps.now ?? Date.now)());
    const list = targets.map((t) => t.id);
    const narrow = filter?.domain ?? domain;
    const run = (i: number): Promise<OpResult> => runAction(q, this.deps.spool, op, targets[i]!, op === "delete" ? narrow : undefined);
    const wait = this.deps.actionWaitMs ?? 10_000;
    const out: OpResult[] = new Array(list.length);
    let next = 0;
    // Bounded concurrency: `delete --all` over a big queue must not open 100,000 files at once.
    const worker = async () => {
      while (next < list.length) {
        const i = next++;
        out[i] = await withDeadline(run(i), wait, { id: list[i]!, ok: true, status: "pending: a delivery is in progress; applied when it ends" });
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, list.length) }, worker));
    return out;
  }
}

function optDomain(body: Record<string, unknown>): string | undefined {
  const d = body.domain;
  if (d === undefined) return undefined;
  if (typeof d !== "string" || !/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[^\]]+\]$/.test(d)) throw new HttpError(400, "domain must be a domain name");
  return d.toLowerCase();
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + "\n";
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: http.IncomingMessage, local: boolean): Promise<Record<string, unknown>> {
  const hasBody = Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined;
  const typeProblem = bodyTypeProblem({ local, contentType: req.headers["content-type"], hasBody });
  if (typeProblem) throw new HttpError(415, typeProblem);
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_BODY) throw new HttpError(413, `request body too large (limit ${MAX_BODY} bytes)`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw new HttpError(413, `request body too large (limit ${MAX_BODY} bytes)`);
    chunks.push(c as Buffer);
  }
  if (n === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "body is not valid JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new HttpError(400, "body must be a JSON object");
  return v as Record<string, unknown>;
}

function withDeadline<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((ok) => (t = setTimeout(() => ok(fallback), ms)))]).finally(() => clearTimeout(t));
}

/** Does something accept connections on this socket path? */
function answers(path: string): Promise<boolean> {
  return new Promise((ok) => {
    const s = net.connect({ path });
    const t = setTimeout(() => (s.destroy(), ok(true)), 2000); // connected but silent counts as alive
    s.once("connect", () => (clearTimeout(t), s.destroy(), ok(true)));
    s.once("error", () => (clearTimeout(t), ok(false)));
  });
}

/**
 * A socket left by a daemon that did not stop: spoolDir/admin.sock, or the one in a private
 * directory named by spoolDir/admin.sock.path — removed with its directory only when that is
 * ours (a directory, not a link, owned by this user, mode 0700, named mxd-*).
 */
async function removeStaleSocket(spoolDir: string, path: string): Promise<void> {
  if (path === join(spoolDir, "admin.sock")) return fsp.rm(path, { force: true });
  const dir = dirname(path);
  const st = await fsp.lstat(dir).catch(() => undefined);
  const mine = st?.isDirectory() && !st.isSymbolicLink() && st.uid === process.getuid?.() && (st.mode & 0o777) === 0o700 && basename(dir).startsWith("mxd-") && basename(path) === "admin.sock";
  if (mine) {
    await fsp.rm(path, { force: true });
    await fsp.rmdir(dir).catch(() => undefined);
  }
  await fsp.rm(join(spoolDir, SOCKET_POINTER), { force: true });
}
