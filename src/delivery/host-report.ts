// What a recipient's result says after every host of one delivery failed temporarily. Each
// host tried leaves one entry; the result keeps them all (attempt history, log, `queue show`)
// and leads with the most informative one: a remote server's own reply beats a local
// diagnostic ("connection refused"), and the destination's own hosts (MX, route) beat the
// fallback relays — "451 4.7.1 greylisted" from the MX is what the postmaster and the sender
// need to read, not the relay that happened to be down (issue 13, bug 3). Pure.
import type { DestinationKind } from "./router.js";

/** One host's answer for the recipients still pending when it was tried. */
export interface HostReply {
  host: string;
  ip: string;
  port: number;
  kind: DestinationKind;
  /** The remote reply text, or a local diagnostic ("connection refused"). */
  reply: string;
  status: string;
  /** `reply` came from the remote server. */
  remote: boolean;
}

/** Higher is more informative. */
export function informativeness(h: HostReply): number {
  return (h.remote ? 2 : 0) + (h.kind === "fallback" ? 0 : 1);
}

/** The entry to report first: the most informative; among equals the last tried (the freshest word). */
export function mostInformative(hosts: readonly HostReply[]): HostReply | undefined {
  let best: HostReply | undefined;
  for (const h of hosts) if (!best || informativeness(h) >= informativeness(best)) best = h;
  return best;
}

/** The reported entry first, then the others in the order tried (for the attempt history). */
export function orderedHosts(hosts: readonly HostReply[]): { host: string; ip: string; port: number; kind: string; reply: string }[] {
  const first = mostInformative(hosts);
  return (first ? [first, ...hosts.filter((h) => h !== first)] : []).map(({ host, ip, port, kind, reply }) => ({ host, ip, port, kind, reply }));
}

/** All hosts' replies on one line, the reported one first: "a[ip]:25: 451 …; b[ip]:25: connection refused". */
export function describeHosts(hosts: readonly HostReply[]): string {
  return orderedHosts(hosts).map((h) => `${h.kind === "fallback" ? "fallback " : ""}${h.host}[${h.ip}]:${h.port}: ${h.reply}`).join("; ");
}
