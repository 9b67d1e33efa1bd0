import { describe, expect, it } from 'vitest';
import { alignByAssignments, alignCentroids } from '../src/learning/align-classes.js';
import { assignCodes } from '../src/learning/online-learner.js';
import { hungarianMatch } from '../src/learning/hungarian-match.js';
import { Rng } from '../src/learning/rng.js';
import { sphericalKmeans } from '../src/learning/spherical-kmeans.js';

/** n points around each of k random unit directions in d dims, with angular noise `noise`. */
function blobs(k: number, perCluster: number, d: number, noise: number, seed: number) {
  const rng = new Rng(seed);
  const centres = new Float32Array(k * d);
  for (let j = 0; j < k; j++) {
    let s = 0;
    for (let t = 0; t < d; t++) {
      const v = rng.gaussian();
      centres[j * d + t] = v;
      s += v * v;
    }
    for (let t = 0; t < d; t++) centres[j * d + t]! /= Math.sqrt(s);
  }
  const n = k * perCluster;
  const data = new Float32Array(n * d);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = i % k;
    labels[i] = j;
    // Random norms: spherical k-means must not care about them.
    const scale = 0.5 + 3 * rng.next();
    for (let t = 0; t < d; t++) data[i * d + t] = scale * (centres[j * d + t]! + noise * rng.gaussian());
  }
  return { data, labels, centres, n };
}

/** Fraction of points whose cluster, mapped to its majority label, is right. */
function purity(assign: Int32Array, labels: Int32Array, k: number, classes: number): number {
  const counts = Array.from({ length: k }, () => new Array<number>(classes).fill(0));
  assign.forEach((a, i) => counts[a]![labels[i]!]!++);
  return counts.reduce((s, row) => s + Math.max(...row), 0) / assign.length;
}

describe('sphericalKmeans', () => {
  it('recovers well-separated clusters, with unit centroids near the true directions', () => {
    const k = 5;
    const d = 16;
    const { data, labels, centres, n } = blobs(k, 60, d, 0.05, 1);
    const res = sphericalKmeans(data, n, d, k, { seed: 7 });
    expect(purity(res.assignments, labels, k, k)).toBe(1);
    for (let j = 0; j < k; j++) {
      let nrm = 0;
      for (let t = 0; t < d; t++) nrm += res.centroids[j * d + t]! ** 2;
      expect(Math.sqrt(nrm)).toBeCloseTo(1, 5);
      // Each found centroid is within a few degrees of some true centre.
      let best = -1;
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += res.centroids[j * d + t]! * centres[c * d + t]!;
        best = Math.max(best, s);
      }
      expect(best).toBeGreaterThan(0.99);
    }
    expect(res.objective / n).toBeGreaterThan(0.95);
  });

  it('is deterministic for a seed, and the seed matters', () => {
    const { data, n } = blobs(6, 30, 8, 0.6, 2);
    const a = sphericalKmeans(data, n, 8, 6, { seed: 3, restarts: 2 });
    const b = sphericalKmeans(data, n, 8, 6, { seed: 3, restarts: 2 });
    expect(Array.from(b.centroids)).toEqual(Array.from(a.centroids));
    expect(Array.from(b.assignments)).toEqual(Array.from(a.assignments));
    const others = [4, 5, 6, 7, 8].map((seed) => sphericalKmeans(data, n, 8, 6, { seed }).centroids);
    expect(others.some((c) => c.some((v, i) => v !== a.centroids[i]))).toBe(true);
  });

  it('re-seeds an empty cluster from the point farthest from its centroid', () => {
    // Two tight clusters and one outlier-ish point; the third starting centroid points away
    // from every point, so it gets no member in the first assignment.
    const d = 3;
    const pts = [
      [1, 0.02, 0],
      [1, -0.02, 0],
      [1, 0, 0.02],
      [0, 1, 0.02],
      [0.02, 1, 0],
      [0, 1, -0.02],
      [0.6, 0.6, 0.5], // farthest from both clusters
    ];
    const data = Float32Array.from(pts.flat());
    const init = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, -1]);
    const res = sphericalKmeans(data, pts.length, d, 3, { seed: 1, init });
    // Every cluster is in use and the re-seeded one holds the odd point alone.
    const sizes = [0, 0, 0];
    res.assignments.forEach((a) => sizes[a]!++);
    expect(sizes.every((s) => s > 0)).toBe(true);
    expect(sizes[res.assignments[6]!]).toBe(1);
    expect(res.assignments[6]).toBe(2);
    expect(res.centroids[2 * d + 2]).toBeGreaterThan(0); // moved from (0,0,-1) onto the point
  });

  it('rejects more clusters than points with a clear message', () => {
    expect(() => sphericalKmeans(new Float32Array(6), 2, 3, 3, { seed: 1 })).toThrow(
      'Expected at most the number of points (2) for kmeans k but received 3 of type number',
    );
  });
});

