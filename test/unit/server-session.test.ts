// The inbound state machine without sockets: command lines in, replies out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config.js";
import { ServerSession } from "../../src/smtp/server-session.js";

function session(relayAllowed = true): ServerSession {
  return new ServerSession({ config: parseConfig({ hostname: "mx.test" }), clientIp: "192.0.2.1", relayAllowed, tlsAvailable: false, secure: false });
}

test("a line that was not valid UTF-8 never yields an address or a HELO name (553 5.6.7 / 501)", () => {
  // [setup commands, the command whose octets were invalid UTF-8 (U+FFFD already in it), expected reply]
  const cases: [string[], string, RegExp][] = [
    [["EHLO c.test"], "MAIL FROM:<j\ufffdrg@x.de> SMTPUTF8", /^553 5\.6\.7 Bad sender address syntax: invalid UTF-8$/],
    [["EHLO c.test"], "MAIL FROM:<j\ufffdrg@x.de>", /^553 5\.6\.7 /],
    [["EHLO c.test", "MAIL FROM:<a@x.de> SMTPUTF8"], "RCPT TO:<\ufffd@y.de>", /^553 5\.6\.7 Bad recipient address syntax: invalid UTF-8$/],
    [[], "EHLO h\ufffdst", /^501 5\.5\.4 /],
    [[], "HELO h\ufffdst", /^501 5\.5\.4 /],
  ];
  for (const [setup, line, want] of cases) {
    const s = session();
    for (const c of setup) assert.match(s.handle(c).replies.at(-1)!, /^250[ -]/, c);
    const res = s.handle(line, { invalidUtf8: true });
    assert.match(res.replies[0]!, want, line);
    assert.equal(s.errors, 1, `${line}: counts as an error`);
    if (line.startsWith("MAIL")) assert.equal(s.tx, undefined, "no transaction started");
    if (line.startsWith("RCPT")) assert.equal(s.tx!.recipients.length, 0, "no recipient added");
    if (line.startsWith("EHLO") || line.startsWith("HELO")) assert.equal(s.helo, undefined);
  }
});

test("the same lines as valid UTF-8 are accepted (control)", () => {
  const s = session();
  assert.match(s.handle("EHLO c.test").replies.at(-1)!, /^250 /);
  assert.match(s.handle("MAIL FROM:<jörg@x.de> SMTPUTF8").replies[0]!, /^250 /);
  assert.match(s.handle("RCPT TO:<ü@y.de>").replies[0]!, /^250 /);
  assert.equal(s.tx!.sender!.address, "jörg@x.de");
  // Commands without an address are not affected by the flag.
  assert.match(s.handle("NOOP", { invalidUtf8: true }).replies[0]!, /^250 /);
});

test("rate check: asked at MAIL (messages) and for each new RCPT (recipients), with the authenticated user; a refusal starts or adds nothing", () => {
  const asked: [string, string | undefined][] = [];
  let refuse: "messages" | "recipients" | undefined;
  const s = new ServerSession({
    config: parseConfig({ hostname: "mx.test" }),
    clientIp: "192.0.2.1",
    relayAllowed: true,
    tlsAvailable: false,
    secure: false,
    rateLimit: (what, user) => {
      asked.push([what, user]);
      return what === refuse ? `450 4.7.1 Error: too many ${what} from 192.0.2.1 (limit 1 per 1m), try again later` : undefined;
    },
  });
  s.handle("EHLO c.test");
  refuse = "messages";
  const m = s.handle("MAIL FROM:<a@x.test>");
  assert.deepEqual(m.replies, ["450 4.7.1 Error: too many messages from 192.0.2.1 (limit 1 per 1m), try again later"]);
  assert.equal(s.tx, undefined, "no transaction");
  assert.equal(s.errors, 0, "a rate limit is not a client error");
  refuse = undefined;
  s.authUser = "alice";
  assert.match(s.handle("MAIL FROM:<a@x.test>").replies[0]!, /^250 /);
  assert.match(s.handle("RCPT TO:<b@y.test>").replies[0]!, /^250 /);
  assert.match(s.handle("RCPT TO:<B@y.test>").replies[0]!, /^250 /); // a duplicate: not asked again
  refuse = "recipients";
  assert.match(s.handle("RCPT TO:<c@y.test>").replies[0]!, /^450 4\.7\.1 Error: too many recipients/);
  assert.deepEqual(s.tx!.recipients.map((r) => r.address), ["b@y.test"]);
  // A refused syntax or relay check is answered before the limit is asked.
  s.handle("RCPT TO:<bad");
  assert.deepEqual(asked, [["messages", undefined], ["messages", "alice"], ["recipients", "alice"], ["recipients", "alice"]]);
});
