import { describe, expect, it } from 'vitest';
import { alignCentroids } from '../src/learning/align-classes.js';
import { chooseClassCount } from '../src/learning/choose-class-count.js';
import { classifyFeatures } from '../src/learning/cluster-probe.js';
import { OnlineLearner } from '../src/learning/online-learner.js';
import { Rng } from '../src/learning/rng.js';
import { sphericalKmeans } from '../src/learning/spherical-kmeans.js';
import { runCli } from './helpers/cli.js';

/**
 * `-k auto` (choose-class-count.ts, OnlineLearner k 'auto'), the id alignment when the count
 * changes, and canonical ids by share. Features: D = 16, each "kind of stuff" a random direction
 * plus isotropic noise, in unequal amounts (so share order is known).
 */
const D = 16;

/** n points around `kinds` random directions, kind i taking shares[i] of them; noise `sigma` per dim. */
function blobs(seed: number, shares: readonly number[], n: number, sigma: number): { x: Float32Array; kind: Int32Array } {
  const rng = new Rng(seed);
  const centres = shares.map(() => Float32Array.from({ length: D }, () => rng.gaussian()));
  const x = new Float32Array(n * D);
  const kind = new Int32Array(n);
  let i = 0;
  shares.forEach((s, c) => {
    const m = c === shares.length - 1 ? n - i : Math.round(s * n);
    for (let j = 0; j < m; j++, i++) {
      kind[i] = c;
      for (let t = 0; t < D; t++) x[i * D + t] = centres[c]![t]! + sigma * rng.gaussian();
    }
  });
  return { x, kind };
}

describe('chooseClassCount', () => {
  it('merges an over-segmentation back to the kinds of stuff the features hold', () => {
    const { x } = blobs(1, [0.5, 0.3, 0.15, 0.05], 4000, 0.15);
    const over = sphericalKmeans(x, 4000, D, 8, { seed: 1, restarts: 4 });
    const c = chooseClassCount(x, 4000, D, over.assignments, 8);
    expect(c.uniform).toBe(false);
    expect(c.k).toBe(4);
    expect(new Set(c.groups).size).toBe(4);
    // Every merge taken was cheap next to the threshold.
    for (const cost of c.mergeCosts) expect(cost).toBeLessThan(0.7);
  });

  it('says "uniform" and one class when the features barely vary', () => {
    const { x } = blobs(2, [1], 2000, 0.002);
    const over = sphericalKmeans(x, 2000, D, 8, { seed: 1 });
    const c = chooseClassCount(x, 2000, D, over.assignments, 8);
    expect(c.uniform).toBe(true);
    expect(c.k).toBe(1);
    expect(Array.from(c.groups)).toEqual(new Array(8).fill(0));
    expect(c.dispersion).toBeLessThan(0.003);
  });
});

describe('alignCentroids with another class count', () => {
  const rng = new Rng(3);
  const old = Float32Array.from({ length: 4 * D }, () => rng.gaussian());

  it('keeps the order of the old ids when classes were merged away', () => {
    // New centroids: old classes 3, 0 and 2 (class 1 merged away), shuffled.
    const neu = new Float32Array(3 * D);
    [3, 0, 2].forEach((o, i) => neu.set(old.subarray(o * D, (o + 1) * D), i * D));
    const a = alignCentroids(old, neu, D);
    expect(Array.from(a.oldIds)).toEqual([0, 2, 3]);
    expect(Array.from(a.order)).toEqual([1, 2, 0]);
    expect(Array.from(a.centroids.subarray(2 * D, 3 * D))).toEqual(Array.from(old.subarray(3 * D, 4 * D)));
  });

  it('appends a new class after the old ids', () => {
    const neu = new Float32Array(5 * D);
    neu.set(
      Float32Array.from({ length: D }, () => rng.gaussian()),
      0,
    );
    neu.set(old, D);
    const a = alignCentroids(old, neu, D);
    expect(Array.from(a.oldIds)).toEqual([0, 1, 2, 3, -1]);
    expect(Array.from(a.order)).toEqual([1, 2, 3, 4, 0]);
  });
});

