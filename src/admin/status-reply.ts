// The body of GET /status: built by the composition root (main.ts), served by admin/server.ts,
// read by `mxd status` (cli/status.ts) — one type for all three.
import type { LastError } from "../queue/worker.js";

export interface StatusReply {
  pid: number;
  hostname: string;
  startedAt: string;
  uptimeSeconds: number;
  listen: { host: string; port: number; tls: boolean; mode?: "relay" | "submission" }[];
  admin: string[];
  spoolDir: string;
  delivery: { enabled: boolean; outbound: number };
  queue: { queued: number; deferred: number; held: number; total: number; active: number; parked: number; dead: number };
  paused: boolean;
  pausedDomains: string[];
  lastErrors: LastError[];
  /** The inbound rate limits, their hits and the limiter's table (smtp/rate-limit.ts). */
  rateLimits?: { rules: { rule: string; limit: number; per: string; hits: number }[]; exemptNetworks: string[]; trackedKeys: number; maxTrackedKeys: number };
  /** PROXY protocol listeners and their refusals by reason. */
  proxyProtocol?: { listeners: number; refused: Record<string, number> };
}
