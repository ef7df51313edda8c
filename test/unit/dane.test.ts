// DANE lookup outcomes (RFC 7672 §2.2) as a table, and createDane over a fake DNSSEC resolver.
import { test } from "node:test";
import assert from "node:assert/strict";
import { addressStatus, classifyTlsa, createDane, mxAnswerSecure, tlsaName } from "../../src/delivery/dane.js";
import type { DnssecAnswer, DnssecResolver } from "../../src/io/dnssec-resolver.js";
import type { TlsaRecord } from "../../src/delivery/dane-types.js";

const good: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 1) };
const pkix: TlsaRecord = { usage: 1, selector: 1, matchingType: 1, data: Buffer.alloc(32, 2) };
const N = "_25._tcp.mx.example";

test("tlsaName: _PORT._tcp.HOST without the trailing dot", () => {
  assert.equal(tlsaName("mx.example.", 25), N);
  assert.equal(tlsaName("mx.example", 2525), "_2525._tcp.mx.example");
});

test("classifyTlsa: usable, none, defer", () => {
  const table: [DnssecAnswer<TlsaRecord>, string, RegExp?][] = [
    [{ kind: "records", secure: true, records: [good] }, "usable"],
    [{ kind: "records", secure: true, records: [pkix, good] }, "usable"],
    [{ kind: "records", secure: true, records: [pkix] }, "none", /only unusable TLSA records.*PKIX-EE/],
    [{ kind: "records", secure: false, records: [good] }, "none", /not DNSSEC-validated/],
    [{ kind: "nodata", secure: true }, "none", /validated denial/],
    [{ kind: "nxdomain", secure: true }, "none", /validated denial/],
    [{ kind: "nodata", secure: false }, "none", /insecure denial/],
    [{ kind: "failed", reason: "SERVFAIL (bogus)" }, "defer", /TLSA lookup for _25\._tcp\.mx\.example failed: SERVFAIL/],
  ];
  for (const [answer, kind, reason] of table) {
    const r = classifyTlsa(N, answer);
    assert.equal(r.kind, kind, JSON.stringify(answer));
    if (r.kind === "usable") assert.deepEqual(r.records, [good], "only the usable records are handed on");
    else assert.match(r.reason, reason!);
    // Only a secure RRset of unusable records keeps TLS mandatory (RFC 7672 §2.2).
    if (r.kind === "none") assert.equal(r.requireTls === true, /only unusable/.test(r.reason), JSON.stringify(answer));
  }
});

test("addressStatus: secure if any address RRset is validated; a failure defers only a host not known to be insecure", () => {
  const sec: DnssecAnswer<string> = { kind: "records", secure: true, records: ["192.0.2.1"] };
  const insec: DnssecAnswer<string> = { kind: "records", secure: false, records: ["192.0.2.1"] };
  const secNodata = { kind: "nodata", secure: true } as const;
  const insecNodata = { kind: "nodata", secure: false } as const;
  const fail = { kind: "failed", reason: "timeout" } as const;
  const table: [DnssecAnswer<string>, DnssecAnswer<string>, string][] = [
    [sec, secNodata, "secure"],
    [secNodata, sec, "secure"],
    [sec, fail, "secure"],
    [insec, insecNodata, "insecure"],
    [insec, fail, "insecure"],
    [fail, fail, "failed"],
    [secNodata, fail, "failed"],
    [secNodata, secNodata, "absent"],
  ];
  for (const [a, aaaa, want] of table) assert.equal(addressStatus(a, aaaa), want, `${JSON.stringify(a)} ${JSON.stringify(aaaa)}`);
});

test("mxAnswerSecure: validated MX records or validated NODATA (implicit MX); a failed lookup is not a downgrade", () => {
  assert.equal(mxAnswerSecure({ kind: "records", secure: true, records: [] }), true);
  assert.equal(mxAnswerSecure({ kind: "nodata", secure: true }), true);
  assert.equal(mxAnswerSecure({ kind: "records", secure: false, records: [] }), false);
  assert.equal(mxAnswerSecure({ kind: "nxdomain", secure: true }), false);
  assert.equal(mxAnswerSecure({ kind: "nodata", secure: false }), false);
  assert.equal(mxAnswerSecure({ kind: "failed", reason: "SERVFAIL" }), true, "the host lookups decide (and defer when they fail too)");
});

