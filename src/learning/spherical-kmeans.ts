/**
 * Spherical k-means (Dhillon & Modha): clusters unit vectors by cosine similarity; centroids are
 * the normalised means of their members. Seeding is k-means++ on the cosine distance 1 - cos
 * (half the squared chord length, so it is exactly k-means++'s D² weighting on the sphere).
 * A cluster left empty is re-seeded with the point farthest from its own centroid.
 *
 * Hand-written: no maintained npm package does spherical k-means on typed arrays (the k-means
 * packages on npm are Euclidean, on arrays of arrays, and not seedable).
 */
import { BadOptionError } from '../errors.js';
import { gemmNT } from './gemm.js';
import { Rng } from './rng.js';

export interface SphericalKmeansOptions {
  /** Seed of the k-means++ draws; same seed, same result. */
  readonly seed: number;
  /** Most Lloyd iterations per restart; default 50. Stops early when no point changes cluster. */
  readonly iters?: number;
  /** Independent k-means++ starts; the one with the highest total cosine wins. Default 1. */
  readonly restarts?: number;
  /**
   * Starting centroids [k×d] instead of k-means++ (a warm start from the previous round's
   * centroids); normalised internally. With `init`, `restarts` is ignored.
   */
  readonly init?: Float32Array;
}

export interface SphericalKmeansResult {
  /** [k×d], unit rows. */
  readonly centroids: Float32Array;
  /** Cluster of each point. */
  readonly assignments: Int32Array;
  /** Σ cos(point, its centroid): what the algorithm maximises. */
  readonly objective: number;
  /** Iterations run by the winning restart. */
  readonly iterations: number;
}

export const DEFAULT_KMEANS_ITERS = 50;

/** Unit-normalised copy of data [n×d]; zero rows stay zero. */
export function normaliseRowsCopy(data: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let s = 0;
    for (let j = 0; j < d; j++) s += data[o + j]! * data[o + j]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) out[o + j] = data[o + j]! * inv;
  }
  return out;
}

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) s += a[ao + j]! * b[bo + j]!;
  return s;
}

/**
 * Clusters n points [n×d] (any norm; they are normalised internally) into k unit centroids.
 * Throws BadOptionError when n < k or the options are out of range.
 */
