// The messages between the daemon's main thread and its delivery thread (thread-courier.ts on
// one side, delivery-thread.ts on the other). Plain data only: everything here crosses
// postMessage (structured clone), so no functions, streams or class instances.
import type { Config } from "../config.js";
import type { DnsCacheStats } from "../io/dns-cache.js";
import type { BodyBytes } from "../spool/spool.js";
import type { DeliveryRecipient, RecipientResult } from "./courier.js";
import type { MessageParams } from "../smtp/client.js";

/** What the delivery thread is started with (workerData). */
export interface ThreadStart {
  config: Config;
  /** The daemon's log level (its logger's, which may differ from config.log.level in tests). */
  level: string;
}

/** One delivery: the request without its functions, the body as bytes or a file range. */
export interface ThreadDelivery extends MessageParams {
  id: string;
  sender: string;
  domain: string;
  recipients: DeliveryRecipient[];
  /** Sent before the stored message: the DKIM-Signature fields (latin1). */
  head?: string;
  body: BodyBytes;
}

export type ToThread =
  | { t: "deliver"; n: number; req: ThreadDelivery }
  | { t: "config"; config: Config; level: string }
  | { t: "close" };

export type FromThread =
  | { t: "result"; n: number; results: RecipientResult[]; dns?: DnsCacheStats }
  | { t: "fail"; n: number; message: string; code?: string }
  | { t: "log"; lines: string[] }
  /** Every second: the thread's event loop turns (thread-courier.ts restarts a thread that stops saying so). */
  | { t: "alive" }
  | { t: "closed" };

/** How often the thread says it is alive. */
export const ALIVE_INTERVAL_MS = 1_000;
/** A thread silent for this long is stuck (an endless loop): ended and replaced. */
export const STUCK_AFTER_MS = 30_000;
