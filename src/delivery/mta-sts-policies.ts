// MTA-STS policies of destination domains (RFC 8461): TXT lookup, HTTPS fetch and the cache
// (memory, then spoolDir/mta-sts on disk so policies survive restarts), driven by the pure
// decisions of mta-sts.ts. Every side effect is injected: tests run offline in virtual time.
import type { Clock, TimerHandle } from "../io/clock.js";
import type { Logger } from "../io/log.js";
import { DnsError } from "../io/resolver.js";
import type { StsStore } from "../io/sts-store.js";
import {
  STS_MAX_BODY,
  cacheEntry,
  parseStsTxt,
  policyFromResponse,
  refreshDue,
  stsCacheDecision,
  validCacheEntry,
  type CachedStsPolicy,
  type StsFetchResult,
  type StsTxt,
} from "./mta-sts.js";

export interface MtaStsDeps {
  /** TXT records of a name (throws DnsError; "nxdomain"/"nodata" mean none). */
  txt: (name: string) => Promise<string[][]>;
  /** GET an https URL with the RFC's limits (no redirects, body ≤ maxBytes, deadline). */
  fetch: (url: string, opts: { timeoutMs: number; maxBytes: number }) => Promise<StsFetchResult>;
  store: StsStore;
  now: () => number;
  fetchTimeoutMs: number;
  maxAgeMs: number;
  refreshAfterMs: number;
  logger: Logger;
  /** Policies kept in memory (the disk holds all of them). */
  memoryEntries?: number;
}

/** The policy that applies to a domain now, and how it was obtained. */
export interface StsLookup {
  entry?: CachedStsPolicy;
  /** "fetched", "cached", "cached (fetch failed: …)", or why there is none. */
  how: string;
}

const DEFAULT_MEMORY_ENTRIES = 10_000;
/**
 * A TXT answer is reused this long (node:dns gives no TTL): a busy destination costs one TXT
 * query per 5 minutes, not one per delivery, and an id change is still seen within minutes
 * (RFC 8461 §5.1 allows caching the TXT record up to its TTL).
 */
const TXT_REUSE_MS = 5 * 60_000;
/**
 * After a failed fetch the domain's policy server is not asked again for this long: without
 * it, every delivery to a domain whose policy server hangs would wait out fetchTimeout.
 */
const FETCH_RETRY_MS = 5 * 60_000;
/** Policies refreshed per sweep at most (each is a TXT lookup and an HTTPS fetch). */
const REFRESH_PER_SWEEP = 50;

