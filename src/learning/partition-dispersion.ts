/**
 * How well a partition of feature rows fits the backbone's own geometry: the spherical k-means
 * objective measured in feature space, whatever space the partition was made in.
 *
 * dispersion = 1 - (1/n) Σ_c |Σ_{i in c} u_i|, u_i = f_i / |f_i|
 *
 * i.e. one minus the mean cosine of each feature to the (normalised) mean direction of its class.
 * Spherical k-means on raw features minimises exactly this, so the raw probe's partition is the
 * yardstick; a head's partition is allowed to cost some of it (that is what learning a different
 * grouping means) but not a lot (see OnlineLearner's `train.maxDispersionRatio`).
 */
import { BadOptionError } from '../errors.js';

/** Dispersion of n rows [n×C] partitioned by `labels` (values in [0, K)). Sums in float64. */
export function partitionDispersion(feats: Float32Array, n: number, C: number, labels: Int32Array, K: number): number {
  if (feats.length < n * C) throw new BadOptionError('feats', `a Float32Array of at least ${n}×${C} values`, `length ${feats.length}`);
  if (labels.length < n) throw new BadOptionError('labels', `at least ${n} labels`, `length ${labels.length}`);
  if (n === 0) return 0;
  const sums = new Float64Array(K * C);
  for (let i = 0; i < n; i++) {
    const o = i * C;
    let s = 0;
    for (let j = 0; j < C; j++) s += feats[o + j]! * feats[o + j]!;
    if (s === 0) continue; // an all-zero row has no direction; it counts as fully dispersed
    const inv = 1 / Math.sqrt(s);
    const c = labels[i]!;
    if (c < 0 || c >= K) throw new BadOptionError(`labels[${i}]`, `an integer in [0, ${K})`, c);
    const so = c * C;
    for (let j = 0; j < C; j++) sums[so + j]! += feats[o + j]! * inv;
  }
  let total = 0;
  for (let c = 0; c < K; c++) {
    let s = 0;
    for (let j = 0; j < C; j++) s += sums[c * C + j]! * sums[c * C + j]!;
    total += Math.sqrt(s);
  }
  return 1 - total / n;
}
