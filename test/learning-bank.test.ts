import { describe, expect, it } from 'vitest';
import { FeatureBank, featureBankBytes } from '../src/learning/feature-bank.js';
import { Rng } from '../src/learning/rng.js';

/** A frame of n patches whose features are `base` plus noise; patch i also encodes i in dim 0. */
function frame(n: number, C: number, base: readonly number[], rng: Rng, noise = 0.05): Float32Array {
  const f = new Float32Array(n * C);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) f[i * C + c] = (base[c] ?? 0) + noise * rng.gaussian();
  }
  return f;
}

describe('FeatureBank', () => {
  it('keeps its memory at the cap after 10x capacity frames, in both modes', () => {
    for (const mode of ['reservoir', 'window'] as const) {
      const opts = { capacityFrames: 20, pointsPerFrame: 32, dim: 12, mode };
      const bank = new FeatureBank(opts);
      const rng = new Rng(1);
      const n = 100;
      bank.add(frame(n, 12, [1], rng), n, 12, rng);
      const afterFirst = bank.bytes;
      // Fixed arrays plus one scratch index buffer of n entries.
      expect(afterFirst).toBe(featureBankBytes(opts) + n * 4);
      for (let i = 1; i < 200; i++) bank.add(frame(n, 12, [1], rng), n, 12, rng);
      expect(bank.size).toBe(20);
      expect(bank.seen).toBe(200);
      expect(bank.bytes).toBe(afterFirst);
      expect(bank.totalPoints).toBe(20 * 32);
    }
  });

  it('window mode keeps the most recent frames; reservoir keeps a spread of the whole stream', () => {
    const rng = new Rng(2);
    const C = 4;
    const win = new FeatureBank({ capacityFrames: 10, pointsPerFrame: 4, dim: C, mode: 'window' });
    const res = new FeatureBank({ capacityFrames: 10, pointsPerFrame: 4, dim: C, mode: 'reservoir' });
    for (let t = 0; t < 1000; t++) {
      const f = frame(8, C, [1, 0, 0, 0], rng);
      win.add(f, 8, C, rng);
      res.add(f, 8, C, rng);
    }
    const winFrames = Array.from({ length: 10 }, (_, s) => win.frameIndex(s)).sort((a, b) => a - b);
    expect(winFrames).toEqual([990, 991, 992, 993, 994, 995, 996, 997, 998, 999]);
    const resFrames = Array.from({ length: 10 }, (_, s) => res.frameIndex(s));
    // A uniform sample of 1000 frames: some from the first half (p of none ~ 1e-3).
    expect(resFrames.some((f) => f < 500)).toBe(true);
    expect(new Set(resFrames).size).toBe(10);
  });

  it('samples distinct patches and keeps their grid positions', () => {
    const rng = new Rng(3);
    const C = 2;
    const n = 50;
    const bank = new FeatureBank({ capacityFrames: 2, pointsPerFrame: 16, dim: C });
    const f = new Float32Array(n * C);
    for (let i = 0; i < n; i++) {
      f[i * C] = i;
      f[i * C + 1] = 1;
    }
    bank.add(f, n, C, rng);
    const pos = bank.positions(0);
    const pts = bank.points(0);
    expect(pos.length).toBe(16);
    expect(new Set(pos).size).toBe(16);
    pos.forEach((p, j) => expect(pts[j * C]).toBe(p));
    // Fewer patches than pointsPerFrame: all of them.
    bank.add(f.subarray(0, 5 * C), 5, C, rng);
    expect(bank.pointCount(1)).toBe(5);
    expect(Array.from(bank.positions(1)).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('stores the L2-normalised mean of all patches as the descriptor', () => {
    const rng = new Rng(4);
    const bank = new FeatureBank({ capacityFrames: 1, pointsPerFrame: 1, dim: 2 });
    bank.add(Float32Array.from([3, 0, 1, 4, 2, 2]), 3, 2, rng);
    // mean (2, 2) -> (0.7071, 0.7071)
    expect(bank.descriptor(0)[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(bank.descriptor(0)[1]).toBeCloseTo(Math.SQRT1_2, 6);
  });

  it('knn returns the frames nearest by descriptor cosine, nearest first, never the frame itself', () => {
    const rng = new Rng(5);
    const C = 3;
    const bank = new FeatureBank({ capacityFrames: 8, pointsPerFrame: 4, dim: C });
    // Angles in the x-y plane; cosine order from frame 0 (angle 0) is by |angle|.
    const angles = [0, 80, 10, -25, 170, 45, -5, 120];
    for (const a of angles) {
      const r = (a * Math.PI) / 180;
      // Different magnitudes: cosine, not distance, must decide.
      const mag = 1 + rng.next() * 5;
      bank.add(frame(10, C, [mag * Math.cos(r), mag * Math.sin(r), 0], rng, 0), 10, C, rng);
    }
    expect(bank.knn(0, 3)).toEqual([6, 2, 3]);
    expect(bank.knn(0, 7)).toEqual([6, 2, 3, 5, 1, 7, 4]);
    expect(bank.knn(0, 20)).toHaveLength(7);
    expect(bank.knn(4, 1)).toEqual([7]);
  });

  it('rejects a frame of the wrong dimension with a clear message', () => {
    const bank = new FeatureBank({ capacityFrames: 2, pointsPerFrame: 4, dim: 8 });
    expect(() => bank.add(new Float32Array(16), 4, 4, new Rng(1))).toThrow(
      "Expected 8 (the bank's dim) for bank.add C but received 4 of type number",
    );
    expect(() => new FeatureBank({ capacityFrames: 0, pointsPerFrame: 4, dim: 8 })).toThrow(
      'Expected positive integer for bank.capacityFrames but received 0 of type number',
    );
  });
});
