// SASL exchanges for SMTP AUTH (RFC 4954), mechanisms PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login). Pure: the argument of the AUTH command and each client
// response line go in; a challenge to send, the credentials to verify, or a refusal come out.
// Verifying the credentials is the caller's job (asynchronous: scrypt).

export const MECHANISMS = ["PLAIN", "LOGIN"] as const;
export type Mechanism = (typeof MECHANISMS)[number];

export interface Credentials {
  /** The authentication identity (the user name). */
  authcid: string;
  /** The authorization identity asked for ("" = the same as authcid). */
  authzid: string;
  password: string;
}

export type SaslStep =
  | { kind: "challenge"; reply: string; state: SaslState }
  | { kind: "credentials"; credentials: Credentials }
  | { kind: "refused"; reply: string };

/** Where an exchange stands between two client lines. */
export type SaslState = { mech: "PLAIN" } | { mech: "LOGIN"; user?: string };

/** Longest user name or password we take (bounds memory and the scrypt input). */
export const MAX_FIELD = 1024;

const r = (code: number, enh: string, text: string) => `${code} ${enh} ${text}`;
const CANCELLED = r(501, "5.0.0", "Authentication cancelled");
const BAD_BASE64 = r(501, "5.5.2", "Cannot decode response (invalid base64)");
const USERNAME = "334 " + Buffer.from("Username:").toString("base64");
const PASSWORD = "334 " + Buffer.from("Password:").toString("base64");

/**
 * Strict base64 (RFC 4648 §4, padding required, no whitespace): a response that does not
 * decode is refused (RFC 4954 §4: 501), never guessed at. Returns undefined on an error.
 */
export function decodeBase64(s: string): Buffer | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const b = Buffer.from(s, "base64");
  // Non-canonical encodings (unused bits set) would decode; re-encode to refuse them.
  return b.toString("base64") === s ? b : undefined;
}

const FATAL_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes → text: only valid UTF-8 without NUL (RFC 4616 §2: UTF8SAFE). */
function utf8(b: Buffer): string | undefined {
  let s: string;
  try {
    s = FATAL_UTF8.decode(b);
  } catch {
    return undefined;
  }
  return s.includes("\0") ? undefined : s;
}

/**
 * `AUTH <mechanism> [initial-response]` (the argument after AUTH). RFC 4954 §4: an initial
 * response "=" means an empty one.
 */
export function saslStart(arg: string): SaslStep {
  const m = /^([A-Za-z0-9_-]{1,20})(?:[ ]+(\S+))?$/.exec(arg);
  if (!m) return { kind: "refused", reply: r(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]") };
  const mech = m[1]!.toUpperCase();
  const initial = m[2];
  if (mech !== "PLAIN" && mech !== "LOGIN") return { kind: "refused", reply: r(504, "5.5.4", "Unrecognized authentication type") };
  if (mech === "PLAIN") {
    // RFC 4954 §4: without an initial response the server sends an empty challenge.
    if (initial === undefined) return { kind: "challenge", reply: "334 ", state: { mech: "PLAIN" } };
    return saslContinue({ mech: "PLAIN" }, initial);
  }
  if (initial === undefined) return { kind: "challenge", reply: USERNAME, state: { mech: "LOGIN" } };
  return saslContinue({ mech: "LOGIN" }, initial);
}

/** One client response line during the exchange. */
export function saslContinue(state: SaslState, line: string): SaslStep {
  // RFC 4954 §4: "*" cancels; the server MUST answer 501.
  if (line === "*") return { kind: "refused", reply: CANCELLED };
  const decoded = line === "=" ? Buffer.alloc(0) : decodeBase64(line);
  if (!decoded) return { kind: "refused", reply: BAD_BASE64 };
  if (state.mech === "PLAIN") return plain(decoded);
  const text = utf8(decoded);
  if (text === undefined || text.length > MAX_FIELD) return { kind: "refused", reply: r(501, "5.5.2", "Invalid user name or password encoding") };
  if (state.user === undefined) return { kind: "challenge", reply: PASSWORD, state: { mech: "LOGIN", user: text } };
  return { kind: "credentials", credentials: { authcid: state.user, authzid: "", password: text } };
}

/** RFC 4616 §2: message = [authzid] NUL authcid NUL passwd. */
function plain(b: Buffer): SaslStep {
  const first = b.indexOf(0);
  const second = first < 0 ? -1 : b.indexOf(0, first + 1);
  if (first < 0 || second < 0 || b.indexOf(0, second + 1) >= 0) {
    return { kind: "refused", reply: r(501, "5.5.2", "Invalid PLAIN response (expected authzid NUL authcid NUL password)") };
  }
  const parts = [b.subarray(0, first), b.subarray(first + 1, second), b.subarray(second + 1)].map(utf8);
  if (parts.some((p) => p === undefined || p.length > MAX_FIELD)) return { kind: "refused", reply: r(501, "5.5.2", "Invalid user name or password encoding") };
  const [authzid, authcid, password] = parts as [string, string, string];
  if (authcid === "") return { kind: "refused", reply: r(501, "5.5.2", "Invalid PLAIN response (empty user name)") };
  return { kind: "credentials", credentials: { authcid, authzid, password } };
}

/** RFC 4954 §4: a response line longer than we accept ends the exchange with 500 5.5.6. */
export const LINE_TOO_LONG = r(500, "5.5.6", "Authentication exchange line is too long");
