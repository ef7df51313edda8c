import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig, type Config, type ConfigInput } from "../../src/config.js";
import { planReload, sameAddress, sameListener } from "../../src/reload-plan.js";

const base: ConfigInput = {
  hostname: "mxd.test",
  listen: [{ host: "127.0.0.1", port: 2525 }],
  spoolDir: "/var/spool/mxd",
  routes: { "example.org": ["10.0.0.1:25"] },
  localDomains: { "corp.test": { recipients: ["alice"] } },
};
const cfg = (over: Partial<ConfigInput>) => parseConfig({ ...base, ...over });

test("planReload: what changed, table", () => {
  const rows: [string, Partial<ConfigInput>, string[]][] = [
    ["nothing", {}, []],
    ["a route changed", { routes: { "example.org": ["10.0.0.2:25"] } }, ["routes.example.org"]],
    ["a route added", { routes: { "example.org": ["10.0.0.1:25"], ".example.net": ["10.0.0.3"] } }, ["routes..example.net"]],
    ["a limit", { limits: { connections: 50 } }, ["limits.connections", "limits.reservedConnections"]],
    ["relay networks", { relay: { allowedNetworks: ["10.0.0.0/8"] } }, ["relay.allowedNetworks"]],
    ["fallback relays", { delivery: { fallbackRelays: ["relay.test:2525"] } }, ["delivery.fallbackRelays"]],
    ["retry policy (collapsed at two levels)", { delivery: { retry: { minDelay: "1m" } } }, ["delivery.retry"]],
    ["a local domain", { localDomains: { "corp.test": { recipients: ["alice", "bob"] } } }, ["localDomains.corp.test"]],
    ["certificates", { tls: { cert: "/etc/mxd/new.pem", key: "/etc/mxd/new.key" } }, ["tls.cert", "tls.key"]],
    ["the admin token", { admin: { token: "0123456789abcdef0123" } }, ["admin.token"]],
    ["log level", { log: { level: "debug" } }, ["log.level"]],
  ];
  const running = cfg({});
  for (const [what, over, changed] of rows) {
    const p = planReload(running, cfg(over));
    assert.ok(p.ok, what);
    assert.deepEqual(p.changed, changed, what);
  }
});

test("planReload: settings read once at start are refused, naming the key and both values", () => {
  const rows: [Partial<ConfigInput>, RegExp][] = [
    [{ spoolDir: "/srv/other" }, /^spoolDir cannot change while mxd runs \("\/var\/spool\/mxd" → "\/srv\/other"\); restart mxd to apply it$/],
    [{ spool: { segmentSize: "1MB" } }, /^spool\.segmentSize cannot change/],
    [{ log: { file: "/var/log/mxd.log" } }, /^log\.file cannot change .*\(null → "\/var\/log\/mxd\.log"\)/],
    [{ dns: { servers: ["127.0.0.1:53"] } }, /^dns\.servers cannot change/],
    [{ admin: { listen: "127.0.0.1:9025" } }, /^admin\.listen cannot change/],
    [{ delivery: { enabled: false } }, /^delivery\.enabled cannot change/],
  ];
  const running = cfg({});
  for (const [over, re] of rows) {
    const p = planReload(running, cfg(over));
    assert.equal(p.ok, false, JSON.stringify(over));
    if (!p.ok) {
      assert.equal(p.errors.length, 1);
      assert.match(p.errors[0]!, re);
    }
  }
  // Several at once: every one is named; a live change next to them does not sneak through.
  const p = planReload(running, cfg({ spoolDir: "/x", dns: { timeout: "1s" }, routes: {} }));
  assert.equal(p.ok, false);
  if (!p.ok) assert.equal(p.errors.length, 2);
});

