/**
 * Seeded randomness for the procedural scene. Hand-written (a few lines) rather than taken from a
 * package because the scene is test data with known answers: a seed must give the same bytes on
 * every platform and release, and a dependency's minor version must not be able to change that.
 */

/** A source of uniform floats in [0, 1). */
export type Rng = () => number;

/** mulberry32: 32-bit state, period 2^32, fast and well distributed for layout decisions. */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Stateless hash of integer coordinates to [0, 1): per-pixel grain without storing a texture. */
export function hash2(x: number, y: number, seed: number): number {
  let h = Math.imul(x | 0, 0x27d4eb2d) ^ Math.imul(y | 0, 0x165667b1) ^ Math.imul(seed | 0, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

/**
 * An independent seed per layer (layout, textures, fish, ...), so changing how one layer draws
 * random numbers does not reshuffle the others.
 */
export function subSeed(seed: number, salt: number): number {
  return Math.floor(hash2(seed, salt, 0x5eed) * 4294967296) >>> 0;
}

/** Uniform float in [lo, hi). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

/** One element of a non-empty list. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new RangeError('pick() needs a non-empty list');
  return item;
}
