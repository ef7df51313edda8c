// What an operator sees of a queued message: one summary per message (for `mxd queue list`
// and GET /queue), pure. The messages come from the spool's scan, the dead letters from
// spool/dead-letters.ts.
import type { MessageMeta } from "../core/envelope.js";
import { isPausedFor, messageState, pendingDomains, type ControlState, type MessageState } from "../queue/state.js";

export interface ListEntry {
  id: string;
  state: MessageState;
  /** Every pending destination is paused. */
  paused: boolean;
  receivedAt: string;
  ageSeconds: number;
  size: number;
  sender: string;
  kind: "message" | "bounce";
  nextAttemptAt: string;
  recipients: { address: string; status: string; attempts: number; lastAt?: string; lastReply?: string }[];
  /** The newest reply among pending recipients. */
  lastError?: string;
}

export function toListEntry(m: MessageMeta, nowMs: number, control: ControlState): ListEntry {
  let last: { at: string; reply: string } | undefined;
  for (const r of m.recipients) {
    if (r.status !== "pending") continue;
    const h = r.history[r.history.length - 1];
    if (h && (!last || h.at > last.at)) last = h;
  }
  const domains = pendingDomains(m);
  return {
    id: m.id,
    state: messageState(m),
    paused: domains.length > 0 && domains.every((d) => isPausedFor(control, d)),
    receivedAt: m.receivedAt,
    ageSeconds: Math.max(0, Math.round((nowMs - Date.parse(m.receivedAt)) / 1000)),
    size: m.size,
    sender: m.sender,
    kind: m.kind,
    nextAttemptAt: m.nextAttemptAt,
    recipients: m.recipients.map((r) => {
      const h = r.history[r.history.length - 1];
      return { address: r.address, status: r.status, attempts: r.attempts, ...(h ? { lastAt: h.at, lastReply: h.reply } : {}) };
    }),
    ...(last ? { lastError: last.reply } : {}),
  };
}
