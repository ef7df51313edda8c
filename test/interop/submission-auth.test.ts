// Interop, authenticated submission (RFC 4954): real clients — swaks, nodemailer and Python's
// smtplib — submit to the mxd daemon (a child process) on submission listeners, over STARTTLS
// (port 587 style) and implicit TLS (465 style); what mxd relays arrives at an smtp-server sink
// that offers AUTH (so the AUTH= parameter is passed on). Loopback is NOT in
// relay.allowedNetworks here: every relayed message proves the AUTH, not the client address.
// Each control is tested both ways: refused without, accepted with.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readFileSync, rmSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { makeCert, runTool, skipUnless, requirePeers, startMxd, stopAllPeers, tempDir, peerPath, SYSTEM_PYTHON, inCI, waitFor, type MxdPeer } from "../helpers/peers.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";
import { MXD_CLI as CLI } from "../helpers/paths.js";

const HOST = "127.0.0.190";
const SINK = "127.0.0.191";
/** Source addresses for the back-off test (blocked) and its control (not blocked). */
const GUESSER = "127.0.0.193";
const NEIGHBOUR = "127.0.0.194";
/** One source address per test that fails AUTH on purpose (max is 3 per IP). */
const WRONG_PW = "127.0.0.195";
const NM = "127.0.0.196";
const PASSWD = "127.0.0.197";
const li = (addr: string) => ["--local-interface", addr];
const PW = "correct horse battery";

let base: string;
let mxd: MxdPeer;
let sink: MxSink;
let usersFile: string;
const skip = skipUnless("openssl", "swaks");
let starttlsPort = 0;
let implicitPort = 0;

async function user(args: string[], password?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runTool(process.execPath, [CLI, "user", ...args, "--config", mxd.configFile], { timeoutMs: 30_000, ...(password !== undefined ? { input: `${password}\n` } : {}) });
}

before(async () => {
  if (skip) return;
  requirePeers("openssl", "swaks");
  base = tempDir("mxd-interop-auth-");
  const { cert, key } = makeCert(base);
  usersFile = join(base, "users");
  sink = await startMxSink({ host: SINK, port: 2525 });
  mxd = await startMxd({
    hostname: "mxd.test",
    listen: [
      { host: HOST, port: 0, mode: "submission" },
      { host: HOST, port: 0, tls: true, mode: "submission" },
    ],
    spoolDir: join(base, "spool"),
    tls: { cert, key },
    relay: { allowedNetworks: ["192.0.2.0/24"] },
    auth: { usersFile, failures: { max: 3, window: "10m", backoff: "10m", maxBackoff: "1h", perConnection: 3 } },
    routes: { "far.test": [`${SINK}:2525`] },
    admin: { listen: null },
    log: { level: "info" },
  });
  starttlsPort = mxd.listen[0]!.port;
  implicitPort = mxd.listen[1]!.port;
  // The users, added with the CLI while the daemon runs (stdin is a pipe, not a TTY).
  const a = await user(["add", "alice", "--sender", "@example.org"], PW);
  assert.equal(a.code, 0, a.stdout + a.stderr);
  const b = await user(["add", "bot@example.net"], PW);
  assert.equal(b.code, 0, b.stdout + b.stderr);
});

after(async () => {
  await mxd?.stop();
  await sink?.close();
  await stopAllPeers();
  if (base) rmSync(base, { recursive: true, force: true });
});

function swaks(args: string[], port = starttlsPort) {
  return runTool(peerPath("swaks")!, ["--server", HOST, "--port", String(port), "--ehlo", "swaks.client.test", "--from", "alice@example.org", "--to", "rcpt@far.test", ...args], { timeoutMs: 30_000 });
}

const auth = (user = "alice", pw = PW, mech = "PLAIN") => ["--auth", mech, "--auth-user", user, "--auth-password", pw];

/** The sink's copy of the message whose Subject is `subject`. */
async function arrived(subject: string) {
  let m: MxSink["messages"][number] | undefined;
  await waitFor(() => !!(m = sink.messages.find((x) => x.raw?.toString("latin1").includes(`Subject: ${subject}\r\n`))), 20_000, `message "${subject}" at the sink`);
  return m!;
}

function metrics(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: join(base, "spool", "admin.sock"), path: "/metrics", timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("metrics timeout")));
  });
}

test("swaks: AUTH is not offered before STARTTLS; MAIL before AUTH is refused (530 5.7.0)", { skip }, async () => {
  const noTls = await swaks([...auth(), "--quit-after", "AUTH"]);
  assert.notEqual(noTls.code, 0, "swaks must fail to authenticate in clear text");
  assert.doesNotMatch(noTls.stdout, /250-AUTH/);
  assert.match(noTls.stdout + noTls.stderr, /did not advertise authentication|not advertised/i);
  const noAuth = await swaks(["-tls", "--header", "Subject: no-auth"]);
  assert.notEqual(noAuth.code, 0);
  assert.match(noAuth.stdout, /250-AUTH PLAIN LOGIN/, "offered under TLS");
  assert.match(noAuth.stdout, /<(?:~\*|\*\*) +530 5\.7\.0 Authentication required/);
});

