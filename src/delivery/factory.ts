// Builds the production courier from the config: local drop domains to the maildir writer,
// everything else to our SMTP client over real sockets.
import { networkInterfaces } from "node:os";
import type { Config } from "../config.js";
import type { Logger } from "../io/log.js";
import { createNodeTimedResolver, withoutTtl, type Resolver } from "../io/resolver.js";
import { cachingResolver, dnsCacheSettings, type DnsCacheStats } from "../io/dns-cache.js";
import type { Clock } from "../io/clock.js";
import { nodeConnector } from "../io/connector.js";
import { httpsGet, resolverLookup } from "../io/https-fetch.js";
import { fileStsStore } from "../io/sts-store.js";
import type { Courier } from "./courier.js";
import type { Dane } from "./dane-types.js";
import { createDane } from "./dane.js";
import { createNodeDnssecResolver } from "../io/dnssec-resolver.js";
import { MtaStsPolicies } from "./mta-sts-policies.js";
import { SmtpCourier } from "./smtp-courier.js";
import { LocalDropCourier } from "./local-drop.js";
import { RoutingCourier } from "./routing-courier.js";

/**
 * Addresses at which *this* MTA receives mail on the delivery port: an MX pointing at one of
 * them is a mail loop (RFC 5321 §5.1). Listeners on another port (the default 2525) are not.
 */
export function ownAddresses(config: Config): string[] {
  const out = new Set<string>();
  for (const l of config.listen) {
    if (l.port !== config.delivery.port) continue;
    if (l.host === "0.0.0.0" || l.host === "::") {
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
    } else out.add(l.host);
  }
  return [...out];
}

/**
 * The resolver of delivery (MX, A/AAAA, MTA-STS TXT and the policy host's address) over
 * dns.servers, behind the in-process cache unless dns.cache turns it off. DANE has its own.
 */
export function createDeliveryResolver(config: Config, now: () => number): Resolver & { stats?(): DnsCacheStats } {
  const c = config.dns;
  const timed = createNodeTimedResolver({ servers: c.servers, timeoutMs: c.timeout, tries: c.tries });
  const settings = dnsCacheSettings(c.cache);
  return settings ? cachingResolver(timed, settings, now) : withoutTtl(timed);
}

/** How often cached MTA-STS policies are checked for a proactive refresh. */
const MTA_STS_SWEEP_MS = 10 * 60_000;

/**
 * MTA-STS over the real world: TXT through the resolver, the policy over HTTPS (names resolved
 * by the same resolver, CAs = system + delivery.tls.caFile), the cache in spoolDir/mta-sts.
 * Undefined when delivery.tls.mtaSts.enabled is false or the resolver cannot ask for TXT.
 */
export function createMtaSts(d: { config: Config; resolver: Resolver; logger: Logger; now: () => number }): MtaStsPolicies | undefined {
  const c = d.config.delivery.tls;
  const txt = d.resolver.txt?.bind(d.resolver);
  if (!c.mtaSts.enabled || !txt) return undefined;
  const lookup = resolverLookup(d.resolver);
  return new MtaStsPolicies({
    txt,
    fetch: (url, o) => httpsGet(url, { ...o, lookup, ...(c.caFile ? { caFile: c.caFile } : {}) }),
    store: fileStsStore(d.config.spoolDir),
    now: d.now,
    fetchTimeoutMs: c.mtaSts.fetchTimeout,
    maxAgeMs: c.mtaSts.maxAge,
    refreshAfterMs: c.mtaSts.refreshAfter,
    logger: d.logger,
  });
}

/**
 * DANE (RFC 7672) over the validating resolver at delivery.dane.resolver (its AD bit trusted);
 * undefined when none is configured, which the TLS policy treats as "no DNSSEC" (insecure).
 */
export function createDaneFromConfig(config: Config, now?: () => number): Dane | undefined {
  const c = config.delivery.dane;
  if (!c.resolver) return undefined;
  const resolver = createNodeDnssecResolver({ server: c.resolver, timeoutMs: c.timeout, tries: c.tries, allowRemote: c.allowRemoteResolver });
  return createDane({ resolver, ...(now ? { now } : {}) });
}

/**
 * The whole courier: local drop domains to the maildir writer, the rest to `remote` — the SMTP
 * courier built here, or one given (the delivery thread's proxy, delivery/thread-courier.ts).
 */
export function createCourier(d: { config: Config; resolver?: Resolver; logger: Logger; clock?: Clock; dane?: Dane; remote?: Courier }): RoutingCourier {
  const clock = d.clock;
  const remote = d.remote ?? createSmtpCourier({ ...d, resolver: d.resolver ?? createDeliveryResolver(d.config, clock ? () => clock.now() : Date.now) });
  return new RoutingCourier(d.config.localDomains, new LocalDropCourier({ config: d.config }), remote);
}

/** The courier for remote domains: MX resolution, TLS policy, our SMTP client over real sockets. */
export function createSmtpCourier(d: { config: Config; resolver: Resolver; logger: Logger; clock?: Clock; dane?: Dane }): Courier {
  const clock = d.clock;
  const dane = d.dane ?? createDaneFromConfig(d.config, clock ? () => clock.now() : undefined);
  const mtaSts = createMtaSts({ config: d.config, resolver: d.resolver, logger: d.logger, now: clock ? () => clock.now() : Date.now });
  // Cached policies are refreshed in the background too (the daemon passes its clock).
  if (mtaSts && clock) mtaSts.startRefresh(clock, MTA_STS_SWEEP_MS);
  const courier = new SmtpCourier({
    config: d.config,
    resolver: d.resolver,
    connector: nodeConnector,
    logger: d.logger,
    localAddresses: ownAddresses(d.config),
    ...(clock ? { now: () => clock.now() } : {}),
    ...(mtaSts ? { mtaSts } : {}),
    ...(dane ? { dane } : {}),
  });
  return {
    deliver: (req) => courier.deliver(req),
    close: () => courier.close(),
    reconfigure: (config) => courier.reconfigure(config, ownAddresses(config)),
  };
}
