// io/sts-store.ts: the MTA-STS policy cache on disk — survives a new store (restart), misses
// without opening files, unsafe names never touch the file system.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileStsStore } from "../../src/io/sts-store.js";

test("fileStsStore: saved entries load, also from a new store on the same spool; others are absent", async () => {
  const spool = mkdtempSync(join(tmpdir(), "mxd-sts-"));
  try {
    const a = fileStsStore(spool);
    assert.equal(await a.load("a.test"), undefined, "nothing cached yet (no directory)");
    await a.save("a.test", { id: "1", policy: { mode: "enforce" } });
    assert.deepEqual(await a.load("a.test"), { id: "1", policy: { mode: "enforce" } });
    assert.equal(await a.load("b.test"), undefined);
    // A restart: the listing is read again, the file is found.
    const b = fileStsStore(spool);
    assert.deepEqual(await b.load("a.test"), { id: "1", policy: { mode: "enforce" } });
    assert.deepEqual(await b.domains(10), ["a.test"]);
    // Removed by hand: absent, never an error.
    unlinkSync(join(spool, "mta-sts", "a.test.json"));
    assert.equal(await b.load("a.test"), undefined);
    // An unreadable (torn) file is absent too.
    mkdirSync(join(spool, "mta-sts"), { recursive: true });
    writeFileSync(join(spool, "mta-sts", "c.test.json"), "{ torn");
    assert.equal(await fileStsStore(spool).load("c.test"), undefined);
    // Names that are not LDH never reach the file system.
    assert.equal(await b.load("../../etc/passwd"), undefined);
    await b.save("../x", { id: "1" });
    assert.deepEqual((await fileStsStore(spool).domains(10)).sort(), ["c.test"]);
  } finally {
    rmSync(spool, { recursive: true, force: true });
  }
});
