// mxd as a user runs it: `node dist/src/cli.js serve --config FILE` in a child process, and
// the CLI as separate processes — the one daemon starter of the tests. Every wait is bounded;
// stop() always ends the child, killDaemons() every one still running.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { MXD_CLI, REPO_ROOT } from "./paths.js";


export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `mxd ...args` to completion (bounded by timeoutMs). */
export function mxd(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MXD_CLI, ...args], { cwd: opts.cwd, timeout: opts.timeoutMs ?? 20_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface DaemonProcess {
  child: ChildProcess;
  smtpPort: number;
  ready: Record<string, unknown>;
  /** Log lines so far (JSON objects). */
  logs: Record<string, unknown>[];
  /** Every stdout line so far, as written. */
  lines: string[];
  /** stderr so far. */
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

const live = new Set<ChildProcess>();

/** SIGKILL every daemon still running (a test's cleanup, after a failure). */
export function killDaemons(): void {
  for (const ch of [...live]) ch.kill("SIGKILL");
}

export function writeConfig(dir: string, config: object, name = "mxd.json"): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(config, null, 2));
  return p;
}

/** Start `mxd serve --config FILE` and wait (bounded) for its "ready" line. */
export function startDaemonProcess(configFile: string, timeoutMs = 15_000): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [MXD_CLI, "serve", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"], cwd: REPO_ROOT });
  live.add(child);
  const logs: Record<string, unknown>[] = [];
  const lines: string[] = [];
  let stderr = "";
  let exited: number | null | undefined;
  const exitedWith = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => {
      live.delete(child);
      exited = code;
      r({ code, signal });
    }),
  );
  const exit = exitedWith.then((e) => e.code);
  const stop = async () => {
    if (exited !== undefined) return exited;
    child.kill("SIGTERM");
    const t = setTimeout(() => {
      // Say why a test fails on a daemon that does not stop: its last words.
      console.error(`# mxd did not stop within 5 s of SIGTERM; last log lines:\n${logs.slice(-15).map((l) => "#   " + JSON.stringify(l)).join("\n")}\n# stderr: ${stderr.slice(-2000)}`);
      child.kill("SIGKILL");
    }, 5000);
    const code = await exit;
    clearTimeout(t);
    return code;
  };
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      void stop();
      reject(new Error(`mxd serve not ready after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    let buf = "";
    child.stdout!.on("data", (c: Buffer) => {
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        let o: Record<string, unknown>;
        try {
          o = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        logs.push(o);
        if (o.msg === "ready") {
          clearTimeout(t);
          const listen = o.listen as { port: number }[];
          resolve({ child, smtpPort: listen[0]!.port, ready: o, logs, lines, stderr: () => stderr, exited: exitedWith, stop });
        }
      }
    });
    void exit.then((code) => {
      clearTimeout(t);
      reject(new Error(`mxd serve exited with ${code} before ready; stderr: ${stderr}`));
    });
  });
}

/** Poll cond every 50 ms until true, or fail after ms. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}
