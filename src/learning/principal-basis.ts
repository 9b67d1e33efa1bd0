/**
 * The top-D principal directions of feature rows (eigenvectors of the uncentred second moment
 * XᵀX/n, the right basis for cosine geometry), by subspace iteration. The online learner starts
 * the head's linear branch on this basis instead of a random projection: codes then keep as
 * much of the features' similarity structure as D dimensions can, and the first trained round
 * does not start below the raw-feature probe.
 *
 * Hand-written: a few dozen lines around gemm.ts; no maintained npm package does partial
 * eigendecomposition on typed arrays without pulling in a whole linear-algebra runtime.
 */
import { BadOptionError } from '../errors.js';
import { Rng } from './rng.js';
import { gemmNN, gemmTN } from './gemm.js';

/** Orthonormalises the columns of q [rows×cols] in place (modified Gram-Schmidt, float64). */
function orthonormalise(q: Float64Array, rows: number, cols: number, rng: Rng): void {
  for (let j = 0; j < cols; j++) {
    for (let attempt = 0; ; attempt++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let r = 0; r < rows; r++) dot += q[r * cols + j]! * q[r * cols + p]!;
        for (let r = 0; r < rows; r++) q[r * cols + j]! -= dot * q[r * cols + p]!;
      }
      let nrm = 0;
      for (let r = 0; r < rows; r++) nrm += q[r * cols + j]! ** 2;
      nrm = Math.sqrt(nrm);
      if (nrm > 1e-12 || attempt > 3) {
        const inv = nrm > 0 ? 1 / nrm : 0;
        for (let r = 0; r < rows; r++) q[r * cols + j]! *= inv;
        break;
      }
      // Rank-deficient data: replace the column with a random one and try again.
      for (let r = 0; r < rows; r++) q[r * cols + j] = rng.gaussian();
    }
  }
}

/**
 * Returns [C×D] (row-major, orthonormal columns, strongest direction first) spanning the top-D
 * principal subspace of n rows of `data` [n×C], each row first L2-normalised (cosine geometry).
 * D <= C. Deterministic for a seed.
 */
export function principalBasis(data: Float32Array, n: number, C: number, D: number, opts: { seed: number; iters?: number }): Float32Array {
  if (!Number.isInteger(D) || D < 1 || D > C) throw new BadOptionError('principal basis D', `integer in [1, ${C}]`, D);
  if (!Number.isInteger(n) || n < 1) throw new BadOptionError('principal basis n', 'positive integer', n);
  if (data.length < n * C)
    throw new BadOptionError('principal basis data', `a Float32Array of at least ${n}×${C} values`, `length ${data.length}`);
  // M = Σ u uᵀ over unit rows u (the 1/n changes no eigenvector), as one aᵀ·a product: at ViT
  // widths this is the costly part (n·C² multiply-adds), which gemm.ts runs at its fastest
  // (in ONNX Runtime in the learner thread). Float32 sums: the basis only starts the head.
  const U = new Float32Array(n * C);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += data[i * C + c]! ** 2;
    if (s === 0) continue;
    const inv = 1 / Math.sqrt(s);
    for (let c = 0; c < C; c++) U[i * C + c] = data[i * C + c]! * inv;
  }
  const M32 = new Float32Array(C * C);
  gemmTN(U, U, M32, n, C, C);
  const M = Float64Array.from(M32);

  const rng = new Rng(opts.seed);
  let q = new Float64Array(C * D);
  for (let i = 0; i < q.length; i++) q[i] = rng.gaussian();
  orthonormalise(q, C, D, rng);
  const iters = opts.iters ?? 30;
  const q32 = new Float32Array(C * D);
  for (let it = 0; it < iters; it++) {
    // z = M q, then back to float64 for the orthonormalisation.
    for (let i = 0; i < q.length; i++) q32[i] = q[i]!;
    const z32 = new Float32Array(C * D);
    gemmNN(M32, q32, z32, C, C, D);
    const z = Float64Array.from(z32);
    orthonormalise(z, C, D, rng);
    q = z;
  }
  // Rayleigh-Ritz: sort the basis by captured energy so column 0 is the strongest direction.
  const energy = new Float64Array(D);
  for (let j = 0; j < D; j++) {
    let e = 0;
    for (let a = 0; a < C; a++) {
      let mq = 0;
      for (let b = 0; b < C; b++) mq += M[a * C + b]! * q[b * D + j]!;
      e += q[a * D + j]! * mq;
    }
    energy[j] = e;
  }
  const order = Array.from({ length: D }, (_, j) => j).sort((x, y) => energy[y]! - energy[x]!);
  const out = new Float32Array(C * D);
  for (let a = 0; a < C; a++) order.forEach((src, j) => (out[a * D + j] = q[a * D + src]!));
  return out;
}
