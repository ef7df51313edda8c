// The PROXY protocol on an in-process listener, byte by byte (the HAProxy interop test covers
// the real load balancer): the header and the client's first bytes in one segment, a header
// split across segments, refusals without waiting (no header, oversize, untrusted peer), the
// header timeout, connection limits by the client's own address, shutdown with headers
// pending, and a seeded fuzz of headers over real sockets. Sources: 127.0.0.1 (trusted), .78.
import { test, afterEach, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { once } from "node:events";
import { Duplex } from "node:stream";
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { RawClient, cleanup, closeClients, ehlo, readEntry, queuedId, startInbound, splitReceived, eventually, makeCert, tempDir, type Inbound } from "../helpers/inbound.js";
import { hashPassword } from "../../src/auth/password-hash.js";
import { serializeUsers } from "../../src/auth/users-file.js";
import { v1, v2 } from "../helpers/proxy-header.js";
import { Gen, fuzzSeed, mulberry32 } from "../helpers/fuzz.js";

afterEach(closeClients);
after(cleanup);

const inCI = process.env.CI === "true" || process.env.CI === "1";

function proxied(extra: Record<string, unknown> = {}, limits: Record<string, unknown> = {}): Promise<Inbound> {
  return startInbound({
    listen: [{ host: "127.0.0.1", port: 0, proxyProtocol: { trustedNetworks: ["127.0.0.1/32"], timeout: "1s", ...extra } }],
    relay: { allowedNetworks: ["192.0.2.0/24", "2001:db8::/32"] },
    rateLimits: { exemptNetworks: [] },
    limits,
  });
}

async function transaction(c: RawClient, ib: Inbound): Promise<{ meta: Inbound["queued"][number]; received: ReturnType<typeof splitReceived> }> {
  await c.cmd("MAIL FROM:<a@client.test>", 250);
  await c.cmd("RCPT TO:<b@remote.example>", 250); // relaying: only the header's address may
  await c.cmd("DATA", 354);
  c.write("Subject: t\r\n\r\nhello\r\n.\r\n");
  const id = queuedId(await c.reply(5000));
  const meta = ib.queued.find((m) => m.id === id)!;
  return { meta, received: splitReceived((await readEntry(ib.dir, id)).eml) };
}

test("v2 header and EHLO in one segment: greeting first, then the EHLO reply; the header's address everywhere", async () => {
  const ib = await proxied();
  const c = await RawClient.connect(ib.port);
  c.write(Buffer.concat([v2("2001:db8::7", "2001:db8::1", 40000, 25, { tlvs: [{ type: 0x04, value: Buffer.alloc(20) }] }), Buffer.from("EHLO client.test\r\n")]));
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.reply()).code, 250);
  const { meta, received } = await transaction(c, ib);
  assert.deepEqual([meta.client?.ip, meta.client?.port, meta.client?.relayAllowed], ["2001:db8::7", 40000, true]);
  assert.equal(received.ip, "IPv6:2001:db8::7");
});

