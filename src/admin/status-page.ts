// The live status page's data: one snapshot of the daemon (rates, queue depth by state, the
// oldest message, destinations, deferral reasons, TLS outcomes, an hour of history, recent
// attempts), built once a second and pushed to every open page over Server-Sent Events
// (admin/server.ts: GET /, GET /events, GET /live). Pure: assembled from what it is given.
import type { DestinationView } from "../queue/worker.js";
import { queueIdTime } from "../spool/format.js";
import type { LiveStats } from "./live-stats.js";

export interface LiveSnapshot {
  now: string;
  hostname: string;
  uptimeSeconds: number;
  rates: ReturnType<LiveStats["rates"]>;
  totals: LiveStats["totals"];
  queue: { queued: number; deferred: number; held: number; total: number; active: number; parked: number; dead: number };
  oldestAgeSeconds: number | null;
  paused: boolean;
  destinations: (Omit<DestinationView, "nextAttemptMs"> & { nextAttemptAt: string | null; lastReply: string | null; lastStatus: string | null })[];
  reasons: { reason: string; count: number }[];
  tls: ReturnType<LiveStats["tlsOutcomes"]>;
  history: ReturnType<LiveStats["history"]>;
  recent: ReturnType<LiveStats["recentEvents"]>;
}

export function buildSnapshot(o: {
  nowMs: number;
  hostname: string;
  startedAtMs: number;
  live: LiveStats;
  counts: Omit<LiveSnapshot["queue"], "dead">;
  dead: number;
  oldestId: string | undefined;
  paused: boolean;
  destinations: DestinationView[];
}): LiveSnapshot {
  return {
    now: new Date(o.nowMs).toISOString(),
    hostname: o.hostname,
    uptimeSeconds: Math.round((o.nowMs - o.startedAtMs) / 1000),
    rates: o.live.rates(),
    totals: { ...o.live.totals },
    queue: { ...o.counts, dead: o.dead },
    oldestAgeSeconds: o.oldestId ? Math.max(0, Math.round((o.nowMs - queueIdTime(o.oldestId)) / 1000)) : null,
    paused: o.paused,
    destinations: o.destinations.map(({ nextAttemptMs, ...d }) => {
      const l = o.live.domain(d.domain);
      return { ...d, nextAttemptAt: nextAttemptMs !== undefined ? new Date(nextAttemptMs).toISOString() : null, lastReply: l?.lastReply ?? null, lastStatus: l?.lastStatus ?? null };
    }),
    reasons: o.live.topReasons(10),
    tls: o.live.tlsOutcomes(50),
    history: o.live.history(),
    recent: o.live.recentEvents(),
  };
}
