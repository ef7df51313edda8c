// The seeded generator the fuzz tests share (SMTP streams in integration/hostile.test.ts, PROXY
// headers in unit/proxy-protocol-fuzz.test.ts): a fixed seed replays a failure exactly.

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Gen {
  constructor(readonly rnd: () => number) {}
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
}

/** The seed: MXD_FUZZ_SEED when set, a fixed one in CI, else random (the test prints it). */
export function fuzzSeed(inCI: boolean, ciSeed: number): number {
  return Number(process.env.MXD_FUZZ_SEED ?? (inCI ? ciSeed : Math.floor(Math.random() * 2 ** 31)));
}
