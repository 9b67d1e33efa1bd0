import { describe, expect, it } from 'vitest';
import { lostBox } from '../src/objects/lost.js';

type Box = readonly [number, number, number, number];

/** Seeded normal samples (mulberry32 + Box-Muller), so that failures reproduce. */
function normals(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

interface Rect {
  readonly y0: number;
  readonly x0: number;
  readonly y1: number; // exclusive
  readonly x1: number; // exclusive
}

/** Keys on a grid: `object` inside the rectangles, `background` elsewhere, plus noise. */
function sceneKeys(
  gridH: number,
  gridW: number,
  background: readonly number[],
  object: readonly number[],
  rects: readonly Rect[],
  noise = 0,
  seed = 1,
): Float32Array {
  const dim = background.length;
  const rand = normals(seed);
  const keys = new Float32Array(gridH * gridW * dim);
  for (let y = 0; y < gridH; y++) {
    for (let x = 0; x < gridW; x++) {
      const inside = rects.some((r) => y >= r.y0 && y < r.y1 && x >= r.x0 && x < r.x1);
      const base = inside ? object : background;
      for (let c = 0; c < dim; c++) keys[(y * gridW + x) * dim + c] = (base[c] as number) + noise * rand();
    }
  }
  return keys;
}

function unit(dim: number, entries: Record<number, number>): number[] {
  return Array.from({ length: dim }, (_, c) => entries[c] ?? 0);
}

function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const area = (r: Box): number => (r[2] - r[0]) * (r[3] - r[1]);
  return inter / (area(a) + area(b) - inter);
}

function rectMask(gridH: number, gridW: number, r: Rect): Uint8Array {
  const m = new Uint8Array(gridH * gridW);
  for (let y = r.y0; y < r.y1; y++) for (let x = r.x0; x < r.x1; x++) m[y * gridW + x] = 1;
  return m;
}

/**
 * LOST as the authors' object_discovery.py writes it, on a full N×N matrix: patch_scoring (zero
 * diagonal, count of positive entries, ascending order with ties by index), seed expansion over
 * the k lowest-degree patches, M = Σ A[similars, :], 4-connected component of M > 0 holding the seed.
 */
function naiveLost(keys: Float32Array, gridH: number, gridW: number, dim: number, k: number): { seed: number; mask: Uint8Array } {
  const n = gridH * gridW;
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < dim; c++) s += (keys[i * dim + c] as number) * (keys[j * dim + c] as number);
      A[i * n + j] = s;
    }
  }
  const degree = Array.from({ length: n }, (_, i) => {
    let d = 0;
    for (let j = 0; j < n; j++) if (j !== i && (A[i * n + j] as number) > 0) d++;
    return d;
  });
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (degree[a] as number) - (degree[b] as number) || a - b);
  const seed = order[0] as number;
  const similars = order.slice(0, k).filter((p) => (A[seed * n + p] as number) > 0);
  const M = Array.from({ length: n }, (_, j) => similars.reduce((acc, s) => acc + (A[s * n + j] as number), 0));
  const mask = new Uint8Array(n);
  const stack = [seed];
  mask[seed] = 1;
  while (stack.length > 0) {
    const p = stack.pop() as number;
    const y = Math.floor(p / gridW);
    const x = p % gridW;
    const next = [x > 0 ? p - 1 : -1, x + 1 < gridW ? p + 1 : -1, y > 0 ? p - gridW : -1, y + 1 < gridH ? p + gridW : -1];
    for (const q of next) {
      if (q >= 0 && mask[q] === 0 && (M[q] as number) > 0) {
        mask[q] = 1;
        stack.push(q);
      }
    }
  }
  return { seed, mask };
}

