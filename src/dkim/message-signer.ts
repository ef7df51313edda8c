// Signs one message while it streams in (docs/deliverability.md): the header section is held
// (bounded) until the empty line, the From domain picks the keys, then the body is hashed as
// it arrives. finish() returns the DKIM-Signature fields to store with the message, or why it
// stays unsigned. Nothing here is kept per message beyond the header section and two hashes.
import { createHash, type Hash } from "node:crypto";
import { domainToASCII } from "node:url";
import { BodyCanonicalizer, splitHeaderFields, type Canon, type HeaderField } from "./canonicalize.js";
import { signatureField, signedHeaderNames, type SigningKey } from "./sign.js";

/** How one sender domain signs (its keys and the effective settings). */
export interface DomainSigning {
  keys: SigningKey[];
  header: Canon;
  body: Canon;
  headers: readonly string[];
  oversign: readonly string[];
  /** Signature lifetime in seconds (x = t + expireSeconds), if any. */
  expireSeconds?: number;
}

export interface DkimPolicy {
  /** The signing setup for a From domain (lower-case ASCII), if there is one. */
  lookup(fromDomain: string): DomainSigning | undefined;
  /** Messages larger than this pass unsigned (dkim.maxSize). */
  maxSize: number;
}

/** A header section larger than this is not signed (it is held in memory until the empty line). */
export const MAX_HEADER_SECTION = 256 * 1024;

export type SignOutcome =
  | { signed: true; fields: string[]; domain: string; keys: string[] }
  | { signed: false; reason: string; domain?: string };

/** The domain of a From field's single mailbox (RFC 5322 §3.6.2); undefined when there is not exactly one. */
export function fromDomain(value: string): string | undefined {
  return fromMailbox(value)?.domain;
}

/** A From field's single mailbox: its address (local part as written, domain lower-case A-labels) and domain. */
export function fromMailbox(value: string): { address: string; domain: string } | undefined {
  let v = value.replace(/\r\n/g, "");
  // Comments, nested at most a few levels deep in practice.
  for (let i = 0; i < 5 && /\([^()]*\)/.test(v); i++) v = v.replace(/\([^()]*\)/g, " ");
  // Quoted display names may contain "@", "<" or ",": drop them first.
  v = v.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  if (v.split(",").filter((s) => s.trim()).length !== 1) return undefined;
  const angle = /<([^<>]*)>\s*$/.exec(v);
  const addr = (angle ? angle[1]! : v).trim();
  const at = addr.lastIndexOf("@");
  if (at <= 0) return undefined;
  const domain = domainToASCII(addr.slice(at + 1).trim().replace(/\.$/, "").toLowerCase());
  return domain && /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/.test(domain) ? { address: `${addr.slice(0, at).trim()}@${domain}`, domain } : undefined;
}

/**
 * Whose From the message may carry: an authenticated user is signed for only when the From
 * address is one of their senders (users-file.ts senderAllowed), as MAIL FROM is checked.
 */
export interface FromOwner {
  user: string;
  allowed(address: string): boolean;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

export class MessageSigner {
  /** The header section so far (undefined once it is complete): chunks, their total, the last 3 octets. */
  private head: Buffer[] | undefined = [];
  private headLen = 0;
  private tail = Buffer.alloc(0);
  private fields: HeaderField[] = [];
  private setup: DomainSigning | undefined;
  private domain: string | undefined;
  /** The body hash (one body canonicalisation per domain, shared by its keys). */
  private body: { canon: BodyCanonicalizer; hash: Hash } | undefined;
  private size = 0;
  private skipped: string | undefined;

  constructor(
    private readonly policy: DkimPolicy,
    private readonly owner?: FromOwner,
  ) {}