describe('hungarianMatch', () => {
  it('matches clusters to classes maximising overlap', () => {
    // rows: clusters, cols: classes. Greedy (row by row) would give cluster 0 -> class 0 (50)
    // and cluster 1 -> class 1 (10), total 60; the optimum is 0 -> 1, 1 -> 0: 45 + 40 = 85.
    const confusion = [
      [50, 45, 0],
      [40, 10, 0],
      [0, 0, 30],
    ];
    expect(Array.from(hungarianMatch(confusion))).toEqual([1, 0, 2]);
  });

  it('handles more clusters than classes (extra clusters left unmatched) and the reverse', () => {
    const tall = [
      [5, 0],
      [0, 9],
      [7, 1],
    ];
    expect(Array.from(hungarianMatch(tall))).toEqual([-1, 1, 0]);
    const wide = [
      [1, 8, 2],
      [9, 0, 0],
    ];
    expect(Array.from(hungarianMatch(wide))).toEqual([1, 0]);
  });

  it('rejects non-finite scores', () => {
    expect(() => hungarianMatch([[1, Number.NaN]])).toThrow('Expected a finite number for score[0][1] but received NaN of type number');
  });
});

describe('alignCentroids', () => {
  it('maps permuted centroids back to the identity', () => {
    const K = 6;
    const D = 10;
    const { centres } = blobs(K, 1, D, 0, 5);
    const perm = [3, 0, 5, 1, 4, 2];
    const shuffled = new Float32Array(K * D);
    // New centroid i is old centroid perm[i], slightly perturbed.
    const rng = new Rng(9);
    perm.forEach((src, i) => {
      for (let t = 0; t < D; t++) shuffled[i * D + t] = centres[src * D + t]! + 0.01 * rng.gaussian();
    });
    const a = alignCentroids(centres, shuffled, D);
    // order[id] = new index that takes id: the inverse of perm.
    perm.forEach((src, i) => expect(a.order[src]).toBe(i));
    for (let i = 0; i < K * D; i++) expect(a.centroids[i]).toBeCloseTo(centres[i]!, 1);
    expect(a.meanScore).toBeGreaterThan(0.99);
  });

  it('gives extra new centroids the ids after the old ones', () => {
    const D = 2;
    const old = Float32Array.from([1, 0, 0, 1]);
    const neu = Float32Array.from([-1, 0, 0, 1, 1, 0]);
    const a = alignCentroids(old, neu, D);
    expect(Array.from(a.order)).toEqual([2, 1, 0]);
    expect(Array.from(a.centroids)).toEqual([1, 0, 0, 1, -1, 0]);
  });

  it('aligns by shared points when the spaces differ', () => {
    const oldL = Int32Array.from([0, 0, 0, 1, 1, 2, 2, 2]);
    const newL = Int32Array.from([2, 2, 0, 0, 0, 1, 1, 1]);
    const a = alignByAssignments(oldL, 3, newL, 3);
    expect(Array.from(a.order)).toEqual([2, 0, 1]);
    expect(a.meanScore).toBeCloseTo(7 / 8, 6);
  });
});

describe('assignCodes', () => {
  it('takes the centroid of highest cosine whatever the code norm', () => {
    const centroids = Float32Array.from([1, 0, 0, 1]);
    const codes = Float32Array.from([10, 1, 0.1, 0.2, -3, -1]);
    expect(Array.from(assignCodes(codes, 3, 2, centroids, 2))).toEqual([0, 1, 1]);
  });
});
