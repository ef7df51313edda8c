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
  // As after AUTH (the senders rule: any address).
  s.authUser = "alice";
  (s as unknown as { authSenders: string[] }).authSenders = ["*"];
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

test("the same lines as valid UTF-8 are accepted (control)", () => {
  const s = session();
  assert.match(s.handle("EHLO c.test").replies.at(-1)!, /^250 /);
  assert.match(s.handle("MAIL FROM:<jörg@x.de> SMTPUTF8").replies[0]!, /^250 /);
  assert.match(s.handle("RCPT TO:<ü@y.de>").replies[0]!, /^250 /);
  assert.equal(s.tx!.sender!.address, "jörg@x.de");
  // Commands without an address are not affected by the flag.
  assert.match(s.handle("NOOP", { invalidUtf8: true }).replies[0]!, /^250 /);
});

// ---------------------------------------------------------------------------------------------
// AUTH on submission listeners (RFC 4954)

const SUB_CONFIG = parseConfig({ hostname: "mx.test", listen: [{ port: 587, mode: "submission" }], tls: { cert: "c", key: "k" }, auth: { usersFile: "u" } });
const plainLine = (user: string, pw: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pw}`).toString("base64")}`;

function submission(o: { secure?: boolean; relayAllowed?: boolean; blockedFor?: number } = {}): ServerSession {
  return new ServerSession({
    config: SUB_CONFIG,
    clientIp: "192.0.2.9",
    relayAllowed: o.relayAllowed ?? false,
    tlsAvailable: !o.secure,
    secure: o.secure ?? false,
    mode: "submission",
    authBlockedFor: () => o.blockedFor ?? 0,
  });
}

/** EHLO, AUTH PLAIN, and the verdict given. */
function authenticated(senders: string[] = ["*"], user = "alice"): ServerSession {
  const s = submission({ secure: true });
  s.handle("EHLO c.test");
  const a = s.handle(plainLine(user, "pw"));
  assert.equal(a.action, "auth");
  assert.deepEqual(s.pendingAuth, { authcid: user, authzid: "", password: "pw" });
  assert.match(s.authResult({ ok: true, user, senders }).replies[0]!, /^235 2\.7\.0 /);
  assert.equal(s.authUser, user);
  return s;
}

test("submission: AUTH is not offered or accepted before TLS (538 5.7.11); MAIL before AUTH gets 530 5.7.0", () => {
  const plain = submission();
  const ehlo = plain.handle("EHLO c.test").replies;
  assert.ok(ehlo.includes("250-STARTTLS"));
  assert.ok(!ehlo.some((l) => /AUTH/.test(l)), "no AUTH before TLS");
  assert.match(plain.handle(plainLine("alice", "pw")).replies[0]!, /^538 5\.7\.11 /);
  assert.equal(plain.pendingAuth, undefined);
  assert.match(plain.handle("MAIL FROM:<a@x.test>").replies[0]!, /^530 5\.7\.0 Must issue a STARTTLS command first/);
  // Under TLS: offered; MAIL still needs AUTH, whatever relay.allowedNetworks says.
  const tls = submission({ secure: true, relayAllowed: true });
  assert.ok(tls.handle("EHLO c.test").replies.includes("250-AUTH PLAIN LOGIN"));
  assert.match(tls.handle("MAIL FROM:<a@x.test>").replies[0]!, /^530 5\.7\.0 Authentication required$/);
  assert.equal(tls.tx, undefined);
  // A relay listener (today's behaviour): no AUTH at all, MAIL without it.
  const relay = session();
  assert.ok(!relay.handle("EHLO c.test").replies.some((l) => /AUTH/.test(l)));
  assert.match(relay.handle(plainLine("alice", "pw")).replies[0]!, /^502 5\.5\.1 /);
  assert.match(relay.handle("MAIL FROM:<a@x.test>").replies[0]!, /^250 /);
});

