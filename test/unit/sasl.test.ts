// SASL exchanges (RFC 4954, RFC 4616, LOGIN) as tables: argument / response lines in, step out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeBase64, saslContinue, saslStart, type SaslStep } from "../../src/smtp/sasl.js";

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** Run an AUTH argument and then the response lines; the last step. */
function run(arg: string, ...lines: string[]): SaslStep[] {
  const steps: SaslStep[] = [saslStart(arg)];
  for (const l of lines) {
    const last = steps.at(-1)!;
    assert.equal(last.kind, "challenge", `a challenge before ${l}`);
    if (last.kind !== "challenge") break;
    steps.push(saslContinue(last.state, l));
  }
  return steps;
}

test("PLAIN and LOGIN, initial-response and challenge forms, yield the credentials", () => {
  const cases: [string, string[], { authcid: string; authzid: string; password: string }, string[]][] = [
    // [AUTH argument, responses, credentials, the challenges seen]
    [`PLAIN ${b64("\0alice\0s3cret")}`, [], { authcid: "alice", authzid: "", password: "s3cret" }, []],
    [`plain ${b64("alice\0alice\0pw")}`, [], { authcid: "alice", authzid: "alice", password: "pw" }, []],
    ["PLAIN", [b64("\0bob@x.test\0p:w d")], { authcid: "bob@x.test", authzid: "", password: "p:w d" }, ["334 "]],
    ["LOGIN", [b64("alice"), b64("pässword")], { authcid: "alice", authzid: "", password: "pässword" }, ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"]],
    [`LOGIN ${b64("alice")}`, [b64("pw")], { authcid: "alice", authzid: "", password: "pw" }, ["334 UGFzc3dvcmQ6"]],
    // RFC 4954 §4: "=" is an empty response (an empty LOGIN password; refused later by the check).
    [`LOGIN ${b64("alice")}`, ["="], { authcid: "alice", authzid: "", password: "" }, ["334 UGFzc3dvcmQ6"]],
  ];
  for (const [arg, lines, creds, challenges] of cases) {
    const steps = run(arg, ...lines);
    const last = steps.at(-1)!;
    assert.deepEqual(last, { kind: "credentials", credentials: creds }, arg);
    assert.deepEqual(steps.slice(0, -1).map((s) => (s.kind === "challenge" ? s.reply : s.kind)), challenges, arg);
  }
});

test("refusals: syntax, mechanism, base64 errors, * cancel (501), bad PLAIN shapes", () => {
  const cases: [string, string[], RegExp][] = [
    ["", [], /^501 5\.5\.4 Syntax: AUTH/],
    ["PLAIN a b", [], /^501 5\.5\.4 /],
    ["CRAM-MD5", [], /^504 5\.5\.4 Unrecognized authentication type$/],
    ["XOAUTH2 abc=", [], /^504 5\.5\.4 /],
    ["PLAIN", ["*"], /^501 5\.0\.0 Authentication cancelled$/],
    ["LOGIN", [b64("alice"), "*"], /^501 5\.0\.0 /],
    ["LOGIN", ["*"], /^501 5\.0\.0 /],
    [`PLAIN ${b64("\0a\0b").slice(0, -1)}`, [], /^501 5\.5\.2 Cannot decode/], // length not a multiple of 4
    ["PLAIN AGFsaWNlAHB3!!!", [], /^501 5\.5\.2 Cannot decode/], // invalid characters
    ["PLAIN", ["AGFsaWNl AHB3"], /^501 5\.5\.2 Cannot decode/], // whitespace inside
    ["PLAIN", ["YR=="], /^501 5\.5\.2 Cannot decode/], // non-canonical (unused bits set)
    ["LOGIN", ["####"], /^501 5\.5\.2 Cannot decode/],
    [`PLAIN ${b64("alice:pw")}`, [], /^501 5\.5\.2 Invalid PLAIN response/], // no NULs
    [`PLAIN ${b64("\0alice")}`, [], /^501 5\.5\.2 Invalid PLAIN response/], // one NUL
    [`PLAIN ${b64("\0alice\0pw\0x")}`, [], /^501 5\.5\.2 Invalid PLAIN response/], // three NULs
    [`PLAIN ${b64("\0\0pw")}`, [], /^501 5\.5\.2 Invalid PLAIN response \(empty user name\)/],
    [`PLAIN ${Buffer.from([0, 0x61, 0, 0xff, 0xfe]).toString("base64")}`, [], /^501 5\.5\.2 Invalid user name or password encoding/], // not UTF-8
    [`PLAIN ${b64("\0" + "a".repeat(1025) + "\0pw")}`, [], /^501 5\.5\.2 Invalid user name/], // overlong field
    [`LOGIN ${b64("x".repeat(1025))}`, [], /^501 5\.5\.2 Invalid user name/],
  ];
  for (const [arg, lines, want] of cases) {
    const last = run(arg, ...lines).at(-1)!;
    assert.equal(last.kind, "refused", `${arg} ${lines.join(" ")}`);
    if (last.kind === "refused") assert.match(last.reply, want, `${arg} ${lines.join(" ")}`);
  }
});

test("decodeBase64: strict RFC 4648 with padding (controls decode)", () => {
  const cases: [string, string | undefined][] = [
    ["", ""],
    ["YQ==", "a"],
    ["YWI=", "ab"],
    ["YWJj", "abc"],
    ["YQ=", undefined],
    ["YQ", undefined],
    ["Y===", undefined],
    ["YW=j", undefined],
    ["YR==", undefined],
    ["YW\r\n", undefined],
    ["-_==", undefined], // base64url is not base64
  ];
  for (const [inp, want] of cases) assert.equal(decodeBase64(inp)?.toString("latin1"), want, JSON.stringify(inp));
});
