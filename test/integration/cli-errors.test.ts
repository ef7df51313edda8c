// Issue 13, bugs 1, 2 and 5, as a new user met them: a config that cannot run is refused by
// check-config, serve and status alike (exit 2, naming the key, no stack trace, no daemon left
// running), `mxd --version` answers, and a typo'd option is told in our words.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mxd, writeConfig } from "../helpers/daemon-process.js";

const dir = mkdtempSync(join(tmpdir(), "mxd-clierr-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const cases: [string, object, RegExp][] = [
  ["admin.listen port", { admin: { listen: "127.0.0.7:86000" } }, /admin\.listen: port 86000 in "127\.0\.0\.7:86000" is out of range/],
  ["fallback relay port", { delivery: { fallbackRelays: ["relay.example:99999"] } }, /delivery\.fallbackRelays\.0: port 99999/],
  ["route port", { routes: { "example.com": ["relay.example:99999"] } }, /routes\.example\.com\.0: port 99999/],
];

for (const [name, cfg, re] of cases) {
  test(`bad config (${name}): check-config, serve and status exit 2 naming the key`, async () => {
    const spool = join(dir, name.replace(/\W/g, "_"));
    const file = writeConfig(dir, { spoolDir: spool, listen: [{ host: "127.0.0.1", port: 0 }], ...cfg }, `${name.replace(/\W/g, "_")}.json`);
    for (const cmd of [["check-config", file], ["serve", "--config", file], ["status", "--config", file], ["queue", "list", "--config", file]]) {
      const r = await mxd(cmd, { timeoutMs: 15_000 });
      assert.equal(r.code, 2, `${cmd[0]}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, re, cmd[0]);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${cmd[0]}: no stack trace`);
    }
    assert.ok(!existsSync(join(spool, "mxd.pid")), "serve never got as far as locking the spool");
  });
}

test("mxd --version prints the package version", async () => {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
  for (const flag of ["--version", "-V"]) {
    const r = await mxd([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `mxd ${pkg.version}`);
  }
});

test("a typo'd option: one line in our words, the nearest option, exit 2", async () => {
  const table: [string[], RegExp][] = [
    [["queue", "list", "--stat", "x"], /^mxd: mxd queue list: unknown option --stat \(did you mean --state\?\); see --help\n$/],
    [["status", "--jsn"], /^mxd: mxd status: unknown option --jsn \(did you mean --json\?\); see --help\n$/],
    [["serve", "--confg", "x"], /^mxd: mxd serve: unknown option --confg \(did you mean --config\?\); see --help\n$/],
    [["check-config", "--config"], /^mxd: mxd check-config: option --config needs a value\n$/],
  ];
  for (const [args, re] of table) {
    const r = await mxd(args, { cwd: dir });
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, re, args.join(" "));
  }
});
