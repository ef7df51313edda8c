// Who gets an inbound connection slot, and how patient mxd is while it is crowded. Pure.
//
// - `limits.reservedConnections` of the `limits.connections` slots are kept for clients inside
//   relay.allowedNetworks: outsiders filling the server cannot shut out the clients mxd exists
//   for (they would otherwise wait for the hogs' timeouts).
// - Past STRESS_FRACTION of the slots the server is "under stress" (Postfix's stress mode,
//   smtpd_timeout = ${stress?10}:300): idle timeouts shrink to `limits.stressTimeout`, so
//   connections that merely hold a slot give it back quickly.

/** Share of `limits.connections` in use from which the stress timeouts apply. */
export const STRESS_FRACTION = 0.8;

export interface AdmissionLimits {
  connections: number;
  connectionsPerClient: number;
  reservedConnections: number;
}

export type Admission = { accept: true } | { accept: false; reason: "total" | "per-client" | "reserved" };

/** May a new connection from a client have a slot, given the connections open now? */
export function admit(o: { total: number; perClient: number; relayAllowed: boolean; limits: AdmissionLimits }): Admission {
  const { limits } = o;
  if (o.total >= limits.connections) return { accept: false, reason: "total" };
  if (o.perClient >= limits.connectionsPerClient) return { accept: false, reason: "per-client" };
  if (!o.relayAllowed && o.total >= limits.connections - limits.reservedConnections) return { accept: false, reason: "reserved" };
  return { accept: true };
}

/** Is the server crowded enough for the stress timeouts? */
export function underStress(total: number, connections: number): boolean {
  return total >= Math.ceil(connections * STRESS_FRACTION);
}

/** The idle timeout to apply: the configured one, or the stress one when that is shorter. */
export function idleTimeout(normalMs: number, stressMs: number, stressed: boolean): number {
  return stressed ? Math.min(normalMs, stressMs) : normalMs;
}
