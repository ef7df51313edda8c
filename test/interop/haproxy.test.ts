// Interop: Debian's HAProxy in front of the mxd daemon (a child process, delivery off), the
// way operators run it, with swaks as the client on its own loopback source address. Checks
// the issue's list: the real client address (127.0.0.77) — not HAProxy's — shows in the spool
// entry, the Received header, the log and relay control, over send-proxy (v1) and
// send-proxy-v2 (and STARTTLS after the header); HAProxy's health checks (v2 LOCAL) are answered; clients on a Unix socket
// (v1 UNKNOWN, v2 LOCAL) are judged by HAProxy's own address; a PROXY header
// from an untrusted address and a trusted address without a header are refused.
//
// HAProxy runs in the foreground (-db) with a generated config and is stopped by its PID.
// Loopback plan: HAProxy's frontends on 127.0.0.204:10251–10254; it connects to mxd from
// 127.0.0.204 (trusted) or 127.0.0.79 (not trusted); swaks sends from 127.0.0.77 (may relay)
// and 127.0.0.78 (may not).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADDR, makeCert, peerPath, requirePeers, runTool, skipUnless, spawnPeer, startMxd, stopAllPeers, tempDir, waitFor, waitPort, type MxdPeer, type Proc } from "../helpers/peers.js";
import { spoolSnapshot } from "../helpers/spool-snapshot.js";

const LB = ADDR.haproxy;
const UNTRUSTED_LB_SOURCE = "127.0.0.79";
const CLIENT = "127.0.0.77";
const OTHER_CLIENT = "127.0.0.78";
const PORT = { v1: 10251, v2: 10252, untrusted: 10253, noHeader: 10254, smtps: 10255 } as const;
const skip = skipUnless("haproxy", "swaks", "openssl");

let base: string;
let mxd: MxdPeer;
let haproxy: Proc;
const spool = () => join(base, "spool");

before(async () => {
  if (skip) return;
  requirePeers("haproxy", "swaks", "openssl");
  base = tempDir("mxd-haproxy-");
  mkdirSync(join(base, "sni"));
  mxd = await startMxd({
    hostname: "mxd.test",
    tls: { ...makeCert(base), sni: [{ servername: "sni.mxd.test", ...makeCert(join(base, "sni"), "sni.mxd.test") }] },
    listen: [
      { host: "127.0.0.1", port: 0, proxyProtocol: { trustedNetworks: [`${LB}/32`], timeout: "2s" } },
      // Implicit TLS (SMTPS) behind HAProxy in TCP mode: the header, then the handshake.
      { host: "127.0.0.1", port: 0, tls: true, proxyProtocol: { trustedNetworks: [`${LB}/32`], timeout: "2s" } },
    ],
    spoolDir: spool(),
    // Only the real client may relay; HAProxy's own address may not (were the header ignored,
    // relaying from 127.0.0.77 would fail).
    relay: { allowedNetworks: [`${CLIENT}/32`] },
    rateLimits: { exemptNetworks: [] },
    delivery: { enabled: false },
    admin: { listen: null },
    log: { level: "debug" },
  });
  const cfg = join(base, "haproxy.cfg");
  const backend = (name: string, opts: string) => `backend ${name}\n  option smtpchk HELO haproxy.test\n  server mxd 127.0.0.1:${mxd.port} ${opts} check inter 500ms\n`;
  writeFileSync(
    cfg,
    [
      "global",
      `  stats socket ${join(base, "stats.sock")} mode 600 level admin`,
      "defaults",
      "  mode tcp",
      "  timeout connect 5s",
      "  timeout client 30s",
      "  timeout server 30s",
      ...Object.entries(PORT).map(([name, port]) => `frontend f_${name}\n  bind ${LB}:${port}\n  default_backend b_${name}`),
      // Clients on a Unix socket have no IP address to pass on.
      ...(["v1", "v2"] as const).map((v) => `frontend f_unix_${v}\n  bind unix@${join(base, `${v}.sock`)}\n  default_backend b_${v}`),
      backend("b_v1", `send-proxy source ${LB}`),
      backend("b_v2", `send-proxy-v2 source ${LB}`),
      // Checks off where mxd refuses everything: they would only add refusals to the log.
      `backend b_untrusted\n  server mxd 127.0.0.1:${mxd.port} send-proxy-v2 source ${UNTRUSTED_LB_SOURCE}`,
      `backend b_noHeader\n  server mxd 127.0.0.1:${mxd.port} source ${LB}`,
      `backend b_smtps\n  server mxd 127.0.0.1:${mxd.listen[1]!.port} send-proxy-v2 source ${LB}`,
      // Frequent checks, no frontend: more connections from HAProxy's address than the
      // connection rate limit allows (60 per minute by default) within a few seconds.
      `backend b_checks\n  option smtpchk HELO haproxy.test\n  server mxd 127.0.0.1:${mxd.port} send-proxy-v2 source ${LB} check inter 100ms fall 1`,
      "",
    ].join("\n"),
  );
  const check = await runTool(peerPath("haproxy")!, ["-c", "-f", cfg], { timeoutMs: 15_000 });
  assert.equal(check.code, 0, `haproxy -c: ${check.stdout}\n${check.stderr}`);
  haproxy = spawnPeer("haproxy", peerPath("haproxy")!, ["-db", "-f", cfg]);
  for (const port of Object.values(PORT)) await waitPort(LB, port, 10_000);
});

