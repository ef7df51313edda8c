// Retry schedule and queue lifetime: pure decisions, no clock, no I/O. Every time is a number of
// milliseconds (epoch ms or a duration); the caller supplies "now" and the random source.
//
// RFC 5321 §4.5.4.1: a sender retries a deferred message after an interval (the RFC suggests at
// least 30 minutes; Postfix starts at 300 s and doubles to 4,000 s), and gives up after a time
// that "needs to be at least 4-5 days". All of it comes from config (delivery.retry.*,
// delivery.maxQueueTime, delivery.delayWarningAfter); this module only applies it.
import type { MessageMeta } from "../core/envelope.js";

export interface RetryPolicy {
  /** First retry interval, ms (delivery.retry.minDelay). */
  minDelay: number;
  /** Upper bound of the exponential base interval, ms (delivery.retry.maxDelay). */
  maxDelay: number;
  /** Fraction in [0, 1]: each delay is spread uniformly over ±jitter of its base (delivery.retry.jitter). */
  jitter: number;
}

/** Doubling stops here: 2^52 keeps minDelay * 2^n exact and finite, and any real maxDelay is reached long before. */
const MAX_DOUBLINGS = 52;

function assertDuration(name: string, v: number): void {
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a finite, non-negative number of ms, got ${v}`);
}

/**
 * Delay before the next attempt, in whole milliseconds.
 *
 * `attempts` is the number of delivery attempts already made (1 after the first failure). The
 * base interval is minDelay · 2^(attempts−1), capped at maxDelay; the result is spread over
 * [base·(1−jitter), base·(1+jitter)] by `random()` (a value in [0, 1), like Math.random) so a
 * queue that filled up during one outage does not retry in lock-step (a thundering herd against
 * the remote that just came back). The cap applies to the base, so at the cap the delay still
 * varies by ±jitter — clamping the jittered value would re-synchronise every message at maxDelay.
 *
 * Never below minDelay·(1−jitter), never negative. A policy with minDelay > maxDelay (refused by
 * the config schema) is treated as maxDelay = minDelay rather than producing shorter delays.
 */
export function nextAttemptDelay(attempts: number, policy: RetryPolicy, random: () => number): number {
  assertDuration("retry.minDelay", policy.minDelay);
  assertDuration("retry.maxDelay", policy.maxDelay);
  if (!Number.isFinite(policy.jitter) || policy.jitter < 0 || policy.jitter > 1) {
    throw new RangeError(`retry.jitter must be in [0, 1], got ${policy.jitter}`);
  }
  const n = Number.isFinite(attempts) ? Math.max(0, Math.floor(attempts) - 1) : MAX_DOUBLINGS;
  const cap = Math.max(policy.minDelay, policy.maxDelay);
  const base = Math.min(cap, policy.minDelay * 2 ** Math.min(n, MAX_DOUBLINGS));
  let r = random();
  // A misbehaving random source must not yield NaN or out-of-range delays.
  if (!Number.isFinite(r)) r = 0.5;
  r = Math.min(Math.max(r, 0), 1);
  const factor = 1 + policy.jitter * (2 * r - 1);
  const floor = policy.minDelay * (1 - policy.jitter);
  return Math.max(0, Math.ceil(floor), Math.round(base * factor));
}

/** The instant (epoch ms) at which a message received at `receivedAtMs` expires. */
export function expiresAt(receivedAtMs: number, maxQueueTime: number): number {
  return receivedAtMs + maxQueueTime;
}

/**
 * True once the message has been queued for maxQueueTime or longer (delivery.maxQueueTime).
 * RFC 5321 §4.5.4.1: after this the pending recipients fail and the sender gets a DSN
 * (Status 4.4.7 "delivery time expired" per RFC 3463 §3.5 when the worker records no better code).
 */
export function isExpired(receivedAtMs: number, nowMs: number, maxQueueTime: number): boolean {
  return nowMs >= expiresAt(receivedAtMs, maxQueueTime);
}

/**
 * Whether a delay warning ("Action: delayed" DSN, RFC 3464 §2.3.3) is due now for this message.
 *
 * False when warnings are disabled (null), already sent (meta.delayWarned), the message has no
 * pending recipient, the sender is the null sender or the message is one of our own bounces
 * (RFC 5321 §4.5.5 / RFC 3461 §6.2: never send a DSN about a message from <>). NOTIFY filtering
 * per recipient is dsnRecipientsFor's job in bounce/dsn.ts; the worker sets delayWarned once it
 * has evaluated the warning, even when NOTIFY left nobody to warn, so this stays false after.
 */
export function shouldWarnDelay(meta: MessageMeta, nowMs: number, delayWarningAfter: number | null): boolean {
  if (delayWarningAfter === null) return false;
  if (meta.delayWarned) return false;
  if (meta.sender === "" || meta.kind === "bounce") return false;
  if (!meta.recipients.some((r) => r.status === "pending")) return false;
  const received = Date.parse(meta.receivedAt);
  if (!Number.isFinite(received)) return false;
  return nowMs - received >= delayWarningAfter;
}

export interface NextAttemptInput {
  /** Attempts already made for the recipient(s) being rescheduled (≥ 1 after a failure). */
  attempts: number;
  receivedAtMs: number;
  nowMs: number;
  policy: RetryPolicy;
  /** delivery.maxQueueTime, ms. */
  maxQueueTime: number;
  random: () => number;
}

/**
 * When to try again after a transient failure (epoch ms), or null when the message has expired
 * and the pending recipients must fail now.
 *
 * The time is never later than the expiry instant: when now + delay would overshoot it, the
 * final attempt is scheduled exactly at expiry. That attempt still runs (a remote that recovered
 * gets the mail), and if it fails transiently this function returns null and the message bounces
 * on time instead of up to maxDelay late. The worker must therefore attempt first and consult
 * isExpired()/nextAttemptAt() only after a transient failure.
 */
export function nextAttemptAt(input: NextAttemptInput): number | null {
  assertDuration("maxQueueTime", input.maxQueueTime);
  const { receivedAtMs, nowMs, maxQueueTime } = input;
  if (isExpired(receivedAtMs, nowMs, maxQueueTime)) return null;
  const at = nowMs + nextAttemptDelay(input.attempts, input.policy, input.random);
  return Math.min(at, expiresAt(receivedAtMs, maxQueueTime));
}
