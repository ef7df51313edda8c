// mxd's metrics (docs/admin-api.md lists them). Counters and the latency histogram are fed by
// the queue's events and the SMTP server's onQueued; gauges are read from the live objects at
// scrape time, so they can never drift from the truth.
import { CollectedCounter, Counter, Gauge, Histogram, Registry } from "./metrics.js";
import type { QueueEvents, QueueManager } from "../queue/worker.js";
import type { DnsCacheStats } from "../io/dns-cache.js";

/** Seconds: from a second to the default 5-day queue lifetime. */
export const LATENCY_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400, 86400, 432000];

export interface GaugeSources {
  queue: QueueManager;
  /** Inbound SMTP connections open now. */
  inbound: () => number;
  /** Outbound SMTP deliveries (connections in use) now. */
  outbound: () => number;
  startedAtMs: number;
  /** Client IPs in their failed-AUTH back-off now (absent: no AUTH configured). */
  authBlocked?: () => number;
  /** The inbound rate limits: rules in force, their hits, the tracked keys (smtp/server.ts). */
  rateLimits: () => { rules: { rule: string; limit: number; hits: number; per: string }[]; trackedKeys: number; maxTrackedKeys: number; evictions: number };
  /** Connections refused on PROXY protocol listeners, by reason. */
  proxyRefused: () => ReadonlyMap<string, number>;
  /** The delivery DNS cache's counters (absent: dns.cache off). */
  dnsCache?: () => DnsCacheStats;
}

/** Every reason a PROXY protocol listener refuses a connection (exported from the start as 0). */
const PROXY_REFUSALS = ["untrusted", "bad-header", "timeout"];

export class MxdMetrics {
  readonly registry = new Registry();
  readonly accepted = this.registry.add(new Counter("mxd_messages_accepted_total", "Messages accepted over SMTP and queued."));
  readonly results = this.registry.add(new Counter("mxd_recipient_deliveries_total", "Delivery attempt results per recipient, by outcome (delivered, deferred, bounced)."));
  readonly dead = this.registry.add(new Counter("mxd_dead_letters_total", "Entries moved to the dead-letter folder (spoolDir/dead)."));
  readonly badEntries = this.registry.add(new Counter("mxd_spool_bad_entries_total", "Spool state files that could not be loaded (not JSON, of the wrong shape, too large); each goes to dead/ and its sender gets a bounce when the envelope is readable."));
  readonly auth = this.registry.add(new Counter("mxd_auth_attempts_total", "SMTP AUTH verdicts on submission listeners, by result (success, failure, blocked: refused during a client's failed-AUTH back-off, unavailable: users file unreadable)."));
  readonly reloads = this.registry.add(new Counter("mxd_config_reloads_total", "Configuration reloads (SIGHUP, mxd reload), by result: applied, or refused (the daemon kept its previous configuration)."));
  readonly latency = this.registry.add(new Histogram("mxd_delivery_latency_seconds", "Time from acceptance to successful delivery, per recipient.", LATENCY_BUCKETS));

  readonly queueEvents: QueueEvents = {
    result: (e) => {
      this.results.inc({ outcome: e.outcome });
      if (e.outcome === "delivered") this.latency.observe(Math.max(0, e.sinceReceivedMs) / 1000);
    },
    dead: () => this.dead.inc(),
    badEntry: () => this.badEntries.inc(),
  };

  constructor() {
    // Every series is exported from the start (as 0), so rate() and increase() work before
    // the first event and alerts on absent series are not needed.
    for (const outcome of ["delivered", "deferred", "bounced"]) this.results.inc({ outcome }, 0);
    this.accepted.inc({}, 0);
    this.dead.inc({}, 0);
    this.badEntries.inc({}, 0);
    for (const result of ["success", "failure", "blocked", "unavailable"]) this.auth.inc({ result }, 0);
    for (const result of ["applied", "refused"]) this.reloads.inc({ result }, 0);
    this.latency.init();
  }

