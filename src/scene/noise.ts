/**
 * Seeded value noise and cell bumps for the scene's textures. Hand-written because the textures
 * are precomputed once per seed in tight loops over every pixel, and must be reproducible bit for
 * bit (see prng.ts); the whole thing is a lattice lookup and a smoothstep.
 */
import { hash2, mulberry32 } from './prng.js';

/** Smooth noise in [0, 1]; one lattice cell per unit of x and y, repeating every 256 units. */
export type Noise2 = (x: number, y: number) => number;

const LATTICE = 256;
const MASK = LATTICE - 1;

export function valueNoise(seed: number): Noise2 {
  const rng = mulberry32(seed);
  const lattice = new Float32Array(LATTICE * LATTICE);
  for (let i = 0; i < lattice.length; i++) lattice[i] = rng();
  return (x, y) => {
    const xf = Math.floor(x);
    const yf = Math.floor(y);
    const tx = x - xf;
    const ty = y - yf;
    const sx = tx * tx * (3 - 2 * tx);
    const sy = ty * ty * (3 - 2 * ty);
    const x0 = xf & MASK;
    const x1 = (x0 + 1) & MASK;
    const r0 = (yf & MASK) * LATTICE;
    const r1 = ((yf + 1) & MASK) * LATTICE;
    const a = lattice[r0 + x0]!;
    const b = lattice[r0 + x1]!;
    const c = lattice[r1 + x0]!;
    const d = lattice[r1 + x1]!;
    const top = a + (b - a) * sx;
    return top + (c + (d - c) * sx - top) * sy;
  };
}

/** Fractal sum of `octaves` noise layers, each twice the frequency and half the weight; in [0, 1]. */
export function fbm(noise: Noise2, x: number, y: number, octaves: number): number {
  let sum = 0;
  let weight = 0.5;
  let norm = 0;
  let f = 1;
  for (let o = 0; o < octaves; o++) {
    // The offsets keep octaves from sharing lattice points (which shows as a grid).
    sum += weight * noise(x * f + o * 17.31, y * f + o * 31.77);
    norm += weight;
    weight *= 0.5;
    f *= 2.03;
  }
  return sum / norm;
}

/**
 * Rounded bumps on a jittered grid of `cell`-sized cells (polyps, pebbles): 1 at a bump's centre,
 * falling to 0 at its rim. A Voronoi-style nearest-point search over the 3x3 neighbourhood.
 */
export function cellBumps(x: number, y: number, cell: number, seed: number): number {
  const gx = x / cell;
  const gy = y / cell;
  const ix = Math.floor(gx);
  const iy = Math.floor(gy);
  let best = 4;
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const cx = ix + dx;
      const cy = iy + dy;
      const px = cx + 0.15 + 0.7 * hash2(cx, cy, seed);
      const py = cy + 0.15 + 0.7 * hash2(cy, cx, seed ^ 0x51ed);
      const d2 = (px - gx) * (px - gx) + (py - gy) * (py - gy);
      if (d2 < best) best = d2;
    }
  }
  // A bump of radius ~0.6 cells: neighbours touch, leaving dark seams between them.
  const q = 1 - best / 0.36;
  return q > 0 ? Math.sqrt(q) : 0;
}
