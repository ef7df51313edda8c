// The log line of one recipient's delivery attempt: what Postfix's "status=" line carries and
// more, as one flat object a postmaster can grep or feed to jq at 3 a.m. (docs/operations.md,
// "Log fields"). Pure: worker.ts logs what this returns.
//
//   {"qid":"01K…","event":"delivery","status":"deferred","from":"a@x","to":"b@y",
//    "relay":"mx.y","ip":"192.0.2.1","port":25,"via":"mx","attempt":3,"dsn":"4.7.1",
//    "reply":"451 4.7.1 Greylisted","delay":3601.2,"delayQueued":3600.9,"delayAttempt":0.3,
//    "tls":{"version":"TLSv1.3","cipher":"TLS_AES_256_GCM_SHA384","verified":false,
//           "verifyError":"certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT"},"tlsPolicy":"may (default)",
//    "messageId":"<…>","size":1234,"msg":"deferred"}
import type { Config } from "../config.js";
import type { MessageMeta, RecipientState } from "../core/envelope.js";
import type { RecipientResult } from "../delivery/courier.js";
import { findRoute } from "../core/routes.js";
import { hostAndPort } from "../core/host-port.js";

export type LogStatus = "sent" | "deferred" | "bounced" | "expired";
export type Via = "mx" | "route" | "fallback" | "literal" | "local";

export interface DeliveryLogFields {
  event: "delivery";
  status: LogStatus;
  from: string;
  to: string;
  relay?: string;
  ip?: string;
  port?: number;
  via: Via;
  attempt: number;
  dsn: string;
  reply: string;
  /** Seconds from acceptance to the end of this attempt. */
  delay: number;
  /** Seconds from acceptance to the start of this attempt (time spent queued). */
  delayQueued: number;
  /** Seconds in this attempt (DNS, connect, SMTP dialogue). */
  delayAttempt: number;
  /** The connection's TLS; absent = plain text. verifyError: why the certificate did not pass the policy's check. */
  tls?: { version: string; cipher: string; verified: boolean; verifyError?: string };
  /** The outbound TLS policy that applied: "may (default)", "verify (domain)", "mta-sts (level may)", "dane (level dane)", … */
  tlsPolicy?: string;
  messageId?: string;
  size: number;
  /** Every host tried for this recipient in this attempt, when more than one failed. */
  hosts?: string[];
}

const secs = (ms: number) => Math.round(Math.max(0, ms) / 100) / 10;

/** How this recipient's domain was routed: local drop, a route, an address literal, a fallback relay, or MX. */
export function viaOf(config: Pick<Config, "localDomains" | "routes" | "delivery">, domain: string, relay: string | undefined): Via {
  if (Object.prototype.hasOwnProperty.call(config.localDomains, domain)) return "local";
  if (domain.startsWith("[")) return "literal";
  if (findRoute(config.routes, domain)) return "route";
  if (relay !== undefined && config.delivery.fallbackRelays.some((r) => hostAndPort(r, config.delivery.port).host.toLowerCase() === relay.toLowerCase())) return "fallback";
  return "mx";
}

export function deliveryLogFields(o: {
  config: Pick<Config, "localDomains" | "routes" | "delivery">;
  meta: Pick<MessageMeta, "sender" | "receivedAt" | "size"> & { messageId?: string };
  rcpt: Pick<RecipientState, "address" | "domain" | "attempts">;
  result: Pick<RecipientResult, "reply" | "status" | "mx" | "ip" | "port" | "tls" | "tlsPolicy"> & { hosts?: readonly { host: string; ip: string; port: number; reply: string }[] };
  status: LogStatus;
  attemptStartMs: number;
  nowMs: number;
}): DeliveryLogFields {
  const { result: r, meta } = o;
  const received = Date.parse(meta.receivedAt);
  const f: DeliveryLogFields = {
    event: "delivery",
    status: o.status,
    from: meta.sender,
    to: o.rcpt.address,
    via: viaOf(o.config, o.rcpt.domain, r.mx),
    attempt: o.rcpt.attempts,
    dsn: r.status,
    reply: r.reply,
    delay: secs(o.nowMs - received),
    delayQueued: secs(o.attemptStartMs - received),
    delayAttempt: secs(o.nowMs - o.attemptStartMs),
    size: meta.size,
  };
  if (r.mx !== undefined) f.relay = r.mx;
  if (r.ip !== undefined) f.ip = r.ip;
  if (r.port !== undefined) f.port = r.port;
  if (r.tls) f.tls = { version: r.tls.version, cipher: r.tls.cipher, verified: r.tls.verified === true, ...(r.tls.verified !== true && r.tls.verifyReason ? { verifyError: r.tls.verifyReason.slice(0, 300) } : {}) };
  if (r.tlsPolicy) f.tlsPolicy = r.tlsPolicy;
  if (meta.messageId) f.messageId = meta.messageId;
  if (r.hosts && r.hosts.length > 1) f.hosts = r.hosts.map((h) => `${h.host}[${h.ip}]:${h.port} ${h.reply}`);
  return f;
}

/** The Message-ID header of a message's header block, or undefined (bounded: at most 998 octets). */
export function messageIdOf(head: Buffer | string): string | undefined {
  const text = typeof head === "string" ? head : head.toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  const headers = (end >= 0 ? text.slice(0, end) : text).replace(/\r\n[ \t]+/g, " ");
  const m = /^message-id:[ \t]*(.*)$/im.exec(headers);
  const v = m?.[1]?.trim();
  return v ? v.replace(/[^\x21-\x7e ]/g, "?").slice(0, 998) : undefined;
}
