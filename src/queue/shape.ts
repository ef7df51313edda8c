// `mxd queue summary`: Postfix's qshape — pending recipients by destination domain and age
// bucket, with totals and the top deferral reasons per domain. Pure: fed one message state at
// a time (the CLI streams the spool through it), so memory is per domain, not per message.
import type { MessageMeta } from "../core/envelope.js";

/** Upper bounds of the age buckets, minutes (qshape's defaults: 5 10 20 40 80 160 320 640 1280 1280+). */
export const BUCKETS_MIN = [5, 10, 20, 40, 80, 160, 320, 640, 1280] as const;
export const BUCKET_LABELS = ["0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", "160-320m", "320-640m", "640-1280m", "1280m+"];

export interface DomainShape {
  domain: string;
  total: number;
  /** Recipients per age bucket (BUCKET_LABELS order). */
  buckets: number[];
  /** Recipients of held messages (also counted in total). */
  held: number;
  /** Most frequent last replies of deferred recipients, most frequent first. */
  reasons: { reason: string; count: number }[];
}

export interface QueueShape {
  total: DomainShape;
  domains: DomainShape[];
  messages: number;
}

export function bucketOf(ageMs: number): number {
  const min = ageMs / 60_000;
  const i = BUCKETS_MIN.findIndex((b) => min < b);
  return i < 0 ? BUCKETS_MIN.length : i;
}

/** Group similar replies: numbers, hex and addresses vary, the reason does not. */
export function reasonKey(reply: string): string {
  return reply
    .replace(/<[^>]*>/g, "<…>")
    .replace(/\[[0-9a-fA-F:.]+\]/g, "[…]")
    .replace(/\b\d{1,3}(\.\d{1,3}){3}\b/g, "…")
    .replace(/\s+/g, " ")
    .slice(0, 120);
}

export class ShapeBuilder {
  private readonly domains = new Map<string, { shape: DomainShape; reasons: Map<string, number> }>();
  private messages = 0;

  add(m: MessageMeta, nowMs: number): void {
    this.messages++;
    const b = bucketOf(nowMs - Date.parse(m.receivedAt));
    for (const r of m.recipients) {
      if (r.status !== "pending") continue;
      let d = this.domains.get(r.domain);
      if (!d) {
        d = { shape: { domain: r.domain, total: 0, buckets: BUCKET_LABELS.map(() => 0), held: 0, reasons: [] }, reasons: new Map() };
        this.domains.set(r.domain, d);
      }
      d.shape.total++;
      d.shape.buckets[b]!++;
      if (m.held) d.shape.held++;
      const last = r.history[r.history.length - 1];
      if (last && last.outcome === "transient") {
        const k = reasonKey(last.reply);
        // Bounded: a domain with thousands of distinct replies keeps the first 1000 kinds.
        if (d.reasons.has(k) || d.reasons.size < 1000) d.reasons.set(k, (d.reasons.get(k) ?? 0) + 1);
      }
    }
  }

  result(topReasons = 3): QueueShape {
    const total: DomainShape = { domain: "TOTAL", total: 0, buckets: BUCKET_LABELS.map(() => 0), held: 0, reasons: [] };
    const all = new Map<string, number>();
    const domains = [...this.domains.values()].map(({ shape, reasons }) => {
      total.total += shape.total;
      total.held += shape.held;
      shape.buckets.forEach((n, i) => (total.buckets[i]! += n));
      for (const [k, n] of reasons) all.set(k, (all.get(k) ?? 0) + n);
      return { ...shape, reasons: top(reasons, topReasons) };
    });
    domains.sort((a, b) => b.total - a.total || a.domain.localeCompare(b.domain));
    total.reasons = top(all, topReasons);
    return { total, domains, messages: this.messages };
  }
}

function top(m: Map<string, number>, n: number): { reason: string; count: number }[] {
  return [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, n).map(([reason, count]) => ({ reason, count }));
}

/** The qshape table: one row per domain (TOTAL first), one column per age bucket. */
export function renderShape(s: QueueShape): string {
  const rows = [s.total, ...s.domains];
  const w = Math.max(6, ...rows.map((r) => r.domain.length));
  const cols = ["T", ...BUCKET_LABELS];
  const cw = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => String(i === 0 ? r.total : r.buckets[i - 1]).length)));
  const line = (name: string, cells: (string | number)[]) => name.padEnd(w) + "  " + cells.map((c, i) => String(c).padStart(cw[i]!)).join(" ");
  const out = [line("DOMAIN", cols)];
  for (const r of rows) out.push(line(r.domain, [r.total, ...r.buckets]));
  const withReasons = s.domains.filter((d) => d.reasons.length);
  if (withReasons.length) {
    out.push("", "top deferral reasons:");
    for (const d of withReasons) {
      out.push(`  ${d.domain}`);
      for (const r of d.reasons) out.push(`    ${String(r.count).padStart(5)}  ${r.reason}`);
    }
  }
  return out.join("\n");
}
