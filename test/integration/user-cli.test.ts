// `mxd user` as a child process: stdin a pipe (not a TTY: the password is stdin's first line),
// and on a pseudo-terminal made by util-linux `script` (asked twice, not echoed).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { MXD_CLI as CLI } from "../helpers/paths.js";
import { inCI } from "../helpers/peers.js";
import { parseUsers } from "../../src/auth/users-file.js";
import { verifyPassword } from "../../src/auth/password-hash.js";

let dir: string;
let config: string;
let users: string;

function run(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, "user", ...args], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => c.kill("SIGKILL"), 20_000);
    c.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    c.stdin.end(stdin ?? "");
  });
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "mxd-user-cli-"));
  users = join(dir, "users");
  config = join(dir, "mxd.json");
  writeFileSync(config, JSON.stringify({ spoolDir: join(dir, "spool"), auth: { usersFile: users } }));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("mxd user add / list / passwd / delete through stdin; the file is 0600 and verifies", async () => {
  const add = await run(["add", "alice", "--sender", "alice@example.org", "--sender", "@Example.NET"], "s3cret-pass\n");
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /alice added \(senders: alice@example\.org,@example\.net\)/);
  assert.equal(statSync(users).mode & 0o777, 0o600);
  const parsed = parseUsers(readFileSync(users, "utf8"));
  assert.deepEqual(parsed.problems, []);
  const alice = parsed.users.get("alice")!;
  assert.equal(await verifyPassword("s3cret-pass", alice.hash), true, "stdin's first line is the password, without its newline");
  assert.doesNotMatch(readFileSync(users, "utf8"), /s3cret/);

  // CR LF, no trailing newline: both read as the line.
  assert.equal((await run(["add", "bob@example.org"], "bob-password\r\nignored second line\n")).code, 0);
  assert.equal(await verifyPassword("bob-password", parseUsers(readFileSync(users, "utf8")).users.get("bob@example.org")!.hash), true);
  assert.equal((await run(["add", "carol"], "no-newline-pw")).code, 0);

  const list = await run(["list"]);
  assert.equal(list.code, 0);
  assert.equal(list.stdout, "alice\talice@example.org,@example.net\nbob@example.org\t*\ncarol\t*\n");
  const json = JSON.parse((await run(["list", "--json"])).stdout) as { users: { name: string; senders: string[] }[] };
  assert.deepEqual(json.users.map((u) => u.name), ["alice", "bob@example.org", "carol"]);
  assert.ok(!JSON.stringify(json).includes("$scrypt$"), "list never prints hashes");

  const pw = await run(["passwd", "alice"], "another-pass\n");
  assert.equal(pw.code, 0, pw.stderr);
  const after = parseUsers(readFileSync(users, "utf8")).users.get("alice")!;
  assert.equal(await verifyPassword("another-pass", after.hash), true);
  assert.equal(await verifyPassword("s3cret-pass", after.hash), false);
  assert.deepEqual(after.senders, ["alice@example.org", "@example.net"], "passwd keeps the senders");

  const del = await run(["delete", "carol"]);
  assert.equal(del.code, 0);
  assert.deepEqual([...parseUsers(readFileSync(users, "utf8")).users.keys()], ["alice", "bob@example.org"]);
});

test("mxd user refusals: exit 1 for the operation, 2 for usage and config; the file is left as it was", async () => {
  writeFileSync(users, "");
  assert.equal((await run(["add", "dave"], "dave-password\n")).code, 0);
  const before = readFileSync(users, "utf8");
  const cases: [string[], string | undefined, number, RegExp][] = [
    [["add", "dave"], "other-password\n", 1, /user dave exists/],
    [["passwd", "nobody"], "whatever-pw\n", 1, /no user nobody/],
    [["delete", "nobody"], undefined, 1, /no user nobody/],
    [["add", "erin"], "short\n", 1, /shorter than 8/],
    [["add", "erin"], "", 1, /shorter than 8/],
    [["add", "bad:name"], "long-enough\n", 2, /may contain only/],
    [["add", "erin", "--sender", "not an address"], "long-enough\n", 2, /not an address/],
    [["passwd", "dave", "--sender", "@x.test"], "long-enough\n", 2, /--sender goes with add/],
    [["add"], undefined, 2, /one user name expected/],
    [["frobnicate"], undefined, 2, /unknown subcommand/],
    [["add", "erin", "--sendr", "x"], undefined, 2, /unknown option --sendr \(did you mean --sender\?\)/],
  ];
  for (const [args, stdin, code, re] of cases) {
    const r = await run(args, stdin);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(" "));
    assert.equal(readFileSync(users, "utf8"), before, `${args.join(" ")} changed nothing`);
  }
  // A line mxd cannot read: no rewrite (it would be lost), exit 1, the problem named.
  appendFileSync(users, "broken line\n");
  const r = await run(["add", "erin"], "long-enough\n");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /line \d+: expected name:hash:senders/);
  assert.match(readFileSync(users, "utf8"), /broken line/);
  assert.equal((await run(["list"])).code, 1, "list reports the problem");
  // No auth.usersFile in the config: a configuration error.
  const bare = join(dir, "bare.json");
  writeFileSync(bare, JSON.stringify({ spoolDir: join(dir, "spool") }));
  const nocfg = await run(["list", "--config", bare]);
  assert.equal(nocfg.code, 2);
  assert.match(nocfg.stderr, /auth\.usersFile is not set/);
});

/** `mxd user ARGS` on a pseudo-terminal (util-linux script); each answer is typed once its prompt shows. */
function onTty(args: string[], answers: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const cmd = [process.execPath, CLI, "user", ...args].map((a) => `'${a}'`).join(" ");
    const c = spawn("script", ["-qec", cmd, "/dev/null"], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let prompts = 0;
    const onData = (d: Buffer) => {
      out += d.toString();
      const seen = (out.match(/Password[^:]*: /g) ?? []).length;
      while (prompts < seen && prompts < answers.length) c.stdin.write(answers[prompts++] + "\r");
    };
    c.stdout.on("data", onData);
    c.stderr.on("data", onData);
    const t = setTimeout(() => c.kill("SIGKILL"), 20_000);
    c.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

test("on a terminal: the password is asked twice and not echoed; two different answers change nothing", { skip: statSync("/usr/bin/script", { throwIfNoEntry: false }) || inCI ? false : "missing package: bsdutils (script)" }, async () => {
  writeFileSync(users, "");
  const ok = await onTty(["add", "tty-user"], ["typed-password", "typed-password"]);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /Password: [\s\S]*Password \(again\): /);
  assert.doesNotMatch(ok.out, /typed-password/, "not echoed");
  assert.equal(await verifyPassword("typed-password", parseUsers(readFileSync(users, "utf8")).users.get("tty-user")!.hash), true);
  const before = readFileSync(users, "utf8");
  const bad = await onTty(["passwd", "tty-user"], ["first-answer", "second-answer"]);
  assert.equal(bad.code, 1, bad.out);
  assert.match(bad.out, /the passwords do not match/);
  assert.equal(readFileSync(users, "utf8"), before);
});
