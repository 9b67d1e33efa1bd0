/**
 * STEGO's contrastive correlation loss and its exact gradient w.r.t. the head weights.
 *
 * For two sets of sampled points a (P rows) and b (Q rows) of one image pair:
 *   F_ij = cos(fa_i, fb_j)                      feature correlation, no gradient
 *   F'   = pointwise centring of F (below)
 *   S_ij = cos(code(fa_i), code(fb_j))          code correlation
 *   loss = -mean_ij( max(S_ij, 0) · (F'_ij - shift) )
 *
 * Pointwise centring follows the reference code (`ContrastiveCorrelationLoss.helper` in STEGO's
 * train_segmentation.py / modules.py, `cfg.pointwise`): on the batch tensor fd [B, h, w, i, j]
 *   old_mean = fd.mean(); fd -= fd.mean([3, 4]); fd = fd - fd.mean() + old_mean
 * i.e. every row (one point of image a against all points of image b) loses its own mean, and the
 * whole group is shifted back to the mean the un-centred correlations had over the batch. The
 * group is "all pairs of one kind in the minibatch"; for a single pair it is that pair.
 *
 * Backprop by hand: dL/dS through the clamp, through the two cosine normalisations
 * (d(x/|x|) = (I - u uᵀ)/|x|), then through both branches of the head (`headBackward`).
 */
import { BadOptionError } from '../errors.js';
import { gemmNN, gemmNT, gemmTN } from './gemm.js';
import { headBackward, headForwardCached, type HeadWeights } from './stego-head.js';

/** Same epsilon as torch.nn.functional.normalize in STEGO (`eps=1e-10`). */
const NORM_EPS = 1e-10;

/** Row-normalised copy of x [n×d] and the row norms (clamped to NORM_EPS). */
function normaliseRows(x: Float32Array, n: number, d: number): { unit: Float32Array; norms: Float32Array } {
  const unit = new Float32Array(n * d);
  const norms = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let s = 0;
    for (let j = 0; j < d; j++) s += x[o + j]! * x[o + j]!;
    const nrm = Math.max(Math.sqrt(s), NORM_EPS);
    norms[i] = nrm;
    const inv = 1 / nrm;
    for (let j = 0; j < d; j++) unit[o + j] = x[o + j]! * inv;
  }
  return { unit, norms };
}

/** out[P×Q] = ua·ubᵀ for row-normalised ua [P×d], ub [Q×d]. */
function gram(ua: Float32Array, P: number, ub: Float32Array, Q: number, d: number): Float32Array {
  const out = new Float32Array(P * Q);
  gemmNT(ua, ub, out, P, d, Q);
  return out;
}

/** F_ij = cos(fa_i, fb_j), [P×Q]: the feature correlation (no gradient flows through it). */
export function featureCorrelation(fa: Float32Array, P: number, fb: Float32Array, Q: number, C: number): Float32Array {
  const a = normaliseRows(fa, P, C).unit;
  const b = fa === fb && P === Q ? a : normaliseRows(fb, Q, C).unit;
  return gram(a, P, b, Q, C);
}

/**
 * STEGO pointwise centring of a group of correlation matrices (each [rows×cols]), in place:
 * subtract each row's mean, then move the group's mean back to what it was before centring.
 * Sums run in float64.
 */
export function pointwiseCentre(group: readonly Float32Array[], rows: number, cols: number): void {
  let total = 0;
  for (const f of group) for (let i = 0; i < rows * cols; i++) total += f[i]!;
  const count = group.length * rows * cols;
  if (count === 0) return;
  const oldMean = total / count;
  let centredTotal = 0;
  for (const f of group) {
    for (let i = 0; i < rows; i++) {
      const o = i * cols;
      let s = 0;
      for (let j = 0; j < cols; j++) s += f[o + j]!;
      const m = s / cols;
      for (let j = 0; j < cols; j++) {
        const v = f[o + j]! - m;
        f[o + j] = v;
        centredTotal += v;
      }
    }
  }
  // Analytically centredTotal is 0; the reference subtracts the computed mean anyway, so do we.
  const delta = oldMean - centredTotal / count;
  for (const f of group) for (let i = 0; i < rows * cols; i++) f[i]! += delta;
}