export function sphericalKmeans(data: Float32Array, n: number, d: number, k: number, opts: SphericalKmeansOptions): SphericalKmeansResult {
  for (const [name, v] of [
    ['kmeans n', n],
    ['kmeans d', d],
    ['kmeans k', k],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new BadOptionError(name, 'positive integer', v);
  }
  if (n < k) throw new BadOptionError('kmeans k', `at most the number of points (${n})`, k);
  if (data.length < n * d) throw new BadOptionError('kmeans data', `a Float32Array of at least ${n}×${d} values`, `length ${data.length}`);
  const iters = opts.iters ?? DEFAULT_KMEANS_ITERS;
  const restarts = opts.restarts ?? 1;
  if (!Number.isInteger(iters) || iters < 1) throw new BadOptionError('kmeans iters', 'positive integer', iters);
  if (!Number.isInteger(restarts) || restarts < 1) throw new BadOptionError('kmeans restarts', 'positive integer', restarts);

  const x = normaliseRowsCopy(data, n, d);
  if (opts.init !== undefined) {
    if (opts.init.length !== k * d)
      throw new BadOptionError('kmeans init', `a Float32Array of ${k}×${d} values`, `length ${opts.init.length}`);
    return lloyd(x, n, d, k, normaliseRowsCopy(opts.init, k, d), iters);
  }
  const rng = new Rng(opts.seed);
  let best: SphericalKmeansResult | undefined;
  for (let r = 0; r < restarts; r++) {
    const res = lloyd(x, n, d, k, seedPlusPlus(x, n, d, k, rng), iters);
    if (!best || res.objective > best.objective) best = res;
  }
  return best!;
}

/** k-means++ on 1 - cos: first centre uniform, then each next one with probability ∝ distance. */
function seedPlusPlus(x: Float32Array, n: number, d: number, k: number, rng: Rng): Float32Array {
  const c = new Float32Array(k * d);
  const dist = new Float64Array(n);
  let first = rng.int(n);
  c.set(x.subarray(first * d, (first + 1) * d), 0);
  for (let i = 0; i < n; i++) dist[i] = Math.max(0, 1 - dot(x, i * d, c, 0, d));
  for (let j = 1; j < k; j++) {
    let total = 0;
    for (let i = 0; i < n; i++) total += dist[i]!;
    let pick: number;
    if (total <= 0) {
      // Every point sits on a centre already (duplicates): any point will do.
      pick = rng.int(n);
    } else {
      let u = rng.next() * total;
      pick = n - 1;
      for (let i = 0; i < n; i++) {
        u -= dist[i]!;
        if (u < 0) {
          pick = i;
          break;
        }
      }
    }
    first = pick;
    c.set(x.subarray(pick * d, (pick + 1) * d), j * d);
    for (let i = 0; i < n; i++) {
      const di = Math.max(0, 1 - dot(x, i * d, c, j * d, d));
      if (di < dist[i]!) dist[i] = di;
    }
  }
  return c;
}

function lloyd(x: Float32Array, n: number, d: number, k: number, centroids: Float32Array, iters: number): SphericalKmeansResult {
  const assign = new Int32Array(n).fill(-1);
  const sim = new Float64Array(n);
  const sums = new Float64Array(k * d);
  const sizes = new Int32Array(k);
  const scores = new Float32Array(Math.min(n, BLOCK) * k);
  let it = 0;
  for (; it < iters; it++) {
    let changed = 0;
    nearestAll(x, n, d, centroids, k, scores, (i, bj, bs) => {
      if (assign[i] !== bj) {
        assign[i] = bj;
        changed++;
      }
      sim[i] = bs;
    });
    // Converged: the centroids below would be the ones we already have.
    if (changed === 0 && it > 0) break;
    sums.fill(0);
    sizes.fill(0);
    for (let i = 0; i < n; i++) {
      const j = assign[i]!;
      sizes[j]!++;
      const o = i * d;
      const so = j * d;
      for (let t = 0; t < d; t++) sums[so + t]! += x[o + t]!;
    }
    reseedEmpty(x, n, d, k, assign, sim, sums, sizes);
    for (let j = 0; j < k; j++) {
      const so = j * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += sums[so + t]! ** 2;
      // A cluster whose members cancel out keeps its previous centroid.
      if (s <= 0) continue;
      const inv = 1 / Math.sqrt(s);
      for (let t = 0; t < d; t++) centroids[so + t] = sums[so + t]! * inv;
    }
  }
  let objective = 0;
  nearestAll(x, n, d, centroids, k, scores, (i, bj, bs) => {
    assign[i] = bj;
    objective += bs;
  });
  return { centroids, assignments: assign, objective, iterations: it };
}

/** Rows per block of the point-centroid similarity matrix. */
const BLOCK = 1024;

/** Calls visit(i, best centroid, its cosine) for every point; ties go to the lower centroid. */
function nearestAll(
  x: Float32Array,
  n: number,
  d: number,
  c: Float32Array,
  k: number,
  scores: Float32Array,
  visit: (i: number, best: number, sim: number) => void,
): void {
  for (let start = 0; start < n; start += BLOCK) {
    const rows = Math.min(BLOCK, n - start);
    const s = scores.subarray(0, rows * k);
    s.fill(0);
    gemmNT(x.subarray(start * d, (start + rows) * d), c, s, rows, d, k);
    for (let r = 0; r < rows; r++) {
      let bj = 0;
      let bs = -Infinity;
      for (let j = 0; j < k; j++) {
        const v = s[r * k + j]!;
        if (v > bs) {
          bs = v;
          bj = j;
        }
      }
      visit(start + r, bj, bs);
    }
  }
}

/**
 * Gives every empty cluster the point farthest from its own centroid (lowest cosine) among
 * points whose cluster has more than one member, moving it over; deterministic (ties: lowest
 * index).
 */
function reseedEmpty(
  x: Float32Array,
  n: number,
  d: number,
  k: number,
  assign: Int32Array,
  sim: Float64Array,
  sums: Float64Array,
  sizes: Int32Array,
): void {
  for (let j = 0; j < k; j++) {
    if (sizes[j]! > 0) continue;
    let far = -1;
    let farSim = Infinity;
    for (let i = 0; i < n; i++) {
      if (sizes[assign[i]!]! <= 1) continue;
      if (sim[i]! < farSim) {
        farSim = sim[i]!;
        far = i;
      }
    }
    if (far < 0) return;
    const from = assign[far]!;
    const o = far * d;
    for (let t = 0; t < d; t++) {
      sums[from * d + t]! -= x[o + t]!;
      sums[j * d + t] = x[o + t]!;
    }
    sizes[from]!--;
    sizes[j] = 1;
    assign[far] = j;
    // It now sits exactly on its centroid: not "far" any more.
    sim[far] = 1;
  }
}