test("v1 header split across segments, then a normal session", async () => {
  const ib = await proxied();
  const c = await RawClient.connect(ib.port);
  const h = v1("192.0.2.9", "198.51.100.1", 5555, 25);
  for (const part of [h.subarray(0, 1), h.subarray(1, 7), h.subarray(7, 30), h.subarray(30)]) {
    c.write(part);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal((await c.reply()).code, 220);
  await c.cmd("EHLO client.test", 250);
  const { meta, received } = await transaction(c, ib);
  assert.equal(meta.client?.ip, "192.0.2.9");
  assert.equal(received.ip, "192.0.2.9");
});

test("a trusted peer that speaks SMTP without a header: refused at once, no greeting", async () => {
  const ib = await proxied();
  const c = await RawClient.connect(ib.port);
  c.write("EHLO client.test\r\n");
  const r = await c.reply();
  assert.equal(r.text, "421 4.7.0 mx.test Error: PROXY protocol header expected");
  assert.ok(await c.closedWithin(3000));
  assert.equal(ib.server.proxyRefused.get("bad-header"), 1);
});

test("an oversize v2 length is refused from the fixed part, without waiting for the body", async () => {
  const ib = await proxied({ maxHeaderSize: 300 });
  const c = await RawClient.connect(ib.port);
  c.write(v2("192.0.2.9", "198.51.100.1", 1, 25, { len: 5000 }).subarray(0, 16));
  assert.match((await c.reply()).text, /^421 4\.7\.0 /);
  assert.ok(await c.closedWithin(3000));
});

test("an untrusted peer is refused before it sends anything", async () => {
  const ib = await proxied();
  const c = await RawClient.connect(ib.port, { localAddress: "127.0.0.78" });
  assert.equal((await c.reply()).text, "421 4.7.0 mx.test Error: connection refused");
  assert.ok(await c.closedWithin(3000));
  assert.equal(ib.server.proxyRefused.get("untrusted"), 1);
  assert.equal(ib.server.connectionCount, 0);
});

test("header timeout: half a header, then silence: refused after proxyProtocol.timeout", async () => {
  const ib = await proxied({ timeout: "300ms" });
  const c = await RawClient.connect(ib.port);
  c.write(v2("192.0.2.9", "198.51.100.1", 1, 25).subarray(0, 20));
  assert.equal((await c.reply(3000)).text, "421 4.7.0 mx.test Error: PROXY protocol header expected");
  assert.equal(ib.server.proxyRefused.get("timeout"), 1);
  assert.equal(ib.server.pendingProxyCount, 0);
});

test("v2 LOCAL (a health check): the connection's own address", async () => {
  const ib = await proxied();
  const c = await RawClient.connect(ib.port);
  c.write(v2(undefined, undefined, 0, 0, { command: "local" }));
  assert.equal((await c.reply()).code, 220);
  await c.cmd("EHLO lb.test", 250);
  await c.cmd("MAIL FROM:<a@client.test>", 250);
  // 127.0.0.1 (the load balancer) is not in relay.allowedNetworks here.
  await c.cmd("RCPT TO:<b@remote.example>", 554);
});

test("v2 LOCAL (the balancer's health checks) is not counted by the connection rate limit; its messages are, by the balancer's address", async () => {
  // HAProxy checks every 2 s by default, per backend: with a few backends on one mxd, the
  // balancer's own address passed rateLimits.perClient.connections and every check got 421
  // (HAProxy then marks mxd DOWN).
  const ib = await startInbound({
    listen: [{ host: "127.0.0.1", port: 0, proxyProtocol: { trustedNetworks: ["127.0.0.1/32"] } }],
    rateLimits: { exemptNetworks: [], perClient: { connections: { limit: 1, per: "1h" }, messages: { limit: 1, per: "1h" } } },
  });
  const check = async () => {
    const c = await RawClient.connect(ib.port);
    c.write(v2(undefined, undefined, 0, 0, { command: "local" }));
    return c;
  };
  for (let i = 0; i < 3; i++) {
    const c = await check();
    assert.match((await c.reply()).text, /^220 /, `health check ${i + 1}`);
    await c.cmd("HELO lb.test", 250);
    if (i < 2) c.destroy();
    else {
      await c.cmd("MAIL FROM:<a@client.test>", 250);
      await c.cmd("RSET", 250);
      assert.match((await c.cmd("MAIL FROM:<a@client.test>", 450)).text, /too many messages from 127\.0\.0\.1/);
    }
  }
  // A client the header names is still limited.
  const a = await RawClient.connect(ib.port);
  a.write(v2("192.0.2.1", "198.51.100.1", 1000, 25));
  assert.match((await a.reply()).text, /^220 /);
  const b = await RawClient.connect(ib.port);
  b.write(v2("192.0.2.1", "198.51.100.1", 1001, 25));
  assert.match((await b.reply()).text, /^421 4\.7\.0 .*too many connections from 192\.0\.2\.1/);
});

for (const [name, header] of [
  ["v2 AF_UNSPEC", v2(undefined, undefined, 0, 0, { famByte: 0x00, tlvs: [{ type: 0x01, value: Buffer.from("smtp") }] })],
  ["v1 UNKNOWN", Buffer.from("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")],
] as const) {
  test(`${name}: no client address in the header, so the connection's own`, async () => {
    const ib = await proxied();
    const c = await RawClient.connect(ib.port);
    c.write(Buffer.concat([header, Buffer.from("EHLO lb.test\r\n")]));
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.reply()).code, 250);
    await c.cmd("MAIL FROM:<a@client.test>", 250);
    await c.cmd("RCPT TO:<b@remote.example>", 554); // judged as 127.0.0.1, which may not relay here
  });
}