/** Result of the loss on codes of one pair. */
export interface CodePairLoss {
  /** -mean(max(S, 0)·(F' - shift)), unweighted. */
  readonly loss: number;
  /** mean(S): logged as STEGO's `cd/...`. */
  readonly meanS: number;
}

/**
 * The loss on the codes of one pair, given the centred feature correlation `fc` [P×Q]. Adds
 * `scale`·dL/dcode into dCodeA [P×D] and dCodeB [Q×D] (which may be the same buffer when
 * codeA === codeB: a self pair, both contributions add up, as in autograd).
 */
export function codePairLoss(
  codeA: Float32Array,
  P: number,
  codeB: Float32Array,
  Q: number,
  D: number,
  fc: Float32Array,
  shift: number,
  scale: number,
  dCodeA: Float32Array | null,
  dCodeB: Float32Array | null,
): CodePairLoss {
  const na = normaliseRows(codeA, P, D);
  const nb = codeA === codeB && P === Q ? na : normaliseRows(codeB, Q, D);
  const S = gram(na.unit, P, nb.unit, Q, D);
  const inv = 1 / (P * Q);
  let loss = 0;
  let sumS = 0;
  // G = dL/dS (times scale), reusing S's storage after reading it.
  const G = S;
  for (let i = 0; i < P * Q; i++) {
    const s = S[i]!;
    sumS += s;
    const w = fc[i]! - shift;
    // clamp(S, min=0): PyTorch passes the gradient where S >= 0.
    if (s > 0) loss -= s * w;
    G[i] = s >= 0 ? -w * inv * scale : 0;
  }
  loss *= inv;
  const meanS = sumS * inv;
  if (dCodeA === null && dCodeB === null) return { loss, meanS };
  // dL/du = G·V ; dL/dv = Gᵀ·U
  const du = new Float32Array(P * D);
  const dv = new Float32Array(Q * D);
  if (dCodeA !== null) gemmNN(G, nb.unit, du, P, Q, D);
  if (dCodeB !== null) gemmTN(G, na.unit, dv, P, Q, D);
  if (dCodeA !== null) backNormalise(du, na.unit, na.norms, P, D, dCodeA);
  if (dCodeB !== null) backNormalise(dv, nb.unit, nb.norms, Q, D, dCodeB);
  return { loss, meanS };
}

/** dx_i += (du_i - (du_i·u_i)·u_i) / |x_i|: the Jacobian of x/|x| applied to du. */
function backNormalise(du: Float32Array, unit: Float32Array, norms: Float32Array, n: number, d: number, dx: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let dot = 0;
    for (let k = 0; k < d; k++) dot += du[o + k]! * unit[o + k]!;
    const nrm = norms[i]!;
    // Below eps, normalize divides by the constant eps: no projection term.
    if (nrm <= NORM_EPS) {
      for (let k = 0; k < d; k++) dx[o + k]! += du[o + k]! / nrm;
      continue;
    }
    const inv = 1 / nrm;
    for (let k = 0; k < d; k++) dx[o + k]! += (du[o + k]! - dot * unit[o + k]!) * inv;
  }
}

export interface PairLossOptions {
  /** Subtracted from the centred feature correlation (STEGO `*_shift`). */
  readonly shift: number;
  /** Pointwise centring of F (STEGO `pointwise`); default true. */
  readonly pointwise?: boolean;
  /** Multiplies the loss and its gradient (pair-kind weight / images in the batch); default 1. */
  readonly weight?: number;
}

function checkRows(name: string, x: Float32Array, rows: number, C: number): void {
  if (x.length < rows * C) throw new BadOptionError(name, `a Float32Array of at least ${rows}×${C} values`, `length ${x.length}`);
}

/**
 * The loss of one image pair: `fa` and `fb` are P sampled feature rows each ([P×C]); pass the
 * same array twice for a self pair (same points on both sides, as in the reference). Returns the
 * weighted loss and, when `grads` is given, adds the weighted gradient into it.
 */
