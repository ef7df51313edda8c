// The Courier: takes one domain's recipients of one message and reports, per recipient, what
// happened. Outcomes are data, not exceptions (design.md).
import type { Readable } from "node:stream";
import type { Outcome } from "../core/envelope.js";
import type { Config } from "../config.js";
import type { HostReply } from "./host-report.js";
import type { MessageParams, TlsInfo } from "../smtp/client.js";
import type { BodyLocation } from "../spool/spool.js";

export interface DeliveryRecipient {
  address: string;
  notify?: string[];
  orcpt?: string;
}

export interface DeliveryRequest extends MessageParams {
  /** Queue id, for logs. */
  id: string;
  /** Envelope sender; "" = null sender. */
  sender: string;
  /** Lower-cased destination domain shared by all recipients. */
  domain: string;
  recipients: DeliveryRecipient[];
  /** Opens a fresh stream of the spooled message bytes (CRLF line ends). May be called more than once (one per host tried). */
  openBody: () => Readable;
  /**
   * The same octets for a courier in another thread, which cannot take a stream: what to send
   * first (the stored DKIM-Signature fields, latin1) and where the stored message is. The
   * caller of `locate` releases the body when the delivery is over.
   */
  locate?: () => Promise<{ head?: string; body: BodyLocation }>;
}

export interface RecipientResult {
  recipient: string;
  outcome: Outcome;
  /** Full reply text ("550 5.1.1 <x@y>: no such user") or a local diagnostic. */
  reply: string;
  /** Enhanced status code, e.g. "5.1.1", "4.4.1". */
  status: string;
  /** True when `reply` came from a remote SMTP server. */
  remote: boolean;
  mx?: string;
  ip?: string;
  port?: number;
  tls?: TlsInfo;
  /** The outbound TLS policy that applied to that connection: "verify (domain)", "mta-sts (level may)", … */
  tlsPolicy?: string;
  /** Every host tried for this recipient that failed temporarily, in the order tried (host-report.ts). */
  hosts?: HostReply[];
  /**
   * Nothing was attempted: every host was busy with our own deliveries (perHostConcurrency).
   * The worker retries within seconds and counts no attempt.
   */
  retrySoon?: boolean;
}

export interface Courier {
  deliver(req: DeliveryRequest): Promise<RecipientResult[]>;
  /** Close idle cached connections (shutdown). */
  close(): Promise<void>;
  /** A reload: deliveries that start from now on use this configuration (those in progress finish with theirs). */
  reconfigure?(config: Config): void;
}
