/**
 * Seeded pseudo-random numbers for everything the learner draws (initial weights, bank sampling,
 * minibatches, k-means seeding), so that a run is reproducible from its seed.
 *
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128-bit state, passes PractRand,
 * a few integer ops per draw. Hand-written because it is ten lines and a dependency for it would
 * be heavier than the code.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  constructor(seed: number) {
    // Spread the seed over the state with splitmix32 so that seeds 1, 2, 3 give unrelated streams.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  gaussian(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A new generator seeded from this one: independent streams for sub-tasks. */
  fork(): Rng {
    return new Rng(this.u32());
  }
}

/**
 * Writes `m` distinct integers drawn uniformly from [0, n) into `out` (m <= n), by a partial
 * Fisher-Yates shuffle over `scratch` (length >= n, contents overwritten).
 */
export function sampleWithoutReplacement(rng: Rng, n: number, m: number, out: Uint32Array | Int32Array, scratch: Uint32Array): void {
  for (let i = 0; i < n; i++) scratch[i] = i;
  for (let i = 0; i < m; i++) {
    const j = i + rng.int(n - i);
    const t = scratch[j]!;
    scratch[j] = scratch[i]!;
    scratch[i] = t;
    out[i] = t;
  }
}