describe("OnlineLearner with k 'auto'", () => {
  function fed(seed: number, shares: readonly number[], sigma: number, k: 'auto' | number = 'auto'): OnlineLearner {
    const l = new OnlineLearner({ dim: D, k, seed, train: { everyFrames: 1000 }, fit: { maxPoints: 4000 } });
    const { x } = blobs(7, shares, 4000, sigma);
    // 20 "frames" of 200 points each, every kind in every frame (points interleaved).
    for (let f = 0; f < 20; f++) {
      const frame = new Float32Array(200 * D);
      for (let i = 0; i < 200; i++) frame.set(x.subarray((i * 20 + f) * D, (i * 20 + f + 1) * D), i * D);
      l.observe(frame, 200);
    }
    l.runRound(20);
    return l;
  }

  it('fits as many classes as the features hold and numbers them by share, for any seed', () => {
    for (const seed of [1, 2]) {
      const l = fed(seed, [0.15, 0.5, 0.05, 0.3], 0.15);
      expect(l.state.k).toBe(4);
      expect(l.lastRound?.classCount).toMatchObject({ k: 4, uniform: false });
      expect(l.state.names).toEqual(['class 0', 'class 1', 'class 2', 'class 3']);
      // By share: the 50% kind is class 0, then 30%, 15%, 5%; compare against kind centres.
      const { x, kind } = blobs(7, [0.15, 0.5, 0.05, 0.3], 4000, 0.15);
      const labels = sphericalKmeans(x, 4000, D, 4, { seed: 1, init: l.state.centroids, iters: 1 }).assignments;
      const byKind = [1, 3, 0, 2].map((k) => {
        const counts = new Array<number>(4).fill(0);
        labels.forEach((c, i) => kind[i] === k && counts[c]!++);
        return counts.indexOf(Math.max(...counts));
      });
      expect(byKind).toEqual([0, 1, 2, 3]);
    }
  });

  it('fits one class and reports "uniform" on features that barely vary', () => {
    const l = fed(1, [1], 0.002);
    expect(l.state.k).toBe(1);
    expect(l.lastRound?.classCount?.uniform).toBe(true);
  });

  it('training rounds add a class at a time when new stuff appears, keeping the old ids', () => {
    const l = fed(1, [1], 0.002);
    expect(l.state.k).toBe(1);
    const { x } = blobs(9, [0.5, 0.5], 4000, 0.15);
    for (let f = 0; f < 20; f++) l.observe(x.subarray(f * 200 * D, (f + 1) * 200 * D), 200);
    const counts: number[] = [];
    for (let r = 0; r < 5; r++) {
      l.runRound(40 + r, 20);
      counts.push(l.state.k);
    }
    // Up by at most one a round, to the three kinds the bank now holds, and no further.
    counts.forEach((k, i) => expect(k - (counts[i - 1] ?? 1)).toBeLessThanOrEqual(1));
    expect(counts[counts.length - 1]).toBe(3);
    // The first class (the uniform stuff) kept id 0 through every round.
    const flat = blobs(7, [1], 400, 0.002).x;
    expect(new Set(classifyFeatures(l.state, flat, 400))).toEqual(new Set([0]));
  });

  it("with recount off (process), rounds keep the first fit's count", () => {
    const l = new OnlineLearner({ dim: D, k: 'auto', recount: false, seed: 1, train: { everyFrames: 1000 }, fit: { maxPoints: 4000 } });
    const flat = blobs(7, [1], 4000, 0.002).x;
    for (let f = 0; f < 20; f++) l.observe(flat.subarray(f * 200 * D, (f + 1) * 200 * D), 200);
    l.runRound(20);
    const { x } = blobs(9, [0.5, 0.5], 4000, 0.15);
    for (let f = 0; f < 20; f++) l.observe(x.subarray(f * 200 * D, (f + 1) * 200 * D), 200);
    for (let r = 0; r < 3; r++) l.runRound(40 + r, 20);
    expect(l.state.version).toBeGreaterThanOrEqual(3);
    expect(l.state.k).toBe(1);
  });

  it('a numeric k is kept as given', () => {
    expect(fed(1, [0.5, 0.5], 0.15, 6).state.k).toBe(6);
  });

  it('refuses extra clusters with k auto and a max beyond 64', () => {
    expect(() => new OnlineLearner({ dim: D, k: 'auto', extraClusters: 2, seed: 1, train: { everyFrames: 10 } })).toThrow(
      "Expected 0 with k 'auto' (it chooses the count itself) for learner.extraClusters but received 2 of type number",
    );
    expect(() => new OnlineLearner({ dim: D, k: 'auto', maxClasses: 65, seed: 1, train: { everyFrames: 10 } })).toThrow(
      'Expected integer in [1, 64] for learner.maxClasses but received 65 of type number',
    );
  });
});

describe('-k on the command line', () => {
  it('takes a number or auto, and names anything else', async () => {
    const r = await runCli(['process', 'nowhere.mp4', '-k', 'many']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Expected positive integer or "auto" for --classes but received "many"');
    const e = await runCli(['process', 'nowhere.mp4', '--extra-clusters', '2']);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain(
      'Expected 0 with -k auto (it picks the count itself); give -k a number to add clusters for --extra-clusters',
    );
  }, 60_000);
});