  /** Feed message octets (after dot-unstuffing), in order. */
  write(chunk: Buffer): void {
    if (this.skipped) return;
    this.size += chunk.length;
    if (this.size > this.policy.maxSize) return this.skip(`larger than dkim.maxSize (${this.policy.maxSize} bytes)`);
    if (this.head) {
      // Search the new chunk plus the previous 3 octets (the empty line may straddle chunks):
      // linear in the input however small the chunks, nothing is copied until the end is found.
      const probe = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
      const base = this.headLen - this.tail.length; // offset of probe[0] in the message
      this.head.push(chunk);
      this.headLen += chunk.length;
      let end: number;
      // An empty header section: the message starts with its empty line.
      if (base === 0 && probe.length >= 2 && probe[0] === 0x0d && probe[1] === 0x0a) end = -2;
      else {
        const i = probe.indexOf(CRLFCRLF);
        end = i < 0 ? -1 : base + i;
      }
      if (end > MAX_HEADER_SECTION || (end === -1 && this.headLen > MAX_HEADER_SECTION)) return this.skip(`header section larger than ${MAX_HEADER_SECTION} bytes`);
      if (end === -1) {
        this.tail = Buffer.from(probe.subarray(Math.max(0, probe.length - 3)));
        return;
      }
      const all = Buffer.concat(this.head);
      this.head = undefined;
      const section = end === -2 ? "" : all.subarray(0, end + 2).toString("latin1");
      const rest = all.subarray(end === -2 ? 2 : end + 4);
      this.headerDone(section);
      if (!this.skipped && rest.length) this.bodyWrite(rest);
      return;
    }
    this.bodyWrite(chunk);
  }

  private skip(reason: string): void {
    this.skipped = reason;
    this.head = undefined;
    this.body = undefined;
    this.fields = [];
  }

  private headerDone(section: string): void {
    this.fields = splitHeaderFields(section);
    const froms = this.fields.filter((f) => f.name.toLowerCase() === "from");
    if (froms.length !== 1) return this.skip(froms.length ? "several From fields" : "no From field");
    const f = froms[0]!;
    const from = fromMailbox(f.raw.slice(f.raw.indexOf(":") + 1));
    if (!from) return this.skip("From has no single address with a domain");
    const { domain } = from;
    this.domain = domain;
    if (this.owner && !this.owner.allowed(from.address)) return this.skip(`From ${from.address.replace(/[^\x21-\x7e]/g, "?").slice(0, 256)} is not among the senders of user ${this.owner.user}`);
    this.setup = this.policy.lookup(domain);
    if (!this.setup) return this.skip(`no DKIM key for ${domain}`);
    const hash = createHash("sha256");
    this.body = { canon: new BodyCanonicalizer(this.setup.body, (b) => hash.update(b)), hash };
  }

  private bodyWrite(chunk: Buffer): void {
    this.body?.canon.push(chunk);
  }

  /** The message is complete: the signature fields (one per key), or why there are none. */
  finish(nowMs: number): SignOutcome {
    if (this.head && !this.skipped) {
      // No empty line: the whole message is a header section (RFC 5322 §3.5: the body is optional).
      const h = Buffer.concat(this.head).toString("latin1");
      this.head = undefined;
      this.headerDone(h.endsWith("\r\n") ? h : h + "\r\n");
    }
    if (this.skipped) return { signed: false, reason: this.skipped, domain: this.domain };
    const setup = this.setup!;
    const b = this.body!;
    b.canon.end();
    const bodyHash = b.hash.digest("base64");
    const signed = signedHeaderNames(this.fields, setup.headers, setup.oversign);
    const timestamp = Math.floor(nowMs / 1000);
    const expires = setup.expireSeconds !== undefined ? timestamp + setup.expireSeconds : undefined;
    const fields = setup.keys.map((key) => signatureField({ key, header: setup.header, body: setup.body, fields: this.fields, signed, bodyHash, timestamp, expires }));
    this.skipped = "already finished";
    return { signed: true, fields, domain: this.domain!, keys: setup.keys.map((k) => `${k.domain}/${k.selector}/${k.algorithm}`) };
  }
}

/** Sign a message held in memory (bounces). */
export function signBuffer(policy: DkimPolicy, message: Buffer, nowMs: number): SignOutcome {
  const s = new MessageSigner(policy);
  s.write(message);
  return s.finish(nowMs);
}