test("connections per client count the header's address, not the load balancer's", async () => {
  const ib = await proxied({}, { connectionsPerClient: 1 });
  const open = async (src: string) => {
    const c = await RawClient.connect(ib.port);
    c.write(v1(src, "198.51.100.1", 1000, 25));
    return { c, r: await c.reply() };
  };
  const a = await open("192.0.2.1");
  const b = await open("192.0.2.2");
  const a2 = await open("192.0.2.1");
  assert.deepEqual([a.r.code, b.r.code], [220, 220], "two clients behind one load balancer");
  assert.match(a2.r.text, /^421 4\.7\.0 mx\.test Error: too many connections/);
});

test("connections per client count an IPv6 client by its /64 (as the rate limits and the AUTH back-off do)", async () => {
  const ib = await proxied({}, { connectionsPerClient: 2 });
  const open = async (src: string) => {
    const c = await RawClient.connect(ib.port);
    c.write(v2(src, "2001:db8::1", 1000, 25));
    return (await c.reply()).text;
  };
  assert.match(await open("2001:db8:1:2::a"), /^220 /);
  assert.match(await open("2001:db8:1:2::b"), /^220 /);
  assert.match(await open("2001:db8:1:2:ffff::c"), /^421 4\.7\.0 mx\.test Error: too many connections/, "a third address of the same /64");
  assert.match(await open("2001:db8:1:3::a"), /^220 /, "another /64 has its own slots");
});

test("rate limits count the header's address: one client behind the balancer is limited, the next one is not", async () => {
  const ib = await startInbound({
    listen: [{ host: "127.0.0.1", port: 0, proxyProtocol: { trustedNetworks: ["127.0.0.1/32"] } }],
    rateLimits: { exemptNetworks: [], perClient: { connections: { limit: 1, per: "1h" } } },
  });
  const greet = async (src: string) => {
    const c = await RawClient.connect(ib.port);
    c.write(v2(src, "198.51.100.1", 1000, 25));
    return (await c.reply()).text;
  };
  assert.match(await greet("192.0.2.1"), /^220 /);
  assert.equal(await greet("192.0.2.1"), "421 4.7.0 mx.test Error: too many connections from 192.0.2.1 (limit 1 per 1h), try again later");
  assert.match(await greet("192.0.2.2"), /^220 /, "another client behind the same balancer");
});

test("failed-AUTH back-off counts an IPv6 client by its /64, as the rate limits do: another address of that /64 is blocked too", async () => {
  const dir = await tempDir("mxd-proxy-auth-");
  const creds = makeCert(dir);
  const usersFile = join(dir, "users");
  await fsp.writeFile(usersFile, serializeUsers([{ name: "alice", hash: await hashPassword("alice-password", { N: 1024, r: 8, p: 1 }), senders: ["*"] }]));
  const ib = await startInbound(
    {
      listen: [{ host: "127.0.0.1", port: 0, mode: "submission", proxyProtocol: { trustedNetworks: ["127.0.0.1/32"] } }],
      tls: { cert: creds.certPath, key: creds.keyPath },
      auth: { usersFile, failures: { max: 2 } },
    },
    { tlsCredentials: creds },
  );
  const authFrom = async (src: string, password: string): Promise<string> => {
    const c = await RawClient.connect(ib.port);
    c.write(v2(src, "2001:db8:ffff::25", 1000, 587));
    await c.reply();
    await ehlo(c);
    await c.cmd("STARTTLS", 220);
    await c.startTls();
    await ehlo(c);
    const r = await c.cmd(`AUTH PLAIN ${Buffer.from(`\0alice\0${password}`).toString("base64")}`);
    c.destroy();
    return r.text;
  };
  assert.match(await authFrom("2001:db8:1:2::a", "wrong-one"), /^535 5\.7\.8/);
  assert.match(await authFrom("2001:db8:1:2::b", "wrong-two"), /^535 5\.7\.8/);
  assert.match(await authFrom("2001:db8:1:2::c", "alice-password"), /^454 4\.7\.0/, "the next address of the same /64 is in the back-off");
  assert.match(await authFrom("2001:db8:1:3::a", "alice-password"), /^235 /, "another /64 is not");
});

