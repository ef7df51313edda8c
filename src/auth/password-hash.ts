// Password hashes for the submission users file: scrypt (RFC 7914) from node:crypto, with the
// cost parameters stored in the hash string so that they can be raised later without
// invalidating existing entries:
//
//   $scrypt$N=16384,r=8,p=1$<salt, base64>$<derived key, base64>
//
// Verification runs scrypt asynchronously (libuv's thread pool, not the event loop) and
// compares with timingSafeEqual. Unknown users are verified against DUMMY_HASH, which has the
// default cost, so a failed AUTH takes as long whether or not the user exists.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** OWASP's minimum for scrypt (2023): N=2^14 (~16 MiB with r=8), r=8, p=1. */
export const DEFAULT_PARAMS: ScryptParams = { N: 16384, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on what a hash string may ask for: a damaged or hostile file must not cost gigabytes. */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEM = 256 * 1024 * 1024;

export interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

const HASH_RE = /^\$scrypt\$N=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** Pure: the parts of a hash string, or an error naming what is wrong. */
export function parseHash(s: string): ParsedHash | { error: string } {
  const m = HASH_RE.exec(s);
  if (!m) return { error: "expected $scrypt$N=…,r=…,p=…$salt$key" };
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0) return { error: `N must be a power of 2 between 2 and ${MAX_N}, got ${N}` };
  if (r < 1 || r > MAX_R) return { error: `r must be 1..${MAX_R}, got ${r}` };
  if (p < 1 || p > MAX_P) return { error: `p must be 1..${MAX_P}, got ${p}` };
  const salt = Buffer.from(m[4]!, "base64");
  const key = Buffer.from(m[5]!, "base64");
  if (salt.length < 8) return { error: "salt shorter than 8 bytes" };
  if (key.length < 16 || key.length > 64) return { error: "key must be 16..64 bytes" };
  return { params: { N, r, p }, salt, key };
}

export function formatHash(h: ParsedHash): string {
  return `$scrypt$N=${h.params.N},r=${h.params.r},p=${h.params.p}$${h.salt.toString("base64")}$${h.key.toString("base64")}`;
}

function derive(password: string, salt: Buffer, params: ScryptParams, keyLen: number): Promise<Buffer> {
  const opts: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: Math.min(MAX_MEM, 256 * params.N * params.r + 1024 * 1024) };
  return new Promise((resolve, reject) => scrypt(password.normalize("NFC"), salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  return formatHash({ params, salt, key: await derive(password, salt, params, KEY_BYTES) });
}

/**
 * True when `password` matches `hash`. A malformed hash never matches (it is reported when the
 * users file is read, see users-file.ts) but costs the same scrypt run, so it tells nothing.
 */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parseHash(hash);
  const h = "error" in parsed ? parseHash(DUMMY_HASH) as ParsedHash : parsed;
  const key = await derive(password, h.salt, h.params, h.key.length);
  return timingSafeEqual(key, h.key) && !("error" in parsed);
}

/**
 * A hash of a random password nobody knows, at the default cost: what an unknown user name is
 * verified against (the same work as for a real user, then refused).
 */
export const DUMMY_HASH = "$scrypt$N=16384,r=8,p=1$9Sgp8mmwJ0R2pIMNnr3iYA==$7t3bNbSC/7kKcVd2zD2Sbe0NsQHmAnE+qLSzlljMuhE=";
