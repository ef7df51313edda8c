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
  assert.deepEqual(c.listen, [{ host: "127.0.0.1", port: 2525, tls: false, mode: "relay" }]);
  assert.equal(c.spoolDir, "./spool");
  assert.ok(c.hostname.length > 0);
  assert.deepEqual(c.relay.allowedNetworks, ["127.0.0.0/8", "::1/128"], "never an open relay by default");
  assert.equal(c.limits.messageSize, 26_214_400);
  // Issue 13, bug 6: 100 (the RFC minimum) cut an application's 150-recipient message; Postfix's
  // smtpd_recipient_limit is 1000.
  assert.equal(c.limits.recipientsPerMessage, 1000, "Postfix smtpd_recipient_limit (RFC 5321 §4.5.3.1.8: at least 100)");
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
  assert.equal(top[0]!, 'unknown key "spooldir" (did you mean "spoolDir"?)');
  const nested = problems({ limits: { maxMessageSize: 10 } });
  assert.equal(nested[0]!, 'unknown key "limits.maxMessageSize" (did you mean "limits.messageSize"?)');
  const deep = problems({ delivery: { retry: { minDelay: "1m", backoff: 2 } } });
  assert.equal(deep[0]!, 'unknown key "delivery.retry.backoff"', "nothing near: no suggestion");
  const inList = problems({ listen: [{ host: "127.0.0.1", port: 25, starttls: true }] });
  assert.match(inList[0]!, /^unknown key "listen\.0\.starttls"/);
  // Issue 13: a typo'd key suggests the nearest valid one.
  const table: [object, string][] = [
    [{ limts: {} }, '"limits"'],
    [{ limits: { recipientsPerMesage: 5 } }, '"limits.recipientsPerMessage"'],
    [{ delivery: { fallbackRelay: [] } }, '"delivery.fallbackRelays"'],
    [{ admin: { tokn: "x" } }, '"admin.token"'],
  ];
  for (const [input, want] of table) assert.ok(problems(input)[0]!.includes(`did you mean ${want}?`), `${JSON.stringify(input)}: ${problems(input)[0]}`);
});

