// Builds the production courier from the config: our SMTP client over real sockets.
import { networkInterfaces } from "node:os";
import type { Config } from "../config.js";
import type { Logger } from "../io/log.js";
import type { Resolver } from "../io/resolver.js";
import type { Clock } from "../io/clock.js";
import { nodeConnector } from "../io/connector.js";
import type { Courier } from "./courier.js";
import { SmtpCourier } from "./smtp-courier.js";

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

/** The SMTP courier; its reconfigure() recomputes this host's addresses from the new listeners. */
export function createCourier(d: { config: Config; resolver: Resolver; logger: Logger; clock?: Clock }): Courier {
  const clock = d.clock;
  const courier = new SmtpCourier({
    config: d.config,
    resolver: d.resolver,
    connector: nodeConnector,
    logger: d.logger,
    localAddresses: ownAddresses(d.config),
    ...(clock ? { now: () => clock.now() } : {}),
  });
  return {
    deliver: (req) => courier.deliver(req),
    close: () => courier.close(),
    reconfigure: (config) => courier.reconfigure(config, ownAddresses(config)),
  };
}
