// Operator actions on one message (flush, hold, release, delete, delete recipients at a
// domain, bounce now) as pure decisions: given the message's state, what changes and what the
// operator is told. The queue manager (worker.ts) carries the plan out under the message's
// exclusive lock: records the new state, then updates its schedule.
import { pendingRecipients, type MessageMeta, type RecipientState } from "../core/envelope.js";
import { pendingDomains } from "./state.js";

/** Result of an operator action on one message. */
export interface OpResult {
  id: string;
  ok: boolean;
  /** flushed | held | released | deleted | bounced | paused | not found | not held | ... */
  status: string;
}

export type OperatorAction = "flush" | "hold" | "release" | "delete" | "deleteRecipients" | "bounce";

export type ActionPlan =
  /** Nothing changes; tell the operator why. */
  | { kind: "refuse"; result: OpResult }
  /** Record `meta` (changed in place), then apply `then` to the schedule. */
  | { kind: "update"; result: OpResult; then: "hold" | "release" | "none"; changed?: RecipientState[] }
  /** Attempt now (daemon): no state change. */
  | { kind: "attempt"; result: OpResult }
  /** Remove the message from the spool, without a bounce. */
  | { kind: "remove"; result: OpResult }
  /** These recipients were just failed (in `meta`): queue their DSN, then finish the message. */
  | { kind: "bounce"; result: OpResult; failed: RecipientState[] };

export interface ActionContext {
  nowMs: number;
  /** Operating on the spool for the CLI while the daemon is down. */
  offline: boolean;
  isPaused(domain: string): boolean;
  /** deleteRecipients: the destination domain (lower case). */
  domain?: string;
}

const refuse = (id: string, status: string, ok = false): ActionPlan => ({ kind: "refuse", result: { id, ok, status } });

/** Decide `action` for message `m`; changes `m` in place when the plan records it. */
export function planAction(action: OperatorAction, m: MessageMeta, ctx: ActionContext): ActionPlan {
  const id = m.id;
  const iso = new Date(ctx.nowMs).toISOString();
  switch (action) {
    case "flush": {
      // A held message is not attempted; a paused destination stays paused.
      if (m.held) return refuse(id, "held (release it first)");
      if (!pendingRecipients(m).length) return refuse(id, "nothing pending");
      const paused = pendingDomains(m).every((d) => ctx.isPaused(d));
      if (ctx.offline) {
        // Due now: the daemon attempts it as soon as it starts.
        m.nextAttemptAt = iso;
        return { kind: "update", then: "none", result: { id, ok: true, status: paused ? "due now, but its destination is paused" : "due now (attempted when mxd starts)" } };
      }
      return { kind: "attempt", result: { id, ok: true, status: paused ? "paused (not attempted until resumed)" : "flushed" } };
    }
    case "hold":
      if (m.held) return refuse(id, "already held", true);
      m.held = true;
      return { kind: "update", then: "hold", result: { id, ok: true, status: "held" } };
    case "release":
      if (!m.held) return refuse(id, "not held");
      m.held = false;
      m.nextAttemptAt = iso;
      return { kind: "update", then: "release", result: { id, ok: true, status: "released" } };
    case "delete":
      return { kind: "remove", result: { id, ok: true, status: "deleted" } };
    case "deleteRecipients": {
      // Like removing one destination's queue in Exchange: the message itself goes when
      // nothing else is pending.
      const d = ctx.domain ?? "";
      const pending = pendingRecipients(m);
      const hit = pending.filter((r) => r.domain === d);
      if (!hit.length) return refuse(id, `no pending recipient at ${d}`);
      if (hit.length === pending.length) return { kind: "remove", result: { id, ok: true, status: "deleted" } };
      for (const r of hit) {
        r.status = "failed";
        r.finalAt = iso;
        r.history.push({ at: iso, outcome: "permanent", status: "5.0.0", reply: "deleted by the postmaster (no bounce sent)" });
      }
      return { kind: "update", then: "none", changed: hit, result: { id, ok: true, status: `deleted ${hit.length} recipient(s) at ${d}` } };
    }
    case "bounce": {
      const pending = pendingRecipients(m);
      if (!pending.length) return refuse(id, "nothing pending");
      for (const r of pending) {
        const last = r.history[r.history.length - 1];
        r.status = "failed";
        r.finalAt = iso;
        r.history.push({ at: iso, outcome: "permanent", status: "5.0.0", reply: `delivery cancelled by the postmaster${last ? `; last error: ${last.reply}` : ""}` });
      }
      return { kind: "bounce", failed: pending, result: { id, ok: true, status: "bounced" } };
    }
  }
}