test("config: a wrong type names the key path and what was expected", () => {
  const a = problems({ limits: { connections: "many" } });
  assert.deepEqual(a, ['limits.connections: expected number, got "many"']);
  const b = problems({ listen: [{ port: "25" }] });
  assert.deepEqual(b, ['listen.0.port: expected number, got "25"']);
  const c = problems({ delivery: { enabled: "no" } });
  assert.deepEqual(c, ['delivery.enabled: expected boolean, got "no"']);
  const d = problems({ relay: { allowedNetworks: "127.0.0.1/32" } });
  assert.deepEqual(d, ['relay.allowedNetworks: expected array, got "127.0.0.1/32"']);
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
  assert.match(problems({ relay: { allowedNetworks: ["not-a-cidr"] } })[0]!, /^relay\.allowedNetworks\.0: .*CIDR.*got "not-a-cidr"$/);
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

// Issue 13, bugs 1 and 2: addresses are checked where they are configured, so a config that
// cannot run is refused by check-config and serve (exit 2) instead of failing inside Node.
test("config: every address is validated (port range, IP literals, host names), errors name key and value", () => {
  const bad: [object, RegExp][] = [
    [{ admin: { listen: "127.0.0.7:86000" } }, /^admin\.listen: port 86000 in "127\.0\.0\.7:86000" is out of range/],
    [{ admin: { listen: "127.0.0.7:" } }, /^admin\.listen: port "" in "127\.0\.0\.7:" is not a number/],
    [{ admin: { listen: "127.0.0.300:8025" } }, /^admin\.listen: "127\.0\.0\.300" in .* is not an IPv4 address/],
    [{ delivery: { fallbackRelays: ["relay.example:99999"] } }, /^delivery\.fallbackRelays\.0: port 99999 in "relay\.example:99999" is out of range/],
    [{ delivery: { fallbackRelays: ["relay.example:0"] } }, /^delivery\.fallbackRelays\.0: port 0 .* out of range \(1–65535\)/],
    [{ routes: { "a.test": ["relay.example:99999"] } }, /^routes\.a\.test\.0: port 99999/],
    [{ routes: { "a.test": ["bad_host!:25"] } }, /^routes\.a\.test\.0: "bad_host!" in "bad_host!:25" is not a host name/],
    [{ routes: { "a.test": ["::1:25"] } }, /^routes\.a\.test\.0: write an IPv6 address in brackets/],
    [{ routes: { "a.test": ["[::g]:25"] } }, /^routes\.a\.test\.0: "::g" in "\[::g\]:25" is not an IPv6 address/],
    [{ dns: { servers: ["dns.example"] } }, /^dns\.servers\.0: expected an IP address, got "dns\.example"/],
    [{ dns: { servers: ["127.0.0.1:65536"] } }, /^dns\.servers\.0: port 65536/],
    [{ delivery: { sourceAddress: "10.0.0.300" } }, /^delivery\.sourceAddress: expected an IP address, got "10\.0\.0\.300"/],
    [{ listen: [{ host: "not a host" }] }, /^listen\.0\.host: expected an IP address or host name, got "not a host"/],
    [{ hostname: "mx example" }, /^hostname: expected a host name .*got "mx example"/],
  ];
  for (const [input, re] of bad) {
    const p = problems(input);
    assert.equal(p.length, 1, `${JSON.stringify(input)}: ${p.join(" | ")}`);
    assert.match(p[0]!, re, JSON.stringify(input));
  }
  const good = parseConfig({
    admin: { listen: "[::1]:0" },
    delivery: { fallbackRelays: ["relay.example", "192.0.2.1:2525", "[2001:db8::1]:587"], sourceAddress: "::1" },
    routes: { ".example.com": ["smtp.example.net:65535"] },
    dns: { servers: ["127.0.0.1", "[::1]:5353"] },
    listen: [{ host: "localhost", port: 0 }],
  });
  assert.equal(good.delivery.fallbackRelays.length, 3, "addresses are kept as written");
});

test("config: check-config shows durations and sizes as written", async () => {
  const { displayConfig } = await import("../../src/config.js");
  const input = { limits: { commandTimeout: "90s", messageSize: "10MB" }, delivery: { retry: { minDelay: 60000 } } };
  const shown = displayConfig(input, parseConfig(input)) as { limits: Record<string, unknown>; delivery: { maxQueueTime: unknown; retry: Record<string, unknown> }; shutdownTimeout: unknown };
  assert.equal(shown.limits.commandTimeout, "90s");
  assert.equal(shown.limits.messageSize, "10MB");
  assert.equal(shown.limits.dataTimeout, "10m", "a default is shown as the default is written");
  assert.equal(shown.delivery.maxQueueTime, "5d");
  assert.equal(shown.delivery.retry.minDelay, 60000, "a number of ms stays a number");
  assert.equal(shown.limits.recipientsPerMessage, 1000, "plain numbers unchanged");
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
  assert.deepEqual(problems({ hostname: "not a name" }), ['hostname: expected a host name like "mx.example.org", got "not a name"'], "reported once, under hostname");
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

test("config: listen mode and auth (submission needs a users file and TLS)", () => {
  const c = parseConfig({});
  assert.equal(c.auth.usersFile, null);
  assert.deepEqual(c.auth.failures, { max: 5, window: 900_000, backoff: 60_000, maxBackoff: 3_600_000, perConnection: 3 });
  const ok = parseConfig({
    listen: [{ port: 587, mode: "submission" }, { port: 465, tls: true, mode: "submission" }, { port: 25 }],
    tls: { cert: "c.pem", key: "k.pem" },
    auth: { usersFile: "/etc/mxd/users", failures: { max: 3, backoff: "30s" } },
  });
  assert.deepEqual(ok.listen.map((l) => l.mode), ["submission", "submission", "relay"]);
  assert.equal(ok.auth.failures.backoff, 30_000);
  // Each control refuses, naming the key.
  assert.ok(problems({ listen: [{ mode: "submission" }], tls: { cert: "c", key: "k" } }).some((p) => /auth\.usersFile/.test(p) && /submission/.test(p)));
  assert.ok(problems({ listen: [{ mode: "submission" }], auth: { usersFile: "u" } }).some((p) => /listen\.0\.mode|listen\[0\]\.mode/.test(p) && /TLS/.test(p)), String(problems({ listen: [{ mode: "submission" }], auth: { usersFile: "u" } })));
  assert.ok(problems({ listen: [{ mode: "smtps" }] }).some((p) => /listen/.test(p) && /mode/.test(p)));
  assert.ok(problems({ auth: { failures: { backoff: "2h" } } }).some((p) => /auth\.failures\.backoff/.test(p)));
  assert.ok(problems({ auth: { userFile: "x" } }).some((p) => /userFile/.test(p)));
});

test("config: listen[].proxyProtocol — trusted networks required, defaults, bounds, also on implicit TLS", async () => {
  const c = parseConfig({ listen: [{ port: 25, proxyProtocol: { trustedNetworks: ["10.0.0.5/32"] } }] });
  assert.deepEqual(c.listen[0]!.proxyProtocol, { trustedNetworks: ["10.0.0.5/32"], timeout: 10_000, maxHeaderSize: 1024 });
  assert.equal(parseConfig({}).listen[0]!.proxyProtocol, undefined, "off unless asked for");
  assert.match(problems({ listen: [{ proxyProtocol: {} }] })[0]!, /^listen\.0\.proxyProtocol\.trustedNetworks: /);
  assert.match(problems({ listen: [{ proxyProtocol: { trustedNetworks: [] } }] })[0]!, /^listen\.0\.proxyProtocol\.trustedNetworks: /);
  assert.match(problems({ listen: [{ proxyProtocol: { trustedNetworks: ["lb.example"] } }] })[0]!, /^listen\.0\.proxyProtocol\.trustedNetworks\.0: .*CIDR.*got "lb\.example"$/);
  assert.match(problems({ listen: [{ proxyProtocol: { trustedNetworks: ["10.0.0.5"], maxHeaderSize: 100 } }] })[0]!, /^listen\.0\.proxyProtocol\.maxHeaderSize: expected 232 to 65551 bytes, got 100$/);
  assert.match(problems({ listen: [{ proxyProtocol: { trustedNetworks: ["10.0.0.5"], timout: "5s" } }] })[0]!, /^unknown key "listen\.0\.proxyProtocol\.timout" \(did you mean "listen\.0\.proxyProtocol\.timeout"\?\)$/);
  // Implicit TLS too: the header comes first, then the handshake.
  const t = parseConfig({ tls: { cert: "c.pem", key: "k.pem" }, listen: [{ port: 465, tls: true, proxyProtocol: { trustedNetworks: ["10.0.0.5"] } }] });
  assert.equal(t.listen[0]!.tls, true);
});

test("config: rateLimits — defaults, 0 switches a rule off, windows of at least 1s, exempt networks default to relay + loopback", async () => {
  const { rateLimitExempt } = await import("../../src/config.js");
  const c = parseConfig({});
  assert.deepEqual(c.rateLimits, {
    exemptNetworks: null,
    maxTrackedKeys: 100_000,
    perClient: { connections: { limit: 60, per: 60_000 }, messages: { limit: 100, per: 60_000 }, recipients: { limit: 1000, per: 3_600_000 } },
    perUser: { messages: { limit: 100, per: 60_000 }, recipients: { limit: 1000, per: 3_600_000 } },
  });
  assert.deepEqual(rateLimitExempt(c), ["127.0.0.0/8", "::1/128"]);
  assert.deepEqual(rateLimitExempt(parseConfig({ relay: { allowedNetworks: ["192.0.2.0/24"] } })), ["192.0.2.0/24", "127.0.0.0/8", "::1/128"]);
  assert.deepEqual(rateLimitExempt(parseConfig({ rateLimits: { exemptNetworks: [] } })), [], "an explicit list is exactly that list");
  const off = parseConfig({ rateLimits: { perClient: { messages: { limit: 0 } } } });
  assert.deepEqual(off.rateLimits.perClient.messages, { limit: 0, per: 60_000 }, "the window keeps its default");
  assert.match(problems({ rateLimits: { perClient: { messages: { limit: 5, per: "500ms" } } } })[0]!, /^rateLimits\.perClient\.messages\.per: expected a window of at least 1s, got "500ms"$/);
  assert.match(problems({ rateLimits: { perClient: { messages: { limit: -1 } } } })[0]!, /^rateLimits\.perClient\.messages\.limit: /);
  assert.match(problems({ rateLimits: { maxTrackedKeys: 10 } })[0]!, /^rateLimits\.maxTrackedKeys: /);
  assert.match(problems({ rateLimits: { perUser: { connections: { limit: 1 } } } })[0]!, /^unknown key "rateLimits\.perUser\.connections"/);
  assert.match(problems({ rateLimits: { exemptNetworks: ["nope"] } })[0]!, /^rateLimits\.exemptNetworks\.0: .*CIDR/);
});

test("config: delivery.dane — off by default; only a loopback resolver unless allowed", () => {
  assert.deepEqual(parseConfig({}).delivery.dane, { resolver: null, allowRemoteResolver: false, timeout: 5000, tries: 2 });
  assert.equal(parseConfig({ delivery: { dane: { resolver: "127.0.0.1:53" } } }).delivery.dane.resolver, "127.0.0.1:53");
  assert.equal(parseConfig({ delivery: { dane: { resolver: "[::1]:5353" } } }).delivery.dane.resolver, "[::1]:5353");
  assert.deepEqual(problems({ delivery: { dane: { resolver: "192.0.2.53" } } }), [
    'delivery.dane.resolver: "192.0.2.53" is not a loopback address; mxd trusts its DNSSEC answers (AD bit) only with delivery.dane.allowRemoteResolver: true',
  ]);
  assert.equal(parseConfig({ delivery: { dane: { resolver: "192.0.2.53", allowRemoteResolver: true } } }).delivery.dane.resolver, "192.0.2.53");
  assert.match(problems({ delivery: { dane: { resolver: "resolver.example" } } })[0]!, /^delivery\.dane\.resolver: expected an IP address/);
  assert.doesNotThrow(() => parseConfig({ delivery: { tls: { policy: { default: "dane-only" } }, dane: { resolver: "127.0.0.1" } } }));
});

test("config: tls — minVersion, ciphers, SNI entries; tls.cert/tls.key alone still work", () => {
  const c = parseConfig({ tls: { cert: "c.pem", key: "k.pem" } });
  assert.equal(c.tls.minVersion, "TLSv1.2");
  assert.match(c.tls.ciphers, /^TLS_AES_128_GCM_SHA256:.*ECDHE-RSA-AES128-GCM-SHA256/);
  assert.deepEqual(c.tls.sni, []);
  assert.equal(parseConfig({ tls: { cert: "c", key: "k", minVersion: "TLSv1.3" } }).tls.minVersion, "TLSv1.3");
  assert.equal(parseConfig({ tls: { cert: "c", key: "k", sni: [{ servername: "*.Example.ORG", cert: "a", key: "b" }] } }).tls.sni[0]!.servername, "*.example.org");
  const rows: [unknown, RegExp][] = [
    [{ tls: { cert: "c", key: "k", minVersion: "TLSv1.1" } }, /tls\.minVersion/],
    [{ tls: { cert: "c", key: "k", ciphers: "NOT-A-CIPHER" } }, /tls\.ciphers: expected an OpenSSL cipher list, got "NOT-A-CIPHER"/],
    [{ tls: { cert: "c" } }, /tls\.key: tls\.cert and tls\.key go together/],
    [{ tls: { sni: [{ servername: "mx.example.org", cert: "a", key: "b" }] } }, /tls\.sni: tls\.sni needs a default certificate/],
    [{ tls: { cert: "c", key: "k", sni: [{ servername: "mx.example.org", cert: "a", key: "b" }, { servername: "MX.example.org", cert: "a", key: "b" }] } }, /tls\.sni\.1\.servername: "mx\.example\.org" is listed twice/],
    [{ tls: { cert: "c", key: "k", sni: [{ servername: "bad name", cert: "a", key: "b" }] } }, /tls\.sni\.0\.servername/],
    [{ tls: { cert: "c", key: "k", sni: [{ servername: "a.org", cert: "a" }] } }, /tls\.sni\.0\.key/],
  ];
  for (const [input, re] of rows) assert.ok(problems(input).some((p) => re.test(p)), `${JSON.stringify(input)}: ${problems(input).join(" | ")}`);
});