/** A resolver answering from a table; records every query. */
function fakeResolver(t: Partial<Record<"a" | "aaaa" | "tlsa" | "mx", Record<string, DnssecAnswer<unknown>>>>, log: string[]): DnssecResolver {
  const q = (type: "a" | "aaaa" | "tlsa" | "mx") => async (name: string) => {
    log.push(`${type} ${name}`);
    return (t[type]?.[name] ?? { kind: "nxdomain", secure: true }) as never;
  };
  return { a: q("a"), aaaa: q("aaaa"), tlsa: q("tlsa"), mx: q("mx") };
}

test("createDane.lookup: insecure MX or addresses skip the TLSA query; a secure host gets it", async () => {
  const log: string[] = [];
  const dane = createDane({
    resolver: fakeResolver(
      {
        a: { "mx.example": { kind: "records", secure: true, records: ["192.0.2.1"] }, "plain.example": { kind: "records", secure: false, records: ["192.0.2.2"] }, "broken.example": { kind: "failed", reason: "SERVFAIL" } },
        aaaa: { "mx.example": { kind: "nodata", secure: true }, "plain.example": { kind: "nodata", secure: false }, "broken.example": { kind: "failed", reason: "SERVFAIL" } },
        tlsa: { [N]: { kind: "records", secure: true, records: [good] } },
      },
      log,
    ),
  });
  assert.deepEqual(await dane.lookup("mx.example", 25, true), { kind: "usable", records: [good] });
  assert.deepEqual(log, ["a mx.example", "aaaa mx.example", `tlsa ${N}`]);
  log.length = 0;
  const insecureMx = await dane.lookup("mx.example", 25, false);
  assert.equal(insecureMx.kind, "none");
  assert.equal(log.length, 0, "no query for a host named by an insecure MX RRset");
  const plain = await dane.lookup("plain.example", 25, true);
  assert.equal(plain.kind, "none");
  assert.ok(!log.some((l) => l.startsWith("tlsa")), "no TLSA query for an insecure host");
  const broken = await dane.lookup("broken.example", 25, true);
  assert.equal(broken.kind, "defer");
  assert.match((broken as { reason: string }).reason, /address lookup for broken\.example .* failed: SERVFAIL/);
});

test("createDane.verify uses the injected clock; mxSecure asks for MX", async () => {
  const log: string[] = [];
  const dane = createDane({ resolver: fakeResolver({ mx: { "example.org": { kind: "records", secure: true, records: [] } } }, log), now: () => 0 });
  assert.equal(await dane.mxSecure("example.org"), true);
  assert.equal(await dane.mxSecure("insecure.example"), false);
  assert.deepEqual(log, ["mx example.org", "mx insecure.example"]);
  assert.deepEqual(dane.verify([], [good], []), { ok: false, reason: "the server sent no certificate" });
});

test("createDane.lookup: a CNAME'd MX host name (RFC 7672 §2.2.2): TLSA at the expanded name first, then at the original", async () => {
  const log: string[] = [];
  const secureA = (canonical: string): DnssecAnswer<string> => ({ kind: "records", secure: true, records: ["192.0.2.9"], canonical });
  const other: TlsaRecord = { usage: 3, selector: 1, matchingType: 2, data: Buffer.alloc(64, 3) };
  const dane = createDane({
    resolver: fakeResolver(
      {
        a: { "alias.example": secureA("target.example"), "alias2.example": secureA("bare.example"), "alias3.example": secureA("broken.example") },
        aaaa: { "alias.example": { kind: "nodata", secure: true }, "alias2.example": { kind: "nodata", secure: true }, "alias3.example": { kind: "nodata", secure: true } },
        tlsa: {
          "_25._tcp.target.example": { kind: "records", secure: true, records: [good] },
          "_25._tcp.alias.example": { kind: "records", secure: true, records: [other] },
          "_25._tcp.bare.example": { kind: "nodata", secure: true },
          "_25._tcp.alias2.example": { kind: "records", secure: true, records: [other] },
          "_25._tcp.broken.example": { kind: "failed", reason: "SERVFAIL" },
        },
      },
      log,
    ),
  });
  assert.deepEqual(await dane.lookup("alias.example", 25, true), { kind: "usable", records: [good] }, "the expanded name wins");
  assert.deepEqual(log.filter((l) => l.startsWith("tlsa")), ["tlsa _25._tcp.target.example"]);
  assert.deepEqual(await dane.lookup("alias2.example", 25, true), { kind: "usable", records: [other] }, "none at the target: the original name");
  const broken = await dane.lookup("alias3.example", 25, true);
  assert.equal(broken.kind, "defer", "a failed lookup at the target is not skipped over");
});
