import { test } from "node:test";
import assert from "node:assert/strict";
import { parseOptions, UsageError } from "../../src/cli/args.js";
import { configPath } from "../../src/cli/resolve-config.js";

test("parseOptions: parser errors in our words, with the nearest option", () => {
  const opts = { config: { type: "string" as const }, sender: { type: "string" as const }, json: { type: "boolean" as const } };
  const table: [string[], RegExp][] = [
    [["--sendr", "x"], /^mxd queue list: unknown option --sendr \(did you mean --sender\?\); see --help$/],
    [["--zzzzzz"], /^mxd queue list: unknown option --zzzzzz; see --help$/],
    [["--config"], /^mxd queue list: option --config needs a value$/],
    [["--json=yes"], /^mxd queue list: option --json takes no value$/],
  ];
  for (const [args, re] of table) {
    assert.throws(() => parseOptions("mxd queue list", args, opts), (e: Error) => e instanceof UsageError && re.test(e.message), args.join(" "));
  }
  assert.equal(parseOptions("x", ["--sender", "a@b"], opts).values.sender, "a@b");
});

test("configPath: --config, ./mxd.json, MXD_CONFIG, /etc/mxd/mxd.json, defaults", () => {
  const has = (...files: string[]) => (p: string) => files.includes(p);
  assert.equal(configPath("x.json", { MXD_CONFIG: "/e.json" }, has("mxd.json", "/etc/mxd/mxd.json")), "x.json");
  assert.equal(configPath(undefined, { MXD_CONFIG: "/e.json" }, has("mxd.json", "/etc/mxd/mxd.json")), "mxd.json");
  assert.equal(configPath(undefined, { MXD_CONFIG: "/e.json" }, has("/etc/mxd/mxd.json")), "/e.json");
  assert.equal(configPath(undefined, {}, has("/etc/mxd/mxd.json")), "/etc/mxd/mxd.json");
  assert.equal(configPath(undefined, {}, has()), undefined);
});