export function correlationLoss(
  head: HeadWeights,
  fa: Float32Array,
  fb: Float32Array,
  P: number,
  opts: PairLossOptions,
  grads?: HeadWeights,
): number {
  const C = head.inDim;
  const D = head.codeDim;
  checkRows('fa', fa, P, C);
  checkRows('fb', fb, P, C);
  const weight = opts.weight ?? 1;
  const F = featureCorrelation(fa, P, fb, P, C);
  if (opts.pointwise ?? true) pointwiseCentre([F], P, P);
  const self = fa === fb;
  const a = headForwardCached(head, fa, P);
  const b = self ? a : headForwardCached(head, fb, P);
  const dA = grads ? new Float32Array(P * D) : null;
  const dB = grads ? (self ? dA : new Float32Array(P * D)) : null;
  const { loss } = codePairLoss(a.code, P, b.code, P, D, F, opts.shift, weight, dA, dB);
  if (grads && dA && dB) {
    headBackward(head, fa, P, a.cache, dA, grads);
    if (!self) headBackward(head, fb, P, b.cache, dB, grads);
  }
  return loss * weight;
}

/** Weight and shift for each of the three pair kinds (DESIGN.md defaults from STEGO's config). */
export interface PairKinds<T> {
  readonly self: T;
  readonly knn: T;
  readonly random: T;
}

export const DEFAULT_PAIR_WEIGHTS: PairKinds<number> = Object.freeze({ random: 0.63, knn: 0.25, self: 0.67 });
/**
 * STEGO's fixed shifts (tuned for DINO features on COCO-Stuff), the default. `shiftQuantile`
 * (train-round.ts) sets them from the feature correlations instead.
 */
export const DEFAULT_PAIR_SHIFTS: PairKinds<number> = Object.freeze({ random: 0.46, knn: 0.12, self: 0.18 });

export interface StegoLossConfig {
  readonly weights: PairKinds<number>;
  readonly shifts: PairKinds<number>;
  readonly pointwise: boolean;
}

/**
 * One minibatch: B anchor images with P sampled points each, the same for one k-nearest
 * neighbour of each, and `randomRounds` rounds of one random other image each. Row-major
 * [B·P×C] (anchors, knn) and [randomRounds·B·P×C] (random).
 */
export interface StegoBatch {
  readonly images: number;
  readonly points: number;
  readonly anchors: Float32Array;
  readonly knn: Float32Array;
  readonly random: Float32Array;
  readonly randomRounds: number;
}

export interface StegoLossResult {
  /** Weighted total: w_self·L_self + w_knn·L_knn + w_random·L_random. */
  readonly loss: number;
  /** Unweighted mean loss per pair kind. */
  readonly parts: PairKinds<number>;
  /** Mean code correlation per pair kind. */
  readonly meanS: PairKinds<number>;
}

/**
 * Feature correlations of one centring group (the anchors paired with rows of `other`), centred
 * pointwise when asked: exactly the F' the loss compares with the shift.
 */
function groupCorrelations(
  batch: StegoBatch,
  C: number,
  pairs: ReadonlyArray<{ a: number; other: Float32Array; otherIdx: number }>,
  pointwise: boolean,
): Float32Array[] {
  const P = batch.points;
  const rowsOf = (x: Float32Array, img: number): Float32Array => x.subarray(img * P * C, (img + 1) * P * C);
  const Fs = pairs.map((p) => featureCorrelation(rowsOf(batch.anchors, p.a), P, rowsOf(p.other, p.otherIdx), P, C));
  if (pointwise) pointwiseCentre(Fs, P, P);
  return Fs;
}

/**
 * The centred feature correlations F' of every pair of a minibatch, per pair kind, grouped as
 * `stegoLoss` groups them (for setting shifts from the data, `train-round.ts`).
 */
export function batchCorrelations(batch: StegoBatch, C: number, pointwise: boolean): PairKinds<Float32Array[]> {
  const imgs = Array.from({ length: batch.images }, (_, a) => a);
  const random: Float32Array[] = [];
  for (let r = 0; r < batch.randomRounds; r++) {
    random.push(
      ...groupCorrelations(
        batch,
        C,
        imgs.map((a) => ({ a, other: batch.random, otherIdx: r * batch.images + a })),
        pointwise,
      ),
    );
  }
  return {
    self: groupCorrelations(
      batch,
      C,
      imgs.map((a) => ({ a, other: batch.anchors, otherIdx: a })),
      pointwise,
    ),
    knn: groupCorrelations(
      batch,
      C,
      imgs.map((a) => ({ a, other: batch.knn, otherIdx: a })),
      pointwise,
    ),
    random,
  };
}

