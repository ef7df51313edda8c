// The users file: parser and writer (pure), the sender rule, and the atomic writer on a temp dir.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nameProblem, parseUsers, senderAllowed, serializeUsers, type UserEntry } from "../../src/auth/users-file.js";
import { UsersStore, readUsersFile, writeUsersFile, withUsersLock } from "../../src/io/users-store.js";

const H = "$scrypt$N=16384,r=8,p=1$9Sgp8mmwJ0R2pIMNnr3iYA==$7t3bNbSC/7kKcVd2zD2Sbe0NsQHmAnE+qLSzlljMuhE=";

test("parseUsers: good lines, comments, blank lines; each bad line is reported by number and skipped", () => {
  const text = [
    "# a comment",
    "",
    `alice:${H}:alice@example.org,@Example.NET`,
    `bot:${H}:*`,
    `bob@x.test:${H}:bob@x.test\r`,
    "nocolons",
    `carol:${H}`,
    `bad name:${H}:*`,
    `dave:$scrypt$N=1000,r=8,p=1$AAAAAAAAAAA=$${"A".repeat(43)}=:*`,
    `erin:${H}:`,
    `frank:${H}:not-an-address`,
    `alice:${H}:*`,
    `gina:md5hash:*`,
  ].join("\n");
  const { users, problems } = parseUsers(text);
  assert.deepEqual([...users.keys()], ["alice", "bot", "bob@x.test"]);
  assert.deepEqual(users.get("alice"), { name: "alice", hash: H, senders: ["alice@example.org", "@example.net"] });
  assert.deepEqual(users.get("bot")!.senders, ["*"]);
  assert.deepEqual(users.get("bob@x.test")!.senders, ["bob@x.test"]);
  const want: [number, RegExp][] = [
    [6, /expected name:hash:senders/],
    [7, /expected name:hash:senders/],
    [8, /may contain only/],
    [9, /bad hash: N must be a power of 2/],
    [10, /no senders/],
    [11, /not an address/],
    [12, /appears twice/],
    [13, /bad hash/],
  ];
  assert.equal(problems.length, want.length, problems.join("\n"));
  want.forEach(([line, re], i) => {
    assert.match(problems[i]!, new RegExp(`^line ${line}: `));
    assert.match(problems[i]!, re);
  });
});

test("serializeUsers → parseUsers round-trips", () => {
  const users: UserEntry[] = [
    { name: "alice", hash: H, senders: ["alice@example.org", "@example.net"] },
    { name: "b.o-b+x@y.test", hash: H, senders: ["*"] },
  ];
  const text = serializeUsers(users);
  assert.match(text, /^# mxd submission users/);
  const back = parseUsers(text);
  assert.deepEqual(back.problems, []);
  assert.deepEqual([...back.users.values()], users);
});

test("nameProblem and senderAllowed", () => {
  assert.equal(nameProblem("alice"), undefined);
  assert.equal(nameProblem("alice@example.org"), undefined);
  for (const bad of ["", "a:b", "a b", "a\nb", "x".repeat(256), "ä"]) assert.ok(nameProblem(bad), JSON.stringify(bad));
  const cases: [string[], string, boolean][] = [
    [["*"], "anyone@anywhere.test", true],
    [["*"], "", true],
    [["alice@example.org"], "alice@example.org", true],
    [["alice@example.org"], "ALICE@Example.org", true],
    [["alice@example.org"], "bob@example.org", false],
    [["@example.org"], "bob@example.org", true],
    [["@example.org"], "bob@sub.example.org", false],
    [["@example.org"], "bob@example.org.evil.test", false],
    [["alice@example.org"], "", false],
    [[], "alice@example.org", false],
  ];
  for (const [senders, sender, want] of cases) assert.equal(senderAllowed(senders, sender), want, `${senders} ${sender}`);
});

test("writeUsersFile: atomic replace with mode 0600; UsersStore re-reads only when the file changed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mxd-users-"));
  try {
    const path = join(dir, "users");
    assert.deepEqual((await readUsersFile(path)).users.size, 0, "missing file = no users");
    const reloads: number[] = [];
    const missing: boolean[] = [];
    const store = new UsersStore(path, (s) => (reloads.push(s.users.size), missing.push(!!s.missing)));
    assert.equal(await store.lookup("alice"), undefined);
    assert.deepEqual(missing, [true], "a missing file is reported as missing (the daemon warns), not as an error");
    await withUsersLock(path, () => writeUsersFile(path, [{ name: "alice", hash: H, senders: ["*"] }]));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal((await store.lookup("alice"))?.name, "alice", "picked up without a restart");
    await store.lookup("alice");
    assert.deepEqual(reloads, [0, 1], "read again only after the change");
    // A hand edit (same size, new mtime) is picked up too.
    writeFileSync(path, readFileSync(path, "utf8").replace("alice:", "alicf:"));
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    assert.equal(await store.lookup("alice"), undefined);
    assert.equal((await store.lookup("alicf"))?.name, "alicf");
    // The lock is exclusive: a second holder waits, then gives up with a clear message.
    await withUsersLock(path, async () => {
      await assert.rejects(withUsersLock(path, async () => undefined, 100), /another mxd user command is running/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
