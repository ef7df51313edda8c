// `npm pack` makes a package that installs and runs: the tarball is installed with
// `npm install -g --prefix DIR`, `mxd` is then on PATH (the package bin) and `mxd serve` from it
// gets to "ready" and stops cleanly on SIGTERM. Needs the npm registry (or npm's cache) for the
// runtime dependencies; MXD_SKIP_PACK=1 skips it. Owns 127.0.0.179.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "../helpers/paths.js";

const run = promisify(execFile);
const root = REPO_ROOT;
const dir = mkdtempSync(join(tmpdir(), "mxd-pack-"));
after(() => rmSync(dir, { recursive: true, force: true }));
// npm beside the node running the tests (Node 22/24 from npm exec included), else PATH's.
const npmCli = join(dirname(process.execPath), "../lib/node_modules/npm/bin/npm-cli.js");
const npm = (args: string[], cwd: string) => (existsSync(npmCli) ? run(process.execPath, [npmCli, ...args], { cwd, timeout: 240_000 }) : run("npm", args, { cwd, timeout: 240_000 }));

test("npm pack → npm install -g → mxd on PATH → mxd serve ready", { skip: process.env.MXD_SKIP_PACK === "1" ? "MXD_SKIP_PACK=1" : false, timeout: 300_000 }, async () => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string };
  // dist/ is built by the test run already; prepare would only build it again.
  await npm(["pack", "--ignore-scripts", "--pack-destination", dir], root);
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"))!;
  assert.equal(tgz, `${pkg.name}-${pkg.version}.tgz`);
  const listing = (await run("tar", ["tzf", join(dir, tgz)])).stdout;
  assert.match(listing, /package\/dist\/src\/cli\.js/);
  assert.match(listing, /package\/contrib\/mxd\.service/);
  assert.doesNotMatch(listing, /package\/(test|dist\/test|src)\//, "no tests or sources in the package");
  const prefix = join(dir, "prefix");
  await npm(["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", "--prefer-offline", join(dir, tgz)], dir);
  const env = { ...process.env, PATH: `${join(prefix, "bin")}:${dirname(process.execPath)}:/usr/bin:/bin` };
  const version = await run("mxd", ["--version"], { env, timeout: 20_000 });
  assert.equal(version.stdout.trim(), `mxd ${pkg.version}`);

  const cfg = join(dir, "mxd.json");
  writeFileSync(cfg, JSON.stringify({ hostname: "pack.test", spoolDir: join(dir, "spool"), listen: [{ host: "127.0.0.179", port: 0 }], admin: { listen: null } }));
  const child = spawn("mxd", ["serve", "--config", cfg], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  try {
    await new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`not ready: ${out}${err}`)), 20_000);
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        if (/"msg":"ready"/.test(out)) (clearTimeout(t), ok());
      });
      void exited.then((code) => (clearTimeout(t), fail(new Error(`exited ${code}: ${err}`))));
    });
  } finally {
    child.kill("SIGTERM");
  }
  const k = setTimeout(() => child.kill("SIGKILL"), 10_000);
  assert.equal(await exited, 0, "a clean stop");
  clearTimeout(k);
});
