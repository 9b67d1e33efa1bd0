/**
 * The top-D principal directions of feature rows (eigenvectors of the uncentred second moment
 * XᵀX/n, the right basis for cosine geometry), by subspace iteration. The online learner starts
 * the head's linear branch on this basis instead of a random projection: codes then keep as
 * much of the features' similarity structure as D dimensions can, and the first trained round
 * does not start below the raw-feature probe.
 *
 * Hand-written: a few dozen lines of float64 loops; no maintained npm package does partial
 * eigendecomposition on typed arrays without pulling in a whole linear-algebra runtime.
 */
import { BadOptionError } from '../errors.js';
import { Rng } from './rng.js';

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
  // M = Σ u uᵀ / n over unit rows u; symmetric, filled on the upper triangle then mirrored.
  const M = new Float64Array(C * C);
  const u = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < C; c++) {
      u[c] = data[i * C + c]!;
      s += u[c]! ** 2;
    }
    if (s === 0) continue;
    const inv = 1 / Math.sqrt(s);
    for (let c = 0; c < C; c++) u[c]! *= inv;
    for (let a = 0; a < C; a++) {
      const ua = u[a]!;
      if (ua === 0) continue;
      const o = a * C;
      for (let b = a; b < C; b++) M[o + b]! += ua * u[b]!;
    }
  }
  for (let a = 0; a < C; a++) for (let b = 0; b < a; b++) M[a * C + b] = M[b * C + a]!;

  const rng = new Rng(opts.seed);
  let q = new Float64Array(C * D);
  for (let i = 0; i < q.length; i++) q[i] = rng.gaussian();
  orthonormalise(q, C, D, rng);
  const iters = opts.iters ?? 30;
  for (let it = 0; it < iters; it++) {
    // z = M q  (i-k-j)
    const z = new Float64Array(C * D);
    for (let a = 0; a < C; a++) {
      const zo = a * D;
      for (let b = 0; b < C; b++) {
        const m = M[a * C + b]!;
        if (m === 0) continue;
        const qo = b * D;
        for (let j = 0; j < D; j++) z[zo + j]! += m * q[qo + j]!;
      }
    }
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