test("submission: a wrong password is refused (535 5.7.8); perConnection failures close with 421", () => {
  const s = submission({ secure: true });
  s.handle("EHLO c.test");
  for (let i = 1; i <= 3; i++) {
    assert.equal(s.handle(plainLine("alice", "bad")).action, "auth");
    const v = s.authResult({ ok: false });
    assert.match(v.replies[0]!, /^535 5\.7\.8 Authentication credentials invalid$/);
    if (i < 3) assert.equal(v.action, "none");
    else {
      assert.equal(v.action, "close");
      assert.match(v.replies[1]!, /^421 4\.7\.0 .*too many failed authentications/);
    }
  }
  assert.equal(s.authUser, undefined);
  assert.match(s.handle("MAIL FROM:<a@x.test>").replies[0]!, /^530 /);
});

test("submission: the back-off refuses AUTH with 454 4.7.0 and closes, before any password is read", () => {
  const s = submission({ secure: true, blockedFor: 42_500 });
  s.handle("EHLO c.test");
  const r1 = s.handle("AUTH LOGIN");
  assert.deepEqual(r1, { replies: ["454 4.7.0 Too many failed authentications from your address, try again in 43 s"], action: "close" });
  assert.equal(s.inSasl, false);
  // The failure that starts the back-off: 535 then 421, closed.
  const t = submission({ secure: true });
  t.handle("EHLO c.test");
  t.handle(plainLine("alice", "bad"));
  const v = t.authResult({ ok: false, nowBlockedForMs: 60_000 });
  assert.equal(v.action, "close");
  assert.match(v.replies[0]!, /^535 5\.7\.8 /);
  assert.match(v.replies[1]!, /^421 4\.7\.0 .*try again in 60 s/);
  // Users file unreadable: 454 4.7.0, not counted as a failure.
  const u = submission({ secure: true });
  u.handle("EHLO c.test");
  u.handle(plainLine("alice", "pw"));
  assert.match(u.authResult({ ok: false, temporary: true }).replies[0]!, /^454 4\.7\.0 Temporary authentication failure$/);
  assert.equal(u.authFailures, 0);
});

test("submission: the LOGIN exchange, * cancel (501), a line too long (500 5.5.6), AUTH twice or in a transaction (503)", () => {
  const s = submission({ secure: true });
  s.handle("EHLO c.test");
  assert.deepEqual(s.handle("AUTH LOGIN").replies, ["334 VXNlcm5hbWU6"]);
  assert.equal(s.inSasl, true);
  // Response lines are not commands: "RSET now" is (bad) base64 here.
  assert.match(s.handle("RSET now").replies[0]!, /^501 5\.5\.2 Cannot decode/);
  assert.equal(s.inSasl, false);
  s.handle("AUTH LOGIN");
  assert.match(s.handle("*").replies[0]!, /^501 5\.0\.0 Authentication cancelled/);
  s.handle("AUTH PLAIN");
  assert.match(s.saslLineTooLong().replies[0]!, /^500 5\.5\.6 /);
  assert.equal(s.inSasl, false);
  s.handle("AUTH LOGIN");
  s.handle(Buffer.from("alice").toString("base64"));
  assert.equal(s.handle(Buffer.from("pw").toString("base64")).action, "auth");
  assert.deepEqual(s.pendingAuth, { authcid: "alice", authzid: "", password: "pw" });
  s.authResult({ ok: true, user: "alice", senders: ["*"] });
  assert.match(s.handle(plainLine("alice", "pw")).replies[0]!, /^503 5\.5\.1 Error: already authenticated/);
  const t = submission({ secure: true });
  assert.match(t.handle(plainLine("a", "b")).replies[0]!, /^503 5\.5\.1 Error: send EHLO first/);
});

