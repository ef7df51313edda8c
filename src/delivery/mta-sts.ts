// MTA-STS (RFC 8461), the pure part: the `_mta-sts` TXT record, the policy file, MX pattern
// matching, and the cache decisions (use the cached policy, fetch, or none) in virtual time.
// delivery/mta-sts-policies.ts does the lookups, the HTTPS fetch and the disk cache with these.

export type StsMode = "enforce" | "testing" | "none";

export interface StsPolicy {
  mode: StsMode;
  /** Seconds (RFC 8461 §3.2: at most 31557600). */
  maxAge: number;
  /** MX patterns: "mx.example.com" or "*.example.com" (lower case, no trailing dot). */
  mx: string[];
}

/** A policy as kept in the cache (memory and spoolDir/mta-sts/DOMAIN.json). */
export interface CachedStsPolicy {
  domain: string;
  /** The TXT record's id when the policy was fetched. */
  id: string;
  policy: StsPolicy;
  /** ms since epoch. */
  fetchedAt: number;
  /** fetchedAt + max_age (capped by delivery.tls.mtaSts.maxAge). */
  expiresAt: number;
}

export type StsTxt =
  | { kind: "record"; id: string }
  /** No STS record (NXDOMAIN, NODATA, only other TXT records, or more than one STS record). */
  | { kind: "none"; reason: string }
  /** The lookup failed temporarily. */
  | { kind: "failed"; reason: string };

/** RFC 8461 §3.1: the longest policy body a sender reads (64 KB). */
export const STS_MAX_BODY = 64 * 1024;
/** RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year). */
export const STS_MAX_AGE_SECONDS = 31_557_600;

const ID_RE = /^[A-Za-z0-9]{1,32}$/;

/**
 * RFC 8461 §3.1: among the TXT records of `_mta-sts.DOMAIN` (each a list of strings, joined),
 * those starting with "v=STSv1" count; exactly one must exist, with a valid `id`. Other records
 * are ignored; several STS records mean no policy ("senders MUST assume ... not implemented").
 */
export function parseStsTxt(records: readonly (readonly string[])[]): StsTxt {
  const sts = records.map((r) => r.join("")).filter((t) => /^v=STSv1\s*(;|$)/.test(t));
  if (sts.length === 0) return { kind: "none", reason: "no v=STSv1 TXT record" };
  if (sts.length > 1) return { kind: "none", reason: `${sts.length} v=STSv1 TXT records (RFC 8461 §3.1: exactly one)` };
  const fields = new Map<string, string>();
  for (const part of sts[0]!.split(";")) {
    const f = part.trim();
    if (!f) continue;
    const eq = f.indexOf("=");
    if (eq <= 0) return { kind: "none", reason: `malformed field ${JSON.stringify(f.slice(0, 40))} in the STS record` };
    const k = f.slice(0, eq).trim();
    if (!fields.has(k)) fields.set(k, f.slice(eq + 1).trim());
  }
  const id = fields.get("id");
  if (id === undefined) return { kind: "none", reason: "STS record without id" };
  if (!ID_RE.test(id)) return { kind: "none", reason: `STS record id ${JSON.stringify(id.slice(0, 40))} is not 1-32 letters and digits` };
  return { kind: "record", id };
}

export type StsParse = { ok: true; policy: StsPolicy } | { ok: false; reason: string };

/**
 * RFC 8461 §3.2: "key: value" lines (CRLF; a bare LF is accepted), `version: STSv1` first,
 * `mode`, `max_age` (1-10 digits, capped at a year), one `mx` line per pattern (required
 * unless mode is none). Unknown keys are ignored; the first value of a single-valued key wins.
 */
export function parseStsPolicy(text: string): StsParse {
  const lines = text.split(/\r?\n/).map((l) => l.replace(/[ \t]+$/, "")).filter((l) => l !== "");
  const first = new Map<string, string>();
  const mx: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^([A-Za-z0-9_]+)[ \t]*:[ \t]*(.*)$/.exec(line);
    if (!m) return { ok: false, reason: `line ${i + 1} is not "key: value"` };
    const [, k, v] = m as unknown as [string, string, string];
    if (i === 0 && k !== "version") return { ok: false, reason: "the first line must be version: STSv1" };
    if (k === "mx") mx.push(v.toLowerCase().replace(/\.$/, ""));
    else if (!first.has(k)) first.set(k, v);
  }
  if (first.get("version") !== "STSv1") return { ok: false, reason: `version ${JSON.stringify(first.get("version") ?? "")} is not STSv1` };
  const mode = first.get("mode");
  if (mode !== "enforce" && mode !== "testing" && mode !== "none") return { ok: false, reason: `mode ${JSON.stringify(mode ?? "")} is not enforce, testing or none` };
  const age = first.get("max_age");
  if (age === undefined || !/^\d{1,10}$/.test(age)) return { ok: false, reason: `max_age ${JSON.stringify(age ?? "")} is not a number of seconds` };
  for (const p of mx) if (!validPattern(p)) return { ok: false, reason: `mx pattern ${JSON.stringify(p.slice(0, 80))} is not a host name or *.domain` };
  if (mode !== "none" && mx.length === 0) return { ok: false, reason: `mode ${mode} without any mx pattern` };
  return { ok: true, policy: { mode, maxAge: Math.min(Number(age), STS_MAX_AGE_SECONDS), mx } };
}

function validPattern(p: string): boolean {
  const host = p.startsWith("*.") ? p.slice(2) : p;
  return host.length > 0 && host.length <= 253 && host.split(".").every((l) => /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l));
}

