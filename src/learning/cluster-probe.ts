/**
 * The cluster probe (DESIGN.md "The algorithm"): each point takes the class of its most similar
 * centroid by cosine. Typed-array reference implementation; the ONNX graph does the same for
 * whole frames.
 */
import { BadOptionError } from '../errors.js';
import { gemmNT } from './gemm.js';
import { centroidDim, type HeadState } from './head-state.js';
import { headForward } from './stego-head.js';

/**
 * Class of each of n codes [n×D] against K unit centroids [K×D]: argmax of the dot product,
 * which is the argmax of the cosine since the centroids are unit and a row's norm is common to
 * all its scores. Ties go to the lower id; all-zero codes get class 0.
 */
export function assignCodes(codes: Float32Array, n: number, D: number, centroids: Float32Array, K: number): Int32Array {
  if (codes.length < n * D) throw new BadOptionError('codes', `a Float32Array of at least ${n}×${D} values`, `length ${codes.length}`);
  if (centroids.length < K * D) {
    throw new BadOptionError('centroids', `a Float32Array of at least ${K}×${D} values`, `length ${centroids.length}`);
  }
  const out = new Int32Array(n);
  const block = Math.max(1, Math.min(n, 1024));
  const scores = new Float32Array(block * K);
  for (let start = 0; start < n; start += block) {
    const rows = Math.min(block, n - start);
    const s = scores.subarray(0, rows * K);
    s.fill(0);
    gemmNT(codes.subarray(start * D, (start + rows) * D), centroids, s, rows, D, K);
    for (let r = 0; r < rows; r++) {
      let best = 0;
      let bestS = -Infinity;
      for (let k = 0; k < K; k++) {
        const v = s[r * K + k]!;
        if (v > bestS) {
          bestS = v;
          best = k;
        }
      }
      out[start + r] = best;
    }
  }
  return out;
}

/** Codes of n feature rows [n×C] under a state: the head's codes, or the features themselves for the raw probe. */
export function stateCodes(state: HeadState, feats: Float32Array, n: number): Float32Array {
  return state.weights ? headForward(state.weights, feats, n) : feats.subarray(0, n * state.backbone.dim);
}

/** Class ids of n feature rows [n×C] under a state. */
export function classifyFeatures(state: HeadState, feats: Float32Array, n: number): Int32Array {
  return assignCodes(stateCodes(state, feats, n), n, centroidDim(state), state.centroids, state.k);
}