export class MtaStsPolicies {
  private readonly memory = new Map<string, CachedStsPolicy>();
  /** Recent TXT answers (also "none"), bounded like `memory`. */
  private readonly txtSeen = new Map<string, { at: number; txt: StsTxt }>();
  /** Recent failed fetches, bounded like `memory`. */
  private readonly fetchFailed = new Map<string, { at: number; reason: string }>();
  private readonly inFlight = new Map<string, Promise<StsLookup>>();
  private readonly max: number;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly deps: MtaStsDeps) {
    this.max = deps.memoryEntries ?? DEFAULT_MEMORY_ENTRIES;
  }

  /** The domain's policy (concurrent calls for one domain share one lookup). Never throws. */
  policyFor(domain: string, log: Logger = this.deps.logger): Promise<StsLookup> {
    const d = domain.toLowerCase().replace(/\.$/, "");
    const running = this.inFlight.get(d);
    if (running) return running;
    const p = this.lookup(d, log)
      .catch((e: unknown): StsLookup => {
        log.warn({ domain: d, error: (e as Error).message }, "MTA-STS lookup failed");
        return { how: `lookup failed: ${(e as Error).message}` };
      })
      .finally(() => this.inFlight.delete(d));
    this.inFlight.set(d, p);
    return p;
  }

  /**
   * Refresh cached policies before they expire, also for domains no mail went to lately:
   * the disk cache is read into memory once, then every `everyMs` the due ones are fetched
   * again (refreshDue). A failed refresh keeps the cached policy (policyFor's rules).
   */
  startRefresh(clock: Clock, everyMs: number): void {
    if (this.timer || this.stopped) return;
    const sweep = async () => {
      const due = refreshDue(this.memory.values(), this.deps.now(), this.deps.refreshAfterMs, REFRESH_PER_SWEEP);
      for (const d of due) {
        if (this.stopped) return;
        const r = await this.policyFor(d);
        this.deps.logger.debug({ domain: d, how: r.how }, "MTA-STS policy refreshed");
      }
    };
    const arm = () => {
      if (this.stopped) return;
      this.timer = clock.setTimer(() => void sweep().finally(arm), everyMs);
    };
    void this.warm().finally(arm);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Load the disk cache into memory (bounded), so the refresh sweep knows every cached domain. */
  private async warm(): Promise<void> {
    const domains = await this.deps.store.domains(this.max).catch(() => [] as string[]);
    for (const d of domains) await this.cached(d);
  }

  private async lookup(domain: string, log: Logger): Promise<StsLookup> {
    const [txt, cached] = await Promise.all([this.recentTxt(domain), this.cached(domain)]);
    const now = this.deps.now();
    const decision = stsCacheDecision({ txt, cached, nowMs: now, refreshAfterMs: this.deps.refreshAfterMs });
    if (decision.action === "none") return { how: decision.why };
    if (decision.action === "use-cached") return { entry: cached!, how: `cached (${decision.why})` };
    const id = (txt as Extract<StsTxt, { kind: "record" }>).id;
    const url = `https://mta-sts.${domain}/.well-known/mta-sts.txt`;
    const failed = this.fetchFailed.get(domain);
    if (failed && now - failed.at < FETCH_RETRY_MS && now >= failed.at) {
      const reason = `${failed.reason}, at ${new Date(failed.at).toISOString()}; not asked again before ${new Date(failed.at + FETCH_RETRY_MS).toISOString()}`;
      if (decision.fallback) return { entry: decision.fallback, how: `cached (fetch failed: ${reason})` };
      return { how: `no policy (fetch failed: ${reason})` };
    }
    const parsed = policyFromResponse(await this.deps.fetch(url, { timeoutMs: this.deps.fetchTimeoutMs, maxBytes: STS_MAX_BODY }));
    if (!parsed.ok) {
      putBounded(this.fetchFailed, domain, { at: this.deps.now(), reason: parsed.reason }, this.max);
      // RFC 8461 §5.1: a policy that cannot be fetched leaves a valid cached one in force.
      log.warn({ domain, url, error: parsed.reason, why: decision.why, fallback: decision.fallback ? decision.fallback.id : null }, "MTA-STS policy fetch failed");
      if (decision.fallback) return { entry: decision.fallback, how: `cached (fetch failed: ${parsed.reason})` };
      return { how: `no policy (fetch failed: ${parsed.reason})` };
    }
    this.fetchFailed.delete(domain);
    const entry = cacheEntry(domain, id, parsed.policy, this.deps.now(), this.deps.maxAgeMs);
    this.remember(entry);
    try {
      await this.deps.store.save(domain, entry);
    } catch (e) {
      log.warn({ domain, error: (e as Error).message }, "MTA-STS policy could not be written to the cache");
    }
    log.info({ domain, id, mode: entry.policy.mode, mx: entry.policy.mx, maxAge: entry.policy.maxAge, why: decision.why }, "MTA-STS policy fetched");
    return { entry, how: "fetched" };
  }

  /** The TXT answer, reused for TXT_REUSE_MS (a failed lookup is never reused). */
  private async recentTxt(domain: string): Promise<StsTxt> {
    const now = this.deps.now();
    const seen = this.txtSeen.get(domain);
    if (seen && now - seen.at < TXT_REUSE_MS && now >= seen.at) return seen.txt;
    const txt = await this.txt(domain);
    if (txt.kind !== "failed") putBounded(this.txtSeen, domain, { at: now, txt }, this.max);
    else this.txtSeen.delete(domain);
    return txt;
  }

  private async txt(domain: string): Promise<StsTxt> {
    try {
      return parseStsTxt(await this.deps.txt(`_mta-sts.${domain}`));
    } catch (e) {
      if (e instanceof DnsError && (e.kind === "nxdomain" || e.kind === "nodata")) return { kind: "none", reason: `no _mta-sts.${domain} TXT record` };
      return { kind: "failed", reason: `TXT lookup of _mta-sts.${domain} failed: ${(e as Error).message}` };
    }
  }

  private async cached(domain: string): Promise<CachedStsPolicy | undefined> {
    const hit = this.memory.get(domain);
    if (hit) return hit;
    const v = await this.deps.store.load(domain).catch(() => undefined);
    if (!validCacheEntry(v, domain)) return undefined;
    this.remember(v);
    return v;
  }

  private remember(e: CachedStsPolicy): void {
    // Bounded: the oldest entries leave memory (they stay on disk).
    putBounded(this.memory, e.domain, e, this.max);
  }
}

/** Set key (as the newest entry) and drop the oldest entries past `max`: every map here is bounded. */
function putBounded<V>(m: Map<string, V>, key: string, value: V, max: number): void {
  m.delete(key);
  m.set(key, value);
  while (m.size > max) m.delete(m.keys().next().value!);
}
