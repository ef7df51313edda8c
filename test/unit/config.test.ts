import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig, parseDuration, parseSize } from "../../src/config.js";

function problems(input: unknown): string[] {
  try {
    parseConfig(input);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail(`expected ${JSON.stringify(input)} to be refused`);
}

test("config: defaults", () => {
  const c = parseConfig({});
  assert.deepEqual(c.listen, [{ host: "127.0.0.1", port: 2525, tls: false }]);
  assert.equal(c.spoolDir, "./spool");
  assert.ok(c.hostname.length > 0);
  assert.deepEqual(c.relay.allowedNetworks, ["127.0.0.0/8", "::1/128"], "never an open relay by default");
  assert.equal(c.limits.messageSize, 26_214_400);
  assert.equal(c.limits.recipientsPerMessage, 100, "RFC 5321 §4.5.3.1.8: at least 100");
  assert.equal(c.limits.connections, 100);
  assert.equal(c.limits.connectionsPerClient, 20);
  assert.equal(c.limits.commandTimeout, 5 * 60_000, "RFC 5321 §4.5.3.2.7: 5 minutes");
  assert.equal(c.limits.dataTimeout, 10 * 60_000);
  assert.equal(c.limits.maxErrors, 10);
  assert.equal(c.delivery.enabled, true);
  assert.equal(c.delivery.maxQueueTime, 5 * 86_400_000);
  assert.equal(c.tls.cert, undefined);
  // the same result for undefined/null input
  assert.deepEqual(parseConfig(undefined), parseConfig({}));
});

test("config: the result is frozen", () => {
  const c = parseConfig({});
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.limits));
  assert.throws(() => {
    (c.limits as { maxErrors: number }).maxErrors = 1;
  }, TypeError);
});

test("config: durations", () => {
  const table: [string | number, number][] = [
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["5d", 432_000_000],
    ["250ms", 250],
    ["1.5h", 5_400_000],
    [" 2m ", 120_000],
    [1234, 1234],
    [0, 0],
  ];
  for (const [input, ms] of table) {
    assert.equal(parseDuration(input), ms, JSON.stringify(input));
    assert.equal(parseConfig({ limits: { commandTimeout: input } }).limits.commandTimeout, ms, JSON.stringify(input));
  }
  for (const bad of ["30", "5 minutes", "m", "-1s", "1w", "", "1h30m", -5, Number.NaN, Infinity]) {
    assert.equal(parseDuration(bad as string | number), undefined, JSON.stringify(bad));
  }
  const p = problems({ limits: { dataTimeout: "10 minutes" } });
  assert.equal(p.length, 1);
  assert.match(p[0]!, /^limits\.dataTimeout: /);
  assert.match(p[0]!, /duration/);
  assert.match(p[0]!, /"10 minutes"/);
});

test("config: sizes", () => {
  const table: [string | number, number][] = [
    ["10MB", 10 * 1024 * 1024],
    ["512KB", 512 * 1024],
    ["512kb", 512 * 1024],
    ["1GB", 1024 ** 3],
    ["100", 100],
    ["100B", 100],
    [65536, 65536],
  ];
  for (const [input, n] of table) {
    assert.equal(parseSize(input), n, JSON.stringify(input));
    assert.equal(parseConfig({ limits: { messageSize: input } }).limits.messageSize, n, JSON.stringify(input));
  }
  for (const bad of ["10 megabytes", "MB", "-1", "1TB", 0, -1, 1.5]) assert.equal(parseSize(bad), undefined, JSON.stringify(bad));
  const p = problems({ limits: { messageSize: "huge" } });
  assert.match(p[0]!, /^limits\.messageSize: .*size/);
});

test("config: an unknown key is refused and named", () => {
  const top = problems({ spooldir: "/x" });
  assert.equal(top.length, 1);
  assert.match(top[0]!, /unknown key\(s\) "spooldir"/);
  const nested = problems({ limits: { maxMessageSize: 10 } });
  assert.match(nested[0]!, /^limits: unknown key\(s\) "maxMessageSize"/);
  const deep = problems({ delivery: { retry: { minDelay: "1m", backoff: 2 } } });
  assert.match(deep[0]!, /^delivery\.retry: unknown key\(s\) "backoff"/);
  const inList = problems({ listen: [{ host: "127.0.0.1", port: 25, starttls: true }] });
  assert.match(inList[0]!, /^listen\.0: unknown key\(s\) "starttls"/);
});

test("config: a wrong type names the key path and what was expected", () => {
  const a = problems({ limits: { connections: "many" } });
  assert.deepEqual(a, ["limits.connections: expected number, got string"]);
  const b = problems({ listen: [{ port: "25" }] });
  assert.deepEqual(b, ["listen.0.port: expected number, got string"]);
  const c = problems({ delivery: { enabled: "no" } });
  assert.deepEqual(c, ["delivery.enabled: expected boolean, got string"]);
  const d = problems({ relay: { allowedNetworks: "127.0.0.1/32" } });
  assert.deepEqual(d, ["relay.allowedNetworks: expected array, got string"]);
  const e = problems({ log: { level: "loud" } });
  assert.match(e[0]!, /^log\.level: expected one of .*"info".*got "loud"/);
  // Every problem is reported, not only the first.
  const many = problems({ limits: { connections: "x", maxErrors: "y" }, unknownThing: 1 });
  assert.equal(many.length, 3, many.join(" | "));
  // The thrown message lists them too.
  assert.throws(() => parseConfig({ limits: { connections: "x" } }), (e: Error) => /limits\.connections/.test(e.message));
});

