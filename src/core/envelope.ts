// The message envelope and per-recipient delivery state, as stored in the spool's JSON file.
// Pure types and helpers: no I/O here.

export type RecipientStatus = "pending" | "delivered" | "failed";
export type Outcome = "delivered" | "transient" | "permanent";

/** One delivery attempt for one recipient, kept in its history (newest last). */
export interface AttemptRecord {
  at: string; // ISO time
  outcome: Outcome;
  /** Full SMTP reply text (e.g. "550 5.1.1 no such user") or a local diagnostic. */
  reply: string;
  /** Enhanced status code (RFC 3463), e.g. "4.4.1". */
  status: string;
  /** Remote MX host name that answered, if a server answered. */
  mx?: string;
  ip?: string;
  /** True when the reply came from a remote SMTP server (then it goes into Diagnostic-Code). */
  remote?: boolean;
  /** TLS of the connection that gave this reply (absent: plain text, or no connection). */
  tls?: { version: string; cipher: string; verified: boolean };
  /** The outbound TLS policy that applied ("verify (domain)", "mta-sts (level may)", …). */
  tlsPolicy?: string;
  /** Every host of this attempt that failed temporarily, most informative first (MX before fallback relay). */
  hosts?: { host: string; ip: string; port: number; kind: string; reply: string }[];
}

export interface RecipientState {
  /** Address as given at RCPT TO, without angle brackets. */
  address: string;
  /** Lower-cased domain part (the delivery grouping key). */
  domain: string;
  status: RecipientStatus;
  attempts: number;
  history: AttemptRecord[];
  /** RFC 3461 NOTIFY values (upper-case), absent = default (FAILURE). */
  notify?: string[];
  /** RFC 3461 ORCPT, e.g. "rfc822;user@example.com". */
  orcpt?: string;
  /** When the recipient reached its final status. */
  finalAt?: string;
  /**
   * Failed, and its DSN not yet queued. Recorded in the same state record as the failure, so
   * a restart can never lose a bounce (design.md: owing a DSN is state).
   */
  dsnOwed?: boolean;
}

export interface ClientInfo {
  ip: string;
  port?: number;
  helo?: string;
  tls?: boolean;
  reverseName?: string;
  /**
   * The client was inside relay.allowedNetworks. false: a stranger (mail for <Postmaster> or a
   * local drop domain), whose envelope sender is unverified, so a DSN never carries the message
   * body back to it (bounce/dsn.ts mayReturnBody). Absent in entries written before this field
   * existed: treated as true.
   */
  relayAllowed?: boolean;
  /** The user authenticated with SMTP AUTH on a submission listener (RFC 4954). */
  user?: string;
}

export interface EsmtpParams {
  /** Declared BODY= (7BIT | 8BITMIME). */
  body?: "7BIT" | "8BITMIME";
  smtputf8?: boolean;
  /** Declared SIZE=. */
  size?: number;
  /** RFC 3461 RET (FULL | HDRS) and ENVID. */
  ret?: "FULL" | "HDRS";
  envid?: string;
  /**
   * RFC 4954 §5: the AUTH= mailbox to pass on to a next hop that offers AUTH, decoded; "" is
   * AUTH=<> (what an untrusted or unauthenticated value becomes). Absent: no AUTH= given.
   */
  auth?: string;
}

export interface MessageMeta {
  version: 1;
  id: string;
  /** Envelope sender without brackets; "" is the null sender <>. */
  sender: string;
  recipients: RecipientState[];
  receivedAt: string; // ISO
  client: ClientInfo;
  params: EsmtpParams;
  /** Octets in the spooled message file (Received header included). */
  size: number;
  /** The message contains octets >= 0x80 (needs 8BITMIME or SMTPUTF8 on the way out). */
  eightBit: boolean;
  /** When the queue manager should next attempt the pending recipients. */
  nextAttemptAt: string; // ISO
  /** "bounce" for DSNs mxd generated itself (never bounced again). */
  kind: "message" | "bounce";
  held?: boolean;
  /** A delay warning DSN was already sent. */
  delayWarned?: boolean;
  /** The Message-ID header (read at the first attempt, for the delivery log); "" = none. */
  messageId?: string;
  /**
   * DKIM-Signature header fields (CRLFs included) computed once, at acceptance; every delivery
   * sends them before the stored message (dkim/message-signer.ts, docs/deliverability.md).
   */
  dkim?: string[];
}

/** Octets a delivery sends: the stored message plus the DKIM-Signature fields before it. */
export function deliverySize(m: Pick<MessageMeta, "size" | "dkim">): number {
  let n = m.size;
  for (const f of m.dkim ?? []) n += f.length;
  return n;
}

export function pendingRecipients(m: MessageMeta): RecipientState[] {
  return m.recipients.filter((r) => r.status === "pending");
}

/** Is any recipient still pending? (Stops at the first: a fan-out asks this after each domain.) */
export function hasPending(m: MessageMeta): boolean {
  return m.recipients.some((r) => r.status === "pending");
}

/** Group pending recipients by domain (already lower-cased), preserving first-seen order. */
export function groupByDomain(rcpts: readonly RecipientState[]): Map<string, RecipientState[]> {
  const out = new Map<string, RecipientState[]>();
  for (const r of rcpts) {
    const list = out.get(r.domain);
    if (list) list.push(r);
    else out.set(r.domain, [r]);
  }
  return out;
}

/** A recipient just accepted: pending, never tried, grouped by its lower-cased domain. */
export function newRecipient(address: string): RecipientState {
  return { address, domain: address.slice(address.lastIndexOf("@") + 1).toLowerCase(), status: "pending", attempts: 0, history: [] };
}

/** The state of a message about to be queued (the spool adds id and size): due at once. */
export function newMessage(o: {
  sender: string;
  recipients: RecipientState[];
  nowMs: number;
  client: ClientInfo;
  params?: EsmtpParams;
  eightBit?: boolean;
  kind?: MessageMeta["kind"];
  dkim?: string[];
}): Omit<MessageMeta, "id" | "size"> {
  const iso = new Date(o.nowMs).toISOString();
  return {
    version: 1,
    sender: o.sender,
    recipients: o.recipients,
    receivedAt: iso,
    client: o.client,
    params: o.params ?? {},
    eightBit: o.eightBit ?? false,
    nextAttemptAt: iso,
    kind: o.kind ?? "message",
    ...(o.dkim?.length ? { dkim: o.dkim } : {}),
  };
}