/**
 * RFC 8461 §4.1: a pattern is a host name, or "*." and a domain matching exactly one more
 * leftmost label ("*.example.com" matches "mx.example.com", not "a.b.example.com" nor
 * "example.com"). Case-insensitive, trailing dots ignored.
 */
export function mxMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "");
  const h = host.toLowerCase().replace(/\.$/, "");
  if (!p.startsWith("*.")) return p === h;
  const dot = h.indexOf(".");
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

export function policyAllowsMx(policy: StsPolicy, host: string): boolean {
  return policy.mx.some((p) => mxMatches(p, host));
}

/** The HTTPS answer as the fetcher saw it (or why there was none). */
export type StsFetchResult =
  | { ok: true; status: number; contentType: string | undefined; body: string }
  | { ok: false; reason: string };

/**
 * RFC 8461 §3.3: only a 200 counts (redirects are not followed), the media type must be
 * text/plain, the body is a policy. The fetcher enforces the size and time limits.
 */
export function policyFromResponse(r: StsFetchResult): StsParse {
  if (!r.ok) return r;
  if (r.status !== 200) return { ok: false, reason: `HTTP status ${r.status}${r.status >= 300 && r.status < 400 ? " (redirects are not followed, RFC 8461 §3.3)" : ""}` };
  const type = (r.contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "text/plain") return { ok: false, reason: `media type ${JSON.stringify(type)} is not text/plain` };
  return parseStsPolicy(r.body);
}

/** A freshly fetched policy as a cache entry. */
export function cacheEntry(domain: string, id: string, policy: StsPolicy, nowMs: number, maxAgeCapMs: number): CachedStsPolicy {
  return { domain, id, policy, fetchedAt: nowMs, expiresAt: nowMs + Math.min(policy.maxAge * 1000, maxAgeCapMs) };
}

/** Age after which a cached policy is fetched again before use: refreshAfter, or half its lifetime when that is shorter. */
export function refreshAge(c: CachedStsPolicy, refreshAfterMs: number): number {
  return Math.min(refreshAfterMs, (c.expiresAt - c.fetchedAt) / 2);
}

export type StsCacheDecision =
  /** Apply the cached policy without fetching. */
  | { action: "use-cached"; why: string }
  /** Fetch; on failure fall back to the cached policy when it is still valid (`fallback`). */
  | { action: "fetch"; why: string; fallback?: CachedStsPolicy }
  /** No policy applies. */
  | { action: "none"; why: string };

/**
 * What to do for a domain given its TXT answer and what the cache holds (RFC 8461 §3.3, §5.1):
 *  - a TXT id equal to the cached one, and the cached policy young enough: use it;
 *  - a new id, an expired or ageing cached policy (proactive refresh before expiry), or nothing
 *    cached: fetch; a failed fetch falls back to the cached policy while it has not expired;
 *  - no TXT record or a failed lookup: a cached policy that has not expired still applies
 *    ("if a valid policy exists in the cache, the sender MUST apply it"), else there is none.
 */
export function stsCacheDecision(o: { txt: StsTxt; cached?: CachedStsPolicy | undefined; nowMs: number; refreshAfterMs: number }): StsCacheDecision {
  const c = o.cached && o.nowMs < o.cached.expiresAt ? o.cached : undefined;
  if (o.txt.kind !== "record") {
    if (c) return { action: "use-cached", why: `${o.txt.reason}; the cached policy (id ${c.id}) is valid until ${new Date(c.expiresAt).toISOString()}` };
    return { action: "none", why: o.txt.reason };
  }
  if (!c) return { action: "fetch", why: o.cached ? "the cached policy expired" : "no cached policy" };
  if (c.id !== o.txt.id) return { action: "fetch", why: `the TXT id changed (${c.id} → ${o.txt.id})`, fallback: c };
  if (o.nowMs - c.fetchedAt >= refreshAge(c, o.refreshAfterMs)) return { action: "fetch", why: "refreshing the cached policy before it expires", fallback: c };
  return { action: "use-cached", why: "cached" };
}

/**
 * Proactive refresh (RFC 8461 §10.2: keep policies from expiring while no mail flows): the
 * cached domains whose policy is old enough to be fetched again and has not expired yet,
 * oldest first, at most `limit`.
 */
export function refreshDue(entries: Iterable<CachedStsPolicy>, nowMs: number, refreshAfterMs: number, limit: number): string[] {
  return [...entries]
    .filter((c) => nowMs < c.expiresAt && nowMs - c.fetchedAt >= refreshAge(c, refreshAfterMs))
    .sort((a, b) => a.fetchedAt - b.fetchedAt)
    .slice(0, limit)
    .map((c) => c.domain);
}

/** Is a value read back from the disk cache a well-formed entry for `domain`? (never trust a file) */
export function validCacheEntry(v: unknown, domain: string): v is CachedStsPolicy {
  if (!v || typeof v !== "object") return false;
  const c = v as Partial<CachedStsPolicy>;
  const p = c.policy as Partial<StsPolicy> | undefined;
  return (
    c.domain === domain &&
    typeof c.id === "string" &&
    ID_RE.test(c.id) &&
    Number.isFinite(c.fetchedAt) &&
    Number.isFinite(c.expiresAt) &&
    !!p &&
    (p.mode === "enforce" || p.mode === "testing" || p.mode === "none") &&
    Number.isInteger(p.maxAge) &&
    Array.isArray(p.mx) &&
    p.mx.length <= 1000 &&
    p.mx.every((x) => typeof x === "string" && validPattern(x))
  );
}
