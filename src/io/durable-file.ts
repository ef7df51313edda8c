// The file-system steps every durable write in mxd is made of (spool, dead letters, control
// file, local drop): write a file and fsync it, fsync the directory after a rename or create
// (without it a crash can lose the new name even though the data reached the disk), and read
// a file's first bytes.
import { promises as fsp } from "node:fs";

/** fsync a directory, so the names created or renamed in it survive a crash. */
export async function syncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Write `data` to a new or truncated file (mode 0640), fsynced unless `sync` is false (tests). */
export async function writeFileSynced(path: string, data: Buffer | string, sync = true): Promise<void> {
  const fh = await fsp.open(path, "w", 0o640);
  try {
    await fh.writeFile(data);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The names in a directory; none when it does not exist (any other error is thrown). */
export async function readDirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

/** The first `max` octets of a file (fewer when it is shorter). */
export async function readFileHead(path: string, max: number): Promise<Buffer> {
  const fh = await fsp.open(path, "r");
  try {
    const buf = Buffer.alloc(max);
    const { bytesRead } = await fh.read(buf, 0, max, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
