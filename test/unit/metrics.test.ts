// Prometheus text exposition: names, labels, escaping, cumulative histogram buckets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "../../src/admin/metrics.js";
import { parseExposition } from "../helpers/exposition.js";

test("counters and gauges render HELP, TYPE and one sample per label set", () => {
  const r = new Registry();
  const c = r.add(new Counter("x_total", "Things."));
  c.inc({ outcome: "a" });
  c.inc({ outcome: "a" }, 2);
  c.inc({ outcome: 'q"u\\o\nte' });
  r.add(new Gauge("g", "A gauge.", () => [{ value: 7 }, { labels: { d: "x.test" }, value: 1 }]));
  assert.equal(
    r.render(),
    [
      "# HELP x_total Things.",
      "# TYPE x_total counter",
      'x_total{outcome="a"} 3',
      'x_total{outcome="q\\"u\\\\o\\nte"} 1',
      "# HELP g A gauge.",
      "# TYPE g gauge",
      "g 7",
      'g{d="x.test"} 1',
      "",
    ].join("\n"),
  );
  const back = parseExposition(r.render());
  assert.deepEqual(back[1], { name: "x_total", labels: { outcome: 'q"u\\o\nte' }, value: 1 });
  assert.throws(() => c.inc({}, -1), /cannot decrease/);
  assert.throws(() => r.add(new Counter("x_total", "again")), /registered twice/);
});

test("histogram buckets are cumulative, with +Inf, _sum and _count", () => {
  const h = new Histogram("lat_seconds", "Latency.", [5, 1]);
  for (const v of [0.5, 1, 3, 10]) h.observe(v);
  const s = parseExposition(h.render().join("\n"));
  const get = (name: string, le?: string) => s.find((x) => x.name === name && x.labels.le === le)!.value;
  assert.equal(get("lat_seconds_bucket", "1"), 2, "le is inclusive");
  assert.equal(get("lat_seconds_bucket", "5"), 3);
  assert.equal(get("lat_seconds_bucket", "+Inf"), 4);
  assert.equal(get("lat_seconds_count"), 4);
  assert.equal(get("lat_seconds_sum"), 14.5);
  assert.deepEqual(h.render().slice(0, 2), ["# HELP lat_seconds Latency.", "# TYPE lat_seconds histogram"]);
});

test("names follow Prometheus conventions: counters end in _total, others do not; HELP is escaped", () => {
  assert.throws(() => new Counter("mxd_things", "x"), /must end in _total/);
  assert.throws(() => new Gauge("mxd_things_total", "x", () => []), /must not end in _total/);
  assert.throws(() => new Histogram("bad-name", "x", [1]), /invalid metric name/);
  assert.throws(() => new Histogram("lat_seconds_count", "x", [1]), /_count/);
  const c = new Counter("x_total", "a \\ b\nc");
  assert.deepEqual(c.render(), ["# HELP x_total a \\\\ b\\nc", "# TYPE x_total counter"]);
  assert.throws(() => c.inc({ "bad-label": "v" }), /invalid label name/);
  assert.throws(() => c.inc({ __reserved: "v" }), /invalid label name/);
});

test("every mxd metric: HELP and TYPE once, right before its samples; counters _total; units in names; series from the start", async () => {
  const { MxdMetrics } = await import("../../src/admin/mxd-metrics.js");
  const { INITIAL_CONTROL } = await import("../../src/queue/state.js");
  const m = new MxdMetrics();
  const queue = { counts: () => ({ queued: 1, deferred: 2, held: 3, total: 6, active: 0, parked: 1 }), pauseState: { ...INITIAL_CONTROL, pausedDomains: ["p.test"] } };
  const rateLimits = () => ({ rules: [{ rule: "client-messages", limit: 100, per: "1m", hits: 7 }, { rule: "user-recipients", limit: 0, per: "1h", hits: 0 }], trackedKeys: 12, maxTrackedKeys: 1000, evictions: 0 });
  m.bind({ queue: queue as never, inbound: () => 0, outbound: () => 0, startedAtMs: 1_700_000_000_000, rateLimits, proxyRefused: () => new Map([["untrusted", 2]]), authBlocked: () => 4, dnsCache: () => ({ hits: 40, shared: 3, queries: 5, entries: 4 }) });
  const text = m.registry.render();
  const lines = text.trimEnd().split("\n");
  const types = new Map<string, string>();
  let current = "";
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const help = /^# HELP (\S+) \S/.exec(l);
    if (help) {
      assert.ok(!types.has(help[1]!), `${help[1]} declared twice`);
      const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(lines[++i]!);
      assert.ok(type && type[1] === help[1], `TYPE follows HELP for ${help[1]}`);
      types.set(help[1]!, type[2]!);
      current = help[1]!;
      continue;
    }
    const name = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(l)![1]!;
    const base = types.get(current) === "histogram" ? name.replace(/_(bucket|sum|count)$/, "") : name;
    assert.equal(base, current, `sample ${l} belongs to the metric declared above it`);
  }
  for (const [name, type] of types) {
    assert.equal(name.startsWith("mxd_"), true, name);
    assert.equal(type === "counter", name.endsWith("_total"), `${name}: ${type}`);
    if (/latency|time|duration/.test(name)) assert.match(name, /_seconds(_total)?$/, `${name}: time in seconds, named so`);
  }
  const samples = parseExposition(text);
  const v = (n: string, l: Record<string, string> = {}) => samples.find((s) => s.name === n && Object.entries(l).every(([k, x]) => s.labels[k] === x))?.value;
  assert.equal(v("mxd_messages_accepted_total"), 0, "exported before the first message");
  assert.equal(v("mxd_dead_letters_total"), 0);
  assert.equal(v("mxd_delivery_latency_seconds_count"), 0);
  assert.equal(v("mxd_delivery_latency_seconds_bucket", { le: "+Inf" }), 0);
  assert.equal(v("mxd_queue_messages", { state: "held" }), 3);
  assert.equal(v("mxd_domain_paused", { domain: "p.test" }), 1);
  assert.equal(v("mxd_start_time_seconds"), 1_700_000_000);
  for (const result of ["success", "failure", "blocked", "unavailable"]) assert.equal(v("mxd_auth_attempts_total", { result }), 0, `auth ${result} from the start`);
  assert.equal(v("mxd_auth_blocked_clients"), 4);
  assert.deepEqual(["hit", "shared", "query"].map((result) => v("mxd_dns_cache_lookups_total", { result })), [40, 3, 5]);
  assert.equal(v("mxd_dns_cache_entries"), 4);
  assert.equal(v("mxd_rate_limit", { rule: "client-messages", per: "1m" }), 100);
  assert.equal(v("mxd_rate_limit", { rule: "user-recipients" }), 0);
  assert.equal(v("mxd_rate_limit_hits_total", { rule: "client-messages" }), 7);
  assert.equal(v("mxd_rate_limit_tracked_keys"), 12);
  assert.equal(v("mxd_proxy_protocol_refused_total", { reason: "untrusted" }), 2);
  assert.equal(v("mxd_proxy_protocol_refused_total", { reason: "timeout" }), 0, "every reason exported from the start");
});
