// Keeps the module graph honest (design.md, "Rules of the house"): core/ is pure, only the
// I/O modules touch the network, DNS, the file system or HTTP, no module imports a layer above
// its own, and imports have no cycles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { SRC_DIR } from "../helpers/paths.js";

const SRC = SRC_DIR + "/";

function files(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (f.endsWith(".ts")) out.push(p);
  }
  return out;
}

interface Imp {
  spec: string;
  typeOnly: boolean;
}

function imports(file: string): Imp[] {
  const text = readFileSync(file, "utf8");
  const out: Imp[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?["']([^"']+)["']/gm;
  for (let m; (m = re.exec(text)); ) out.push({ spec: m[3]!, typeOnly: !!m[2] });
  const dyn = /import\(\s*["']([^"']+)["']\s*\)/g;
  for (let m; (m = dyn.exec(text)); ) out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

const all = files(SRC).map((f) => relative(SRC, f));

// Modules allowed to perform network, DNS, file-system or HTTP I/O.
const IO_ALLOWED = [/^io\//, /^main\.ts$/, /^spool\/(fs-spool|journal-spool|journal-replay|group-commit|dead-letters)\.ts$/, /^smtp\/server\.ts$/, /^admin\//, /^cli(\/|\.ts$)/, /^config\.ts$/, /^delivery\/local-drop\.ts$/, /^queue\/control-file\.ts$/];
const IO_MODULES = /^node:(net|tls|dns|dns\/promises|fs|fs\/promises|http|https|dgram)$/;

test("core/ imports nothing outside core/ and no node: modules", () => {
  for (const f of all.filter((f) => f.startsWith("core/"))) {
    for (const i of imports(join(SRC, f))) {
      assert.ok(i.spec.startsWith("./"), `${f} imports ${i.spec}: core/ must stay pure`);
    }
  }
});

test("only the I/O modules touch sockets, DNS, files or HTTP", () => {
  for (const f of all) {
    if (IO_ALLOWED.some((re) => re.test(f))) continue;
    for (const i of imports(join(SRC, f))) {
      if (i.typeOnly) continue;
      assert.doesNotMatch(i.spec, IO_MODULES, `${f} imports ${i.spec}; route it through io/ (design.md)`);
    }
  }
});

test("the import graph has no cycles", () => {
  const graph = new Map<string, string[]>();
  for (const f of all) {
    const deps = imports(join(SRC, f))
      .filter((i) => i.spec.startsWith(".") && !i.typeOnly)
      .map((i) => relative(SRC, resolve(dirname(join(SRC, f)), i.spec)).replace(/\.js$/, ".ts"));
    graph.set(f, deps);
  }
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string) => {
    if (state.get(n) === 2) return;
    if (state.get(n) === 1) assert.fail(`import cycle: ${[...stack.slice(stack.indexOf(n)), n].join(" → ")}`);
    state.set(n, 1);
    stack.push(n);
    for (const d of graph.get(n) ?? []) visit(d);
    stack.pop();
    state.set(n, 2);
  };
  for (const n of graph.keys()) visit(n);
});

// Layers, lowest first (docs/architecture.md): core ← config ← io/spool/smtp/auth/dkim ← delivery/bounce
// ← queue ← admin ← cli/main. A module may import its own layer and those below, type-only
// imports included: a type from above is a dependency on above all the same.
const LAYERS: [RegExp, number, string][] = [
  [/^core\//, 0, "core"],
  [/^(config(-describe)?|reload-plan)\.ts$/, 1, "config"],
  [/^(io|spool|smtp|auth|dkim)\//, 2, "io/spool/smtp/auth/dkim"],
  [/^(delivery|bounce)\//, 3, "delivery/bounce"],
  [/^queue\//, 4, "queue"],
  [/^admin\//, 5, "admin"],
  [/^(cli\/|cli\.ts$|main\.ts$)/, 6, "cli/main"],
];

function layerOf(f: string): [number, string] {
  const l = LAYERS.find(([re]) => re.test(f));
  assert.ok(l, `${f} belongs to no layer: add it to LAYERS and to docs/architecture.md`);
  return [l[1], l[2]];
}

test("no module imports a layer above its own", () => {
  for (const f of all) {
    const [mine, myName] = layerOf(f);
    for (const i of imports(join(SRC, f))) {
      if (!i.spec.startsWith(".")) continue;
      const target = relative(SRC, resolve(dirname(join(SRC, f)), i.spec)).replace(/\.js$/, ".ts");
      const [theirs, theirName] = layerOf(target);
      assert.ok(theirs <= mine, `${f} (${myName}) imports ${target} (${theirName}), a layer above it`);
    }
  }
});

test("the layer check sees an upward import", () => {
  // The check itself must be able to fail: a delivery module importing the queue would.
  assert.ok(layerOf("queue/worker.ts")[0] > layerOf("delivery/router.ts")[0]);
  assert.ok(layerOf("delivery/router.ts")[0] > layerOf("smtp/server-session.ts")[0]);
  assert.ok(layerOf("smtp/server-session.ts")[0] > layerOf("core/local-domains.ts")[0]);
});

test("no merge-conflict markers left in sources, tests, bench or docs", () => {
  const root = resolve(SRC_DIR, "..");
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? walk(p) : /\.(ts|md|mjs|json)$/.test(f) ? [p] : [];
    });
  const found: string[] = [];
  for (const f of [...["src", "test", "bench", "docs"].flatMap((d) => walk(join(root, d))), join(root, "README.md")]) {
    const lines = readFileSync(f, "utf8").split("\n");
    lines.forEach((l, i) => {
      if (/^(<{7}|>{7}) /.test(l) || (l === "=======" && lines.some((x) => /^<{7} /.test(x)))) found.push(`${relative(root, f)}:${i + 1}`);
    });
  }
  assert.deepEqual(found, []);
});
