// TLS on the way in (issue 11), with OpenSSL's s_client as the client: TLS 1.1 refused, 1.2
// and 1.3 accepted, on a STARTTLS listener and an implicit TLS one; SNI picks the certificate;
// a certificate swapped on disk is served after SIGHUP on the next connection while a session
// opened before goes on; a broken new pair (mismatched key, unreadable file) keeps the old one
// and the log says why. mxd runs as a child process on 127.0.0.110.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MXD_CLI, makeCert, pidAlive, requirePeers, runTool, skipUnless, startMxd, stopAllPeers, tempDir, waitFor, type MxdPeer } from "../helpers/peers.js";
import { RawClient, ehlo } from "../helpers/inbound.js";

const HOST = "127.0.0.110";
const skip = skipUnless("openssl");
let dir: string;
let mxd: MxdPeer;
let starttlsPort: number;
let implicitPort: number;
let certs: { main: { cert: string; key: string }; sni: { cert: string; key: string }; wild: { cert: string; key: string }; next: { cert: string; key: string } };

before(async () => {
  if (skip) return;
  requirePeers("openssl");
  dir = tempDir("mxd-tls-");
  const mk = (name: string, cn: string) => {
    const d = join(dir, name);
    mkdirSync(d);
    return makeCert(d, cn);
  };
  certs = { main: mk("main", "mxd.test"), sni: mk("sni", "mail.example.org"), wild: mk("wild", "wild.example.net"), next: mk("next", "renewed.mxd.test") };
  // The served files: the operator's paths, whose contents get replaced (as certbot does).
  const live = { cert: join(dir, "live-cert.pem"), key: join(dir, "live-key.pem") };
  copyFileSync(certs.main.cert, live.cert);
  copyFileSync(certs.main.key, live.key);
  mxd = await startMxd({
    hostname: "mxd.test",
    listen: [
      { host: HOST, port: 0 },
      { host: HOST, port: 0, tls: true },
    ],
    spoolDir: join(dir, "spool"),
    dropDir: join(dir, "drop"),
    admin: { listen: null },
    delivery: { enabled: false },
    tls: {
      cert: live.cert,
      key: live.key,
      sni: [
        { servername: "mail.example.org", cert: certs.sni.cert, key: certs.sni.key },
        { servername: "*.example.net", cert: certs.wild.cert, key: certs.wild.key },
      ],
    },
  });
  starttlsPort = mxd.listen.find((l) => !l.tls)!.port;
  implicitPort = mxd.listen.find((l) => l.tls)!.port;
});