/**
 * The full STEGO objective on a minibatch, as the reference computes it: the anchor's codes are
 * shared by its self, knn and random pairs; each kind's loss is the mean over its pairs (and
 * random rounds); centring groups are per kind (per round for random). Adds the gradient into
 * `grads` when given.
 */
export function stegoLoss(head: HeadWeights, batch: StegoBatch, cfg: StegoLossConfig, grads?: HeadWeights): StegoLossResult {
  const C = head.inDim;
  const D = head.codeDim;
  const B = batch.images;
  const P = batch.points;
  const R = batch.randomRounds;
  checkRows('batch.anchors', batch.anchors, B * P, C);
  checkRows('batch.knn', batch.knn, B * P, C);
  checkRows('batch.random', batch.random, R * B * P, C);
  const codesOf = (x: Float32Array, img: number): Float32Array => x.subarray(img * P * D, (img + 1) * P * D);

  const anc = headForwardCached(head, batch.anchors, B * P);
  const knn = headForwardCached(head, batch.knn, B * P);
  const rnd = headForwardCached(head, batch.random, R * B * P);
  const want = grads !== undefined;
  const dAnc = want ? new Float32Array(B * P * D) : null;
  const dKnn = want ? new Float32Array(B * P * D) : null;
  const dRnd = want ? new Float32Array(R * B * P * D) : null;

  const run = (
    kind: keyof PairKinds<number>,
    pairs: Array<{ a: number; other: Float32Array; otherCode: Float32Array; dOther: Float32Array | null; otherIdx: number }>,
    scale: number,
  ): { loss: number; meanS: number } => {
    const Fs = groupCorrelations(batch, C, pairs, cfg.pointwise);
    let loss = 0;
    let meanS = 0;
    pairs.forEach((p, idx) => {
      const dA = dAnc ? codesOf(dAnc, p.a) : null;
      const dB = p.dOther ? codesOf(p.dOther, p.otherIdx) : null;
      const r = codePairLoss(codesOf(anc.code, p.a), P, codesOf(p.otherCode, p.otherIdx), P, D, Fs[idx]!, cfg.shifts[kind], scale, dA, dB);
      loss += r.loss;
      meanS += r.meanS;
    });
    return { loss: loss / pairs.length, meanS: meanS / pairs.length };
  };

  const imgs = Array.from({ length: B }, (_, i) => i);
  // Self pair: the anchor against itself (same points), gradient through both sides.
  const self = run(
    'self',
    imgs.map((a) => ({ a, other: batch.anchors, otherCode: anc.code, dOther: dAnc, otherIdx: a })),
    cfg.weights.self / B,
  );
  const knnRes = run(
    'knn',
    imgs.map((a) => ({ a, other: batch.knn, otherCode: knn.code, dOther: dKnn, otherIdx: a })),
    cfg.weights.knn / B,
  );
  let randLoss = 0;
  let randS = 0;
  for (let r = 0; r < R; r++) {
    const res = run(
      'random',
      imgs.map((a) => ({ a, other: batch.random, otherCode: rnd.code, dOther: dRnd, otherIdx: r * B + a })),
      cfg.weights.random / (B * R),
    );
    randLoss += res.loss / R;
    randS += res.meanS / R;
  }

  if (grads && dAnc && dKnn && dRnd) {
    headBackward(head, batch.anchors, B * P, anc.cache, dAnc, grads);
    headBackward(head, batch.knn, B * P, knn.cache, dKnn, grads);
    headBackward(head, batch.random, R * B * P, rnd.cache, dRnd, grads);
  }
  const parts = { self: self.loss, knn: knnRes.loss, random: randLoss };
  return {
    loss: cfg.weights.self * parts.self + cfg.weights.knn * parts.knn + cfg.weights.random * parts.random,
    parts,
    meanS: { self: self.meanS, knn: knnRes.meanS, random: randS },
  };
}
