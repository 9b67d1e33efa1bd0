/**
 * One online training round (DESIGN.md "Online learning"): a budgeted number of Adam steps on
 * minibatches drawn from the feature bank, each step the full STEGO objective (`stegoLoss`):
 * every anchor image paired with itself, with one of its k nearest neighbours (descriptor
 * cosine) and with random other images, 11×11 = 121 points sampled per image from the points
 * the bank stored for that frame.
 *
 * The round trains a clone: the head passed in (the one serving inference) is never modified,
 * so the caller can swap the returned head in atomically. Seeded: same bank, head, optimiser
 * state and seed give the same result.
 */
import { BadOptionError } from '../errors.js';
import { Adam, DEFAULT_LR } from './adam.js';
import {
  batchCorrelations,
  DEFAULT_PAIR_SHIFTS,
  DEFAULT_PAIR_WEIGHTS,
  stegoLoss,
  type PairKinds,
  type StegoBatch,
} from './correlation-loss.js';
import type { FeatureBank } from './feature-bank.js';
import { Rng } from './rng.js';
import { cloneHead, headTensors, zeroHead, type HeadWeights } from './stego-head.js';

export interface TrainRoundOptions {
  /** Adam steps in the round; default 50. */
  readonly steps?: number;
  /** Anchor images per minibatch; default 8 (fewer when the bank holds fewer frames). */
  readonly batchImages?: number;
  /** Points sampled per image; default 121 (STEGO's 11×11 `feature_samples`). */
  readonly pointsPerImage?: number;
  /** Neighbours to pick the knn partner from; default 7 (STEGO's `num_neighbors`). */
  readonly knnK?: number;
  /** Random partners per anchor; default 1 (the reference uses `neg_samples` = 5). */
  readonly randomPairs?: number;
  /** Pair-kind weights; defaults (random, knn, self) = (0.63, 0.25, 0.67). */
  readonly weights?: Partial<PairKinds<number>>;
  /** Fixed pair-kind shifts; kinds left out take `shiftQuantile`'s shift, or STEGO's (0.46, 0.12, 0.18) without it. */
  readonly shifts?: Partial<PairKinds<number>>;
  /**
   * When given, the shift of every kind `shifts` does not fix is this quantile of the centred
   * feature correlations F' of pairs drawn from the bank at the start of the round (all kinds
   * pooled): a pair attracts when its features are among the (1 - q) most correlated pairs the
   * loss sees, and repels otherwise. See `SHIFT_QUANTILE_NOTES`. Default: not used.
   */
  readonly shiftQuantile?: number;
  /** Pointwise centring of the feature correlation; default true. */
  readonly pointwise?: boolean;
  /** Learning rate when no optimiser is passed; default 5e-4. */
  readonly lr?: number;
  /** Seed of the round's sampling. */
  readonly seed: number;
  /** Optimiser to continue (its moments carry over between rounds); a fresh one when omitted. */
  readonly optimizer?: Adam;
  /** Called after every step (the learner's duty-cycle limiter pauses the thread there). */
  readonly pace?: () => void;
}

export interface TrainRoundStats {
  readonly steps: number;
  /** Weighted loss of the first and last step, and the mean over the round. */
  readonly firstLoss: number;
  readonly lastLoss: number;
  readonly meanLoss: number;
  /** Mean unweighted loss per pair kind over the round. */
  readonly parts: PairKinds<number>;
  /** The shifts the round used (fixed, or measured on the bank). */
  readonly shifts: PairKinds<number>;
  /** Wall time of the round, ms. */
  readonly ms: number;
}

export const DEFAULT_TRAIN_STEPS = 50;
export const DEFAULT_BATCH_IMAGES = 8;
export const DEFAULT_POINTS_PER_IMAGE = 121;
export const DEFAULT_KNN_K = 7;