after(async () => {
  await haproxy?.stop(3000);
  await mxd?.stop();
  await stopAllPeers();
  if (base) rmSync(base, { recursive: true, force: true });
});

function swaks(port: number, from: string, extra: string[] = []) {
  return runTool(peerPath("swaks")!, ["--server", LB, "--port", String(port), "--local-interface", from, "--ehlo", "swaks.client.test", "--from", "alice@client.test", "--to", "bob@remote.example", "--timeout", "20", ...extra], { timeoutMs: 30_000 });
}

const queuedId = (out: string) => /queued as ([A-Za-z0-9]+)/.exec(out)?.[1];

for (const version of ["v1", "v2"] as const) {
  test(`send-proxy${version === "v2" ? "-v2" : ""}: the client's own address in the spool, the Received header, the log and relay control`, { skip }, async () => {
    const r = await swaks(PORT[version], CLIENT, ["--header", `Subject: via HAProxy ${version}`]);
    const id = queuedId(r.stdout);
    assert.ok(id, `swaks through HAProxy (${version}) was not queued:\n${r.stdout}\n${r.stderr}`);
    const e = spoolSnapshot(spool()).get(id);
    assert.ok(e, `${id} in the spool`);
    const meta = e.meta as unknown as { client: { ip: string; port: number; relayAllowed: boolean } };
    assert.equal(meta.client.ip, CLIENT);
    assert.equal(meta.client.relayAllowed, true);
    assert.ok(meta.client.port > 0);
    assert.match(e.eml.toString("latin1"), new RegExp(`^Received: from swaks\\.client\\.test \\(\\[${CLIENT.replace(/\./g, "\\.")}\\]\\)`));
    await waitFor(() => mxd.logs().some((l) => l.msg === "message queued" && l.qid === id), 5000, "a message queued line");
    const line = mxd.logs().find((l) => l.msg === "message queued" && l.qid === id)!;
    assert.equal(line.client, CLIENT);
    assert.equal(line.proxy, LB);
    assert.equal(line.port, meta.client.port);
  });

  test(`send-proxy${version === "v2" ? "-v2" : ""}: a client outside relay.allowedNetworks is judged by its own address`, { skip }, async () => {
    const r = await swaks(PORT[version], OTHER_CLIENT);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /554 5\.7\.1 <bob@remote\.example>: Relay access denied/);
    await waitFor(() => mxd.logs().some((l) => l.msg === "NOQUEUE: reject" && l.client === OTHER_CLIENT && l.proxy === LB), 5000, "the reject line naming the real client");
  });
}

test("STARTTLS through HAProxy (send-proxy-v2): the client's address survives the handshake", { skip }, async () => {
  const r = await swaks(PORT.v2, CLIENT, ["--tls"]);
  const id = queuedId(r.stdout);
  assert.ok(id, `swaks --tls through HAProxy was not queued:\n${r.stdout}\n${r.stderr}`);
  const e = spoolSnapshot(spool()).get(id)!;
  const meta = e.meta as unknown as { client: { ip: string; tls: boolean } };
  assert.deepEqual([meta.client.ip, meta.client.tls], [CLIENT, true]);
  assert.match(e.eml.toString("latin1"), new RegExp(`^Received: from swaks\\.client\\.test \\(\\[${CLIENT.replace(/\./g, "\\.")}\\]\\)\r\n\tby mxd\\.test \\(mxd\\) with ESMTPS `));
});

test("implicit TLS (SMTPS) behind send-proxy-v2: swaks --tls-on-connect; the client's address", { skip }, async () => {
  const r = await swaks(PORT.smtps, CLIENT, ["--tls-on-connect"]);
  const id = queuedId(r.stdout);
  assert.ok(id, `swaks --tls-on-connect through HAProxy was not queued:\n${r.stdout}\n${r.stderr}`);
  const e = spoolSnapshot(spool()).get(id)!;
  const meta = e.meta as unknown as { client: { ip: string; tls: boolean } };
  assert.deepEqual([meta.client.ip, meta.client.tls], [CLIENT, true]);
  assert.match(e.eml.toString("latin1"), /\tby mxd\.test \(mxd\) with ESMTPS /);
});

