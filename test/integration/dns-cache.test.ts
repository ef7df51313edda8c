// The delivery DNS cache end to end: nodemailer submits to the mxd daemon, which resolves from a
// real DNS server on loopback (dns2, counting the queries it answers) and delivers to an
// smtp-server sink. A second delivery to the same domain sends no query while the TTLs last and
// new ones once they are over. Time: the daemon's clock is the system clock plus a skew the test
// moves forward, so no test waits for a TTL in real time.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { parseConfig, type ConfigInput } from "../../src/config.js";
import { startDaemon, type Daemon } from "../../src/main.js";
import { silentLogger } from "../../src/io/log.js";
import { systemClock, type Clock } from "../../src/io/clock.js";
import { startDnsServer, type DnsServerHandle } from "../helpers/dns-server.js";
import { startMxSink, type MxSink } from "../helpers/mx-sink.js";

const DNS_HOST = "127.0.9.1";
const MX_HOST = "127.0.9.2";

async function setup(t: TestContext, cache: NonNullable<ConfigInput["dns"]>["cache"]) {
  const dns = await startDnsServer({
    host: DNS_HOST,
    zone: {
      "cached.test": { mx: [{ exchange: "mx.cached.test", priority: 10 }] },
      // The A record's TTL travels on the wire; node:dns reports it (the MX TTL it does not).
      "mx.cached.test": { a: [MX_HOST], ttl: 30 },
    },
  });
  t.after(() => dns.close());
  const sink: MxSink = await startMxSink({ host: MX_HOST });
  t.after(() => sink.close());
  const spoolDir = mkdtempSync(join(tmpdir(), "mxd-dns-cache-"));
  t.after(() => rmSync(spoolDir, { recursive: true, force: true }));
  let skew = 0;
  const clock: Clock = { now: () => systemClock.now() + skew, setTimer: (fn, ms) => systemClock.setTimer(fn, ms) };
  const config = parseConfig({
    hostname: "mxd.test",
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir,
    dns: { servers: [dns.address], timeout: "2s", tries: 1, ...(cache ? { cache } : {}) },
    delivery: { timeouts: { connect: "2s" } },
  });
  const d: Daemon = await startDaemon(config, { logger: silentLogger(), clock });
  t.after(() => d.stop());
  let sent = 0;
  /** Submit one message to cached.test, wait until the sink has it; the queries it cost. */
  const deliver = async (): Promise<string[]> => {
    const before = dns.queries.length;
    const tr = nodemailer.createTransport({ host: "127.0.0.1", port: d.smtp.addresses[0]!.port, secure: false, ignoreTLS: true });
    await tr.sendMail({ envelope: { from: "a@sender.test", to: ["b@cached.test"] }, from: "a@sender.test", to: "b@cached.test", subject: `n${++sent}`, text: "hi\n" });
    await sink.waitForMessages(sent, 15_000);
    return dns.queries.slice(before).map((q) => `${q.type} ${q.name}`);
  };
  /** mxd_dns_cache_lookups_total{result} as /metrics renders it (undefined: not exported). */
  const lookups = (result: string): number | undefined => {
    const m = new RegExp(`^mxd_dns_cache_lookups_total\\{result="${result}"\\} (\\d+)$`, "m").exec(d.metrics.registry.render());
    return m ? Number(m[1]) : undefined;
  };
  return { deliver, advance: (ms: number) => void (skew += ms), lookups };
}

test("a second delivery to the same domain sends no DNS query while the TTLs last, and new ones after", async (t) => {
  const { deliver, advance, lookups } = await setup(t, { unknownTtl: "2m" });
  const first = await deliver();
  const hits = lookups("hit")!;
  assert.ok(first.includes("MX cached.test") && first.includes("A mx.cached.test"), `first delivery asked: ${first.join(", ")}`);
  assert.deepEqual(await deliver(), [], "second delivery, at once");
  assert.ok(lookups("hit")! > hits, "the hits show in /metrics");
  advance(29_000);
  assert.deepEqual(await deliver(), [], "29 s later: within the A record's 30 s TTL");
  advance(2_000);
  // The A record (TTL 30 s, from the wire) has expired; the MX answer (kept unknownTtl, 2 m) has not.
  const fourth = await deliver();
  assert.ok(fourth.includes("A mx.cached.test"), `after the A TTL: ${fourth.join(", ")}`);
  assert.ok(!fourth.includes("MX cached.test"), `the MX answer is still cached: ${fourth.join(", ")}`);
  advance(120_000);
  const fifth = await deliver();
  assert.ok(fifth.includes("MX cached.test") && fifth.includes("A mx.cached.test"), `after every TTL: ${fifth.join(", ")}`);
});

test("with dns.cache.enabled false every delivery asks again", async (t) => {
  const { deliver, lookups } = await setup(t, { enabled: false });
  assert.equal(lookups("hit"), undefined, "no cache, no cache metrics");
  const first = await deliver();
  assert.ok(first.includes("MX cached.test") && first.includes("A mx.cached.test"), first.join(", "));
  const second = await deliver();
  assert.ok(second.includes("MX cached.test") && second.includes("A mx.cached.test"), `second delivery asked: ${second.join(", ")}`);
});
