// MTA-STS (RFC 8461) end to end: `_mta-sts` TXT records from the loopback DNS server, the
// policy from a real HTTPS server on 127.0.0.206:443 (node:https, certificate from a test CA
// made with openssl here; mxd trusts it through delivery.tls.caFile), remote MX hosts played
// by smtp-server (certificates from the same CA) and aiosmtpd (STARTTLS answered 454).
// Addresses: 127.0.8.2 (DNS), 127.0.8.30-127.0.8.49 (remote MX hosts), 127.0.0.206:443 (HTTPS).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config.js";
import { createNodeResolver, type Resolver } from "../../src/io/resolver.js";
import type { Logger } from "../../src/io/log.js";
import { createCourier } from "../../src/delivery/factory.js";
import { httpsGet, resolverLookup } from "../../src/io/https-fetch.js";
import type { Courier } from "../../src/delivery/courier.js";
import { startDnsServer, type DnsServerHandle, type Zone } from "../helpers/dns-server.js";
import { selfSignedCert } from "../helpers/mx-sink.js";
import { deliverOne, memoryLogger, sink } from "../helpers/courier-run.js";
import { makeTestCa, type TestCa } from "../helpers/test-ca.js";
import { ADDR, requirePeers, skipUnless, startAiosmtpd } from "../helpers/peers.js";

const DOMAINS = ["enforce.test", "testing.test", "cached.test", "strip.test", "selfsigned.test", "down.test", "big.test", "redirect.test", "slow.test"];

const zone: Zone = {
  // enforce.test: the preferred MX is not in the policy, the second one is.
  "enforce.test": { mx: [{ exchange: "mx.rogue.test", priority: 10 }, { exchange: "mx1.enforce.test", priority: 20 }] },
  "mx.rogue.test": { a: ["127.0.8.30"] },
  "mx1.enforce.test": { a: ["127.0.8.31"] },
  // testing.test: its only MX is not in the policy; testing mode delivers anyway.
  "testing.test": { mx: [{ exchange: "mx.rogue2.test", priority: 10 }] },
  "mx.rogue2.test": { a: ["127.0.8.32"] },
  // cached.test: only a rogue MX; the policy (enforce) must come from the cache once the server is down.
  "cached.test": { mx: [{ exchange: "mx.rogue3.test", priority: 10 }] },
  "mx.rogue3.test": { a: ["127.0.8.33"] },
  // strip.test: its MX matches the policy but answers STARTTLS with 454.
  "strip.test": { mx: [{ exchange: "mx.strip.test", priority: 10 }] },
  "mx.strip.test": { a: ["127.0.8.34"] },
  // selfsigned.test: its MX matches but shows a self-signed certificate.
  "selfsigned.test": { mx: [{ exchange: "mx.selfsigned.test", priority: 10 }] },
  "mx.selfsigned.test": { a: ["127.0.8.35"] },
  // down.test: a TXT record, but no cached policy and the policy server down.
  "down.test": { mx: [{ exchange: "mx.rogue4.test", priority: 10 }] },
  "mx.rogue4.test": { a: ["127.0.8.36"] },
};
for (const d of DOMAINS) {
  zone[`_mta-sts.${d}`] = { txt: [["v=STSv1; id=20260101T1"]] };
  zone[`mta-sts.${d}`] = { a: [ADDR.httpsServer] };
}

const GOOD_POLICY = "version: STSv1\r\nmode: enforce\r\nmx: *.enforce.test\r\nmax_age: 86400\r\n";
const policies: Record<string, string> = {
  "enforce.test": "version: STSv1\r\nmode: enforce\r\nmx: *.enforce.test\r\nmax_age: 86400\r\n",
  "testing.test": "version: STSv1\r\nmode: testing\r\nmx: *.testing.test\r\nmax_age: 86400\r\n",
  "cached.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.cached.test\r\nmax_age: 86400\r\n",
  "strip.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.strip.test\r\nmax_age: 86400\r\n",
  "selfsigned.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.selfsigned.test\r\nmax_age: 86400\r\n",
  "down.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.down.test\r\nmax_age: 86400\r\n",
};

let dns: DnsServerHandle;
let resolver: Resolver;
let ca: TestCa;
let https: Server | undefined;
const httpLog: string[] = [];
let httpsCert: { key: string; cert: string };

