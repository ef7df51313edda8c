// `mxd user add|passwd|delete|list`: the submission users file (auth.usersFile). Works on the
// file, with the daemon up or down: the daemon re-reads it at the next AUTH (io/users-store.ts).
// Passwords are prompted twice on a terminal, or read from the first line of stdin otherwise
// (scripts: `printf '%s\n' "$pw" | mxd user add alice`); never from the command line, where
// every user of the machine can read them in the process list.
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { parseOptions, UsageError } from "./args.js";
import { resolveConfig } from "./resolve-config.js";
import { ConfigError } from "../config.js";
import { nameProblem, senderProblem, type UserEntry } from "../auth/users-file.js";
import { hashPassword } from "../auth/password-hash.js";
import { MAX_FIELD } from "../smtp/sasl.js";
import { readUsersFile, withUsersLock, writeUsersFile } from "../io/users-store.js";

const HELP = `usage: mxd user add NAME [--sender ADDR|@DOMAIN|*]... [--config FILE]
       mxd user passwd NAME [--config FILE]
       mxd user delete NAME [--config FILE]
       mxd user list [--json] [--config FILE]

Manages the users of the submission listeners (auth.usersFile). add and passwd ask for the
password twice on a terminal, or read it from the first line of stdin when stdin is not a
terminal. --sender (repeatable) restricts the envelope senders the user may use: an address,
@domain (every address at that domain), or * (any; the default). The running daemon picks up
changes at the next AUTH. Exit 0: done; 1: failed (user exists / unknown, file problems);
2: usage or configuration error.`;

/** Shortest password accepted: credential stuffing and guessing go for short ones first. */
export const MIN_PASSWORD = 8;

export interface UserIo {
  /** The password: prompted twice on a TTY (undefined: the two differ), else stdin's first line. */
  readPassword(): Promise<string | undefined>;
  out(line: string): void;
  err(line: string): void;
}

export async function userCommand(argv: string[], io: UserIo = processIo()): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    io.out(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (!["add", "passwd", "delete", "list"].includes(sub)) throw new UsageError(`mxd user: unknown subcommand ${JSON.stringify(sub)}; see mxd user --help`);
  const { values, positionals } = parseOptions(`mxd user ${sub}`, rest, {
    config: { type: "string", short: "c" },
    sender: { type: "string", multiple: true },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const config = resolveConfig(values.config);
  const file = config.auth.usersFile;
  if (!file) throw new ConfigError("mxd user: auth.usersFile is not set in the config (see docs/configuration.md)", ["auth.usersFile"]);
  if (sub === "list") {
    if (positionals.length) throw new UsageError("mxd user list: no arguments expected");
    const { users, problems } = await readUsersFile(file);
    if (values.json) io.out(JSON.stringify({ users: [...users.values()].map((u) => ({ name: u.name, senders: u.senders })), problems }, null, 2));
    else {
      for (const u of users.values()) io.out(`${u.name}\t${u.senders.join(",")}`);
      for (const p of problems) io.err(`mxd user list: ${file}: ${p}`);
    }
    return problems.length ? 1 : 0;
  }
  if (positionals.length !== 1) throw new UsageError(`mxd user ${sub}: one user name expected`);
  const name = positionals[0]!;
  const np = nameProblem(name);
  if (np) throw new UsageError(`mxd user ${sub}: ${np}`);
  if (values.sender && sub !== "add") throw new UsageError(`mxd user ${sub}: --sender goes with add`);
  const senders = (values.sender ?? ["*"]).map((s) => s.trim().toLowerCase());
  for (const s of senders) {
    const sp = senderProblem(s);
    if (sp) throw new UsageError(`mxd user add: ${sp}`);
  }

  // Ask before taking the lock: a person typing must not block other commands.
  let hash: string | undefined;
  if (sub !== "delete") {
    const pw = await io.readPassword();
    if (pw === undefined) return fail(io, `mxd user ${sub}: the passwords do not match (nothing changed)`);
    const pp = passwordProblem(pw);
    if (pp) {
      io.err(`mxd user ${sub}: ${pp}`);
      return 1;
    }
    hash = await hashPassword(pw);
  }
  return withUsersLock(file, async () => {
    const { users, problems } = await readUsersFile(file);
    // Rewriting would drop the lines that do not parse: the operator fixes them first.
    if (problems.length) {
      for (const p of problems) io.err(`mxd user ${sub}: ${file}: ${p}`);
      io.err(`mxd user ${sub}: ${file} has lines mxd cannot read; fix them first (nothing changed)`);
      return 1;
    }
    const existing = users.get(name);
    if (sub === "add" && existing) return fail(io, `mxd user add: user ${name} exists (use mxd user passwd)`);
    if (sub !== "add" && !existing) return fail(io, `mxd user ${sub}: no user ${name} in ${file}`);
    if (sub === "delete") users.delete(name);
    else users.set(name, { name, hash: hash!, senders: sub === "add" ? senders : existing!.senders } satisfies UserEntry);
    await writeUsersFile(file, users.values());
    io.out(`mxd user ${sub}: ${name} ${sub === "add" ? `added (senders: ${senders.join(",")})` : sub === "passwd" ? "password changed" : "deleted"}`);
    return 0;
  });
}

function fail(io: UserIo, msg: string): number {
  io.err(msg);
  return 1;
}

/** Pure: why a password cannot be used, or undefined. */
export function passwordProblem(pw: string): string | undefined {
  if ([...pw].length < MIN_PASSWORD) return `password shorter than ${MIN_PASSWORD} characters`;
  if (pw.length > MAX_FIELD) return `password longer than ${MAX_FIELD} characters`;
  if (/[\0\r\n]/.test(pw)) return "password contains NUL, CR or LF";
  return undefined;
}

function processIo(): UserIo {
  return {
    out: (l) => console.log(l),
    err: (l) => console.error(l),
    async readPassword() {
      if (!process.stdin.isTTY) return firstLine(process.stdin);
      const [a, b] = await promptHidden(["Password: ", "Password (again): "]);
      return a === b ? a! : undefined;
    },
  };
}

/** The first line of a stream (CR LF or LF removed), reading at most 4 KiB. */
export async function firstLine(input: NodeJS.ReadableStream): Promise<string> {
  let buf = "";
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    buf += chunk.toString();
    if (buf.includes("\n") || buf.length > 4096) break;
  }
  const nl = buf.indexOf("\n");
  return (nl >= 0 ? buf.slice(0, nl) : buf).replace(/\r$/, "");
}

/**
 * Terminal prompts that do not echo what is typed; one readline interface for all of them, so
 * that a second line already typed (or pasted) is not lost between two prompts.
 */
async function promptHidden(prompts: string[]): Promise<string[]> {
  const mute = new Writable({ write: (_c, _e, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: mute, terminal: true });
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  rl.on("line", (l) => (waiting.length ? waiting.shift()!(l) : lines.push(l)));
  const closed = new Promise<never>((_, reject) => rl.once("close", () => reject(new UsageError("no password given (input closed)"))));
  closed.catch(() => undefined);
  try {
    const out: string[] = [];
    for (const p of prompts) {
      process.stderr.write(p);
      out.push(lines.length ? lines.shift()! : await Promise.race([new Promise<string>((r) => waiting.push(r)), closed]));
      process.stderr.write("\n");
    }
    return out;
  } finally {
    rl.close();
  }
}
