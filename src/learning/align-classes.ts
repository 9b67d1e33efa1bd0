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
  /** oldIds[id] = the old class id that new class `id` carries on, or -1 for a class new in this round. */
  readonly oldIds: Int32Array;
  /** Mean score of the matched pairs (mean cosine, or mean overlap fraction). */
  readonly meanScore: number;
}

export interface CentroidAlignment extends Alignment {
  /** The new centroids re-ordered by `order`, [K'×D]. */
  readonly centroids: Float32Array;
}

/**
 * Completes a row->column matching of old ids (rows) to new indices (columns) into an order.
 * Matched new indices take ids in the order of the old ids they match, so with K' >= K every
 * old id is kept and the K' - K unmatched new indices take ids K.. in index order; with K' < K
 * (classes merged away, `-k auto`) the ids after a vanished one move down by one each.
 */
function orderFromMatch(match: Int32Array, kNew: number): { order: Int32Array; oldIds: Int32Array } {
  const order = new Int32Array(kNew).fill(-1);
  const oldIds = new Int32Array(kNew).fill(-1);
  const used = new Uint8Array(kNew);
  let id = 0;
  match.forEach((c, r) => {
    if (c < 0) return;
    order[id] = c;
    oldIds[id++] = r;
    used[c] = 1;
  });
  for (let c = 0; c < kNew; c++) if (!used[c]) order[id++] = c;
  return { order, oldIds };
}

/**
 * Permutes `newC` [K'×D] so that new centroid ids match old ids [K×D] by maximum total cosine
 * (Hungarian matching); with K' > K the extra new centroids take ids K..K'-1, with K' < K see
 * `orderFromMatch`. Centroids are taken as unit vectors.
 */
export function alignCentroids(oldC: Float32Array, newC: Float32Array, D: number): CentroidAlignment {
  if (!Number.isInteger(D) || D < 1) throw new BadOptionError('align D', 'positive integer', D);
  if (oldC.length % D !== 0) throw new BadOptionError('old centroids', `a multiple of ${D} values`, `length ${oldC.length}`);
  if (newC.length % D !== 0) throw new BadOptionError('new centroids', `a multiple of ${D} values`, `length ${newC.length}`);
  const K = oldC.length / D;
  const K2 = newC.length / D;
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
  match.forEach((c, r) => (total += c >= 0 ? sim[r]![c]! : 0));
  const { order, oldIds } = orderFromMatch(match, K2);
  const centroids = new Float32Array(K2 * D);
  order.forEach((src, id) => centroids.set(newC.subarray(src * D, (src + 1) * D), id * D));
  const matched = Math.min(K, K2);
  return { order, oldIds, centroids, meanScore: matched > 0 ? total / matched : 1 };
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
  const overlap: number[][] = Array.from({ length: K }, () => new Array<number>(K2).fill(0));
  for (let i = 0; i < oldLabels.length; i++) {
    const a = oldLabels[i]!;
    const b = newLabels[i]!;
    if (a >= 0 && a < K && b >= 0 && b < K2) overlap[a]![b]!++;
  }
  const match = hungarianMatch(overlap);
  let shared = 0;
  match.forEach((c, r) => (shared += c >= 0 ? overlap[r]![c]! : 0));
  return { ...orderFromMatch(match, K2), meanScore: oldLabels.length > 0 ? shared / oldLabels.length : 1 };
}
