// Seeded fuzzing of the PROXY protocol parser, like the SMTP fuzzer (integration/hostile.test.ts):
// valid v1/v2 headers (random addresses, ports, TLVs), mutations of them (flipped, dropped,
// inserted octets, truncation, length fields), and random bytes. For every input, fed whole and
// split at random points, the parser must:
// - never throw, and answer need-more only while a header is still possible within the bounds
//   (v1: 107 octets; v2: maxLength), so a caller never buffers more than that;
// - be consistent: once a prefix is "done" or "error", every longer input gives the same answer
//   (same header, same length), and the done answer's rest is exactly what follows the header;
// - give back, for an unmutated header, exactly the addresses and ports that were encoded.
// MXD_FUZZ_SEED=n replays a run; MXD_STRESS=1 runs many more inputs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseProxyHeader, V1_MAX_LENGTH, type ProxyParse } from "../../src/smtp/proxy-protocol.js";
import { formatIPv6 } from "../../src/core/cidr.js";
import { Gen, fuzzSeed, mulberry32 } from "../helpers/fuzz.js";
import { v1, v2 } from "../helpers/proxy-header.js";

const inCI = process.env.CI === "true" || process.env.CI === "1";
const SEED = fuzzSeed(inCI, 20261201);
const ITERATIONS = process.env.MXD_STRESS ? 200_000 : 20_000;
const MAX = 512;

function ip4(g: Gen): string {
  return [g.int(256), g.int(256), g.int(256), g.int(256)].join(".");
}
function ip6(g: Gen): string {
  const bytes = g.chance(0.3) ? Buffer.concat([Buffer.alloc(g.int(12)), g.bytes(16)]).subarray(0, 16) : g.bytes(16);
  return formatIPv6(bytes);
}

interface Sample {
  input: Buffer;
  /** For an intact header within the bound: what the parser must return. */
  expect?: { source: string; sport: number; destination: string; dport: number; length: number };
}

function sample(g: Gen): Sample {
  const kind = g.int(10);
  if (kind === 0) return { input: g.bytes(g.int(200)) };
  const six = g.chance(0.4);
  const src = six ? ip6(g) : ip4(g);
  const dst = six ? ip6(g) : ip4(g);
  const sport = g.int(65536);
  const dport = g.int(65536);
  const tlvs = Array.from({ length: g.int(4) }, () => ({ type: g.int(256), value: g.bytes(g.int(g.chance(0.1) ? 400 : 40)) }));
  const header = g.chance(0.5) ? v1(src, dst, sport, dport) : v2(src, dst, sport, dport, { tlvs });
  const trailer = g.chance(0.5) ? Buffer.from("EHLO client.test\r\n") : g.bytes(g.int(20));
  let input = Buffer.concat([header, trailer]);
  if (kind >= 6 && header.length <= MAX) return { input, expect: { source: src, sport, destination: dst, dport, length: header.length } };
  // Mutations.
  for (let n = 1 + g.int(3); n > 0; n--) {
    const at = g.int(Math.max(1, input.length));
    switch (g.int(5)) {
      case 0:
        input[at] = g.int(256);
        break;
      case 1:
        input = Buffer.concat([input.subarray(0, at), input.subarray(at + 1)]);
        break;
      case 2:
        input = Buffer.concat([input.subarray(0, at), g.bytes(1 + g.int(4)), input.subarray(at)]);
        break;
      case 3:
        input = input.subarray(0, at);
        break;
      default:
        // The v2 length field, or the v1 separators.
        if (input.length > 16 && input[0] === 0x0d) input.writeUInt16BE(g.int(65536), 14);
        else input = Buffer.from(input.toString("latin1").replace(" ", g.pick(["", "  ", "\t", "\r\n"])), "latin1");
    }
  }
  return { input };
}

function sameAnswer(a: ProxyParse, b: ProxyParse): boolean {
  if (a.status !== b.status) return false;
  if (a.status === "error" && b.status === "error") return a.reason === b.reason;
  if (a.status === "done" && b.status === "done") return a.length === b.length && JSON.stringify(a.header) === JSON.stringify(b.header);
  return true;
}

test(`fuzz: the PROXY parser on random and mutated headers (seed ${SEED})`, () => {
  console.log(`# proxy fuzz seed ${SEED} (MXD_FUZZ_SEED=${SEED} to reproduce)`);
  const g = new Gen(mulberry32(SEED));
  const tally = { done: 0, error: 0, "need-more": 0 };
  for (let i = 0; i < ITERATIONS; i++) {
    const s = sample(g);
    const ctx = () => `iteration ${i}, seed ${SEED}: ${s.input.toString("hex")}`;
    let whole: ProxyParse;
    try {
      whole = parseProxyHeader(s.input, MAX);
    } catch (e) {
      assert.fail(`parser threw ${(e as Error).message} — ${ctx()}`);
    }
    tally[whole.status]++;
    if (whole.status === "need-more") assert.ok(s.input.length < Math.max(V1_MAX_LENGTH, MAX), `need-more on ${s.input.length} octets — ${ctx()}`);
    if (whole.status === "done") {
      assert.ok(whole.length <= Math.max(V1_MAX_LENGTH, MAX), ctx());
      assert.ok(whole.rest.equals(s.input.subarray(whole.length)), `rest — ${ctx()}`);
    }
    if (s.expect) {
      assert.equal(whole.status, "done", ctx());
      if (whole.status === "done") {
        assert.equal(whole.length, s.expect.length, ctx());
        assert.deepEqual(whole.header.command === "proxy" && [whole.header.source, whole.header.destination], [
          { address: s.expect.source, port: s.expect.sport },
          { address: s.expect.destination, port: s.expect.dport },
        ], ctx());
      }
    }
    // Incremental: the prefixes a socket could deliver, in order.
    let first: ProxyParse | undefined;
    for (let cut = g.int(8); cut <= s.input.length; cut += 1 + g.int(12)) {
      const r = parseProxyHeader(s.input.subarray(0, cut), MAX);
      if (!first && r.status !== "need-more") first = r;
      if (first) assert.ok(sameAnswer(first, r), `prefix ${cut} answered ${r.status} after ${first.status} — ${ctx()}`);
    }
    if (first) assert.ok(sameAnswer(first, whole), `whole input disagrees with its prefix — ${ctx()}`);
  }
  console.log(`# proxy fuzz: ${ITERATIONS} inputs: ${tally.done} done, ${tally.error} refused, ${tally["need-more"]} need-more`);
  // The generator must reach every outcome, or the test proves little.
  assert.ok(tally.done > ITERATIONS / 4 && tally.error > ITERATIONS / 10 && tally["need-more"] > 0, JSON.stringify(tally));
});