/**
 * SHIFT_QUANTILE_NOTES. STEGO's loss, -max(S, 0)·(F' - shift), pulls a pair's codes together
 * when its feature correlation F' is above the shift and pushes them apart below it, so the
 * shift decides which pairs count as "the same thing". STEGO's constants were tuned to where
 * DINO's correlations lie, and backbones differ wildly there; a quantile is scale-free. What
 * it should be depends on whether the raw cosine geometry already separates the classes:
 * - built-in backbone v1 (53 dims, colour-dominated; random-pair F quantiles 5/50/95%: -0.8,
 *   0.1, 0.99), hard scenes where sand and coral share a colour: raw k-means 0.56 mIoU, STEGO's
 *   shifts 0.44, q = 0.8 or 0.85 0.70 (+0.14, 5 seeds; +0.09 on easy scenes), q = 0.7 +0.07;
 * - built-in backbone v2 (6 dims with a large constant channel, F in [0.74, 1]; raw k-means
 *   0.76, within 0.07 of what a perfect patch classifier scores at pixel level): q = 0.8
 *   -0.005 after 60 + 10 steps and -0.09 after 460; STEGO's shifts (no pair ever repels there)
 *   +0.01 after 70 steps.
 * Hence opt-in. Unknown for DINO: measure before making it a default there.
 */
/** Minibatches sampled to measure the correlation quantile (about 0.7 M values). */
const SHIFT_CALIBRATION_BATCHES = 2;

function intAtLeast(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new BadOptionError(name, `integer >= ${min}`, v);
  return v;
}

/** Copies P points of a bank slot into `out` at row offset `row`: without replacement when it can. */
function samplePoints(bank: FeatureBank, slot: number, P: number, out: Float32Array, row: number, rng: Rng): void {
  const C = bank.dim;
  const pts = bank.points(slot);
  const m = bank.pointCount(slot);
  if (m >= P) {
    // Partial Fisher-Yates over the slot's m points.
    const order = new Uint32Array(m);
    for (let i = 0; i < m; i++) order[i] = i;
    for (let i = 0; i < P; i++) {
      const j = i + rng.int(m - i);
      const t = order[j]!;
      order[j] = order[i]!;
      order[i] = t;
      out.set(pts.subarray(t * C, (t + 1) * C), (row + i) * C);
    }
  } else {
    for (let i = 0; i < P; i++) {
      const t = rng.int(m);
      out.set(pts.subarray(t * C, (t + 1) * C), (row + i) * C);
    }
  }
}

/**
 * Runs `steps` Adam steps on a clone of `head` and returns it with the round's statistics.
 * Throws BadOptionError when the bank holds fewer than 2 frames or the head's input dimension is
 * not the bank's.
 */