test("HAProxy's health checks: v2 LOCAL uses the real endpoints; both servers are up", { skip }, async () => {
  // HAProxy sends a PROXY header on its checks too (v2: command LOCAL; v1: its own addresses),
  // then HELO, and wants a 250.
  await waitFor(() => mxd.logs().some((l) => l.msg === "PROXY protocol header" && l.command === "local" && l.version === 2), 10_000, "a v2 LOCAL header from a health check");
  const local = mxd.logs().find((l) => l.msg === "PROXY protocol header" && l.command === "local")!;
  assert.equal(local.client, LB, "LOCAL: the connection's own endpoints");
  const stat = await statsCommand("show stat");
  const rows = stat.split("\n").filter((l) => l.startsWith("b_v1,mxd,") || l.startsWith("b_v2,mxd,"));
  assert.equal(rows.length, 2, stat);
  const header = stat.split("\n")[0]!.replace(/^# /, "").split(",");
  for (const row of rows) {
    const f = row.split(",");
    assert.equal(f[header.indexOf("status")], "UP", row);
    // "* L7OK" while the next check is in progress (HAProxy marks a running check with "* ").
    assert.match(f[header.indexOf("check_status")]!, /^(\* )?L7OK/, row);
  }
});

test("health checks past the connection rate limit (v2 LOCAL, every 100 ms): not rate limited, the server stays UP", { skip }, async () => {
  const locals = () => mxd.logs().filter((l) => l.msg === "PROXY protocol header" && l.command === "local").length;
  await waitFor(() => locals() > 70, 20_000, "more than 70 health checks");
  assert.equal(mxd.logs().filter((l) => l.msg === "connection rate limit reached" && l.client === LB).length, 0, "no health check refused");
  const stat = await statsCommand("show stat");
  const header = stat.split("\n")[0]!.replace(/^# /, "").split(",");
  const row = stat.split("\n").find((l) => l.startsWith("b_checks,mxd,"));
  assert.ok(row, stat);
  assert.equal(row.split(",")[header.indexOf("status")], "UP", row);
});

for (const version of ["v1", "v2"] as const) {
  test(`a client on HAProxy's Unix socket (${version === "v1" ? "PROXY UNKNOWN" : "v2 LOCAL"}): mxd uses the real endpoints`, { skip }, async () => {
    // No IP client to report. mxd then judges
    // HAProxy's own address, which may not relay, so the message goes to <postmaster>.
    const r = await runTool(peerPath("swaks")!, ["--socket", join(base, `${version}.sock`), "--ehlo", "unix.client.test", "--from", "alice@client.test", "--to", "postmaster@mxd.test", "--timeout", "20"], { timeoutMs: 30_000 });
    const id = queuedId(r.stdout);
    assert.ok(id, `swaks over the Unix socket (${version}) was not queued:\n${r.stdout}\n${r.stderr}`);
    const meta = spoolSnapshot(spool()).get(id)!.meta as unknown as { client: { ip: string; relayAllowed: boolean } };
    assert.deepEqual([meta.client.ip, meta.client.relayAllowed], [LB, false]);
    await waitFor(() => mxd.logs().some((l) => l.msg === "message queued" && l.qid === id), 5000, "a message queued line");
    const queued = mxd.logs().find((l) => l.msg === "message queued" && l.qid === id);
    assert.deepEqual([queued?.client, queued?.proxy], [LB, LB]);
    // HAProxy 2.6 sends v1 "PROXY UNKNOWN" and, for v2, the LOCAL command (the spec's AF_UNSPEC
    // case is covered by the unit tests); either way: the real endpoints.
    if (version === "v1") assert.ok(mxd.logs().some((l) => l.msg === "PROXY protocol header" && l.command === "unknown" && l.version === 1), "a v1 UNKNOWN header in the log");
    const relay = await runTool(peerPath("swaks")!, ["--socket", join(base, `${version}.sock`), "--ehlo", "unix.client.test", "--from", "alice@client.test", "--to", "bob@remote.example", "--timeout", "20"], { timeoutMs: 30_000 });
    assert.match(relay.stdout, /554 5\.7\.1 <bob@remote\.example>: Relay access denied/, "judged by HAProxy's address, which may not relay");
  });
}

test("a PROXY header from an untrusted address is refused", { skip }, async () => {
  const before = mxd.logs().length;
  const r = await swaks(PORT.untrusted, CLIENT);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout, /421 4\.7\.0 mxd\.test Error: connection refused/);
  assert.doesNotMatch(r.stdout, /queued as/);
  // The log line may reach us after swaks has its reply.
  const find = () => mxd.logs().slice(before).find((l) => l.msg === "PROXY protocol: connection refused");
  await waitFor(() => !!find(), 5000, "a refusal in the log");
  const refused = find()!;
  assert.equal(refused.proxy, UNTRUSTED_LB_SOURCE);
  assert.equal(refused.reason, "untrusted");
});

test("a trusted address without a PROXY header is refused when the header timeout passes", { skip }, async () => {
  const before = mxd.logs().length;
  // swaks waits for the greeting, mxd for the header: mxd gives up after proxyProtocol.timeout.
  const r = await swaks(PORT.noHeader, CLIENT);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout, /421 4\.7\.0 mxd\.test Error: PROXY protocol header expected/);
  const find = () => mxd.logs().slice(before).find((l) => l.msg === "PROXY protocol: connection refused" && l.reason === "timeout");
  await waitFor(() => !!find(), 5000, "a timeout refusal in the log");
  const refused = find()!;
  assert.equal(refused.proxy, LB);
});

