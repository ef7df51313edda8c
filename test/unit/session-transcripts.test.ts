// Runs every dialogue in test/transcripts/ (format: test/transcripts/README.md) against the
// inbound state machine, without sockets: each command's replies and the action asked of the
// socket layer must be exactly the ones written down.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { ServerSession, type CommandResult, type SessionAction } from "../../src/smtp/server-session.js";
import { TRANSCRIPTS_DIR } from "../helpers/paths.js";

interface Pending {
  line: number;
  command: string;
  result: CommandResult;
  next: number;
  action?: SessionAction;
}

function run(name: string, text: string): void {
  const lines = text.split("\n");
  let config: Record<string, unknown> = {};
  let relayAllowed = true;
  let tlsAvailable = false;
  let clientIp = "192.0.2.1";
  let s: ServerSession | undefined;
  const session = () => (s ??= new ServerSession({ config: parseConfig({ hostname: "mx.test", ...config }), clientIp, relayAllowed, tlsAvailable, secure: false }));
  // The replies still to be matched: the greeting first, then each command's.
  let pending: Pending | undefined;
  let greeting: string[] | undefined;
  const where = (n: number) => `${name}:${n + 1}`;
  const settle = (n: number) => {
    if (!pending) return;
    const { result } = pending;
    assert.equal(pending.next, result.replies.length, `${where(pending.line)}: ${pending.command}: ${result.replies.length} replies, ${pending.next} written down: ${JSON.stringify(result.replies)}`);
    assert.equal(result.action, pending.action ?? "none", `${where(pending.line)}: ${pending.command}: action (before line ${n + 1})`);
    pending = undefined;
  };
  lines.forEach((raw, n) => {
    const l = raw.replace(/\r$/, "");
    if (l.trim() === "" || l.startsWith("#")) return;
    const m = /^(! |S: |S~ |C: |X: |= )(.*)$/.exec(l);
    assert.ok(m, `${where(n)}: cannot read ${JSON.stringify(l)}`);
    const [, kind, rest] = m as unknown as [string, string, string];
    switch (kind) {
      case "! ": {
        if (rest === "message accepted") {
          settle(n);
          session().resetTransaction();
          session().messages++;
          return;
        }
        assert.equal(s, undefined, `${where(n)}: set-up after the first command`);
        const d = /^(config|relay|tls|client) (.*)$/.exec(rest);
        assert.ok(d, `${where(n)}: unknown directive ${rest}`);
        if (d[1] === "config") config = JSON.parse(d[2]!) as Record<string, unknown>;
        else if (d[1] === "relay") relayAllowed = d[2] !== "denied";
        else if (d[1] === "tls") tlsAvailable = d[2] === "available";
        else clientIp = d[2]!;
        return;
      }
      case "S: ":
      case "S~ ": {
        let got: string | undefined;
        if (!pending) {
          greeting ??= [session().greeting()];
          got = greeting.shift();
          assert.ok(got !== undefined, `${where(n)}: a reply written down, but nothing was said`);
        } else {
          got = pending.result.replies[pending.next++];
          assert.ok(got !== undefined, `${where(n)}: ${pending.command}: only ${pending.result.replies.length} replies`);
        }
        if (kind === "S: ") assert.equal(got, rest, where(n));
        else assert.match(got, new RegExp(rest), where(n));
        return;
      }
      case "C: ":
      case "X: ":
        settle(n);
        pending = { line: n, command: rest, result: session().handle(rest, kind === "X: " ? { invalidUtf8: true } : {}), next: 0 };
        return;
      case "= ":
        assert.ok(pending, `${where(n)}: an action without a command`);
        pending.action = rest as SessionAction;
        return;
    }
  });
  settle(lines.length);
}

const files = readdirSync(TRANSCRIPTS_DIR).filter((f) => f.endsWith(".txt")).sort();

test("there are transcripts to run", () => {
  assert.ok(files.length >= 5, `transcripts in ${TRANSCRIPTS_DIR}: ${files.join(", ")}`);
});

for (const f of files) {
  test(`transcript ${f}`, () => run(f, readFileSync(join(TRANSCRIPTS_DIR, f), "utf8")));
}

test("the runner fails on a reply that differs, a missing reply and a wrong action", () => {
  assert.throws(() => run("t", "C: NOOP\nS: 250 2.0.0 Fine\n"), /t:2/);
  assert.throws(() => run("t", "C: QUIT\nS: 221 2.0.0 Bye\n"), /action/);
  assert.throws(() => run("t", "C: NOOP\n"), /1 replies, 0 written down/);
  assert.throws(() => run("t", "C: NOOP\nS: 250 2.0.0 Ok\nS: 250 again\n"), /only 1 replies/);
});