export function trainRound(head: HeadWeights, bank: FeatureBank, opts: TrainRoundOptions): { head: HeadWeights; stats: TrainRoundStats } {
  const t0 = performance.now();
  if (head.inDim !== bank.dim) throw new BadOptionError('head inDim', `${bank.dim} (the bank's dim)`, head.inDim);
  if (bank.size < 2) throw new BadOptionError('bank size for training', 'at least 2 frames', bank.size);
  const steps = intAtLeast('train.steps', opts.steps ?? DEFAULT_TRAIN_STEPS, 0);
  const B = Math.min(intAtLeast('train.batchImages', opts.batchImages ?? DEFAULT_BATCH_IMAGES, 1), bank.size);
  const P = intAtLeast('train.pointsPerImage', opts.pointsPerImage ?? DEFAULT_POINTS_PER_IMAGE, 1);
  const K = intAtLeast('train.knnK', opts.knnK ?? DEFAULT_KNN_K, 1);
  const R = intAtLeast('train.randomPairs', opts.randomPairs ?? 1, 1);
  const q = opts.shiftQuantile;
  if (q !== undefined && !(q >= 0 && q <= 1)) throw new BadOptionError('train.shiftQuantile', 'a number in [0, 1]', q);
  const pointwise = opts.pointwise ?? true;
  const rng = new Rng(opts.seed);
  const next = cloneHead(head);
  const params = headTensors(next);
  const adam =
    opts.optimizer ??
    new Adam(
      params.map((p) => p.length),
      { lr: opts.lr ?? DEFAULT_LR },
    );
  const grads = zeroHead(next.inDim, next.codeDim);
  const gradList = headTensors(grads);

  // The bank does not change during a round: neighbour lists are computed once, lazily.
  const knnCache = new Map<number, number[]>();
  const neighbours = (slot: number): number[] => {
    let nb = knnCache.get(slot);
    if (!nb) {
      nb = bank.knn(slot, K);
      knnCache.set(slot, nb);
    }
    return nb;
  };

  const C = bank.dim;
  const batch: StegoBatch = {
    images: B,
    points: P,
    randomRounds: R,
    anchors: new Float32Array(B * P * C),
    knn: new Float32Array(B * P * C),
    random: new Float32Array(R * B * P * C),
  };
  const slots = new Uint32Array(bank.size);
  const anchorSlots = new Uint32Array(B);
  /** Draws the next minibatch into `batch`. */
  const fillBatch = (): void => {
    // B distinct anchors.
    for (let i = 0; i < slots.length; i++) slots[i] = i;
    for (let i = 0; i < B; i++) {
      const j = i + rng.int(slots.length - i);
      const t = slots[j]!;
      slots[j] = slots[i]!;
      slots[i] = t;
      anchorSlots[i] = t;
    }
    for (let i = 0; i < B; i++) {
      const a = anchorSlots[i]!;
      samplePoints(bank, a, P, batch.anchors, i * P, rng);
      const nb = neighbours(a);
      const k = nb[rng.int(nb.length)]!;
      samplePoints(bank, k, P, batch.knn, i * P, rng);
      for (let r = 0; r < R; r++) {
        // Any other stored frame, uniformly.
        let o = rng.int(bank.size - 1);
        if (o >= a) o++;
        samplePoints(bank, o, P, batch.random, (r * B + i) * P, rng);
      }
    }
  };

  const fixed = { ...DEFAULT_PAIR_SHIFTS, ...opts.shifts };
  let shifts: PairKinds<number> = fixed;
  if (q !== undefined && (['self', 'knn', 'random'] as const).some((k) => opts.shifts?.[k] === undefined)) {
    // Drawn with the round's generator before the steps: same seed, same shifts and batches.
    const measured = correlationQuantile(SHIFT_CALIBRATION_BATCHES, fillBatch, batch, C, pointwise, q);
    shifts = {
      self: opts.shifts?.self ?? measured,
      knn: opts.shifts?.knn ?? measured,
      random: opts.shifts?.random ?? measured,
    };
  }
  const cfg = { weights: { ...DEFAULT_PAIR_WEIGHTS, ...opts.weights }, shifts, pointwise };

  let first = Number.NaN;
  let last = Number.NaN;
  let sum = 0;
  const parts = { self: 0, knn: 0, random: 0 };
  for (let s = 0; s < steps; s++) {
    fillBatch();
    for (const g of gradList) g.fill(0);
    const res = stegoLoss(next, batch, cfg, grads);
    adam.step(params, gradList);
    opts.pace?.();
    if (s === 0) first = res.loss;
    last = res.loss;
    sum += res.loss;
    parts.self += res.parts.self / steps;
    parts.knn += res.parts.knn / steps;
    parts.random += res.parts.random / steps;
  }
  return {
    head: next,
    stats: {
      steps,
      firstLoss: first,
      lastLoss: last,
      meanLoss: steps > 0 ? sum / steps : Number.NaN,
      parts,
      shifts,
      ms: performance.now() - t0,
    },
  };
}

/**
 * The q-quantile of the centred feature correlations F' over `batches` minibatches drawn by
 * `fill`, all pair kinds pooled (one threshold for every kind: a pair of unrelated frames then
 * repels more often than a frame with itself exactly when its features say so).
 */
function correlationQuantile(batches: number, fill: () => void, batch: StegoBatch, C: number, pointwise: boolean, q: number): number {
  const groups: Float32Array[] = [];
  for (let b = 0; b < batches; b++) {
    fill();
    const f = batchCorrelations(batch, C, pointwise);
    groups.push(...f.self, ...f.knn, ...f.random);
  }
  let n = 0;
  for (const g of groups) n += g.length;
  const all = new Float32Array(n);
  let o = 0;
  for (const g of groups) {
    all.set(g, o);
    o += g.length;
  }
  all.sort();
  return all[Math.min(n - 1, Math.floor(q * n))]!;
}
