import { test } from "node:test";
import assert from "node:assert/strict";
import { selectCertificate } from "../../src/smtp/sni.js";

test("selectCertificate: exact name first, then a one-label wildcard, else the default", () => {
  const names = ["mail.example.org", "*.example.net", "example.net", "*.b.example.com"];
  const rows: [string, number | undefined][] = [
    ["mail.example.org", 0],
    ["MAIL.Example.ORG", 0],
    ["mail.example.org.", 0],
    ["other.example.org", undefined],
    ["mx.example.net", 1],
    ["example.net", 2],
    ["a.mx.example.net", undefined], // RFC 6125 §6.4.3: one label only
    ["x.b.example.com", 3],
    ["b.example.com", undefined],
    ["", undefined],
    ["localhost", undefined],
  ];
  for (const [sn, want] of rows) assert.equal(selectCertificate(sn, names), want, sn);
  assert.equal(selectCertificate("mx.example.net", ["mx.example.net", "*.example.net"]), 0, "exact beats wildcard whatever the order");
  assert.equal(selectCertificate("mx.example.net", ["*.example.net", "mx.example.net"]), 1);
});