test("swaks over STARTTLS: a wrong password is refused (535 5.7.8); the right one relays, ESMTPSA, AUTH passed on", { skip }, async () => {
  const wrong = await swaks(["-tls", ...li(WRONG_PW), ...auth("alice", "wrong password"), "--header", "Subject: wrong-pw"]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stdout, /<(?:~\*|\*\*) +535 5\.7\.8 Authentication credentials invalid/);
  const unknown = await swaks(["-tls", ...li(WRONG_PW), ...auth("nobody", PW, "LOGIN"), "--header", "Subject: unknown-user"]);
  assert.match(unknown.stdout, /<(?:~\*|\*\*) +535 5\.7\.8 Authentication credentials invalid/, "an unknown user gets the same reply");
  for (const mech of ["PLAIN", "LOGIN"]) {
    const ok = await swaks(["-tls", ...li(WRONG_PW), ...auth("alice", PW, mech), "--header", `Subject: swaks-starttls-${mech}`]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /<~ +235 2\.7\.0 Authentication successful/);
    const m = await arrived(`swaks-starttls-${mech}`);
    assert.equal(m.from, "alice@example.org");
    assert.deepEqual(m.to, ["rcpt@far.test"]);
    const received = m.raw!.toString("latin1").split("\r\n\r\n")[0]!;
    assert.match(received, /^Received: from swaks\.client\.test \(\[127\.0\.0\.195\]\)\r\n\t\(Authenticated sender: alice\)\r\n\tby mxd\.test \(mxd\) with ESMTPSA id /);
  }
  const logs = mxd.logs();
  assert.ok(logs.some((l) => l.msg === "message queued" && l.user === "alice"), "the user is in the log line");
  assert.ok(logs.some((l) => l.msg === "AUTH failed" && l.user === "nobody" && l.reason === "unknown user"));
  const all = JSON.stringify(logs);
  assert.ok(!all.includes("wrong password") && !all.includes(Buffer.from("\0alice\0wrong password").toString("base64")), "no password in the logs, plain or base64");
  assert.ok(all.includes('"user":"alice"'), "the logs were read (control)");
});

test("swaks over implicit TLS (465 style): refused without AUTH, relays with it", { skip }, async () => {
  const noAuth = await swaks(["--tls-on-connect", "--header", "Subject: tlsc-no-auth"], implicitPort);
  assert.match(noAuth.stdout, /<(?:~\*|\*\*) +530 5\.7\.0 /);
  const ok = await swaks(["--tls-on-connect", ...auth("bot@example.net", PW, "LOGIN"), "--from", "anyone@else.test", "--header", "Subject: swaks-tlsc"], implicitPort);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const m = await arrived("swaks-tlsc");
  assert.equal(m.from, "anyone@else.test", "a user added without --sender may use any sender");
});

test("a user sending as another domain is refused (553 5.7.1); its own domain is accepted", { skip }, async () => {
  const other = await swaks(["-tls", ...auth(), "--from", "ceo@other.test", "--header", "Subject: forged"]);
  assert.notEqual(other.code, 0);
  assert.match(other.stdout, /<(?:~\*|\*\*) +553 5\.7\.1 <ceo@other\.test>: Sender address rejected: not owned by user alice/);
  const own = await swaks(["-tls", ...auth(), "--from", "someone@example.org", "--header", "Subject: own-domain"]);
  assert.equal(own.code, 0, own.stdout);
  assert.equal((await arrived("own-domain")).from, "someone@example.org");
});

test("nodemailer over STARTTLS and implicit TLS: wrong password → EAUTH 535, right one relays", { skip }, async () => {
  const transport = (port: number, secure: boolean, pass: string) =>
    nodemailer.createTransport({ host: HOST, port, secure, localAddress: NM, requireTLS: !secure, auth: { user: "alice", pass }, tls: { rejectUnauthorized: false }, connectionTimeout: 10_000, socketTimeout: 20_000 });
  for (const [port, secure] of [[starttlsPort, false], [implicitPort, true]] as const) {
    const bad = transport(port, secure, "not the password");
    await assert.rejects(bad.sendMail({ from: "alice@example.org", to: "r@far.test", subject: "nm-bad", text: "x" }), (e: { code?: string; responseCode?: number }) => e.code === "EAUTH" && e.responseCode === 535);
    bad.close();
    const good = transport(port, secure, PW);
    const subject = `nodemailer-${secure ? "implicit" : "starttls"}`;
    const info = await good.sendMail({ from: "alice@example.org", to: "r@far.test", subject, text: "hello" });
    good.close();
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as /);
    const m = await arrived(subject);
    assert.match(m.raw!.toString("latin1"), /with ESMTPSA id/);
  }
});

