// Recovering the envelope of a state file that cannot be loaded (torn, of the wrong shape, or
// too large to parse), so that its sender can still be told (design.md: an entry is never
// buried silently). Pure and streaming: the file is fed in chunks and memory stays bounded,
// whatever its size.
//
// It looks for the JSON members `"sender": "…"`, `"address": "…"` (with the `"domain"` and
// `"status"` that encodeMeta writes right after it) and `"kind": "…"` anywhere in the text.
// None of them can be forged by text inside a JSON string value: every `"` in a string is
// escaped as `\"`, so `address"` followed by `:` only occurs as a member name.

export interface SalvagedRecipient {
  address: string;
  /** Undefined when the file does not say (then the recipient is taken as not delivered). */
  status?: "pending" | "delivered" | "failed";
}

export interface SalvagedEnvelope {
  sender: string;
  recipients: SalvagedRecipient[];
  receivedAt?: string;
  kind?: string;
}

/** Addresses are at most 256 octets (RFC 5321 §4.5.3.1.3); values longer than this are ignored. */
const MAX_VALUE = 1024;
/** Recipients kept (the inbound limit is far lower; a corrupt file must not grow memory). */
const MAX_RECIPIENTS = 10_000;
/** Text kept from the end of one chunk to find a member cut by the chunk boundary. */
const CARRY = 3 * MAX_VALUE;

const STR = String.raw`"((?:[^"\\\r\n]|\\.){0,${MAX_VALUE}})"`;
const RCPT_RE = new RegExp(String.raw`"address"\s*:\s*${STR}(?:\s*,\s*"domain"\s*:\s*${STR}\s*,\s*"status"\s*:\s*"(pending|delivered|failed)")?`, "g");
const SENDER_RE = new RegExp(String.raw`"sender"\s*:\s*${STR}`, "g");
const RECEIVED_RE = new RegExp(String.raw`"receivedAt"\s*:\s*${STR}`, "g");
const KIND_RE = new RegExp(String.raw`"kind"\s*:\s*${STR}`, "g");

function unquote(s: string): string | undefined {
  try {
    const v = JSON.parse(`"${s}"`) as unknown;
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

export class EnvelopeSalvager {
  private carry = "";
  private sender: string | undefined;
  private receivedAt: string | undefined;
  private kind: string | undefined;
  private readonly recipients: SalvagedRecipient[] = [];

  push(chunk: Buffer): void {
    this.scan(chunk.toString("latin1"), false);
  }

  /** The envelope found, or undefined when the sender or every recipient is missing. */
  result(): SalvagedEnvelope | undefined {
    this.scan("", true);
    if (this.sender === undefined || this.recipients.length === 0) return undefined;
    const out: SalvagedEnvelope = { sender: this.sender, recipients: this.recipients };
    if (this.receivedAt !== undefined) out.receivedAt = this.receivedAt;
    if (this.kind !== undefined) out.kind = this.kind;
    return out;
  }

  /**
   * Members starting before the last CARRY characters are complete (none is longer), so they
   * are taken now; the rest waits for the next chunk, or for the end of the file. latin1 keeps
   * every octet one character; values are decoded as UTF-8 once found.
   */
  private scan(more: string, final: boolean): void {
    const text = this.carry + more;
    const limit = final ? text.length : Math.max(0, text.length - CARRY);
    const take = (m: RegExpExecArray) => m.index < limit;
    for (const m of text.matchAll(RCPT_RE)) {
      if (!take(m)) break;
      if (this.recipients.length >= MAX_RECIPIENTS) break;
      const address = this.value(m[1]!);
      if (address === undefined) continue;
      const status = m[3] as SalvagedRecipient["status"];
      this.recipients.push(status ? { address, status } : { address });
    }
    this.sender ??= this.first(text, SENDER_RE, take);
    this.receivedAt ??= this.first(text, RECEIVED_RE, take);
    this.kind ??= this.first(text, KIND_RE, take);
    this.carry = text.slice(limit);
  }

  private first(text: string, re: RegExp, take: (m: RegExpExecArray) => boolean): string | undefined {
    for (const m of text.matchAll(re)) return take(m) ? this.value(m[1]!) : undefined;
    return undefined;
  }

  private value(raw: string): string | undefined {
    const v = unquote(raw);
    return v === undefined ? undefined : Buffer.from(v, "latin1").toString("utf8");
  }
}

/** The envelope of a whole state file given as one buffer (tests, small files). */
export function salvageEnvelope(buf: Buffer): SalvagedEnvelope | undefined {
  const s = new EnvelopeSalvager();
  s.push(buf);
  return s.result();
}
