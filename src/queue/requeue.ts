// The state a dead letter gets when the postmaster retries it (`mxd queue retry ID`): its
// failed recipients pending again, due now, with a fresh queue lifetime (maxQueueTime counts
// from the retry, or the first temporary failure would expire it at once). Delivered
// recipients stay delivered. Pure.
import type { MessageMeta } from "../core/envelope.js";

export function requeueDeadState(m: MessageMeta, nowMs: number): MessageMeta {
  const iso = new Date(nowMs).toISOString();
  return {
    ...m,
    receivedAt: iso,
    nextAttemptAt: iso,
    held: false,
    delayWarned: false,
    recipients: m.recipients.map((r) => {
      if (r.status !== "failed") return r;
      const { finalAt: _finalAt, ...rest } = r;
      return { ...rest, status: "pending" as const, history: [...r.history, { at: iso, outcome: "transient" as const, status: "4.0.0", reply: "requeued from dead/ by the postmaster" }].slice(-50) };
    }),
  };
}
