// The users file on disk (auth.usersFile; format in auth/users-file.ts).
//
// Reading: the daemon calls lookup() at every AUTH; it stats the file and parses it again only
// when its inode, size or mtime changed, so `mxd user add|passwd|delete` take effect at the
// next AUTH without a restart or a signal (a stat per AUTH costs microseconds; AUTH costs an
// scrypt run). A file that cannot be read or has bad lines: the lines that parse count, the
// problems are logged once per change, and a file that disappears means no users.
//
// Writing (the CLI): a temporary file in the same directory, mode 0600, fsync, rename over the
// old one, fsync the directory: readers see the old file or the new one, never half of one.
// A lock file (O_EXCL) serialises concurrent `mxd user` commands.
import { promises as fsp, constants as fsc } from "node:fs";
import { dirname, basename, join } from "node:path";
import { parseUsers, serializeUsers, type UserEntry } from "../auth/users-file.js";

export interface UsersSnapshot {
  users: Map<string, UserEntry>;
  problems: string[];
}

export class UsersStore {
  private key = "";
  private snap: UsersSnapshot = { users: new Map(), problems: [] };

  /** `onReload` is told about every (re)load, with the problems found (for the log). */
  constructor(readonly path: string, private readonly onReload: (s: UsersSnapshot & { error?: string; missing?: boolean }) => void = () => undefined) {}

  /** The current users, re-read when the file changed since the last call. */
  async current(): Promise<UsersSnapshot> {
    let key: string;
    try {
      const st = await fsp.stat(this.path, { bigint: true });
      key = `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      key = `missing:${code}`;
      if (key !== this.key) {
        this.key = key;
        this.snap = { users: new Map(), problems: [] };
        this.onReload(code === "ENOENT" ? { ...this.snap, missing: true } : { ...this.snap, error: (e as Error).message });
      }
      return this.snap;
    }
    if (key === this.key) return this.snap;
    try {
      const text = await fsp.readFile(this.path, "utf8");
      this.snap = parseUsers(text);
      this.key = key;
      this.onReload(this.snap);
    } catch (e) {
      // Unreadable now (permissions, a race with a rename): keep the last good users, try again next time.
      this.onReload({ ...this.snap, error: (e as Error).message });
    }
    return this.snap;
  }

  async lookup(name: string): Promise<UserEntry | undefined> {
    return (await this.current()).users.get(name);
  }
}

/** Read the file for the CLI: a missing file is an empty one; unreadable is an error. */
export async function readUsersFile(path: string): Promise<UsersSnapshot> {
  let text: string;
  try {
    text = await fsp.readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { users: new Map(), problems: [] };
    throw e;
  }
  return parseUsers(text);
}

/** Replace the file atomically with these users (mode 0600). */
export async function writeUsersFile(path: string, users: Iterable<UserEntry>): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o600);
  try {
    await fh.chmod(0o600); // the umask may have cut the mode; never wider than 0600
    await fh.writeFile(serializeUsers(users));
    await fh.sync();
  } catch (e) {
    await fh.close();
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  const d = await fsp.open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Run fn holding `path.lock` (created with O_EXCL); waits up to waitMs for another holder. */
export async function withUsersLock<T>(path: string, fn: () => Promise<T>, waitMs = 5000): Promise<T> {
  const lock = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fh = await fsp.open(lock, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (Date.now() >= deadline) {
        throw new Error(`${lock} exists: another mxd user command is running (or one crashed: remove the file if no other is running)`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lock, { force: true });
  }
}
