// Checks SASL credentials against the users file. Every check costs one scrypt run whatever
// the outcome (unknown user: the dummy hash; a refused authorization identity: the same), and
// the comparison is constant-time (password-hash.ts), so the time a refusal takes does not say
// whether the user exists. At most `concurrency` scrypt runs at once: they share libuv's thread
// pool with the spool's file I/O, and an AUTH flood must not stall queueing.
import type { Credentials } from "../smtp/sasl.js";
import type { UserEntry } from "./users-file.js";
import { DUMMY_HASH, verifyPassword } from "./password-hash.js";

export interface UserLookup {
  lookup(name: string): Promise<UserEntry | undefined>;
}

export type AuthCheck = { ok: true; user: UserEntry } | { ok: false; reason: "unknown user" | "bad password" | "authzid" } | { ok: false; reason: "unavailable"; error: string };

export class Authenticator {
  private running = 0;
  private waiting: (() => void)[] = [];

  constructor(private readonly users: UserLookup, private readonly verify: (password: string, hash: string) => Promise<boolean> = verifyPassword, private readonly concurrency = 2) {}

  async check(c: Credentials): Promise<AuthCheck> {
    let user: UserEntry | undefined;
    try {
      user = await this.users.lookup(c.authcid);
    } catch (e) {
      return { ok: false, reason: "unavailable", error: (e as Error).message };
    }
    // RFC 4616 §2: an authorization identity other than the user's own would be acting as
    // someone else; mxd has no such rights, so it is refused (after the same work).
    const authzOk = c.authzid === "" || c.authzid === c.authcid;
    let match: boolean;
    try {
      match = await this.limited(() => this.verify(c.password, user?.hash ?? DUMMY_HASH));
    } catch (e) {
      return { ok: false, reason: "unavailable", error: (e as Error).message };
    }
    if (!user) return { ok: false, reason: "unknown user" };
    if (!match) return { ok: false, reason: "bad password" };
    if (!authzOk) return { ok: false, reason: "authzid" };
    return { ok: true, user };
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    while (this.running >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}
