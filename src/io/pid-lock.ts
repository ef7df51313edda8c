// One daemon per spool: `spoolDir/mxd.pid` holds the pid of the daemon that owns the spool.
// Two daemons on one spool would deliver every message twice. The admin socket answers the same
// question while it exists; the pid file still answers when someone deleted the socket.
import { promises as fsp, readFileSync } from "node:fs";
import { join } from "node:path";
import { MxdError } from "../core/errors.js";

export const PID_FILE = "mxd.pid";

/** The pid in the lock file if that process is alive and looks like node/mxd, else undefined. */
export function lockHolder(spoolDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(spoolDir, PID_FILE), "utf8").trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return undefined; // stale: the daemon died
  }
  // A recycled pid after a crash: on Linux, check the process is node (or an mxd binary).
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (!/node|mxd/.test(cmd)) return undefined;
  } catch {
    /* no /proc: trust the pid */
  }
  return pid;
}

export interface PidLock {
  release(): Promise<void>;
}

/** Take the spool's lock or throw (code MXD_ALREADY_RUNNING) naming the running daemon's pid. */
export async function acquirePidLock(spoolDir: string): Promise<PidLock> {
  await fsp.mkdir(spoolDir, { recursive: true });
  const path = join(spoolDir, PID_FILE);
  const holder = lockHolder(spoolDir);
  if (holder !== undefined && holder !== process.pid) {
    throw new MxdError("MXD_ALREADY_RUNNING", `another mxd is already running on spool ${spoolDir} (pid ${holder} in ${path})`);
  }
  // Free, stale, or ours (several daemons inside one test process are told apart by the admin socket).
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await fsp.writeFile(tmp, `${process.pid}\n`);
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    // A full file system: the stale lock file's block can still be overwritten in place
    // (padded to its old length, never truncated, so no new block is needed).
    if (!(await overwriteInPlace(path, process.pid))) {
      throw new MxdError("MXD_LOCK_IO", `cannot write the spool lock ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
  return {
    async release() {
      try {
        if (Number((await fsp.readFile(path, "utf8")).trim()) === process.pid) await fsp.rm(path, { force: true });
      } catch {
        /* already gone */
      }
    },
  };
}

async function overwriteInPlace(path: string, pid: number): Promise<boolean> {
  try {
    const fh = await fsp.open(path, "r+");
    try {
      const { size } = await fh.stat();
      const text = `${pid}\n`;
      if (size < text.length) return false;
      await fh.write(text.padEnd(size - 1, " ") + (size > text.length ? "\n" : ""), 0);
      await fh.sync();
      return true;
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}
