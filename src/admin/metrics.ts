// Prometheus text exposition format 0.0.4, hand-written: counters, gauges (set or computed at
// scrape time) and histograms, with labels. https://prometheus.io/docs/instrumenting/exposition_formats/
export type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  // Counters are incremented per recipient (a fan-out: thousands a second); most values need no escaping.
  if (!/[\\\n"]/.test(v)) return v;
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Names follow https://prometheus.io/docs/practices/naming/: valid characters, counters end in _total. */
function checkName(name: string, type: "counter" | "gauge" | "histogram"): void {
  if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
  if (type === "counter" && !name.endsWith("_total")) throw new Error(`counter ${name} must end in _total`);
  if (type !== "counter" && name.endsWith("_total")) throw new Error(`${type} ${name} must not end in _total`);
  if (type === "histogram" && /_(bucket|sum|count)$/.test(name)) throw new Error(`histogram ${name} must not end in _bucket, _sum or _count`);
}

/** HELP text escaping: backslash and line feed (exposition format 0.0.4). */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function header(name: string, help: string, type: string): string[] {
  return [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
}

function labelText(l: Labels): string {
  const keys = Object.keys(l).sort();
  for (const k of keys) if (!LABEL_NAME.test(k) || k.startsWith("__")) throw new Error(`invalid label name ${JSON.stringify(k)}`);
  return keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(l[k]!)}"`).join(",")}}` : "";
}

function num(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

interface Metric {
  readonly name: string;
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels; v: number }>();
  constructor(readonly name: string, readonly help: string) {
    checkName(name, "counter");
  }

  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new Error(`counter ${this.name} cannot decrease`);
    const k = labelText(labels);
    const e = this.values.get(k);
    if (e) e.v += by;
    else this.values.set(k, { labels, v: by });
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels))?.v ?? 0;
  }

  render(): string[] {
    const out = header(this.name, this.help, "counter");
    for (const [k, e] of this.values) out.push(`${this.name}${k} ${num(e.v)}`);
    return out;
  }
}

type Samples = () => { labels?: Labels; value: number }[];

/** A metric read when scraped: `collect` returns the current samples. */
class Collected implements Metric {
  constructor(readonly name: string, readonly help: string, private readonly type: "counter" | "gauge", private readonly collect: Samples) {
    checkName(name, type);
  }

  render(): string[] {
    const out = header(this.name, this.help, this.type);
    for (const s of this.collect()) out.push(`${this.name}${labelText(s.labels ?? {})} ${num(s.value)}`);
    return out;
  }
}

/** A gauge read when scraped. */
export class Gauge extends Collected {
  constructor(name: string, help: string, collect: Samples) {
    super(name, help, "gauge", collect);
  }
}

/**
 * A counter whose values live elsewhere (the SMTP server's refusal and rate limit tallies),
 * read when scraped. The source must only ever grow.
 */
export class CollectedCounter extends Collected {
  constructor(name: string, help: string, collect: Samples) {
    super(name, help, "counter", collect);
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  readonly buckets: number[];
  constructor(readonly name: string, readonly help: string, buckets: number[]) {
    checkName(name, "histogram");
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  /** Export a series (all zero) before its first observation, so that rate() works from the start. */
  init(labels: Labels = {}): void {
    const k = labelText(labels);
    if (!this.series.has(k)) this.series.set(k, { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 });
  }

  observe(value: number, labels: Labels = {}): void {
    this.init(labels);
    const s = this.series.get(labelText(labels))!;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  render(): string[] {
    const out = header(this.name, this.help, "histogram");
    for (const s of this.series.values()) {
      // Buckets are cumulative: counts[i] already includes every smaller bucket.
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelText({ ...s.labels, le: num(b) })} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText({ ...s.labels, le: "+Inf" })} ${s.count}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${num(s.sum)}`);
      out.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }

  render(): string {
    return this.metrics.flatMap((m) => m.render()).join("\n") + "\n";
  }
}
