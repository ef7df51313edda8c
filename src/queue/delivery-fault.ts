// A delivery agent that throws instead of answering (a bug, a local I/O fault, Node refusing
// an argument such as ERR_SOCKET_BAD_PORT) must still leave an answer on every recipient: a
// transient result with the reason, so the message shows why it waits and gets a retry time
// like any deferral (issue 13, bug 2: it used to keep "next: now" with no reason, unretried).
// Pure.
import type { DeliveryRecipient, RecipientResult } from "../delivery/courier.js";
import { LOCAL_STATUS, localReply } from "../core/errors.js";

/** Longest error text kept in the recipient's history (design.md: bounded by construction). */
const MAX_DETAIL = 300;

export function faultResults(recipients: readonly DeliveryRecipient[], err: unknown): RecipientResult[] {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? `${e.code}: ` : "";
  const message = typeof e?.message === "string" ? e.message : String(err);
  const detail = (code + message).replace(/[\r\n\t]+/g, " ").replace(/[^\x20-\x7e]/g, "?").slice(0, MAX_DETAIL);
  return recipients.map((r) => ({
    recipient: r.address,
    outcome: "transient" as const,
    reply: localReply("localError", `local error in delivery: ${detail}`),
    status: LOCAL_STATUS.localError,
    remote: false,
  }));
}
