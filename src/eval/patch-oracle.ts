import { BadOptionError } from '../errors.js';
import type { SegmentationHead } from '../backbone/segmenter.js';

/**
 * The patch oracle: what a perfect classifier of whole patches would give, as "patch tokens" for
 * the segmenter. Each patch's token is the one-hot of its true majority class (ties go to the
 * lower id), and `oracleHead` is the identity, so segmenting the tokens through a path (plain or
 * refined) scores the best any head reaches there on whole-patch decisions: a head is a function
 * of one patch's features and cannot place a boundary inside the patch itself (the refinement
 * does that for every head alike). Used by the quality test and scripts/learned-vs-kmeans.mjs to
 * say how much headroom a backbone leaves a learned head over k-means.
 *
 * `truth` is a [height, width] class-id map; height and width must be multiples of `patch`, and
 * ids at or above `classes` (void, 255) are not counted.
 */
export function patchOracleTokens(truth: Uint8Array, width: number, height: number, patch: number, classes: number): Float32Array {
  if (!Number.isInteger(patch) || patch < 1 || width % patch !== 0 || height % patch !== 0) {
    throw new BadOptionError('patch', `a size that divides ${width}x${height}`, patch);
  }
  if (truth.length !== width * height) throw new BadOptionError('truth', `${width}x${height} class ids`, `${truth.length} values`);
  const gridW = width / patch;
  const gridH = height / patch;
  const tokens = new Float32Array(gridW * gridH * classes);
  const counts = new Uint32Array(classes);
  for (let p = 0; p < gridW * gridH; p++) {
    counts.fill(0);
    const x0 = (p % gridW) * patch;
    const y0 = Math.floor(p / gridW) * patch;
    for (let y = y0; y < y0 + patch; y++) {
      for (let x = x0; x < x0 + patch; x++) {
        const id = truth[y * width + x] as number;
        if (id < classes) counts[id] = (counts[id] as number) + 1;
      }
    }
    let best = 0;
    for (let c = 1; c < classes; c++) if ((counts[c] as number) > (counts[best] as number)) best = c;
    tokens[p * classes + best] = 1;
  }
  return tokens;
}

/** The identity head over one-hot tokens of `classes` classes (raw-probe form: no weights). */
export function oracleHead(classes: number): SegmentationHead {
  const centroids = new Float32Array(classes * classes);
  for (let c = 0; c < classes; c++) centroids[c * classes + c] = 1;
  return { weights: null, centroids, k: classes };
}
