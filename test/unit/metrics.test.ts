// Prometheus text exposition: names, labels, escaping, cumulative histogram buckets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry, parseExposition } from "../../src/admin/metrics.js";

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