test("planReload: listeners are diffed entry by entry; a changed entry is closed and opened", () => {
  const running = cfg({ listen: [{ host: "127.0.0.1", port: 25 }, { host: "127.0.0.1", port: 587 }] });
  const rows: [ConfigInput["listen"], { open: string[]; close: string[] }][] = [
    [[{ host: "127.0.0.1", port: 587 }, { host: "127.0.0.1", port: 25 }], { open: [], close: [] }],
    [[{ host: "127.0.0.1", port: 25 }], { open: [], close: ["127.0.0.1:587"] }],
    [[{ host: "127.0.0.1", port: 25 }, { host: "127.0.0.1", port: 587 }, { host: "::1", port: 25 }], { open: ["::1:25"], close: [] }],
    [[{ host: "127.0.0.1", port: 25 }, { host: "127.0.0.1", port: 465, tls: true }], { open: ["127.0.0.1:465:tls"], close: ["127.0.0.1:587"] }],
  ];
  const name = (l: { host: string; port: number; tls: boolean }) => `${l.host}:${l.port}${l.tls ? ":tls" : ""}`;
  for (const [listen, want] of rows) {
    const over: Partial<ConfigInput> = { listen };
    if (listen?.some((l) => l.tls)) over.tls = { cert: "c.pem", key: "k.pem" };
    const p = planReload(running, cfg(over));
    assert.ok(p.ok);
    if (p.ok) assert.deepEqual({ open: p.listen.open.map(name), close: p.listen.close.map(name) }, want, JSON.stringify(listen));
  }
  // 25 becomes implicit TLS: same address, another setting.
  const p = planReload(running, cfg({ listen: [{ host: "127.0.0.1", port: 25, tls: true }, { host: "127.0.0.1", port: 587 }], tls: { cert: "c", key: "k" } }));
  assert.ok(p.ok);
  if (p.ok) {
    assert.deepEqual(p.listen.open.map(name), ["127.0.0.1:25:tls"]);
    assert.deepEqual(p.listen.close.map(name), ["127.0.0.1:25"]);
    assert.ok(sameAddress(p.listen.open[0]!, p.listen.close[0]!));
  }
});

test("sameListener compares every field; sameAddress ignores port 0 (every bind is a new port)", () => {
  assert.ok(sameListener({ host: "a", port: 1, tls: false, mode: "relay" as const }, { host: "a", port: 1, tls: false, mode: "relay" as const }));
  assert.ok(!sameListener({ host: "a", port: 1, tls: false, mode: "relay" as const }, { host: "a", port: 1, tls: true, mode: "relay" as const }));
  assert.ok(!sameListener({ host: "a", port: 1, tls: false, mode: "relay" as const }, { host: "a", port: 1, tls: false, proxy: true } as never), "fields other helpers add count too");
  assert.ok(!sameAddress({ host: "a", port: 0, tls: false, mode: "relay" as const }, { host: "a", port: 0, tls: true, mode: "relay" as const }));
});

test("planReload: settings built at start are refused (AUTH, DKIM, MTA-STS cache and CA file, DANE); the outbound TLS policy itself reloads", () => {
  const base = parseConfig({});
  const d = base.delivery;
  const refused: [Config, RegExp][] = [
    [{ ...base, auth: { ...base.auth, failures: { ...base.auth.failures, max: 9 } } }, /^auth\.failures cannot change while mxd runs/],
    [{ ...base, dkim: { ...base.dkim, maxSize: 1 } }, /^dkim\.maxSize cannot change while mxd runs/],
    [{ ...base, delivery: { ...d, tls: { ...d.tls, caFile: "/etc/mxd/ca.pem" } } }, /^delivery\.tls\.caFile cannot change while mxd runs/],
    [{ ...base, delivery: { ...d, tls: { ...d.tls, mtaSts: { ...d.tls.mtaSts, enabled: false } } } }, /^delivery\.tls\.mtaSts cannot change while mxd runs/],
    [{ ...base, delivery: { ...d, dane: { ...d.dane, resolver: "127.0.0.1:53" } } }, /^delivery\.dane cannot change while mxd runs/],
  ];
  for (const [next, re] of refused) {
    const plan = planReload(base, next);
    assert.equal(plan.ok, false, re.source);
    if (!plan.ok) assert.ok(plan.errors.some((e) => re.test(e)), `${re.source}: ${plan.errors.join(" | ")}`);
  }
  const policy = planReload(base, parseConfig({ delivery: { tls: { policy: { default: "encrypt" } } } }));
  assert.equal(policy.ok, true);
  if (policy.ok) assert.deepEqual(policy.changed, ["delivery.tls"]);
});
