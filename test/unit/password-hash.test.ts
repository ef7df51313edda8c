// scrypt hashes: format, verification, refusal of malformed or excessive parameters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DUMMY_HASH, hashPassword, parseHash, verifyPassword } from "../../src/auth/password-hash.js";

test("hashPassword → verifyPassword: the right password matches, a wrong one does not", async () => {
  const h = await hashPassword("correct horse", { N: 1024, r: 8, p: 1 });
  assert.match(h, /^\$scrypt\$N=1024,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  assert.equal(await verifyPassword("correct horse", h), true);
  assert.equal(await verifyPassword("correct horsE", h), false);
  assert.equal(await verifyPassword("", h), false);
  // Salted: the same password hashes differently each time.
  assert.notEqual(await hashPassword("correct horse", { N: 1024, r: 8, p: 1 }), h);
  // Unicode passwords are compared in NFC (composed and decomposed forms are one password).
  const u = await hashPassword("caf\u00e9", { N: 1024, r: 8, p: 1 });
  assert.equal(await verifyPassword("cafe\u0301", u), true);
});

test("the default cost is N=16384, r=8, p=1, and DUMMY_HASH has it", async () => {
  const h = await hashPassword("x");
  assert.match(h, /^\$scrypt\$N=16384,r=8,p=1\$/);
  assert.match(DUMMY_HASH, /^\$scrypt\$N=16384,r=8,p=1\$/);
  assert.ok(!("error" in parseHash(DUMMY_HASH)));
  assert.equal(await verifyPassword("", DUMMY_HASH), false);
});

test("parseHash refuses malformed or excessive parameters; such a hash never verifies", async () => {
  const salt = "AAAAAAAAAAAAAAAAAAAAAA==";
  const key = "A".repeat(43) + "=";
  const cases: [string, RegExp | undefined][] = [
    [`$scrypt$N=16384,r=8,p=1$${salt}$${key}`, undefined],
    [`$scrypt$N=1000,r=8,p=1$${salt}$${key}`, /power of 2/],
    [`$scrypt$N=2097152,r=8,p=1$${salt}$${key}`, /power of 2 between/],
    [`$scrypt$N=16384,r=0,p=1$${salt}$${key}`, /^r must be/],
    [`$scrypt$N=16384,r=64,p=1$${salt}$${key}`, /^r must be/],
    [`$scrypt$N=16384,r=8,p=99$${salt}$${key}`, /^p must be/],
    [`$scrypt$N=16384,r=8,p=1$AAAA$${key}`, /salt/],
    [`$scrypt$N=16384,r=8,p=1$${salt}$AAAA`, /key/],
    [`$2y$10$abcdefghijklmnopqrstuv`, /expected \$scrypt\$/],
    ["", /expected/],
  ];
  for (const [h, want] of cases) {
    const p = parseHash(h);
    if (!want) assert.ok(!("error" in p), h);
    else {
      assert.ok("error" in p, h);
      assert.match(p.error, want, h);
      assert.equal(await verifyPassword("anything", h), false, h);
    }
  }
});
