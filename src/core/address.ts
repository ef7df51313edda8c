// RFC 5321 §4.1.2 path and mailbox parsing (with RFC 6531 SMTPUTF8 extensions).
// Pure: returns data or a reply-worthy error, never throws.

export interface Mailbox {
  /** Local part as written (quoted form kept, so it round-trips to the next hop). */
  local: string;
  /** Domain as written (or the address literal including brackets). */
  domain: string;
  /** local@domain */
  address: string;
  /** Contains non-ASCII octets (needs SMTPUTF8). */
  utf8: boolean;
}

export interface PathError {
  error: string;
}

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
// UTF8-non-ascii is allowed in atext and sub-domains with SMTPUTF8 (RFC 6531 §3.3).
const ATEXT_UTF8 = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]|[^\x00-\x7f])+$/u;
const SUBDOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
const SUBDOMAIN_UTF8 = /^(?:[A-Za-z0-9]|[^\x00-\x7f])(?:(?:[A-Za-z0-9-]|[^\x00-\x7f])*(?:[A-Za-z0-9]|[^\x00-\x7f]))?$/u;

export const MAX_LOCAL = 64;
export const MAX_DOMAIN = 255;
export const MAX_PATH = 256;

function isDotString(s: string, utf8: boolean): boolean {
  if (!s) return false;
  const re = utf8 ? ATEXT_UTF8 : ATEXT;
  return s.split(".").every((a) => re.test(a));
}

function isQuotedString(s: string): boolean {
  if (s.length < 2 || s[0] !== '"' || s[s.length - 1] !== '"') return false;
  for (let i = 1; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c) {
      // quoted-pairSMTP = %d92 %d32-126
      const n = s.charCodeAt(++i);
      if (i >= s.length - 1 || n < 32 || n > 126) return false;
      continue;
    }
    if (c === 0x22) return false;
    // qtextSMTP = %d32-33 / %d35-91 / %d93-126 (plus UTF-8 with SMTPUTF8, checked by caller)
    if (c < 32 || c === 127) return false;
  }
  return true;
}

export function isValidDomain(d: string, utf8 = false): boolean {
  if (!d || d.length > MAX_DOMAIN) return false;
  const re = utf8 ? SUBDOMAIN_UTF8 : SUBDOMAIN;
  return d.split(".").every((l) => l.length <= 63 && re.test(l));
}

function isAddressLiteral(d: string): boolean {
  if (d.length < 3 || d[0] !== "[" || d[d.length - 1] !== "]") return false;
  const inner = d.slice(1, -1);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(inner)) return inner.split(".").every((o) => Number(o) <= 255);
  if (/^IPv6:[0-9A-Fa-f:.]+$/i.test(inner)) return inner.includes(":");
  return false; // General-address-literal tags are not supported
}

/**
 * The first or last `ch` outside quoted strings (where a backslash quotes the next character),
 * from `from`; -1 when there is none, or when a quoted string is not closed before the end.
 */
function findUnquoted(s: string, ch: string, from: number, which: "first" | "last"): number {
  let inQuote = false;
  let found = -1;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (inQuote) {
      if (c === "\\") i++;
      else if (c === '"') inQuote = false;
    } else if (c === '"') inQuote = true;
    else if (c === ch) {
      if (which === "first") return i;
      found = i;
    }
  }
  return inQuote ? -1 : found;
}

/** Find the end of a local part, honouring quotes; returns the index of the separating "@". */
function splitAt(s: string): number {
  return findUnquoted(s, "@", 0, "last"); // the last unquoted @ separates the domain
}

/** Parse a Mailbox (no angle brackets). */
export function parseMailbox(s: string, allowUtf8: boolean): Mailbox | PathError {
  const utf8 = /[^\x00-\x7f]/.test(s);
  if (utf8 && !allowUtf8) return { error: "non-ASCII address needs SMTPUTF8" };
  const at = splitAt(s);
  if (at <= 0) return { error: "address must be local-part@domain" };
  const local = s.slice(0, at);
  const domain = s.slice(at + 1);
  if (Buffer.byteLength(local) > MAX_LOCAL) return { error: "local part longer than 64 octets" };
  if (!(isDotString(local, allowUtf8) || isQuotedString(local))) return { error: "malformed local part" };
  if (!(isValidDomain(domain, allowUtf8) || isAddressLiteral(domain))) return { error: "malformed domain" };
  return { local, domain, address: `${local}@${domain}`, utf8 };
}

export interface ParsedPath {
  /** Null when the path is the null reverse-path <>. */
  mailbox: Mailbox | null;
  /** Text after the closing ">" (ESMTP parameters). */
  rest: string;
}

/**
 * Parse `<[A-d-l:]mailbox> params` as given after "MAIL FROM:" / "RCPT TO:".
 * Source routes (A-d-l) are accepted and ignored (RFC 5321 §4.1.2, §C).
 */
export function parsePath(arg: string, allowUtf8: boolean, allowNull: boolean): ParsedPath | PathError {
  const s = arg.replace(/^\s+/, "");
  if (!s.startsWith("<")) return { error: "address must be enclosed in <>" };
  // Find the closing ">" outside quotes.
  const close = findUnquoted(s, ">", 1, "first");
  if (close < 0) return { error: "missing closing >" };
  let inner = s.slice(1, close);
  const rest = s.slice(close + 1);
  if (rest && !/^\s/.test(rest)) return { error: "garbage after address" };
  // RFC 5321 §4.5.3.1.3: 256 octets including the angle brackets.
  if (Buffer.byteLength(inner) + 2 > MAX_PATH) return { error: "path longer than 256 octets" };
  if (inner === "") {
    if (!allowNull) return { error: "null address not allowed here" };
    return { mailbox: null, rest: rest.trim() };
  }
  if (inner.startsWith("@")) {
    // A-d-l = At-domain *( "," At-domain ) ":" — obsolete source route, ignored.
    const colon = inner.indexOf(":");
    if (colon < 0) return { error: "malformed source route" };
    const route = inner.slice(0, colon).split(",");
    if (!route.every((r) => r.startsWith("@") && isValidDomain(r.slice(1)))) return { error: "malformed source route" };
    inner = inner.slice(colon + 1);
  }
  const mb = parseMailbox(inner, allowUtf8);
  if ("error" in mb) return mb;
  return { mailbox: mb, rest: rest.trim() };
}