test("submission: an authenticated user relays, only with its own senders (553 5.7.1 otherwise)", () => {
  const s = authenticated(["alice@example.org", "@example.net"]);
  assert.match(s.handle("MAIL FROM:<mallory@other.test>").replies[0]!, /^553 5\.7\.1 <mallory@other\.test>: Sender address rejected: not owned by user alice$/);
  assert.match(s.handle("MAIL FROM:<>").replies[0]!, /^553 5\.7\.1 /, "a restricted user cannot send as <>");
  assert.match(s.handle("MAIL FROM:<anyone@example.net>").replies[0]!, /^250 /);
  assert.match(s.handle("RCPT TO:<bob@far.test>").replies[0]!, /^250 /, "relays without relay.allowedNetworks");
  s.handle("RSET");
  assert.match(s.handle("MAIL FROM:<Alice@Example.org>").replies[0]!, /^250 /);
  assert.match(s.handle(plainLine("x", "y")).replies[0]!, /^503 5\.5\.1 /, "AUTH inside a transaction");
  // The Received header: ESMTPSA and the user.
  s.handle("RCPT TO:<bob@far.test>");
  const h = s.receivedHeader("0123456789ABCDEF", new Date(0));
  assert.match(h, /^Received: from c\.test \(\[192\.0\.2\.9\]\)\r\n\t\(Authenticated sender: alice\)\r\n\tby mx\.test \(mxd\) with ESMTPSA id 0123456789ABCDEF\r\n\tfor <bob@far\.test>;/);
  // An unrestricted user may use any sender; without AUTH the header says ESMTPS.
  assert.match(authenticated(["*"]).handle("MAIL FROM:<>").replies[0]!, /^250 /);
  const relay = new ServerSession({ config: SUB_CONFIG, clientIp: "192.0.2.9", relayAllowed: true, tlsAvailable: false, secure: true });
  relay.handle("EHLO c.test");
  relay.handle("MAIL FROM:<a@x.test>");
  assert.match(relay.receivedHeader("0123456789ABCDEF", new Date(0)), /with ESMTPS id/);
});

test("AUTH= on MAIL (RFC 4954 §5): kept when trusted, <> otherwise; malformed refused; not on relay listeners", () => {
  const cases: [string[] | undefined, string, string | undefined | RegExp][] = [
    // [senders of the authenticated user (undefined: relay listener, no AUTH), MAIL line, params.auth or refusal]
    [["*"], "MAIL FROM:<a@x.test> AUTH=<>", ""],
    [["*"], "MAIL FROM:<a@x.test> AUTH=a@x.test", "a@x.test"],
    [["*"], "MAIL FROM:<a@x.test> AUTH=a+2Bb@x.test", "a+b@x.test"],
    [["@x.test"], "MAIL FROM:<a@x.test> AUTH=other@y.test", ""],
    [["@x.test"], "MAIL FROM:<a@x.test>", undefined],
    // A relay listener does not offer AUTH: an unknown parameter, as before.
    [undefined, "MAIL FROM:<a@x.test> AUTH=a@x.test", /^555 5\.5\.4 /],
    [undefined, "MAIL FROM:<a@x.test> AUTH=<>", /^555 5\.5\.4 /],
    [["*"], "MAIL FROM:<a@x.test> AUTH=", /^501 5\.5\.4 Bad AUTH= value/],
    [["*"], "MAIL FROM:<a@x.test> AUTH=a+zz@x.test", /^501 5\.5\.4 Bad AUTH= value/],
    [["*"], "MAIL FROM:<a@x.test> AUTH=not-an-address", /^501 5\.5\.4 Bad AUTH= value/],
  ];
  for (const [senders, line, want] of cases) {
    let s: ServerSession;
    if (senders) s = authenticated(senders);
    else {
      s = session();
      s.handle("EHLO c.test");
    }
    const r = s.handle(line).replies[0]!;
    if (want instanceof RegExp) assert.match(r, want, line);
    else {
      assert.match(r, /^250 /, line);
      assert.equal(s.tx!.params.auth, want, line);
    }
  }
});
