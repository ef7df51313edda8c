// Operator control state of the queue (pure): outbound delivery paused as a whole or for some
// destination domains. It survives restarts: the daemon and the offline CLI keep it in
// `spoolDir/control.json` through a ControlStore (queue/control-file.ts writes it atomically).
// Also the one place that says which state a queued message is in, for `list`, /status and
// /metrics alike.
import type { MessageMeta } from "../core/envelope.js";

export interface ControlState {
  version: 1;
  /** All outbound delivery stopped (Exchange: "disable outbound mail"). */
  paused: boolean;
  /** Destination domains whose delivery is stopped (Exchange: "suspend queue"), lower-case, sorted. */
  pausedDomains: string[];
}

export interface ControlStore {
  load(): Promise<ControlState>;
  save(state: ControlState): Promise<void>;
}

export const INITIAL_CONTROL: ControlState = Object.freeze({ version: 1, paused: false, pausedDomains: Object.freeze([]) as unknown as string[] });

export function withPause(s: ControlState, domain?: string): ControlState {
  if (domain === undefined) return { ...s, paused: true };
  const d = domain.toLowerCase();
  return { ...s, pausedDomains: [...new Set([...s.pausedDomains, d])].sort() };
}

export function withResume(s: ControlState, domain?: string): ControlState {
  // Resuming everything leaves per-domain pauses in place: they were set on purpose.
  if (domain === undefined) return { ...s, paused: false };
  const d = domain.toLowerCase();
  return { ...s, pausedDomains: s.pausedDomains.filter((x) => x !== d) };
}

export function isPausedFor(s: ControlState, domain: string): boolean {
  return s.paused || s.pausedDomains.includes(domain);
}

/** Validate a parsed control.json; a bad file must not silently resume delivery. */
export function decodeControl(v: unknown): ControlState {
  const o = v as Partial<ControlState> | null;
  if (!o || typeof o !== "object" || o.version !== 1) throw new Error("control state: unsupported or missing version");
  if (typeof o.paused !== "boolean") throw new Error("control state: paused must be true or false");
  if (!Array.isArray(o.pausedDomains) || !o.pausedDomains.every((d) => typeof d === "string")) throw new Error("control state: pausedDomains must be a list of domains");
  return { version: 1, paused: o.paused, pausedDomains: [...new Set(o.pausedDomains.map((d) => d.toLowerCase()))].sort() };
}

export type MessageState = "queued" | "deferred" | "held";

/** held: waits for `release`; deferred: at least one attempt failed temporarily; queued: not tried yet. */
export function messageState(m: Pick<MessageMeta, "held" | "recipients">): MessageState {
  if (m.held) return "held";
  return m.recipients.some((r) => r.status === "pending" && r.attempts > 0) ? "deferred" : "queued";
}

/** Lower-cased domains of the recipients still pending, first-seen order. */
export function pendingDomains(m: Pick<MessageMeta, "recipients">): string[] {
  return [...new Set(m.recipients.filter((r) => r.status === "pending").map((r) => r.domain))];
}
