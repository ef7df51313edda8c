// The on-disk MTA-STS policy cache: spoolDir/mta-sts/DOMAIN.json, one small JSON file per
// domain, replaced atomically (write to a temporary name, rename). It is a cache, so no fsync:
// a lost or torn file only means one more fetch. What is read back is checked by the caller
// (delivery/mta-sts.ts validCacheEntry); an unreadable file reads as absent.
import { mkdir, readFile, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface StsStore {
  load(domain: string): Promise<unknown>;
  save(domain: string, entry: unknown): Promise<void>;
  /** Domains with a cache file (at most `limit`). */
  domains(limit: number): Promise<string[]>;
}

/** Domain names are LDH (and lower case) by the time they get here; anything else is not stored. */
const SAFE = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

export function fileStsStore(spoolDir: string): StsStore {
  const dir = join(spoolDir, "mta-sts");
  let made: Promise<unknown> | undefined;
  // The domains with a cache file, listed once: most destinations publish no policy, and a
  // fan-out to 500 new domains must not try to open 500 files that are not there. The daemon
  // is the only writer (save adds here); a file removed by hand reads as absent.
  let known: Promise<Set<string>> | undefined;
  const listed = () => (known ??= readdir(dir).then((names) => new Set(names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5))), () => new Set<string>()));
  return {
    async load(domain) {
      if (!SAFE.test(domain) || domain.includes("..")) return undefined;
      if (!(await listed()).has(domain)) return undefined;
      try {
        return JSON.parse(await readFile(join(dir, `${domain}.json`), "utf8"));
      } catch {
        return undefined;
      }
    },
    async save(domain, entry) {
      if (!SAFE.test(domain) || domain.includes("..")) return;
      made ??= mkdir(dir, { recursive: true, mode: 0o700 });
      await made;
      const file = join(dir, `${domain}.json`);
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(entry) + "\n", { mode: 0o600 });
      await rename(tmp, file);
      (await listed()).add(domain);
    },
    async domains(limit) {
      const names = await readdir(dir).catch(() => [] as string[]);
      return names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).filter((d) => SAFE.test(d)).slice(0, limit);
    },
  };
}