test("implicit TLS behind a header: the ClientHello in the same segment as the header is not lost", async () => {
  const dir = await tempDir("mxd-proxy-tls-");
  const ib = await startInbound(
    { listen: [{ host: "127.0.0.1", port: 0, tls: true, proxyProtocol: { trustedNetworks: ["127.0.0.1/32"] } }], relay: { allowedNetworks: ["192.0.2.0/24"] }, tls: { cert: "unused", key: "unused" } },
    { tlsCredentials: makeCert(dir) },
  );
  const raw = net.connect({ host: "127.0.0.1", port: ib.port });
  await once(raw, "connect");
  // The TLS client writes through this stream; its first write carries the header too, so
  // header and ClientHello leave in one write (as HAProxy sends them).
  let header: Buffer | undefined = v2("192.0.2.44", "198.51.100.1", 4444, 465);
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _e, cb) {
      raw.write(header ? Buffer.concat([header, chunk]) : chunk, cb);
      header = undefined;
    },
    final(cb) {
      raw.end();
      cb();
    },
  });
  raw.on("data", (c) => wire.push(c));
  raw.on("end", () => wire.push(null));
  const secure = tls.connect({ socket: wire, rejectUnauthorized: false, servername: "mx.test" });
  try {
    await Promise.race([once(secure, "secureConnect"), new Promise((_, rej) => setTimeout(() => rej(new Error("no TLS handshake")), 5000))]);
    const greeting = await Promise.race([once(secure, "data").then(([d]) => String(d)), new Promise<string>((_, rej) => setTimeout(() => rej(new Error("no greeting")), 5000))]);
    assert.match(greeting, /^220 mx\.test /);
    assert.equal(ib.server.connectionCount, 1);
  } finally {
    secure.destroy();
    raw.destroy();
  }
});

test("shutdown with headers still pending closes those sockets too", async () => {
  const ib = await proxied({ timeout: "10s" });
  const c = await RawClient.connect(ib.port);
  c.write("PROXY TCP4 ");
  assert.ok(await eventually(() => ib.server.pendingProxyCount === 1, 2000));
  await ib.server.close(1000);
  assert.ok(await c.closedWithin(2000));
  assert.equal(ib.server.pendingProxyCount, 0);
});

const SEED = fuzzSeed(inCI, 20261202);

test(`fuzz over sockets (seed ${SEED}): mutated headers never crash the server or leak a pending socket`, { timeout: 120_000 }, async () => {
  console.log(`# proxy socket fuzz seed ${SEED} (MXD_FUZZ_SEED=${SEED} to reproduce)`);
  const ib = await proxied({ timeout: "500ms", maxHeaderSize: 400 }, { connections: 200, connectionsPerClient: 200 });
  const g = new Gen(mulberry32(SEED));
  const outcomes = { greeted: 0, refused: 0, closed: 0 };
  const one = async () => {
    let h = g.chance(0.5) ? v1("192.0.2.1", "198.51.100.1", g.int(65536), 25) : v2("192.0.2.1", "198.51.100.1", g.int(65536), 25, { tlvs: g.chance(0.3) ? [{ type: g.int(256), value: g.bytes(g.int(500)) }] : [] });
    if (g.chance(0.7)) {
      h = Buffer.from(h);
      for (let n = 1 + g.int(3); n > 0; n--) h[g.int(h.length)] = g.int(256);
    }
    if (g.chance(0.3)) h = h.subarray(0, g.int(h.length));
    const c = await RawClient.connect(ib.port);
    for (let off = 0; off < h.length; ) {
      const n = 1 + g.int(40);
      c.write(h.subarray(off, off + n));
      off += n;
    }
    if (g.chance(0.5)) c.write("EHLO fuzz.test\r\n");
    try {
      const r = await c.reply(3000);
      if (r.code === 220) outcomes.greeted++;
      else outcomes.refused++;
    } catch {
      outcomes.closed++;
    }
    c.socket.destroy();
  };
  for (let i = 0; i < 150; i += 10) await Promise.all(Array.from({ length: 10 }, one));
  console.log(`# proxy socket fuzz: ${JSON.stringify(outcomes)}`);
  assert.ok(outcomes.greeted > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
  assert.ok(await eventually(() => ib.server.pendingProxyCount === 0 && ib.server.connectionCount === 0, 5000), `pending ${ib.server.pendingProxyCount}, open ${ib.server.connectionCount}`);
  // Still serving.
  const c = await RawClient.connect(ib.port);
  c.write(v1("192.0.2.1", "198.51.100.1", 1, 25));
  assert.equal((await c.reply()).code, 220);
});
