// Local drop domains go to the local courier, everything else to the remote one (built in
// delivery/factory.ts).
import { isLocalDomain, type LocalDomains } from "../core/local-domains.js";
import type { Config } from "../config.js";
import type { Courier, DeliveryRequest, RecipientResult } from "./courier.js";

/** Sends local drop domains to `local`, everything else to `remote`. */
export class RoutingCourier implements Courier {
  /** Remote deliveries in progress (each holds one outbound connection). */
  remoteActive = 0;
  constructor(private localDomains: LocalDomains, private readonly local: Courier, private readonly remote: Courier) {}

  /** A reload: the new local domains, and each courier's own settings. */
  reconfigure(config: Config): void {
    this.localDomains = config.localDomains;
    this.local.reconfigure?.(config);
    this.remote.reconfigure?.(config);
  }

  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    if (isLocalDomain(this.localDomains, req.domain)) return this.local.deliver(req);
    this.remoteActive++;
    try {
      return await this.remote.deliver(req);
    } finally {
      this.remoteActive--;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.local.close(), this.remote.close()]);
  }
}