test("config: value constraints", () => {
  assert.match(problems({ listen: [{ port: 70000 }] })[0]!, /^listen\.0\.port: /);
  assert.match(problems({ limits: { recipientsPerMessage: 0 } })[0]!, /^limits\.recipientsPerMessage: /);
  assert.match(problems({ relay: { allowedNetworks: ["not-a-cidr"] } })[0]!, /^relay\.allowedNetworks\.0: .*CIDR/);
  assert.match(problems({ listen: [{ port: 465, tls: true }] })[0]!, /^tls: .*tls\.cert and tls\.key/);
  assert.match(problems({ delivery: { retry: { minDelay: "2h", maxDelay: "1h" } } })[0]!, /^delivery\.retry\.minDelay: /);
  assert.match(problems({ listen: [] })[0]!, /^listen: /);
});

test("config: overrides are applied, siblings keep their defaults", () => {
  const c = parseConfig({ limits: { commandTimeout: "1s", messageSize: "1KB" }, relay: { allowedNetworks: ["10.0.0.0/8"] } });
  assert.equal(c.limits.commandTimeout, 1000);
  assert.equal(c.limits.messageSize, 1024);
  assert.equal(c.limits.dataTimeout, 600_000);
  assert.equal(c.limits.maxErrors, 10);
  assert.deepEqual(c.relay.allowedNetworks, ["10.0.0.0/8"]);
});

test("config: limits.reservedConnections defaults to a tenth of limits.connections and must stay below it; stressTimeout 10 s", () => {
  assert.equal(parseConfig({}).limits.reservedConnections, 10);
  assert.equal(parseConfig({ limits: { connections: 20 } }).limits.reservedConnections, 2);
  assert.equal(parseConfig({ limits: { connections: 5 } }).limits.reservedConnections, 0);
  assert.equal(parseConfig({ limits: { connections: 20, reservedConnections: 5 } }).limits.reservedConnections, 5);
  assert.deepEqual(problems({ limits: { connections: 4, reservedConnections: 4 } }), ["limits.reservedConnections: expected fewer than limits.connections (4), got 4"]);
  assert.match(problems({ limits: { reservedConnections: -1 } })[0]!, /^limits\.reservedConnections: /);
  assert.equal(parseConfig({}).limits.stressTimeout, 10_000);
  assert.equal(parseConfig({ limits: { stressTimeout: "3s" } }).limits.stressTimeout, 3000);
  assert.match(problems({ limits: { stressTimeout: "soon" } })[0]!, /^limits\.stressTimeout: expected a duration/);
});

test("config: postmaster defaults to the local drop mailbox postmaster@<hostname>", () => {
  const c = parseConfig({ hostname: "MX.Example.org" });
  assert.equal(c.postmaster, "postmaster@mx.example.org");
  assert.deepEqual(c.localDomains["mx.example.org"], { recipients: ["postmaster"] });
  // An existing local domain of that name gets the mailbox added (or keeps its catch-all).
  const d = parseConfig({ hostname: "mx.example.org", localDomains: { "mx.example.org": { recipients: ["alice"] } } });
  assert.deepEqual(d.localDomains["mx.example.org"]!.recipients, ["alice", "postmaster"]);
  const e = parseConfig({ hostname: "mx.example.org", localDomains: { "mx.example.org": { catchAll: "all" } } });
  assert.deepEqual(e.localDomains["mx.example.org"], { recipients: [], catchAll: "all" });
  assert.match(problems({ hostname: "not a name" })[0]!, /^postmaster: hostname "not a name" is not a domain name/);
});

test("config: an explicit postmaster must be a local drop mailbox or routed, never MX-delivered", () => {
  assert.deepEqual(problems({ postmaster: "hostmaster@elsewhere.example" }), [
    'postmaster: "hostmaster@elsewhere.example" is neither a local drop mailbox (localDomains) nor routed (routes); mail to <Postmaster> comes from anyone and must not be relayed by MX',
  ]);
  assert.match(problems({ postmaster: "nobody@corp.example", localDomains: { "corp.example": { recipients: ["alice"] } } })[0]!, /^postmaster: "nobody@corp\.example" is not a mailbox of localDomains\.corp\.example/);
  assert.equal(parseConfig({ postmaster: "alice@corp.example", localDomains: { "corp.example": { recipients: ["alice"] } } }).postmaster, "alice@corp.example");
  assert.equal(parseConfig({ postmaster: "pm@hq.example", routes: { "hq.example": ["10.0.0.5:25"] } }).postmaster, "pm@hq.example");
  assert.equal(parseConfig({ postmaster: "pm@mail.hq.example", routes: { ".hq.example": ["10.0.0.5:25"] } }).postmaster, "pm@mail.hq.example");
  // No implicit local domain when the postmaster is set.
  assert.equal(parseConfig({ hostname: "mx.example.org", postmaster: "pm@hq.example", routes: { "hq.example": ["10.0.0.5"] } }).localDomains["mx.example.org"], undefined);
});