after(async () => {
  await mxd?.stop(5000);
  await stopAllPeers();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Handshake {
  ok: boolean;
  protocol?: string;
  subject?: string;
  out: string;
}

/** One s_client handshake; -brief prints the protocol and the peer's subject. */
async function sClient(opts: { port: number; starttls?: boolean; version?: "tls1_1" | "tls1_2" | "tls1_3"; servername?: string }): Promise<Handshake> {
  const args = ["s_client", "-brief", "-connect", `${HOST}:${opts.port}`];
  if (opts.starttls) args.push("-starttls", "smtp");
  if (opts.version) args.push(`-${opts.version}`);
  // OpenSSL 3 does not even offer TLS 1.1 at its default security level: lower it in the
  // client, so that the refusal seen is the server's.
  if (opts.version === "tls1_1") args.push("-cipher", "DEFAULT@SECLEVEL=0");
  if (opts.servername) args.push("-servername", opts.servername);
  else args.push("-noservername");
  const r = await runTool("openssl", args, { input: "", timeoutMs: 15_000 });
  const out = r.stdout + "\n" + r.stderr;
  return {
    ok: /CONNECTION ESTABLISHED/.test(out),
    protocol: /Protocol version: (\S+)/.exec(out)?.[1],
    subject: /Peer certificate: .*CN ?= ?([^,\n]+)/.exec(out)?.[1]?.trim(),
    out,
  };
}

test("TLS 1.1 is refused, 1.2 and 1.3 are accepted, with STARTTLS and on the implicit TLS listener", { skip, timeout: 90_000 }, async () => {
  for (const starttls of [true, false]) {
    const port = starttls ? starttlsPort : implicitPort;
    const where = starttls ? "STARTTLS" : "implicit TLS";
    const v12 = await sClient({ port, starttls, version: "tls1_2" });
    assert.ok(v12.ok, `${where} TLS 1.2: ${v12.out}`);
    assert.equal(v12.protocol, "TLSv1.2");
    assert.match(v12.out, /Ciphersuite: ECDHE-/, "a forward-secret suite");
    const v13 = await sClient({ port, starttls, version: "tls1_3" });
    assert.ok(v13.ok, `${where} TLS 1.3: ${v13.out}`);
    assert.equal(v13.protocol, "TLSv1.3");
    const before = mxd.logs().length;
    const v11 = await sClient({ port, starttls, version: "tls1_1" });
    assert.equal(v11.ok, false, `${where} TLS 1.1 must fail: ${v11.out}`);
    assert.match(v11.out, /alert protocol version/, "refused by the server with a protocol_version alert");
    // The client did try TLS 1.1 (and the server said why it refused).
    await waitFor(() => mxd.logs().slice(before).some((l) => /handshake failed/.test(String(l.msg)) && /unsupported protocol/.test(String(l.err))), 5000, "the refusal in mxd's log");
  }
});

test("SNI: the certificate for the name asked (exact, wildcard), the default one otherwise", { skip, timeout: 90_000 }, async () => {
  const rows: [string | undefined, string][] = [
    ["mail.example.org", "mail.example.org"],
    ["MAIL.EXAMPLE.ORG", "mail.example.org"],
    ["mx1.example.net", "wild.example.net"],
    ["a.b.example.net", "mxd.test"],
    ["unknown.test", "mxd.test"],
    [undefined, "mxd.test"],
  ];
  for (const [servername, cn] of rows) {
    for (const starttls of [true, false]) {
      const h = await sClient({ port: starttls ? starttlsPort : implicitPort, starttls, ...(servername ? { servername } : {}) });
      assert.ok(h.ok, h.out);
      assert.equal(h.subject, cn, `${servername ?? "(no SNI)"} ${starttls ? "STARTTLS" : "implicit"}`);
    }
  }
});

test("certificate swap + SIGHUP: the next connection gets the new one, an open session goes on; a broken pair keeps the old one and says why", { skip, timeout: 120_000 }, async () => {
  // A session in the middle of things, over TLS, with the old certificate.
  const open = await RawClient.connect(starttlsPort, { host: HOST });
  await open.reply();
  await ehlo(open);
  await open.cmd("STARTTLS", 220);
  await open.startTls();
  assert.equal((open.socket as tls.TLSSocket).getPeerCertificate().subject.CN, "mxd.test");
  await ehlo(open);
  await open.cmd("MAIL FROM:<a@client.test>", 250);

  const reloads = () => mxd.logs().filter((l) => typeof l.msg === "string" && /^config reloaded|^reload refused/.test(l.msg));
  const reloaded = async (n: number) => {
    await waitFor(() => reloads().length >= n, 10_000, `reload #${n} logged`);
    return reloads()[n - 1]!;
  };
  // Renewed: new files at the same paths.
  copyFileSync(certs.next.cert, join(dir, "live-cert.pem"));
  copyFileSync(certs.next.key, join(dir, "live-key.pem"));
  mxd.kill("SIGHUP");
  const r1 = await reloaded(1);
  assert.equal(r1.msg, "config reloaded: certificates changed");
  assert.deepEqual(r1.changed, ["certificates"]);
  for (const starttls of [true, false]) {
    const h = await sClient({ port: starttls ? starttlsPort : implicitPort, starttls });
    assert.equal(h.subject, "renewed.mxd.test", `${starttls ? "STARTTLS" : "implicit"}: ${h.out}`);
  }
  // SNI entries still work after the swap.
  assert.equal((await sClient({ port: implicitPort, servername: "mail.example.org" })).subject, "mail.example.org");
  // The open session was not interrupted.
  await open.cmd("RCPT TO:<postmaster@mxd.test>", 250);
  await open.cmd("RSET", 250);

  // Broken: a key that belongs to another certificate.
  copyFileSync(certs.main.cert, join(dir, "live-cert.pem"));
  mxd.kill("SIGHUP");
  const r2 = await reloaded(2);
  assert.match(String(r2.msg), /^reload refused/);
  assert.match(JSON.stringify(r2.errors), /tls\.cert\/tls\.key: .*live-cert\.pem and .*live-key\.pem are not a usable certificate and key \(.*key values mismatch\)/);
  assert.equal((await sClient({ port: implicitPort })).subject, "renewed.mxd.test", "the old pair is still served");
  // check-config loads the certificates the same way, so a renewal can be checked first.
  const check = await runTool(process.execPath, [MXD_CLI, "check-config", mxd.configFile], { timeoutMs: 20_000 });
  assert.equal(check.code, 1);
  assert.ok(check.stderr.includes((r2.errors as string[])[0]!), check.stderr);
  // Broken: unreadable (gone).
  rmSync(join(dir, "live-key.pem"));
  mxd.kill("SIGHUP");
  const r3 = await reloaded(3);
  assert.match(JSON.stringify(r3.errors), /cannot read .*live-key\.pem: ENOENT/);
  assert.equal((await sClient({ port: starttlsPort, starttls: true })).subject, "renewed.mxd.test");
  // Not PEM at all.
  writeFileSync(join(dir, "live-key.pem"), "not a key\n");
  chmodSync(join(dir, "live-key.pem"), 0o600);
  mxd.kill("SIGHUP");
  const r4 = await reloaded(4);
  assert.match(String(r4.msg), /^reload refused/);
  assert.equal((await sClient({ port: implicitPort })).subject, "renewed.mxd.test");

  await open.cmd("QUIT", 221);
  assert.ok(pidAlive(mxd.pid), "mxd still runs after four SIGHUPs");
});
