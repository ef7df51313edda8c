// core/esmtp-params.ts: RFC 3461 NOTIFY, ORCPT and ENVID, as parsed from clients and as written
// for the next hop.
import { test } from "node:test";
import assert from "node:assert/strict";
import { notifyParam, orcptParam, parseEnvid, parseNotify, parseOrcpt, sevenBitXtext } from "../../src/core/esmtp-params.js";

test("parseNotify: NEVER alone, or SUCCESS/FAILURE/DELAY; case-insensitive", () => {
  const cases: [string | undefined, string[] | undefined][] = [
    ["NEVER", ["NEVER"]],
    ["success,delay", ["SUCCESS", "DELAY"]],
    ["FAILURE", ["FAILURE"]],
    ["NEVER,SUCCESS", undefined],
    ["SOMETIMES", undefined],
    ["", undefined],
    [undefined, undefined],
    ["SUCCESS,", undefined],
  ];
  for (const [v, want] of cases) assert.deepEqual(parseNotify(v), want, String(v));
});

test("notifyParam: de-duplicated, upper-case; nothing valid → left out", () => {
  assert.equal(notifyParam(["success", "DELAY", "SUCCESS"]), "SUCCESS,DELAY");
  assert.equal(notifyParam(["NEVER"]), "NEVER");
  assert.equal(notifyParam([]), undefined);
  assert.equal(notifyParam(["NEVER", "FAILURE"]), undefined);
  assert.equal(notifyParam(["BOGUS"]), undefined);
});

test("parseOrcpt / orcptParam: decoded in, xtext out", () => {
  assert.equal(parseOrcpt("rfc822;a+2Bb@example.com"), "rfc822;a+b@example.com");
  assert.equal(parseOrcpt("no-type@example.com"), undefined);
  assert.equal(parseOrcpt("rfc822;"), undefined);
  assert.equal(parseOrcpt("rfc822;a+2b"), undefined, "lower-case hex is not xtext");
  assert.equal(parseOrcpt("rfc822;" + "a".repeat(500)), undefined);
  assert.equal(parseOrcpt(undefined), undefined);
  assert.equal(orcptParam("rfc822;a+b@example.com"), "rfc822;a+2Bb@example.com");
  assert.equal(orcptParam("plain@example.com"), "rfc822;plain@example.com");
  assert.equal(orcptParam("bad type;x@y"), "rfc822;bad+20type;x@y");
  for (const o of ["rfc822;a+b=c@example.com", "x-local;Some User"]) assert.equal(parseOrcpt(orcptParam(o)), o);
});

test("parseEnvid and sevenBitXtext", () => {
  assert.equal(parseEnvid("abc+2B1"), "abc+1");
  assert.equal(parseEnvid("a=b"), undefined);
  assert.equal(parseEnvid("x".repeat(101)), undefined);
  assert.equal(parseEnvid(undefined), undefined);
  assert.equal(sevenBitXtext("QQ314159"), "QQ314159");
  assert.equal(sevenBitXtext("a b"), "a+20b");
  assert.equal(sevenBitXtext("é"), "+C3+A9");
});