const SMTPLIB = String.raw`
import smtplib, ssl, sys
host, port, user, pw, auth_param, subject = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, port, local_hostname="py.client.test", timeout=20)
s.starttls(context=ctx)
s.login(user, pw)
s.sendmail("alice@example.org", ["r@far.test"], ("Subject: " + subject + "\r\n\r\nauth param\r\n").encode(), mail_options=["AUTH=" + auth_param])
s.quit()
print("sent")
`;

test("smtplib: AUTH= on MAIL is passed on as given when trusted, as AUTH=<> when not (RFC 4954 §5)", { skip: skip || (SYSTEM_PYTHON && (inCI || statSync(SYSTEM_PYTHON, { throwIfNoEntry: false })) ? false : "missing package: python3") }, async () => {
  const script = join(base, "auth-param.py");
  writeFileSync(script, SMTPLIB);
  const cases: [string, string][] = [
    ["alice@example.org", "alice@example.org"],
    ["<>", "<>"],
    // Not one of alice's senders: not trusted, passed on as <>.
    ["boss@other.test", "<>"],
  ];
  for (const [given, passed] of cases) {
    const subject = `auth-param-${given}`;
    const r = await runTool(SYSTEM_PYTHON, [script, HOST, String(starttlsPort), "alice", PW, given, subject], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const m = await arrived(subject);
    assert.equal(m.mailParams.AUTH, passed, given);
  }
});

test("failed-AUTH back-off: the limit blocks the IP (535 then 421; then 454 4.7.0 even with the right password), other IPs unaffected, counted in /metrics", { skip }, async () => {
  const before = await metrics();
  // max = 3: three failures (in separate connections) reach the limit.
  for (let i = 1; i <= 3; i++) {
    const r = await swaks(["-tls", "--local-interface", GUESSER, ...auth("alice", `guess-${i}`), "--quit-after", "AUTH"]);
    assert.match(r.stdout, /<(?:~\*|\*\*) +535 5\.7\.8 /, `attempt ${i}`);
    if (i === 3) assert.match(r.stdout, /421 4\.7\.0 .*too many failed authentications from your address/);
  }
  const blocked = await swaks(["-tls", "--local-interface", GUESSER, ...auth(), "--quit-after", "AUTH"]);
  assert.notEqual(blocked.code, 0);
  assert.match(blocked.stdout, /<(?:~\*|\*\*) +454 4\.7\.0 Too many failed authentications from your address, try again in \d+ s/);
  // The control: the right password from another address is accepted.
  const neighbour = await swaks(["-tls", "--local-interface", NEIGHBOUR, ...auth(), "--quit-after", "AUTH"]);
  assert.match(neighbour.stdout, /<~ +235 2\.7\.0 /);
  const after = await metrics();
  const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, "\\$&")} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
  assert.ok(value(after, 'mxd_auth_attempts_total{result="failure"}') - value(before, 'mxd_auth_attempts_total{result="failure"}') >= 3);
  assert.ok(value(after, 'mxd_auth_attempts_total{result="blocked"}') - value(before, 'mxd_auth_attempts_total{result="blocked"}') >= 1);
  assert.ok(value(after, "mxd_auth_blocked_clients") >= 1);
});

test("mxd user passwd / delete on the running daemon take effect at the next AUTH (no restart)", { skip }, async () => {
  const add = await user(["add", "carol", "--sender", "carol@example.org"], "first password");
  assert.equal(add.code, 0, add.stderr);
  const first = await swaks(["-tls", ...auth("carol", "first password"), "--from", "carol@example.org", "--quit-after", "AUTH"]);
  assert.match(first.stdout, /<~ +235 /);
  const pw = await user(["passwd", "carol"], "second password");
  assert.equal(pw.code, 0, pw.stderr);
  const old = await swaks(["-tls", ...li(PASSWD), ...auth("carol", "first password"), "--quit-after", "AUTH"]);
  assert.match(old.stdout, /<(?:~\*|\*\*) +535 /, "the old password no longer works");
  const neu = await swaks(["-tls", ...auth("carol", "second password"), "--quit-after", "AUTH"]);
  assert.match(neu.stdout, /<~ +235 /);
  assert.equal((await user(["delete", "carol"])).code, 0);
  const gone = await swaks(["-tls", ...li(PASSWD), ...auth("carol", "second password"), "--quit-after", "AUTH"]);
  assert.match(gone.stdout, /<(?:~\*|\*\*) +535 /);
  assert.equal(statSync(usersFile).mode & 0o777, 0o600);
  assert.doesNotMatch(readFileSync(usersFile, "utf8"), /carol/);
});
