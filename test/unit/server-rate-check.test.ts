// SmtpServer's rate decisions without sockets: per client (IPv6 by /64) or per authenticated
// user, exempt networks, the reply texts, settings replaced at run time — in virtual time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config.js";
import { FakeClock } from "../../src/io/clock.js";
import { silentLogger } from "../../src/io/log.js";
import { SmtpServer, formatWindow, type RateClient } from "../../src/smtp/server.js";
import type { Spool } from "../../src/spool/spool.js";

function server(rateLimits: Record<string, unknown>, relay = ["127.0.0.0/8"]) {
  const clock = new FakeClock();
  const config = parseConfig({ hostname: "mx.test", relay: { allowedNetworks: relay }, rateLimits });
  return { srv: new SmtpServer({ config, spool: {} as Spool, logger: silentLogger(), clock }), clock };
}

test("rateCheck: per client, IPv6 by /64, per user instead of per client once authenticated; exempt networks", async () => {
  const { srv, clock } = server({ perClient: { messages: { limit: 2, per: "1m" } }, perUser: { messages: { limit: 3, per: "1h" } } });
  const msg = (ip: string, user?: string) => srv.rateCheck("messages", ip, user) ?? "ok";
  assert.deepEqual([msg("192.0.2.1"), msg("192.0.2.1"), msg("192.0.2.1")], ["ok", "ok", "450 4.7.1 Error: too many messages from 192.0.2.1 (limit 2 per 1m), try again later"]);
  // One /64: one client.
  assert.deepEqual([msg("2001:db8:1:2::1"), msg("2001:db8:1:2::ffff"), msg("2001:db8:1:3::1")], ["ok", "ok", "ok"]);
  assert.match(msg("2001:db8:1:2::1234"), /^450 4\.7\.1 Error: too many messages from 2001:db8:1:2::1234 /);
  // The user's own budget, wherever the user connects from (the client's is used up).
  assert.deepEqual([msg("192.0.2.1", "Alice"), msg("198.51.100.7", "alice"), msg("192.0.2.1", "ALICE")], ["ok", "ok", "ok"]);
  assert.equal(msg("192.0.2.1", "alice"), "450 4.7.1 Error: too many messages from user alice (limit 3 per 1h), try again later");
  // Loopback is exempt by default (relay.allowedNetworks plus loopback).
  for (let i = 0; i < 10; i++) assert.equal(msg("127.0.0.5"), "ok");
  clock.advance(60_000);
  assert.equal(msg("192.0.2.1"), "ok", "recovered after the window");
  const st = srv.rateLimitStatus();
  assert.deepEqual(st.rules.find((r) => r.rule === "client-messages"), { rule: "client-messages", limit: 2, per: "1m", hits: 2 });
  assert.deepEqual(st.rules.find((r) => r.rule === "user-messages"), { rule: "user-messages", limit: 3, per: "1h", hits: 1 });
  assert.deepEqual(st.exemptNetworks, ["127.0.0.0/8", "::1/128"]);
  await srv.close(0);
});

test("updateRateLimits: new limits and exempt networks at run time, buckets kept", async () => {
  const { srv } = server({ perClient: { recipients: { limit: 1, per: "1h" } } });
  assert.equal(srv.rateCheck("recipients", "192.0.2.1", undefined), undefined);
  assert.match(srv.rateCheck("recipients", "192.0.2.1", undefined)!, /^450 4\.7\.1 Error: too many recipients from 192\.0\.2\.1 \(limit 1 per 1h\)/);
  srv.updateRateLimits(parseConfig({ hostname: "mx.test", rateLimits: { exemptNetworks: ["192.0.2.0/24"], perClient: { recipients: { limit: 1, per: "1h" } } } }));
  assert.equal(srv.rateCheck("recipients", "192.0.2.1", undefined), undefined, "now exempt");
  assert.equal(srv.rateCheck("recipients", "127.0.0.1", undefined), undefined);
  assert.match(srv.rateCheck("recipients", "127.0.0.1", undefined)!, /^450 /, "loopback no longer exempt: the list is exactly what was given");
  await srv.close(0);
});

test("rateCheckFor: a connection's client keeps its key and exemption, and a reload's exempt networks apply to it at its next command", async () => {
  const { srv } = server({ perClient: { messages: { limit: 1, per: "1h" } } });
  const v6: RateClient = { ip: "2001:db8:1:2::1", key: "2001:db8:1:2::/64", exempt: false, exemptGeneration: -1 };
  const lo: RateClient = { ip: "127.0.0.1", key: "127.0.0.1", exempt: false, exemptGeneration: -1 };
  assert.equal(srv.rateCheckFor("messages", v6, undefined), undefined);
  assert.match(srv.rateCheckFor("messages", v6, undefined)!, /^450 4\.7\.1 Error: too many messages from 2001:db8:1:2::1 /);
  // Counted under its /64, as rateCheck counts another address of it.
  assert.match(srv.rateCheck("messages", "2001:db8:1:2::9", undefined)!, /^450 /);
  for (let i = 0; i < 3; i++) assert.equal(srv.rateCheckFor("messages", lo, undefined), undefined, "loopback exempt");
  srv.updateRateLimits(parseConfig({ hostname: "mx.test", rateLimits: { exemptNetworks: ["2001:db8::/32"], perClient: { messages: { limit: 1, per: "1h" } } } }));
  assert.equal(srv.rateCheckFor("messages", v6, undefined), undefined, "exempt after the reload");
  assert.equal(srv.rateCheckFor("messages", lo, undefined), undefined);
  assert.match(srv.rateCheckFor("messages", lo, undefined)!, /^450 /, "loopback no longer exempt");
  await srv.close(0);
});

test("formatWindow: the largest whole unit", () => {
  const cases: [number, string][] = [[1000, "1s"], [90_000, "90s"], [60_000, "1m"], [3_600_000, "1h"], [86_400_000, "1d"], [1500, "1500ms"]];
  for (const [ms, want] of cases) assert.equal(formatWindow(ms), want);
});
