// Operator actions on a selection of messages, shared by the admin API (daemon running) and
// the CLI (daemon stopped: an offline QueueManager): ids, or a filter (queue/filter.ts) over the
// queue and dead/. Dead letters can be deleted and retried (moved back into the queue); every
// other action is about queued messages (issue 13, bug 4).
import type { JournalSpool } from "../spool/journal-spool.js";
import type { OpResult, QueueManager } from "../queue/worker.js";
import { isNarrowed, matchesDead, matchesMessage, type QueueFilter } from "../queue/filter.js";
import { requeueDeadState } from "../queue/requeue.js";
import { isDead, listDead } from "../spool/dead-letters.js";

export const ACTIONS = ["flush", "delete", "bounce", "hold", "release", "retry", "requeue"] as const;
export type Action = (typeof ACTIONS)[number];

/** Bulk actions that lose mail or send bounces: a filter selection needs an explicit yes. */
export const DANGEROUS: readonly Action[] = ["delete", "bounce"];

export interface Target {
  id: string;
  dead: boolean;
}

export interface Selection {
  ids?: string[];
  filter?: QueueFilter;
  /** Every queued message (no filter). */
  all?: boolean;
}

/** Is `id` a dead letter (and not queued)? */
export function isDeadLetter(spool: JournalSpool, id: string): boolean {
  return !spool.has(id) && isDead(spool, id);
}

/** The messages a selection names, in queue-id (arrival) order. */
export async function selectTargets(spool: JournalSpool, q: QueueManager, action: Action, sel: Selection, nowMs: number): Promise<Target[]> {
  if (sel.ids) return sel.ids.map((id) => ({ id, dead: isDeadLetter(spool, id) }));
  const f = sel.filter ?? {};
  if (f.state === "dead") return (await listDead(spool)).filter((d) => matchesDead(d, f, nowMs)).map((d) => ({ id: d.id, dead: true }));
  // Every message, or only a domain: the queue's index answers without reading the spool.
  const onlyDomain = !isNarrowed({ ...f, domain: undefined });
  if (onlyDomain && !q.isOffline) return (await q.select(f.domain, { skipHeld: action === "flush" || action === "requeue" })).sort().map((id) => ({ id, dead: false }));
  const out: Target[] = [];
  for await (const m of spool.scan()) {
    if (!matchesMessage(m, f, nowMs)) continue;
    // A bulk flush leaves held messages alone (they wait for release), without failing.
    if ((action === "flush" || action === "requeue") && m.held) continue;
    out.push({ id: m.id, dead: false });
  }
  return out;
}

/** One action on one message. `domain` narrows delete to the recipients there. */
export async function runAction(q: QueueManager, spool: JournalSpool, action: Action, t: Target, domain?: string): Promise<OpResult> {
  const { id } = t;
  if (t.dead) {
    if (action === "delete") return (await spool.removeDead(id)) ? { id, ok: true, status: "deleted (dead letter)" } : { id, ok: false, status: "no such message" };
    if (action === "retry" || action === "requeue") {
      try {
        const meta = await spool.unbury(id, (m) => requeueDeadState(m, Date.now()));
        q.enqueue(meta);
        return { id, ok: true, status: q.isOffline ? "requeued from dead/ (attempted when mxd starts)" : "requeued from dead/" };
      } catch (e) {
        return { id, ok: false, status: `cannot requeue: ${(e as Error).message} (an unreadable entry can only be deleted)` };
      }
    }
    return { id, ok: false, status: `dead letter (only delete and retry apply)` };
  }
  switch (action) {
    case "flush":
    case "requeue":
      // Routes and MX records are looked up at every attempt: attempting now is re-routing.
      return q.flush(id);
    case "retry":
      return (await q.flush(id).then((r) => (r.ok ? { ...r, status: `not a dead letter; ${r.status}` } : r)));
    case "delete":
      return domain !== undefined ? q.deleteRecipients(id, domain) : q.delete(id);
    case "bounce":
      return q.bounce(id);
    case "hold":
      return q.hold(id);
    case "release":
      return q.release(id);
  }
}

/** Past tense for the one-line summary of a bulk action ("held 182 messages"). */
export const DONE: Record<Action, string> = { flush: "flushed", delete: "deleted", bounce: "bounced", hold: "held", release: "released", retry: "requeued", requeue: "requeued" };

export function summary(action: Action, results: readonly OpResult[]): string {
  const ok = results.filter((r) => r.ok).length;
  const failed = results.length - ok;
  let s = `${DONE[action]} ${ok} message${ok === 1 ? "" : "s"}`;
  if (failed) {
    const why = new Map<string, number>();
    for (const r of results) if (!r.ok) why.set(r.status, (why.get(r.status) ?? 0) + 1);
    s += `; ${failed} not (${[...why].map(([k, n]) => `${n} ${k}`).join(", ")})`;
  }
  return s;
}