describe('lostBox', () => {
  it('boxes a rectangular object whose keys differ from a uniform background (IoU >= 0.9)', () => {
    const [gridH, gridW, dim, patch] = [20, 30, 16, 8];
    const object: Rect = { y0: 5, x0: 8, y1: 12, x1: 20 };
    const keys = sceneKeys(gridH, gridW, unit(dim, { 0: 1 }), unit(dim, { 0: -0.6, 1: 1 }), [object], 0.1);
    const res = lostBox(keys, gridH, gridW, dim, patch);
    const truth: Box = [object.x0 * patch, object.y0 * patch, object.x1 * patch, object.y1 * patch];
    expect(iou(res.box, truth)).toBeGreaterThanOrEqual(0.9);
    expect(res.box).toEqual([64, 40, 160, 96]);
    expect(res.mask).toEqual(rectMask(gridH, gridW, object));
    expect(res.score).toBeGreaterThan(0.6);
    expect(res.score).toBeLessThanOrEqual(1);
  });

  it('keeps only the 4-connected component holding the seed', () => {
    // Two regions with the same keys: both correlate positively with the seeds, but only the one
    // holding the seed is the object. With equal degrees the seed is the first patch in raster
    // order, so it lies in the top-left region.
    const [gridH, gridW, dim, patch] = [20, 30, 8, 16];
    const small: Rect = { y0: 2, x0: 2, y1: 6, x1: 7 };
    const large: Rect = { y0: 10, x0: 15, y1: 18, x1: 28 };
    const keys = sceneKeys(gridH, gridW, unit(dim, { 0: 1 }), unit(dim, { 0: -1, 2: 1 }), [small, large]);
    const res = lostBox(keys, gridH, gridW, dim, patch);
    expect(res.seed).toBe(small.y0 * gridW + small.x0);
    expect(res.mask).toEqual(rectMask(gridH, gridW, small));
    expect(res.box).toEqual([2 * patch, 2 * patch, 7 * patch, 6 * patch]);
  });

  it('does not join regions that touch only at a corner', () => {
    const [gridH, gridW, dim] = [10, 10, 4];
    const a: Rect = { y0: 1, x0: 1, y1: 4, x1: 4 };
    const b: Rect = { y0: 4, x0: 4, y1: 7, x1: 7 };
    const keys = sceneKeys(gridH, gridW, unit(dim, { 0: 1 }), unit(dim, { 0: -1, 1: 1 }), [a, b]);
    const res = lostBox(keys, gridH, gridW, dim, 1);
    expect(res.box).toEqual([1, 1, 4, 4]);
  });

  it('breaks degree ties by the lower index: identical keys give patch 0 as seed and the whole grid', () => {
    const [gridH, gridW, dim, patch] = [6, 9, 5, 14];
    const keys = sceneKeys(gridH, gridW, [0.5, -1, 2, 0, 1], [0, 0, 0, 0, 0], []);
    const res = lostBox(keys, gridH, gridW, dim, patch);
    expect(res.seed).toBe(0);
    expect(res.box).toEqual([0, 0, gridW * patch, gridH * patch]);
    expect(res.mask.every((v) => v === 1)).toBe(true);
    expect(res.score).toBe(0); // nothing outside to contrast with
  });

  it('returns the seed patch alone with score 0 for all-zero keys', () => {
    const res = lostBox(new Float32Array(4 * 5 * 3), 4, 5, 3, 8);
    expect(res.seed).toBe(0);
    expect(res.box).toEqual([0, 0, 8, 8]);
    expect(Array.from(res.mask).reduce((a, b) => a + b, 0)).toBe(1);
    expect(res.score).toBe(0);
  });

  it("agrees with a direct transcription of the authors' algorithm on random keys", () => {
    // Odd sizes exercise the tails of the four-row, two-column blocking.
    for (const [gridH, gridW, dim, k, seed] of [
      [7, 9, 24, 100, 3],
      [11, 13, 16, 20, 4],
      [5, 5, 7, 3, 5],
      [1, 3, 2, 100, 6],
    ] as const) {
      const rand = normals(seed);
      const keys = Float32Array.from({ length: gridH * gridW * dim }, () => rand());
      const want = naiveLost(keys, gridH, gridW, dim, k);
      const got = lostBox(keys, gridH, gridW, dim, 8, { k });
      expect(got.seed, `grid ${gridH}x${gridW}`).toBe(want.seed);
      expect(got.mask, `grid ${gridH}x${gridW}`).toEqual(want.mask);
    }
  });

  it('scores a distinct object higher than noise', () => {
    const [gridH, gridW, dim] = [16, 16, 12];
    const rand = normals(9);
    const noise = Float32Array.from({ length: gridH * gridW * dim }, () => rand());
    const object = sceneKeys(gridH, gridW, unit(dim, { 0: 1 }), unit(dim, { 0: -1, 1: 0.5 }), [{ y0: 4, x0: 4, y1: 9, x1: 10 }], 0.1);
    const noiseScore = lostBox(noise, gridH, gridW, dim, 8).score;
    const objectScore = lostBox(object, gridH, gridW, dim, 8).score;
    expect(objectScore).toBeGreaterThan(0.8);
    expect(noiseScore).toBeLessThan(objectScore);
  });

  it('rejects sizes that do not match the keys', () => {
    expect(() => lostBox(new Float32Array(47), 6, 8, 1, 8)).toThrow(
      'Expected gridH*gridW*dim = 48*1 = 48 values for keys but received 47 of type number',
    );
    expect(() => lostBox(new Float32Array(48), 0, 8, 6, 8)).toThrow('Expected a positive integer for gridH but received 0 of type number');
    expect(() => lostBox(new Float32Array(48), 6, 8, 1, 8, { k: 2.5 })).toThrow(
      'Expected a positive integer for opts.k but received 2.5 of type number',
    );
  });
});
