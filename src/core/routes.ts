// Config `routes`: which entry applies to a domain. Pure; read by the config check (postmaster
// reachable?), the router and the delivery log line.
import { normalizeHost } from "./host-port.js";

/**
 * Lookup by destination domain (routes, delivery.tls.policy.domains): exact key first, then
 * ".example.com" keys for subdomains, longest first.
 */
export function findRoute<T = readonly string[]>(routes: Readonly<Record<string, T>>, domain: string): T | undefined {
  const d = normalizeHost(domain);
  const keys = Object.keys(routes);
  const exact = keys.find((k) => normalizeHost(k) === d);
  if (exact !== undefined) return routes[exact];
  let best: string | undefined;
  for (const k of keys) {
    const kk = normalizeHost(k);
    if (kk.startsWith(".") && d.endsWith(kk) && (best === undefined || kk.length > normalizeHost(best).length)) best = k;
  }
  return best !== undefined ? routes[best] : undefined;
}
