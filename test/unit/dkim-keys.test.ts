// DKIM keys and the signing policy: key checks at start (errors name the file), published
// records (RFC 8463 A.2 for Ed25519), `mxd dkim check`'s verdicts, and the config section.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError, parseConfig } from "../../src/config.js";
import { checkRecord, keyRecord, parseKeyRecord, parsePrivateKey, zoneLine, DkimKeyError } from "../../src/dkim/keys.js";
import { loadDkimPolicy } from "../../src/dkim/policy.js";
import type { SigningKey } from "../../src/dkim/sign.js";

const FIXTURES = new URL("../../../test/fixtures/dkim/", import.meta.url).pathname;
const ED_SEED = Buffer.from("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=", "base64");
const edKey = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), ED_SEED]), format: "der", type: "pkcs8" });

test("records: RFC 8463 A.2 (Ed25519: the raw 32-octet key) and RFC 8463 A.2 (RSA: SubjectPublicKeyInfo)", () => {
  assert.equal(keyRecord(edKey, "ed25519-sha256"), "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  const rsa = createPrivateKey(readFileSync(FIXTURES + "rfc8463-rsa.pem"));
  assert.equal(
    keyRecord(rsa, "rsa-sha256"),
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
  );
  const line = zoneLine("s._domainkey.x.test", "a".repeat(300));
  assert.equal(line, `s._domainkey.x.test. IN TXT ( "${"a".repeat(255)}" "${"a".repeat(45)}" )`);
});

test("private keys: wrong type, too short, not PEM → DkimKeyError naming the file", () => {
  const pem = (k: ReturnType<typeof generateKeyPairSync>["privateKey"]) => k.export({ type: "pkcs8", format: "pem" }) as string;
  const rsa2048 = pem(generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey);
  const rsa1024 = pem(generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey);
  const ed = pem(generateKeyPairSync("ed25519").privateKey);
  assert.equal(parsePrivateKey(rsa2048, "rsa-sha256", "/k/a.pem").asymmetricKeyType, "rsa");
  assert.equal(parsePrivateKey(ed, "ed25519-sha256", "/k/b.pem").asymmetricKeyType, "ed25519");
  const cases: [string, "rsa-sha256" | "ed25519-sha256", RegExp][] = [
    [rsa1024, "rsa-sha256", /\/k\/f\.pem is a 1024-bit RSA key; at least 2048/],
    [ed, "rsa-sha256", /\/k\/f\.pem holds a ed25519 key, but its algorithm is rsa-sha256/],
    [rsa2048, "ed25519-sha256", /\/k\/f\.pem holds a rsa key, but its algorithm is ed25519-sha256/],
    ["hello", "rsa-sha256", /\/k\/f\.pem is not a PEM private key/],
  ];
  for (const [p, alg, re] of cases) assert.throws(() => parsePrivateKey(p, alg, "/k/f.pem"), (e: unknown) => e instanceof DkimKeyError && re.test(e.message));
});

test("checkRecord: match, t=y, mismatch, revoked, wrong k=, several records, none, unrelated TXT", () => {
  const key: SigningKey = { domain: "x.test", selector: "s", algorithm: "ed25519-sha256", key: edKey };
  const p = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
  const cases: [string[] | undefined, boolean, RegExp][] = [
    [[`v=DKIM1; k=ed25519; p=${p}`], true, /matches$/],
    [[`v=DKIM1; k=ed25519; t=y; p=${p.slice(0, 20)} ${p.slice(20)}`], true, /t=y: testing/],
    [["v=DKIM1; k=ed25519; p=AAAAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="], false, /does not match/],
    [["v=DKIM1; k=ed25519; p="], false, /revoked/],
    [[`v=DKIM1; p=${p}`], false, /k=rsa, the configured key is ed25519/],
    [[`v=DKIM1; k=ed25519; p=${p}`, `v=DKIM1; k=ed25519; p=${p}`], false, /2 DKIM key records/],
    [undefined, false, /no TXT record published/],
    [["google-site-verification=abc"], false, /no DKIM key record/],
  ];
  for (const [answers, ok, re] of cases) {
    const r = checkRecord(key, answers);
    assert.equal(r.ok, ok, JSON.stringify(answers));
    assert.match(r.message, re);
    assert.match(r.message, /^s\._domainkey\.x\.test: /);
  }
  assert.deepEqual([...parseKeyRecord(" v = DKIM1 ;k=rsa; p=ab\r\n cd ;;")], [["v", "DKIM1"], ["k", "rsa"], ["p", "abcd"]]);
});

test("config: dkim defaults, per-domain overrides, errors naming the key", () => {
  const c = parseConfig({});
  assert.deepEqual(Object.keys(c.dkim.domains), []);
  assert.equal(c.dkim.canonicalization, "relaxed/relaxed");
  assert.deepEqual(c.dkim.oversign, ["From"]);
  assert.ok(c.dkim.headers.includes("From") && c.dkim.headers.includes("Message-ID") && c.dkim.headers.includes("Content-Type"));
  assert.equal(c.dkim.maxSize, 25 * 1024 * 1024);
  assert.equal(c.dkim.expire, null);
  const bad = (dkim: unknown): string[] => {
    try {
      parseConfig({ dkim });
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.problems;
    }
    return [];
  };
  const key = { selector: "s1", privateKey: "/k.pem" };
  assert.match(bad({ domains: { "a.test": { keys: [] } } }).join(), /dkim\.domains\.a\.test\.keys/);
  assert.match(bad({ domains: { "a.test": { keys: [{ ...key, algorithm: "rsa-sha1" }] } } }).join(), /dkim\.domains\.a\.test\.keys\.0\.algorithm/);
  assert.match(bad({ domains: { "a.test": { keys: [{ ...key, selector: "bad_sel" }] } } }).join(), /selector/);
  assert.match(bad({ domains: { "a.test": { keys: [key, key] } } }).join(), /selector "s1" is used twice/);
  assert.match(bad({ domains: { "mail.a.test": { keys: [key], signingDomain: "b.test" } } }).join(), /dkim\.domains\.mail\.a\.test\.signingDomain: expected mail\.a\.test or a parent/);
  assert.match(bad({ headers: ["Subject"] }).join(), /dkim\.headers: the signed headers must include From/);
  assert.match(bad({ domains: { "a.test": { keys: [key], headers: ["To"] } } }).join(), /dkim\.domains\.a\.test\.headers: the signed headers must include From/);
  assert.match(bad({ domains: { "a.test": { keys: [key] } }, canonicalization: "relaxed" }).join(), /dkim\.canonicalization/);
  assert.match(bad({ domains: { "a.test": { keys: [key] } }, signingKey: 1 }).join(), /signingKey/);
  assert.deepEqual(bad({ domains: { "mail.a.test": { keys: [key], signingDomain: "a.test" } } }), []);
});

test("policy: overrides per domain, signing domain, lookup by From domain; unreadable or broken keys → one ConfigError", () => {
  const ed = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const files: Record<string, string> = { "/k/ed.pem": ed, "/k/bad.pem": "nope" };
  const read = (p: string) => {
    if (!(p in files)) throw new Error("ENOENT: no such file");
    return Buffer.from(files[p]!);
  };
  const c = parseConfig({
    dkim: {
      expire: "1d",
      domains: {
        "Example.test": { keys: [{ selector: "e", algorithm: "ed25519-sha256", privateKey: "/k/ed.pem" }] },
        "news.example.test": { keys: [{ selector: "n", algorithm: "ed25519-sha256", privateKey: "/k/ed.pem" }], signingDomain: "example.test", canonicalization: "simple/simple", headers: ["From", "Subject"], expire: "1h" },
      },
    },
  });
  const p = loadDkimPolicy(c.dkim, read)!;
  const main = p.lookup("example.test")!;
  assert.deepEqual([main.header, main.body, main.expireSeconds, main.keys[0]!.domain], ["relaxed", "relaxed", 86_400, "example.test"]);
  const news = p.lookup("news.example.test")!;
  assert.deepEqual([news.header, news.body, news.expireSeconds, news.keys[0]!.domain, news.headers], ["simple", "simple", 3600, "example.test", ["From", "Subject"]]);
  assert.equal(p.lookup("other.test"), undefined);
  assert.equal(loadDkimPolicy(parseConfig({}).dkim, read), undefined, "no domains: no signing");
  const broken = parseConfig({ dkim: { domains: { "a.test": { keys: [{ selector: "x", privateKey: "/k/bad.pem" }, { selector: "y", privateKey: "/k/none.pem" }] } } } });
  assert.throws(
    () => loadDkimPolicy(broken.dkim, read),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems.length === 2 &&
      /^dkim\.domains\.a\.test\.keys\.0\.privateKey: DKIM key file \/k\/bad\.pem is not a PEM private key/.test(e.problems[0]!) &&
      /^dkim\.domains\.a\.test\.keys\.1\.privateKey: cannot read DKIM key file \/k\/none\.pem/.test(e.problems[1]!),
  );
});
