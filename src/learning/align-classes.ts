/**
 * Keeps class ids stable when a training round re-fits the centroids (DESIGN.md "Online
 * learning"): the new centroids are re-ordered so that each takes the id of the old centroid it
 * matches best, so ids, colours and user-given names carry over.
 */
import { BadOptionError } from '../errors.js';
import { hungarianMatch } from './hungarian-match.js';

export interface Alignment {
  /** order[id] = index of the new centroid (or new cluster) that takes class `id`. */
  readonly order: Int32Array;
  /** Mean score of the matched pairs (mean cosine, or mean overlap fraction). */
  readonly meanScore: number;
}

export interface CentroidAlignment extends Alignment {
  /** The new centroids re-ordered by `order`, [K'×D]. */
  readonly centroids: Float32Array;
}

/**
 * Completes a row->column matching of old ids (rows) to new indices (columns) into an order:
 * matched new indices take the old ids, the K' - K unmatched ones take ids K.. in index order.
 */
function orderFromMatch(match: Int32Array, kNew: number): Int32Array {
  const order = new Int32Array(kNew).fill(-1);
  const used = new Uint8Array(kNew);
  match.forEach((c, r) => {
    order[r] = c;
    used[c] = 1;
  });
  let id = match.length;
  for (let c = 0; c < kNew; c++) if (!used[c]) order[id++] = c;
  return order;
}

/**
 * Permutes `newC` [K'×D] so that new centroid ids match old ids [K×D] by maximum total cosine
 * (Hungarian matching); K' >= K, the extra new centroids take ids K..K'-1. Centroids are taken
 * as unit vectors.
 */
export function alignCentroids(oldC: Float32Array, newC: Float32Array, D: number): CentroidAlignment {
  if (!Number.isInteger(D) || D < 1) throw new BadOptionError('align D', 'positive integer', D);
  if (oldC.length % D !== 0) throw new BadOptionError('old centroids', `a multiple of ${D} values`, `length ${oldC.length}`);
  if (newC.length % D !== 0) throw new BadOptionError('new centroids', `a multiple of ${D} values`, `length ${newC.length}`);
  const K = oldC.length / D;
  const K2 = newC.length / D;
  if (K2 < K) throw new BadOptionError('new centroid count', `at least the old count (${K})`, K2);
  const sim: number[][] = [];
  for (let i = 0; i < K; i++) {
    const row = new Array<number>(K2);
    for (let j = 0; j < K2; j++) {
      let s = 0;
      for (let t = 0; t < D; t++) s += oldC[i * D + t]! * newC[j * D + t]!;
      row[j] = s;
    }
    sim.push(row);
  }
  const match = hungarianMatch(sim);
  let total = 0;
  match.forEach((c, r) => (total += sim[r]![c]!));
  const order = orderFromMatch(match, K2);
  const centroids = new Float32Array(K2 * D);
  order.forEach((src, id) => centroids.set(newC.subarray(src * D, (src + 1) * D), id * D));
  return { order, centroids, meanScore: K > 0 ? total / K : 1 };
}

/**
 * The same for two labelings of the same points that live in different spaces (e.g. the raw
 * feature probe and the first trained head): old ids are matched to new clusters by the number
 * of points they share.
 */
export function alignByAssignments(oldLabels: Int32Array, K: number, newLabels: Int32Array, K2: number): Alignment {
  if (oldLabels.length !== newLabels.length) {
    throw new BadOptionError('new labels', `${oldLabels.length} labels (as many as the old)`, newLabels.length);
  }
  if (K2 < K) throw new BadOptionError('new cluster count', `at least the old count (${K})`, K2);
  const overlap: number[][] = Array.from({ length: K }, () => new Array<number>(K2).fill(0));
  for (let i = 0; i < oldLabels.length; i++) {
    const a = oldLabels[i]!;
    const b = newLabels[i]!;
    if (a >= 0 && a < K && b >= 0 && b < K2) overlap[a]![b]!++;
  }
  const match = hungarianMatch(overlap);
  let shared = 0;
  match.forEach((c, r) => (shared += overlap[r]![c]!));
  return { order: orderFromMatch(match, K2), meanScore: oldLabels.length > 0 ? shared / oldLabels.length : 1 };
}