async function startHttps(): Promise<void> {
  https = createServer(httpsCert, (req, res) => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "").replace(/^mta-sts\./, "");
    httpLog.push(`${host} ${req.url}`);
    if (host === "big.test") return void res.writeHead(200, { "content-type": "text/plain" }).end(GOOD_POLICY + "x".repeat(70 * 1024));
    if (host === "redirect.test") return void res.writeHead(301, { location: "https://mta-sts.enforce.test/.well-known/mta-sts.txt" }).end();
    if (host === "slow.test") return void res.writeHead(200, { "content-type": "text/plain" }).write("version: STSv1\r\n"); // and never more
    const body = policies[host];
    if (req.url !== "/.well-known/mta-sts.txt" || !body || host === "down.test") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    https!.once("error", reject);
    https!.listen(443, ADDR.httpsServer, () => resolve());
  });
}
async function stopHttps(): Promise<void> {
  const s = https;
  https = undefined;
  if (!s) return;
  s.closeAllConnections();
  await new Promise<void>((r) => s.close(() => r()));
}

before(async () => {
  dns = await startDnsServer({ zone, host: "127.0.8.2" });
  resolver = createNodeResolver({ servers: [dns.address], timeoutMs: 1000, tries: 1 });
  ca = makeTestCa();
  httpsCert = ca.issue(DOMAINS.map((d) => `mta-sts.${d}`));
  await startHttps();
});
after(async () => {
  await stopHttps();
  await dns.close();
  ca.remove();
});

