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
  return domain && /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/.test(domain) ? domain : undefined;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

export class MessageSigner {
  private head: Buffer | undefined = Buffer.alloc(0);
  private fields: HeaderField[] = [];
  private setup: DomainSigning | undefined;
  private domain: string | undefined;
  private bodies = new Map<Canon, { canon: BodyCanonicalizer; hash: Hash }>();
  private size = 0;
  private skipped: string | undefined;

  constructor(private readonly policy: DkimPolicy) {}

  /** Feed message octets (after dot-unstuffing), in order. */
  write(chunk: Buffer): void {
    if (this.skipped) return;
    this.size += chunk.length;
    if (this.size > this.policy.maxSize) return this.skip(`larger than dkim.maxSize (${this.policy.maxSize} bytes)`);
    if (this.head) {
      const prev = this.head.length;
      this.head = prev ? Buffer.concat([this.head, chunk]) : chunk;
      // An empty header section (the message starts with its empty line) or the end of one.
      const end = this.head.length >= 2 && this.head[0] === 0x0d && this.head[1] === 0x0a ? -2 : this.head.indexOf(CRLFCRLF, Math.max(0, prev - 3));
      if (end === -1 || end > MAX_HEADER_SECTION) {
        if (this.head.length > MAX_HEADER_SECTION) this.skip(`header section larger than ${MAX_HEADER_SECTION} bytes`);
        return;
      }
      const section = end === -2 ? "" : this.head.subarray(0, end + 2).toString("latin1");
      const rest = this.head.subarray(end + 4);
      this.head = undefined;
      this.headerDone(section);
      if (!this.skipped && rest.length) this.bodyWrite(rest);
      return;
    }
    this.bodyWrite(chunk);
  }

  private skip(reason: string): void {
    this.skipped = reason;
    this.head = undefined;
    this.bodies.clear();
    this.fields = [];
  }

  private headerDone(section: string): void {
    this.fields = splitHeaderFields(section);
    const froms = this.fields.filter((f) => f.name.toLowerCase() === "from");
    if (froms.length !== 1) return this.skip(froms.length ? "several From fields" : "no From field");
    const f = froms[0]!;
    const domain = fromDomain(f.raw.slice(f.raw.indexOf(":") + 1));
    if (!domain) return this.skip("From has no single address with a domain");
    this.domain = domain;
    this.setup = this.policy.lookup(domain);
    if (!this.setup) return this.skip(`no DKIM key for ${domain}`);
    for (const canon of new Set([this.setup.body])) {
      const hash = createHash("sha256");
      this.bodies.set(canon, { canon: new BodyCanonicalizer(canon, (b) => hash.update(b)), hash });
    }
  }

  private bodyWrite(chunk: Buffer): void {
    for (const b of this.bodies.values()) b.canon.push(chunk);
  }

  /** The message is complete: the signature fields (one per key), or why there are none. */
  finish(nowMs: number): SignOutcome {
    if (this.head && !this.skipped) {
      // No empty line: the whole message is a header section (RFC 5322 §3.5: the body is optional).
      const h = this.head.toString("latin1");
      this.head = undefined;
      this.headerDone(h.endsWith("\r\n") ? h : h + "\r\n");
    }
    if (this.skipped) return { signed: false, reason: this.skipped, domain: this.domain };
    const setup = this.setup!;
    const b = this.bodies.get(setup.body)!;
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
