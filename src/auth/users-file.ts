// The submission users file (auth.usersFile): one user per line, fields separated by ":", in
// the spirit of /etc/shadow, so that an operator can read it and fix it with an editor.
//
//   # comment
//   alice:$scrypt$N=16384,r=8,p=1$salt$key:alice@example.org,@example.net
//   relay-bot:$scrypt$N=16384,r=8,p=1$salt$key:*
//
// Field 3 lists the envelope senders the user may use: addresses, "@domain" (any address at
// that domain, subdomains not included), or "*" (any sender). Pure: parse and serialise only;
// io/users-store.ts reads and writes the file.
import { parseHash } from "./password-hash.js";

export interface UserEntry {
  name: string;
  hash: string;
  /** Lower-cased addresses and "@domain" entries, or ["*"]. */
  senders: string[];
}

export interface UsersParse {
  users: Map<string, UserEntry>;
  /** One per refused line, naming the line number; those lines are ignored. */
  problems: string[];
}

/** Longest user name accepted (RFC 4954 does not bound it; Postfix's SASL layer allows 255). */
export const MAX_NAME = 255;
const NAME_RE = /^[A-Za-z0-9._%+@=-]+$/;
const SENDER_RE = /^(?:\*|@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[^\s@:,<>"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$/;

/** Pure: why a user name cannot be used, or undefined. Names are case-sensitive. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "empty user name";
  if (name.length > MAX_NAME) return `user name longer than ${MAX_NAME} characters`;
  if (!NAME_RE.test(name)) return `user name ${JSON.stringify(name.slice(0, 40))} may contain only letters, digits and . _ % + @ = -`;
  return undefined;
}

/** Pure: why a sender entry cannot be used, or undefined. */
export function senderProblem(s: string): string | undefined {
  return SENDER_RE.test(s) ? undefined : `sender ${JSON.stringify(s.slice(0, 80))} is not an address, "@domain" or "*"`;
}

export function parseUsers(text: string): UsersParse {
  const users = new Map<string, UserEntry>();
  const problems: string[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) return;
    const at = `line ${i + 1}`;
    const f = line.split(":");
    if (f.length !== 3) return void problems.push(`${at}: expected name:hash:senders, got ${f.length} field(s)`);
    const [name, hash, sendersField] = f as [string, string, string];
    const np = nameProblem(name);
    if (np) return void problems.push(`${at}: ${np}`);
    const hp = parseHash(hash);
    if ("error" in hp) return void problems.push(`${at}: user ${name}: bad hash: ${hp.error}`);
    const senders = sendersField.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
    const bad = senders.map(senderProblem).find(Boolean);
    if (bad) return void problems.push(`${at}: user ${name}: ${bad}`);
    if (senders.length === 0) return void problems.push(`${at}: user ${name}: no senders (use "*" for any)`);
    if (users.has(name)) return void problems.push(`${at}: user ${name} appears twice; the first entry counts`);
    users.set(name, { name, hash, senders });
  });
  return { users, problems };
}

const HEADER = "# mxd submission users (mxd user add|passwd|delete|list): name:scrypt-hash:senders\n";

export function serializeUsers(users: Iterable<UserEntry>): string {
  const lines = [...users].map((u) => `${u.name}:${u.hash}:${u.senders.join(",")}`);
  return HEADER + lines.map((l) => l + "\n").join("");
}

/**
 * Pure: may `user` use `sender` ("" = the null sender) as envelope sender? "*" allows any;
 * otherwise an exact address (case-insensitive) or its domain as "@domain". The null sender
 * matches only "*": a submitted bounce has no owner to check.
 */
export function senderAllowed(senders: readonly string[], sender: string): boolean {
  if (senders.includes("*")) return true;
  if (sender === "") return false;
  const s = sender.toLowerCase();
  const domain = s.slice(s.lastIndexOf("@"));
  return senders.includes(s) || senders.includes(domain);
}