function tempSpool(t: { after: (fn: () => unknown) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "mxd-mta-sts-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function courier(t: { after: (fn: () => unknown) => void }, spoolDir: string, logger?: Logger): Courier {
  const config = parseConfig({
    hostname: "mxd.test",
    spoolDir,
    delivery: {
      timeouts: { connect: "2s", greeting: "3s", ehlo: "3s", mail: "3s", rcpt: "3s", data: "3s", dataBlock: "5s", dataEnd: "5s", tls: "3s" },
      tls: { caFile: ca.caFile, mtaSts: { fetchTimeout: "3s" } },
    },
  });
  const c = createCourier({ config, resolver, logger: logger ?? memoryLogger().logger });
  t.after(() => c.close());
  return c;
}


let qn = 0;
const one = (c: Courier, domain: string) => deliverOne(c, domain, `S${++qn}`);

test("enforce: the MX not matching the policy gets no connection; the matching one gets the mail over verified TLS", async (t) => {
  const rogue = await sink(t, { host: "127.0.8.30", tls: "ok", cert: ca.issue(["mx.rogue.test"]) });
  const good = await sink(t, { host: "127.0.8.31", tls: "ok", cert: ca.issue(["mx1.enforce.test"]) });
  const { logger, lines } = memoryLogger();
  const spool = tempSpool(t);
  const r = await one(courier(t, spool, logger), "enforce.test");
  assert.equal(r.outcome, "delivered", r.reply);
  assert.equal(r.mx, "mx1.enforce.test");
  assert.equal(r.tls?.verified, true);
  assert.equal(r.tlsPolicy, "mta-sts (level may)");
  assert.equal(good.messages.length, 1);
  assert.equal(rogue.connections.length, 0, "the MX outside the policy is never contacted");
  assert.ok(lines.some((l) => l.msg === "host skipped by the TLS policy" && l.mx === "mx.rogue.test"));
  assert.ok(lines.some((l) => l.msg === "MTA-STS policy fetched" && l.domain === "enforce.test" && l.mode === "enforce"));
  // The policy is in the spool's cache, readable by a person.
  const cached = JSON.parse(readFileSync(join(spool, "mta-sts", "enforce.test.json"), "utf8")) as { id: string; policy: { mode: string; mx: string[] } };
  assert.equal(cached.id, "20260101T1");
  assert.deepEqual(cached.policy.mx, ["*.enforce.test"]);
});

test("testing: the MX outside the policy still gets the mail, and the log says enforce would not have delivered", async (t) => {
  const rogue = await sink(t, { host: "127.0.8.32", tls: "ok", cert: selfSignedCert() });
  const { logger, lines } = memoryLogger();
  const r = await one(courier(t, tempSpool(t), logger), "testing.test");
  assert.equal(r.outcome, "delivered", r.reply);
  assert.equal(r.tlsPolicy, "mta-sts-testing (level may)");
  assert.equal(r.tls?.verified, false);
  assert.equal(rogue.messages.length, 1);
  const report = lines.find((l) => l.msg === "MTA-STS testing: enforce mode would not deliver to this host");
  assert.ok(report, "the testing report is logged");
  assert.equal(report.qid, `S${qn}`, "the line carries the queue id");
  assert.match(String(report.report), /mx\.rogue2\.test does not match the MTA-STS policy/);
  assert.ok(lines.some((l) => l.msg === "MTA-STS testing: enforce mode would refuse this certificate"));
});

test("a cached policy applies after a restart while the HTTPS server is down; without a cache the same domain is delivered", async (t) => {
  const rogue = await sink(t, { host: "127.0.8.33", tls: "ok", cert: ca.issue(["mx.rogue3.test"]) });
  const spool = tempSpool(t);
  // First run: the policy is fetched and cached on disk; the rogue MX is refused.
  const first = await one(courier(t, spool), "cached.test");
  assert.equal(first.outcome, "transient");
  assert.equal(first.status, "4.7.5");
  assert.match(first.reply, /does not match the MTA-STS policy/);
  assert.ok(readdirSync(join(spool, "mta-sts")).includes("cached.test.json"));
  await stopHttps();
  t.after(() => (https ? undefined : startHttps()));
  try {
    // "Restart": a new courier on the same spool, the policy server unreachable.
    const { logger, lines } = memoryLogger();
    const again = await one(courier(t, spool, logger), "cached.test");
    assert.equal(again.outcome, "transient", "the cached enforce policy still protects the domain");
    assert.match(again.reply, /does not match the MTA-STS policy/);
    assert.equal(rogue.connections.length, 0);
    assert.ok(lines.some((l) => l.msg === "MTA-STS" && /^cached/.test(String(l.how))), "the policy came from the disk cache");
    // The other side: nothing cached (a fresh spool), server down → no policy, the mail goes.
    const fresh = await one(courier(t, tempSpool(t)), "cached.test");
    assert.equal(fresh.outcome, "delivered", fresh.reply);
    assert.equal(rogue.messages.length, 1);
  } finally {
    await startHttps();
  }
});

test("enforce: a failed policy fetch with nothing cached means no policy (down.test answers 404)", async (t) => {
  const rogue = await sink(t, { host: "127.0.8.36", tls: "none" });
  const { logger, lines } = memoryLogger();
  const r = await one(courier(t, tempSpool(t), logger), "down.test");
  assert.equal(r.outcome, "delivered", r.reply);
  assert.equal(rogue.messages.length, 1);
  assert.ok(lines.some((l) => l.msg === "MTA-STS policy fetch failed" && /HTTP status 404/.test(String(l.error))));
});

test("enforce: STARTTLS answered 454 by the matching MX (aiosmtpd) defers instead of sending in plain text", { skip: skipUnless("aiosmtpd") }, async (t) => {
  requirePeers("aiosmtpd");
  const a = await startAiosmtpd({ host: "127.0.8.34", starttls454: true });
  t.after(() => a.stop());
  const r = await one(courier(t, tempSpool(t)), "strip.test");
  assert.equal(r.outcome, "transient");
  assert.equal(r.status, "4.7.4");
  assert.match(r.reply, /STARTTLS refused: 454/);
  assert.match(r.reply, /TLS policy mta-sts/);
  assert.equal(a.messages().length, 0);
});

test("enforce: a matching MX with a self-signed certificate defers", async (t) => {
  const s = await sink(t, { host: "127.0.8.35", tls: "ok", cert: selfSignedCert() });
  const r = await one(courier(t, tempSpool(t)), "selfsigned.test");
  assert.equal(r.outcome, "transient");
  assert.equal(r.status, "4.7.5");
  assert.match(r.reply, /certificate not accepted: certificate not trusted/);
  assert.equal(s.messages.length, 0);
  assert.equal(s.rcptSeen.length, 0);
});

test("the policy fetch: certificate checked, no redirects, 64 KB at most, one deadline", async () => {
  const get = (d: string, o: { caFile?: string; timeoutMs?: number } = {}) =>
    httpsGet(`https://mta-sts.${d}/.well-known/mta-sts.txt`, { timeoutMs: o.timeoutMs ?? 3000, maxBytes: 64 * 1024, lookup: resolverLookup(resolver), ...("caFile" in o ? (o.caFile ? { caFile: o.caFile } : {}) : { caFile: ca.caFile }) });
  const ok = await get("enforce.test");
  assert.ok(ok.ok && ok.status === 200 && ok.body === policies["enforce.test"], JSON.stringify(ok));
  // The other side of the certificate check: without the test CA the same server is refused.
  const untrusted = await get("enforce.test", { caFile: undefined });
  assert.ok(!untrusted.ok, "a certificate from an unknown CA is refused");
  assert.match(untrusted.reason, /certificate/i);
  const before = httpLog.length;
  const redirect = await get("redirect.test");
  assert.ok(redirect.ok && redirect.status === 301, "the redirect is returned as it is, not followed");
  const big = await get("big.test");
  assert.deepEqual(big, { ok: false, reason: "the policy is larger than 65536 octets" });
  const slow = await get("slow.test", { timeoutMs: 500 });
  assert.deepEqual(slow, { ok: false, reason: "no complete answer within 500 ms" });
  assert.deepEqual(httpLog.slice(before), ["redirect.test /.well-known/mta-sts.txt", "big.test /.well-known/mta-sts.txt", "slow.test /.well-known/mta-sts.txt"], "no request followed the redirect");
  const nowhere = await get("nowhere.test");
  assert.ok(!nowhere.ok);
  assert.match(nowhere.reason, /no address for mta-sts\.nowhere\.test/);
});