  /** Gauges over the running daemon; call once it is wired. */
  bind(s: GaugeSources): void {
    const r = this.registry;
    r.add(new Gauge("mxd_queue_messages", "Messages in the queue by state (queued: not tried yet, deferred: retrying, held: until released).", () => {
      const c = s.queue.counts();
      return (["queued", "deferred", "held"] as const).map((state) => ({ labels: { state }, value: c[state] }));
    }));
    r.add(new Gauge("mxd_queue_parked_messages", "Due messages waiting because every destination they need is paused.", () => [{ value: s.queue.counts().parked }]));
    r.add(new Gauge("mxd_connections_active", "Open SMTP connections: in (clients) and out (deliveries in progress).", () => [
      { labels: { direction: "in" }, value: s.inbound() },
      { labels: { direction: "out" }, value: s.outbound() },
    ]));
    r.add(new Gauge("mxd_delivery_paused", "1 when all outbound delivery is paused (mxd queue pause).", () => [{ value: s.queue.pauseState.paused ? 1 : 0 }]));
    r.add(new Gauge("mxd_domain_paused", "1 for each destination domain paused with mxd queue pause --domain.", () => s.queue.pauseState.pausedDomains.map((domain) => ({ labels: { domain }, value: 1 }))));
    if (s.authBlocked) {
      const blocked = s.authBlocked;
      r.add(new Gauge("mxd_auth_blocked_clients", "Client IPs whose AUTH attempts are refused now (failed-AUTH back-off, auth.failures).", () => [{ value: blocked() }]));
    }
    r.add(new Gauge("mxd_rate_limit", "Inbound rate limits in force: events allowed per window (the per label, as configured), by rule (client-connections, client-messages, client-recipients, user-messages, user-recipients); 0 = off.", () =>
      s.rateLimits().rules.map((x) => ({ labels: { rule: x.rule, per: x.per }, value: x.limit }))));
    r.add(new CollectedCounter("mxd_rate_limit_hits_total", "Connections, messages and recipients refused by an inbound rate limit, by rule.", () =>
      s.rateLimits().rules.map((x) => ({ labels: { rule: x.rule }, value: x.hits }))));
    r.add(new Gauge("mxd_rate_limit_tracked_keys", "Clients and users the rate limiter holds state for (at most rateLimits.maxTrackedKeys).", () => [{ value: s.rateLimits().trackedKeys }]));
    r.add(new CollectedCounter("mxd_rate_limit_evictions_total", "Rate limiter entries forgotten to stay under rateLimits.maxTrackedKeys.", () => [{ value: s.rateLimits().evictions }]));
    r.add(new CollectedCounter("mxd_proxy_protocol_refused_total", "Connections refused on PROXY protocol listeners, by reason (untrusted: not from proxyProtocol.trustedNetworks; bad-header; timeout).", () => {
      const m = s.proxyRefused();
      return PROXY_REFUSALS.map((reason) => ({ labels: { reason }, value: m.get(reason) ?? 0 }));
    }));
    if (s.dnsCache) {
      const dns = s.dnsCache;
      r.add(new CollectedCounter("mxd_dns_cache_lookups_total", "Delivery DNS lookups by result: hit (answered from the cache), shared (joined a query in flight), query (sent to the DNS server).", () => {
        const x = dns();
        return [
          { labels: { result: "hit" }, value: x.hits },
          { labels: { result: "shared" }, value: x.shared },
          { labels: { result: "query" }, value: x.queries },
        ];
      }));
      r.add(new Gauge("mxd_dns_cache_entries", "DNS answers the delivery cache holds now (at most dns.cache.maxEntries).", () => [{ value: dns().entries }]));
    }
    r.add(new Gauge("mxd_start_time_seconds", "When the daemon started (Unix time).", () => [{ value: Math.floor(s.startedAtMs / 1000) }]));
  }
}
