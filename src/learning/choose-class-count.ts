/**
 * `-k auto`: how many classes the features hold, up to a maximum. Spherical k-means with the
 * maximum count over-segments on purpose; then the two clusters whose merge costs the least
 * objective are merged, again and again, while that cost is small next to the features' whole
 * spread (the dispersion of one cluster holding everything). A split that only halves noise or a
 * smooth gradient costs little to undo; a split between two kinds of stuff costs a lot.
 *
 * Costs are in the spherical k-means objective (Σ cosine of each point to its cluster's mean
 * direction): merging clusters with unit-vector sums S_a, S_b of n_a, n_b points loses
 * |S_a| + |S_b| - |S_a + S_b|, taken per point of n_a·n_b/(n_a + n_b) (Ward's weighting, so a
 * small class is not merged for being small) and over the one-cluster dispersion (scale-free, so
 * one threshold serves backbones whose features sit at any spread).
 *
 * Also says when the features barely vary at all (an empty mid-water clip, a uniform picture):
 * then there is nothing to segment, and the caller warns instead of inventing classes.
 */
import { BadOptionError } from '../errors.js';
import { normaliseRowsCopy } from './spherical-kmeans.js';

export interface ClassCountOptions {
  /** A merge is taken while its cost per point (see `DEFAULT_MERGE_SHARE`) is below this share of the one-cluster dispersion. */
  readonly mergeShare?: number;
  /** Below this one-cluster dispersion the features count as uniform. Default `DEFAULT_MIN_DISPERSION`. */
  readonly minDispersion?: number;
}

export interface ClassCount {
  /** Classes to fit (>= 1). */
  readonly k: number;
  /** For each of the over-segmented clusters, the class (in [0, k)) it was merged into. */
  readonly groups: Int32Array;
  /** Dispersion of all points as one cluster: 1 - |mean unit vector|. */
  readonly dispersion: number;
  /** The features barely vary (dispersion below `minDispersion`): k is 1. */
  readonly uniform: boolean;
  /** Cost of each merge taken (objective lost per point of the pair's harmonic size, over `dispersion`), in order. */
  readonly mergeCosts: readonly number[];
}

/**
 * See the header; the cost is per point of the pair's harmonic size, over the one-cluster
 * dispersion. Measured with the built-in backbone v2 on generated scenes (5 true classes, fitted
 * with 8, 640x360): merges that joined pieces of one class cost 0.02-0.43, the first to join two
 * true classes 0.95-1.02 on easy scenes, 0.39-0.55 on hard ones (coral the colour of sand: those
 * then come out as 4 classes; give -k a number there).
 */
export const DEFAULT_MERGE_SHARE = 0.7;
/**
 * See the header. Built-in backbone v2: flat-colour clips with slight noise (ffmpeg noise 4-8)
 * measured 0.0004-0.0019, the generated scenes 0.055-0.067, the Ventana ROV clips 0.004-0.017.
 * Heavy sensor noise is texture to the built-in backbone (noise 20-40: 0.013-0.035).
 */
export const DEFAULT_MIN_DISPERSION = 0.003;

/**
 * Decides the class count from an over-segmentation: `x` [n×d] points (any norm) and their
 * `assignments` to `k` clusters. Returns the grouping of the k clusters into the chosen classes
 * (groups numbered by their lowest cluster).
 */
export function chooseClassCount(
  x: Float32Array,
  n: number,
  d: number,
  assignments: Int32Array,
  k: number,
  opts: ClassCountOptions = {},
): ClassCount {
  const mergeShare = opts.mergeShare ?? DEFAULT_MERGE_SHARE;
  const minDispersion = opts.minDispersion ?? DEFAULT_MIN_DISPERSION;
  if (!(mergeShare >= 0)) throw new BadOptionError('mergeShare', 'a non-negative number', mergeShare);
  if (!Number.isInteger(k) || k < 1) throw new BadOptionError('k', 'positive integer', k);
  const u = normaliseRowsCopy(x, n, d);
  const sums = new Float64Array(k * d);
  const sizes = new Float64Array(k);
  const total = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const c = assignments[i]!;
    sizes[c]!++;
    for (let j = 0; j < d; j++) {
      const v = u[i * d + j]!;
      sums[c * d + j]! += v;
      total[j]! += v;
    }
  }
  const norm = (a: Float64Array, ao: number, b?: Float64Array, bo = 0): number => {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const v = a[ao + j]! + (b ? b[bo + j]! : 0);
      s += v * v;
    }
    return Math.sqrt(s);
  };
  const dispersion = n > 0 ? 1 - norm(total, 0) / n : 0;
  const groups = Int32Array.from({ length: k }, (_, i) => i);
  if (dispersion < minDispersion) return { k: 1, groups: groups.fill(0), dispersion, uniform: true, mergeCosts: [] };

  // Greedy agglomeration of the k clusters (k <= 64: the pairwise scan is cheap).
  const alive = new Uint8Array(k).fill(1);
  const owner = Int32Array.from({ length: k }, (_, i) => i);
  const lengths = Array.from({ length: k }, (_, c) => norm(sums, c * d));
  const mergeCosts: number[] = [];
  const scale = dispersion;
  for (let left = k; left > 1; left--) {
    let best = Infinity;
    let ba = -1;
    let bb = -1;
    for (let a = 0; a < k; a++) {
      if (!alive[a]) continue;
      for (let b = a + 1; b < k; b++) {
        if (!alive[b]) continue;
        // Per point of the pair's harmonic size (Ward's weighting): a small class costs little
        // to merge only because it is small, so the loss is taken per point it would move.
        const loss = lengths[a]! + lengths[b]! - norm(sums, a * d, sums, b * d);
        const cost = sizes[a]! > 0 && sizes[b]! > 0 ? (loss * (sizes[a]! + sizes[b]!)) / (sizes[a]! * sizes[b]!) : 0;
        if (cost < best) {
          best = cost;
          ba = a;
          bb = b;
        }
      }
    }
    if (best / scale >= mergeShare) break;
    mergeCosts.push(best / scale);
    for (let j = 0; j < d; j++) sums[ba * d + j]! += sums[bb * d + j]!;
    sizes[ba]! += sizes[bb]!;
    lengths[ba] = norm(sums, ba * d);
    alive[bb] = 0;
    for (let c = 0; c < k; c++) if (owner[c] === bb) owner[c] = ba;
  }
  // Number the surviving groups in order of their lowest cluster.
  const id = new Int32Array(k).fill(-1);
  let next = 0;
  for (let c = 0; c < k; c++) {
    const o = owner[c]!;
    if (id[o] === -1) id[o] = next++;
    groups[c] = id[o]!;
  }
  return { k: next, groups, dispersion, uniform: false, mergeCosts };
}