test("the refusals are counted in mxd status --json", { skip }, async () => {
  const metrics = await runTool(process.execPath, [join(process.cwd(), "dist/src/cli.js"), "status", "--json", "--config", mxd.configFile], { timeoutMs: 20_000 });
  assert.equal(metrics.code, 0, metrics.stderr);
  const s = JSON.parse(metrics.stdout) as { proxyProtocol: { refused: Record<string, number> } };
  assert.ok((s.proxyProtocol.refused.untrusted ?? 0) >= 1, metrics.stdout);
  assert.ok((s.proxyProtocol.refused.timeout ?? 0) >= 1, metrics.stdout);
});

/** One s_client handshake on the SMTPS frontend (HAProxy adds the header); the peer's CN. */
async function smtpsSubject(servername?: string): Promise<{ cn: string | undefined; out: string }> {
  const args = ["s_client", "-brief", "-connect", `${LB}:${PORT.smtps}`, ...(servername ? ["-servername", servername] : ["-noservername"])];
  const r = await runTool("openssl", args, { input: "", timeoutMs: 15_000 });
  const out = r.stdout + "\n" + r.stderr;
  return { cn: /Peer certificate: .*CN ?= ?([^,\n]+)/.exec(out)?.[1]?.trim(), out };
}

test("SNI on the SMTPS listener behind send-proxy-v2: the certificate for the name asked, the default one otherwise", { skip }, async () => {
  const named = await smtpsSubject("sni.mxd.test");
  assert.equal(named.cn, "sni.mxd.test", named.out);
  const other = await smtpsSubject("other.test");
  assert.equal(other.cn, "mxd.test", other.out);
  const none = await smtpsSubject();
  assert.equal(none.cn, "mxd.test", none.out);
});

// Last: it replaces the default certificate.
test("SIGHUP with an SMTPS listener behind the PROXY protocol: applied, and the renewed certificate is served through HAProxy", { skip }, async () => {
  makeCert(base, "renewed.mxd.test"); // the same file names, new contents (a renewal)
  const before = mxd.logs().length;
  mxd.kill("SIGHUP");
  const outcome = () => mxd.logs().slice(before).find((l) => /^(config reloaded|reload refused|reload failed)/.test(String(l.msg)));
  await waitFor(() => !!outcome(), 10_000, "the reload's log line");
  assert.match(String(outcome()!.msg), /^config reloaded/, JSON.stringify(outcome()));
  assert.deepEqual(outcome()!.changed, ["certificates"]);
  const h = await smtpsSubject();
  assert.equal(h.cn, "renewed.mxd.test", h.out);
  const r = await swaks(PORT.smtps, CLIENT, ["--tls-on-connect"]);
  assert.ok(queuedId(r.stdout), `swaks --tls-on-connect after the reload:\n${r.stdout}\n${r.stderr}`);
});

/** One command on HAProxy's stats socket (bounded). */
function statsCommand(cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(join(base, "stats.sock"));
    let out = "";
    const t = setTimeout(() => (s.destroy(), reject(new Error(`stats socket: no answer to ${cmd}`))), 5000);
    s.on("connect", () => s.write(`${cmd}\n`));
    s.on("data", (d) => (out += d.toString()));
    s.on("end", () => (clearTimeout(t), resolve(out)));
    s.on("error", (e) => (clearTimeout(t), reject(e)));
  });
}
