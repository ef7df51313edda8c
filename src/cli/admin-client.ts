// How the CLI reaches a running daemon: the admin socket in the spool directory first, then
// `admin.listen` over TCP (with `admin.token`) when configured. No answer on either means the
// daemon is down and the CLI works on the spool files itself.
import http from "node:http";
import type { Config } from "../config.js";
import { adminSocketPath } from "../admin/server.js";
import { lockHolder, PID_FILE } from "../io/pid-lock.js";
import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import { hostAndPort } from "../core/host-port.js";
import { MxdError } from "../core/errors.js";

export class AdminError extends MxdError {
  constructor(readonly status: number, message: string) {
    super("MXD_ADMIN_REFUSED", message);
    this.name = "AdminError";
  }
}

export interface AdminClient {
  /** Where the daemon answered (socket path or host:port). */
  readonly where: string;
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
}

type Target = { socketPath: string } | { host: string; port: number; token?: string };

function request(t: Target, method: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { Accept: "application/json" };
    if (payload) Object.assign(headers, { "Content-Type": "application/json", "Content-Length": payload.length });
    if ("token" in t && t.token) headers.Authorization = `Bearer ${t.token}`;
    const where = "socketPath" in t ? { socketPath: t.socketPath } : { host: t.host, port: t.port };
    const req = http.request({ ...where, method, path, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new MxdError("MXD_ADMIN_UNREACHABLE", `no answer from the daemon within ${timeoutMs / 1000}s`)));
    req.on("error", reject);
    req.end(payload);
  });
}

function client(t: Target, where: string): AdminClient {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    // Bulk actions (delete --all over a big queue) may take a while; the daemon bounds each.
    const { status, text } = await request(t, method, path, body, 300_000);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new AdminError(status, `daemon answered ${status} with non-JSON: ${text.slice(0, 200)}`);
    }
    if (status !== 200) throw new AdminError(status, (json as { error?: string }).error ?? `HTTP ${status}`);
    return json as T;
  };
  return { where, get: (p) => call("GET", p), post: (p, b) => call("POST", p, b) };
}

async function probe(t: Target): Promise<"up" | "down" | Error> {
  try {
    const r = await request(t, "GET", "/healthz", undefined, 5000);
    if (r.status === 200) return "up";
    if (r.status === 401) return new Error("the admin API refused the token (admin.token)");
    return new Error(`the admin API answered ${r.status}: ${r.text.slice(0, 200)}`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ECONNREFUSED") return "down";
    return e as Error;
  }
}

/**
 * The running daemon of this config, or undefined when it is not running. Throws when it
 * seems to run but cannot be used (permission denied, wrong token, timeout): then working on
 * the spool behind its back would be wrong.
 */
export async function connectDaemon(config: Config): Promise<AdminClient | undefined> {
  const socketPath = adminSocketPath(config.spoolDir);
  const s = socketPath === undefined ? "down" : await probe({ socketPath });
  if (s === "up") return client({ socketPath: socketPath! }, socketPath!);
  let problem = s === "down" ? undefined : s;
  if (config.admin.listen) {
    const t: Target = { ...hostAndPort(config.admin.listen, 8025), token: config.admin.token };
    const r = await probe(t);
    if (r === "up") {
      // The TCP address may belong to another mxd on this host (another spool): act only on ours.
      const c = client(t, config.admin.listen);
      const st = await c.get<{ spoolDir?: string }>("/status").catch(() => ({}) as { spoolDir?: string });
      if (st.spoolDir !== undefined && sameDir(st.spoolDir, config.spoolDir)) return c;
    } else if (r !== "down") problem = r;
  }
  if (problem) throw new MxdError("MXD_ADMIN_UNREACHABLE", `cannot use the running daemon's admin API: ${problem.message}`);
  // No admin endpoint answers, yet the spool's pid lock names a live daemon (its socket was
  // removed?): editing the spool behind its back would be wrong.
  const holder = lockHolder(config.spoolDir);
  if (holder !== undefined && holder !== process.pid) {
    throw new MxdError("MXD_ADMIN_UNREACHABLE", `mxd seems to run (pid ${holder}, ${config.spoolDir}/${PID_FILE}) but its admin API does not answer; restart it or set admin.listen`);
  }
  return undefined;
}

function sameDir(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}
