/**
 * The online learner the pipeline drives (DESIGN.md "Online learning"), synchronous and
 * single-threaded: `observe` feeds frames to the feature bank, `shouldTrain` says when a round
 * is due, `runRound` trains the head on the bank, re-fits the centroids on codes of bank points,
 * aligns the new class ids to the old ones and returns the new state with its version bumped.
 *
 * The first round, before any head exists, is the "raw probe": centroids fitted by spherical
 * k-means directly on backbone features (weights null), so segmentation can start after a short
 * warm-up. Every later round trains the head (a fresh seeded one the first time).
 *
 * Two safeguards keep long runs from drifting (measured on generated scenes: with STEGO's
 * constant rate and the built-in backbone, hard scenes peaked after about 460 steps and then
 * merged coral into sand; easy scenes fell from 0.77 to 0.35-0.42 mIoU by 860 steps):
 * - the learning rate decays with the steps trained (`train.lrDecaySteps`), so however long the
 *   stream runs the head moves about as far as that many full-rate steps would move it;
 * - a round's head is kept only while its partition of the bank still fits the backbone's own
 *   geometry (`train.maxDispersionRatio`, see partition-dispersion.ts); otherwise the round is
 *   reported as 'rejected' and the serving head stays.
 *
 * States are immutable: `state` always returns a complete record that the caller can keep
 * using while the next round runs, then swap for the one `runRound` returns.
 */
import { BadOptionError } from '../errors.js';
import { Adam } from './adam.js';
import { alignByAssignments, alignCentroids, type Alignment } from './align-classes.js';
import { chooseClassCount, DEFAULT_MERGE_SHARE, DEFAULT_MIN_DISPERSION } from './choose-class-count.js';
import { classifyFeatures } from './cluster-probe.js';
import type { PairKinds } from './correlation-loss.js';
import { DEFAULT_BANK_CAPACITY_FRAMES, DEFAULT_BANK_POINTS_PER_FRAME, FeatureBank, type BankMode } from './feature-bank.js';
import { classColor, defaultClassColors, defaultClassNames, type HeadState, type Rgb } from './head-state.js';
import { partitionDispersion } from './partition-dispersion.js';
import { principalBasis } from './principal-basis.js';
import { Rng } from './rng.js';
import { normaliseRowsCopy, sphericalKmeans, type SphericalKmeansResult } from './spherical-kmeans.js';
import { DEFAULT_CODE_DIM, headForward, headTensors, initHead, type HeadWeights } from './stego-head.js';
import { trainRound, type TrainRoundStats } from './train-round.js';

export { assignCodes } from './cluster-probe.js';

export interface OnlineLearnerOptions {
  /** Backbone feature dimension C. */
  readonly dim: number;
  /** Backbone name, recorded in the state and checkpoints; default "unknown". */
  readonly backboneName?: string;
  /** Code dimension D; default 70 (ignored when `initial` is given: its D is used). */
  readonly codeDim?: number;
  /**
   * Number of classes, or 'auto': the count the features hold (choose-class-count.ts), at most
   * `maxClasses`, decided at the first fit and moved by at most one at each training round
   * (`RoundReport.classCount`).
   */
  readonly k: number | 'auto';
  /** With k 'auto': most classes. Default `DEFAULT_MAX_CLASSES`. */
  readonly maxClasses?: number;
  /**
   * With k 'auto': let training rounds move the count (default true); false keeps the first
   * fit's count for the rest of the run (one set of classes across a batch job's output files).
   */
  readonly recount?: boolean;
  /** Clusters beyond k (STEGO's `extra_clusters`); the state has k + extraClusters classes. Default 0; not with k 'auto'. */
  readonly extraClusters?: number;
  readonly bank?: {
    /** Default 256 frames. */
    readonly capacityFrames?: number;
    /** Default 256 points per frame. */
    readonly pointsPerFrame?: number;
    /** Default 'reservoir'. */
    readonly mode?: BankMode;
  };
  readonly train: {
    /** A round is due every this many frames. */
    readonly everyFrames: number;
    /** Adam steps per round; default 50. */
    readonly steps?: number;
    /** Default 8. */
    readonly batchImages?: number;
    /** Default 121 (11×11). */
    readonly pointsPerImage?: number;
    /** Default 7. */
    readonly knnK?: number;
    /** Random partners per anchor; default 1. */
    readonly randomPairs?: number;
    /** Default 5e-4. */
    readonly lr?: number;
    /**
     * Learning-rate decay T: step t runs at lr · (T / (T + t))², t counted over the head's whole
     * life (checkpoints carry it), so the total movement is bounded by about T full-rate steps.
     * 0 = constant rate (STEGO's). Default `DEFAULT_LR_DECAY_STEPS`.
     */
    readonly lrDecaySteps?: number;
    /**
     * A trained head replaces the serving one only when its partition of the round's fit points
     * has at most this times the dispersion (partition-dispersion.ts) of k-means on the raw
     * features of the same points, or less dispersion than the serving head has there. 0 = no
     * check. Default `DEFAULT_MAX_DISPERSION_RATIO`.
     */
    readonly maxDispersionRatio?: number;
    /**
     * Share of the machine's CPU time (all cores) a background round may take on average, in
     * (0, 1]; 1 = no limit. Rounds the caller waits for (the first fit, the learning pass) run
     * flat out. Used by LearnerClient (duty-cycle.ts); a direct `runRound` caller passes its own
     * pace. Default `DEFAULT_LEARN_CPU_SHARE`.
     */
    readonly cpuShare?: number;
    /**
     * With `cpuShare` < 1: a background round takes idle cores beyond its share, measured while
     * it pauses (duty-cycle.ts `adaptiveShare`: up to 0.9 of its core, leaving half a core free).
     * Default true; false keeps the share fixed whatever the load.
     */
    readonly adaptiveCpu?: boolean;
    /**
     * The learner's thread (and its ONNX Runtime helper) run at nice 10, so what a background
     * round takes comes from idle time first. Default true. `process` turns it off: it waits for
     * its rounds, and its learning pass runs the backbone beside the closing round, which at
     * nice 10 would get almost none of the machine.
     */
    readonly niced?: boolean;
    readonly weights?: Partial<PairKinds<number>>;
    /** Fixed shifts per pair kind; default STEGO's (`DEFAULT_PAIR_SHIFTS`) unless `shiftQuantile` is set. */
    readonly shifts?: Partial<PairKinds<number>>;
    /**
     * Data-driven shift for the kinds `shifts` does not fix: this quantile of the (centred)
     * feature correlations of pairs drawn from the bank, measured at the start of each round.
     * Off by default; see `TrainRoundOptions.shiftQuantile` for when it helps.
     */
    readonly shiftQuantile?: number;
    /** Default true. */
    readonly pointwise?: boolean;
    /**
     * How the first head's linear branch starts: 'pca' = the top-D principal directions of bank
     * features (codes keep the most similarity structure D dims can), 'random' = a random
     * orthogonal projection. Default 'pca'.
     */
    readonly init?: 'pca' | 'random';
  };
  /** Centroid fitting after each round. */
  readonly fit?: {
    /** Bank points the centroids are fitted on (sampled uniformly); default 8192. */
    readonly maxPoints?: number;
    /** Default 50. */
    readonly iters?: number;
    /**
     * k-means++ starts, each on an even subsample of at most 2048 fit points, the best one
     * refined on all of them. Default 16 for a fit with nothing to start from (the raw probe,
     * the first head), 4 when the previous centroids live in the same space: those are tried as
     * one more start (on all points) and usually win, which also keeps class ids stable.
     */
    readonly restarts?: number;
  };
  readonly seed: number;
  /** Class names by id; missing ones default to "class <id>". */
  readonly names?: readonly string[];
  /** A state to start from (a loaded checkpoint); its names win over `names`. */
  readonly initial?: HeadState;
  /** Use `initial` as is: no observing, no training (reproducible batch runs). */
  readonly freeze?: boolean;
  /** Clock for `createdAt`; default Date.now. */
  readonly now?: () => number;
}

export interface RoundReport {
  /**
   * What the round did: fitted the raw probe, trained the head (and swapped it in), trained one
   * it rejected (`maxDispersionRatio`; the state is unchanged), or skipped for lack of data.
   */
  readonly kind: 'probe' | 'train' | 'rejected' | 'skipped';
  readonly version: number;
  readonly train?: TrainRoundStats;
  /** Points the centroids were fitted on. */
  readonly fitPoints: number;
  /** Mean cosine of points to their centroid. */
  readonly meanCosine: number;
  /** Mean score of the id alignment (cosine of matched centroids, or shared fraction of points). */
  readonly alignScore: number;
  /**
   * Dispersion of the trained head's partition over that of k-means on raw features, on the
   * round's fit points (train rounds only; 1 = fits the features as well as k-means does).
   */
  readonly dispersionRatio?: number;
  /** Learning rate the next training step will run at (after `train.lrDecaySteps`' decay). */
  readonly learningRate?: number;
  /** Wall time of the round, ms, including `idleMs`. */
  readonly ms: number;
  /** Time the duty-cycle limiter held a background round paused, ms (set by the learner worker). */
  readonly idleMs?: number;
  /** The share of its core the background round kept to at its end (above `train.cpuShare` when cores were idle). */
  readonly cpuShare?: number;
  readonly reason?: string;
  /**
   * What the features said at this round (every round with k 'auto'; the first fit with a fixed
   * k). `uniform`: they barely vary (empty mid-water, a flat picture): with k 'auto' there is
   * then one class, with a fixed k the classes split noise; callers warn.
   */
  readonly classCount?: { readonly k: number; readonly dispersion: number; readonly uniform: boolean };
}

/** Most classes `k: 'auto'` chooses by default. */
export const DEFAULT_MAX_CLASSES = 8;

/** See `train.lrDecaySteps`: the hard generated scenes gained most by 400-600 full-rate steps. */
export const DEFAULT_LR_DECAY_STEPS = 400;
/**
 * See `train.maxDispersionRatio`. On generated scenes, heads that scored better than k-means
 * stayed at 1.00-1.10 through 1460 steps; heads that scored worse passed 1.16 (easy scenes,
 * 260 steps, -0.01 to -0.02 mIoU) on their way to 1.4-1.6 (-0.03 to -0.05).
 */
export const DEFAULT_MAX_DISPERSION_RATIO = 1.1;

export const DEFAULT_FIT_MAX_POINTS = 8192;
/** Most classes a state may have: label maps are 8-bit and the palette reads up to here. */
const MAX_CLASSES_LIMIT = 64;
/** k-means++ starts of a centroid fit without, and with, previous centroids to warm-start from. */
const COLD_FIT_RESTARTS = 16;
const WARM_FIT_RESTARTS = 4;
/** Points each k-means++ start runs on (an even subsample); the best start is refined on all. */
const RESTART_POINTS = 2048;
/** Fit points the dispersion guard measures on (an even subsample of them). */
const GUARD_MAX_POINTS = 4096;
/** Points the PCA initialisation of the first head looks at. */
const PCA_MAX_POINTS = 4096;

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new BadOptionError(name, 'positive integer', v);
  return v;
}

export class OnlineLearner {
  readonly bank: FeatureBank;
  private readonly opts: OnlineLearnerOptions;
  /** Classes in force (moves with k 'auto'). */
  private K: number;
  private readonly autoK: boolean;
  private readonly maxK: number;
  private readonly codeDim: number;
  private readonly frozen: boolean;
  private readonly rng: Rng;
  private readonly bankRng: Rng;
  private readonly now: () => number;
  private current: HeadState;
  private optimizer: Adam | undefined;
  /** Centroids of k-means on raw features from the last round (a warm start for the next reference fit). */
  private rawCentroids: Float32Array | undefined;
  private isPaused = false;
  private framesAtLastRound = 0;
  private lastFramesSeen: number | undefined;
  private report: RoundReport | undefined;
  /** The running round's pace callback. */
  private pace: (() => void) | undefined;

  constructor(opts: OnlineLearnerOptions) {
    this.opts = opts;
    const dim = positiveInt('learner.dim', opts.dim);
    this.autoK = opts.k === 'auto';
    this.maxK = positiveInt('learner.maxClasses', opts.maxClasses ?? DEFAULT_MAX_CLASSES);
    if (this.maxK > MAX_CLASSES_LIMIT) throw new BadOptionError('learner.maxClasses', `integer in [1, ${MAX_CLASSES_LIMIT}]`, this.maxK);
    const extra = opts.extraClusters ?? 0;
    if (!Number.isInteger(extra) || extra < 0) throw new BadOptionError('learner.extraClusters', 'non-negative integer', extra);
    if (this.autoK && extra > 0) throw new BadOptionError('learner.extraClusters', "0 with k 'auto' (it chooses the count itself)", extra);
    this.K = this.autoK ? (opts.initial?.k ?? this.maxK) : positiveInt('learner.k', opts.k) + extra;
    positiveInt('learner.train.everyFrames', opts.train.everyFrames);
    const decay = opts.train.lrDecaySteps;
    if (decay !== undefined && !(Number.isFinite(decay) && decay >= 0)) {
      throw new BadOptionError('learner.train.lrDecaySteps', 'a non-negative number (0 = constant rate)', decay);
    }
    const ratio = opts.train.maxDispersionRatio;
    if (ratio !== undefined && !(ratio === 0 || (Number.isFinite(ratio) && ratio >= 1))) {
      throw new BadOptionError('learner.train.maxDispersionRatio', 'a number >= 1, or 0 for no check', ratio);
    }
    const share = opts.train.cpuShare;
    if (share !== undefined && !(share > 0 && share <= 1)) {
      throw new BadOptionError('learner.train.cpuShare', 'a number in (0, 1] (1 = no limit)', share);
    }
    if (!Number.isInteger(opts.seed)) throw new BadOptionError('learner.seed', 'integer', opts.seed);
    this.now = opts.now ?? Date.now;
    this.frozen = opts.freeze ?? false;
    this.rng = new Rng(opts.seed);
    this.bankRng = this.rng.fork();
    this.bank = new FeatureBank({
      capacityFrames: opts.bank?.capacityFrames ?? DEFAULT_BANK_CAPACITY_FRAMES,
      pointsPerFrame: opts.bank?.pointsPerFrame ?? DEFAULT_BANK_POINTS_PER_FRAME,
      dim,
      mode: opts.bank?.mode ?? 'reservoir',
    });
    const init = opts.initial;
    if (init) {
      if (init.backbone.dim !== dim) {
        throw new BadOptionError('learner.initial', `a head state for a ${dim}-dim backbone`, `one for ${init.backbone.dim} dims`);
      }
      if (!this.autoK && init.k !== this.K)
        throw new BadOptionError('learner.initial', `a head state with ${this.K} classes`, `one with ${init.k}`);
      this.codeDim = init.codeDim;
      this.current = init;
    } else {
      if (this.frozen) throw new BadOptionError('learner.freeze', 'an initial head state to freeze (load a checkpoint)', true);
      this.codeDim = positiveInt('learner.codeDim', opts.codeDim ?? DEFAULT_CODE_DIM);
      const names = defaultClassNames(this.K);
      (opts.names ?? []).slice(0, this.K).forEach((n, i) => (names[i] = n));
      this.current = {
        version: 0,
        backbone: { name: opts.backboneName ?? 'unknown', dim },
        codeDim: this.codeDim,
        weights: null,
        centroids: new Float32Array(this.K * dim),
        k: this.K,
        names,
        colors: defaultClassColors(this.K),
        createdAt: this.now(),
      };
    }
  }

  /** The state in use: version 0 (all-zero centroids, every point class 0) until the first round. */
  get state(): HeadState {
    return this.current;
  }

  /** True once centroids have been fitted (or loaded). */
  get ready(): boolean {
    return this.current.version > 0;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** What the last `runRound` did, for logs and metrics. */
  get lastRound(): RoundReport | undefined {
    return this.report;
  }

  /** Feeds one frame's patch tokens [n×C] to the bank (copied). No-op when frozen. */
  observe(patchTokens: Float32Array, n: number): void {
    if (this.frozen) return;
    this.bank.add(patchTokens, n, this.bank.dim, this.bankRng);
  }

  /**
   * True when a round is due: `train.everyFrames` frames have passed since the last round (by
   * the caller's frame count), learning is neither paused nor frozen, and the bank holds at
   * least 2 frames.
   */
  shouldTrain(framesSeen: number): boolean {
    this.lastFramesSeen = framesSeen;
    if (this.frozen || this.isPaused || this.bank.size < 2) return false;
    return framesSeen - this.framesAtLastRound >= this.opts.train.everyFrames;
  }

  /** Stops training rounds (`shouldTrain` answers false); frames are still banked. */
  pause(): void {
    this.isPaused = true;
  }

  resume(): void {
    this.isPaused = false;
  }

  /** Renames class `id`; the new name survives later rounds and checkpoints. */
  rename(id: number, name: string): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.K) throw new BadOptionError('class id', `integer in [0, ${this.K})`, id);
    if (typeof name !== 'string' || name.trim() === '' || name.length > 64) {
      throw new BadOptionError('class name', 'a non-empty string of at most 64 characters', name);
    }
    const names = [...this.current.names];
    names[id] = name;
    this.current = { ...this.current, names };
  }

  /**
   * Runs one round now and returns the new state (also `state` from now on). Frozen: returns
   * the state unchanged. Too little data (fewer than 2 frames or fewer bank points than
   * classes): returns the state unchanged and reports `skipped`.
   *
   * @param framesSeen the caller's frame count, to schedule the next round from; default the
   *   count last passed to `shouldTrain`.
   * @param steps Adam steps for this round instead of `train.steps` (a longer first round).
   * @param pace called between pieces of the round's work (every Adam step, every k-means fit):
   *   a background round's duty-cycle limiter pauses the thread there (duty-cycle.ts).
   * @param renumber number the classes by share afresh, as the first fit does, instead of
   *   aligning them to the old ids: for rounds whose old ids nobody has seen yet (the rounds of
   *   a learning pass, before any output).
   */
  runRound(framesSeen?: number, steps?: number, pace?: () => void, renumber = false): HeadState {
    const t0 = performance.now();
    this.pace = pace;
    this.framesAtLastRound = framesSeen ?? this.lastFramesSeen ?? this.bank.seen;
    if (this.frozen) return this.current;
    const fitPoints = Math.min(this.opts.fit?.maxPoints ?? DEFAULT_FIT_MAX_POINTS, this.bank.totalPoints);
    // The raw-probe fit needs one frame (output starts at once); training needs pairs of frames.
    const minFrames = this.current.version === 0 ? 1 : 2;
    if (this.bank.size < minFrames || fitPoints < this.K) {
      this.report = {
        kind: 'skipped',
        version: this.current.version,
        fitPoints,
        meanCosine: Number.NaN,
        alignScore: Number.NaN,
        ms: performance.now() - t0,
        reason: `the bank holds ${this.bank.size} frame(s) and ${this.bank.totalPoints} point(s); need ${minFrames} frame(s) and ${this.K} points`,
      };
      return this.current;
    }
    const roundRng = this.rng.fork();
    const old = this.current;
    const feats = this.sampleBankPoints(fitPoints, roundRng);
    const C = this.bank.dim;

    // Train (from a fresh head after the raw probe, from the current one after that); the
    // first round after version 0 is the raw probe and trains nothing.
    const trained = old.version > 0 ? this.trainHead(old, feats, fitPoints, roundRng, steps, pace) : undefined;
    const weights: HeadWeights | null = trained?.head ?? null;
    const trainStats: TrainRoundStats | undefined = trained?.stats;

    const codes = weights ? headForward(weights, feats, fitPoints) : feats;
    pace?.();
    const D = weights ? weights.codeDim : C;
    const sameSpace = old.version > 0 && (old.weights === null) === (weights === null);
    // Raw probe -> first head: the spaces differ, so the probe's classes are carried over as
    // the mean codes of the points they hold (a warm start in code space).
    const oldLabels = old.version > 0 && !sameSpace ? classifyFeatures(old, feats, fitPoints) : undefined;
    const carried = oldLabels ? classMeans(codes, fitPoints, D, oldLabels, this.K) : undefined;
    pace?.();
    let K = this.K;
    const fit: { best: SphericalKmeansResult; warm?: SphericalKmeansResult } = this.fitCentroids(
      codes,
      fitPoints,
      D,
      K,
      sameSpace ? old.centroids : carried,
      roundRng,
      !sameSpace,
    );
    const counted = this.countClasses(old, codes, feats, fitPoints, D, fit, weights !== null && sameSpace, roundRng);
    let best = counted.best;
    const classCount = counted.classCount;
    K = counted.K;
    // Canonical ids: the first fit numbers its classes by share, largest first, so runs with any
    // seed give the same id to the same stuff; later rounds keep ids by alignment.
    if (old.version === 0 || renumber) best = byShare(best, fitPoints, D, K);
    const trainedSteps = this.optimizer?.totalSteps ?? old.trainedSteps ?? 0;
    if (!weights) this.rawCentroids = best.centroids;

    let dispersionRatio: number | undefined;
    if (weights) {
      // The fit with the best code objective first; then the one grown from the serving head's
      // classes, which the features may support when the best one regrouped them.
      const candidates = fit.warm && fit.warm !== best ? [best, fit.warm] : [best];
      const guard = this.checkDispersion(
        old,
        feats,
        fitPoints,
        K,
        candidates.map((c) => c.assignments),
        roundRng,
      );
      dispersionRatio = guard.ratio;
      if (guard.accepted >= 0) {
        best = candidates[guard.accepted]!;
      } else {
        // The serving head stays; only the decay clock moves on (the next rounds move less).
        this.current = { ...old, trainedSteps };
        this.report = {
          kind: 'rejected',
          version: old.version,
          ...(trainStats ? { train: trainStats } : {}),
          fitPoints,
          meanCosine: best.objective / fitPoints,
          alignScore: Number.NaN,
          dispersionRatio,
          ...(this.optimizer ? { learningRate: this.optimizer.currentLr } : {}),
          ms: performance.now() - t0,
          ...(guard.reason === undefined ? {} : { reason: guard.reason }),
          ...(classCount ? { classCount: { ...classCount, k: this.K } } : {}),
        };
        return this.current;
      }
    }

    const { centroids, alignScore, legend } = this.alignToServing(old, best, K, D, sameSpace, oldLabels, renumber);
    this.K = K;

    this.current = {
      version: old.version + 1,
      backbone: old.backbone,
      codeDim: this.codeDim,
      weights,
      centroids,
      k: K,
      names: legend.names,
      colors: legend.colors,
      createdAt: this.now(),
      ...(weights ? { trainedSteps } : {}),
    };
    this.report = {
      kind: weights ? 'train' : 'probe',
      version: this.current.version,
      ...(trainStats ? { train: trainStats } : {}),
      fitPoints,
      meanCosine: best.objective / fitPoints,
      alignScore,
      ...(dispersionRatio === undefined ? {} : { dispersionRatio }),
      ...(weights && this.optimizer ? { learningRate: this.optimizer.currentLr } : {}),
      ms: performance.now() - t0,
      ...(classCount ? { classCount } : {}),
    };
    return this.current;
  }

  /** One round's training of the head: a fresh one (PCA-initialised) after the raw probe. */
  private trainHead(
    old: HeadState,
    feats: Float32Array,
    fitPoints: number,
    roundRng: Rng,
    steps: number | undefined,
    pace: (() => void) | undefined,
  ): { head: HeadWeights; stats: TrainRoundStats } {
    const C = this.bank.dim;
    let head = old.weights;
    if (!head) {
      const seed = roundRng.u32();
      const pca = (this.opts.train.init ?? 'pca') === 'pca' && this.codeDim <= C;
      let basis: Float32Array | undefined;
      if (pca) {
        // An even spread of the (slot-ordered) fit points.
        const m = Math.min(fitPoints, PCA_MAX_POINTS);
        basis = principalBasis(evenRows(feats, fitPoints, C, m), m, C, this.codeDim, { seed });
      }
      head = initHead(C, this.codeDim, seed, basis);
      this.optimizer = undefined;
    }
    this.optimizer ??= new Adam(
      headTensors(head).map((t) => t.length),
      {
        ...(this.opts.train.lr === undefined ? {} : { lr: this.opts.train.lr }),
        decaySteps: this.opts.train.lrDecaySteps ?? DEFAULT_LR_DECAY_STEPS,
        decayFrom: old.weights ? (old.trainedSteps ?? 0) : 0,
      },
    );
    const t = this.opts.train;
    return trainRound(head, this.bank, {
      seed: roundRng.u32(),
      optimizer: this.optimizer,
      ...(steps !== undefined ? { steps } : t.steps === undefined ? {} : { steps: t.steps }),
      ...(t.batchImages === undefined ? {} : { batchImages: t.batchImages }),
      ...(t.pointsPerImage === undefined ? {} : { pointsPerImage: t.pointsPerImage }),
      ...(t.knnK === undefined ? {} : { knnK: t.knnK }),
      ...(t.randomPairs === undefined ? {} : { randomPairs: t.randomPairs }),
      ...(t.weights === undefined ? {} : { weights: t.weights }),
      ...(t.shifts === undefined ? {} : { shifts: t.shifts }),
      ...(t.shiftQuantile === undefined ? {} : { shiftQuantile: t.shiftQuantile }),
      ...(t.pointwise === undefined ? {} : { pointwise: t.pointwise }),
      ...(pace ? { pace } : {}),
    });
  }

  /**
   * The round's class count: the first fit over-segments and merges (k 'auto') or just measures
   * how much the features vary (a fixed k); a trained round in the same space may move the count
   * by one (k 'auto'). Drops `fit.warm` when the count moved (it has the old count).
   */
  private countClasses(
    old: HeadState,
    codes: Float32Array,
    feats: Float32Array,
    fitPoints: number,
    D: number,
    fit: { best: SphericalKmeansResult; warm?: SphericalKmeansResult },
    trainedSameSpace: boolean,
    roundRng: Rng,
  ): { best: SphericalKmeansResult; K: number; classCount: RoundReport['classCount'] } {
    let K = this.K;
    let best = fit.best;
    let classCount: RoundReport['classCount'];
    if (this.autoK && old.version === 0) {
      // The first fit over-segments (K = maxClasses) and merges what the features do not tell apart.
      const chosen = chooseClassCount(codes, fitPoints, D, best.assignments, K);
      classCount = { k: chosen.k, dispersion: chosen.dispersion, uniform: chosen.uniform };
      if (chosen.k < K) {
        best = sphericalKmeans(codes, fitPoints, D, chosen.k, {
          seed: roundRng.u32(),
          init: groupMeans(codes, fitPoints, D, best.assignments, chosen.groups, chosen.k),
        });
        K = chosen.k;
      }
    } else if (old.version === 0) {
      // A fixed count still says how much the features vary, so callers can warn on a flat clip.
      const dispersion = oneClusterDispersion(codes, fitPoints, D);
      classCount = { k: K, dispersion, uniform: dispersion < DEFAULT_MIN_DISPERSION };
    } else if (this.autoK && trainedSameSpace && (this.opts.recount ?? true)) {
      const moved = this.moveClassCount(codes, feats, fitPoints, D, best, roundRng);
      classCount = moved.count;
      if (moved.result !== best) {
        best = moved.result;
        K = moved.count.k;
        delete fit.warm; // it has the old count
      }
    }
    return { best, K, classCount };
  }

  /**
   * Ids and legend of the new fit: kept from the serving head by matching centroids (same space)
   * or shared points (raw probe -> first head); numbered afresh for a first fit or `renumber`.
   */
  private alignToServing(
    old: HeadState,
    best: SphericalKmeansResult,
    K: number,
    D: number,
    sameSpace: boolean,
    oldLabels: Int32Array | undefined,
    renumber: boolean,
  ): { centroids: Float32Array; alignScore: number; legend: ReturnType<typeof carryLegend> } {
    let centroids = best.centroids;
    let alignScore = 1;
    // The first fit keeps the names given by id (and, with k 'auto', drops those beyond its count).
    let legend = { names: padNames(old.names.slice(0, K), K), colors: defaultClassColors(K) };
    if (old.version > 0 && !renumber) {
      let a: Alignment;
      if (sameSpace) {
        const c = alignCentroids(old.centroids, best.centroids, D);
        centroids = c.centroids;
        a = c;
      } else {
        // Raw probe -> first head: the spaces differ, so match ids by shared points.
        a = alignByAssignments(oldLabels!, old.k, best.assignments, K);
        const aligned = new Float32Array(K * D);
        a.order.forEach((src, id) => aligned.set(best.centroids.subarray(src * D, (src + 1) * D), id * D));
        centroids = aligned;
      }
      alignScore = a.meanScore;
      legend = carryLegend(old, a.oldIds);
    }
    return { centroids, alignScore, legend };
  }

  /**
   * k 'auto' at a training round: merges the clusters of `best` (K classes, in code space) that
   * cost less than half the merge threshold to join, or else tries one class more and keeps it
   * when even its cheapest merge costs twice the threshold. The factor-of-two band between
   * merging and splitting keeps the count (and so the ids) from flickering between rounds.
   * While the raw features barely vary, the count does not grow.
   */
  private moveClassCount(
    codes: Float32Array,
    feats: Float32Array,
    n: number,
    D: number,
    best: SphericalKmeansResult,
    rng: Rng,
  ): { result: SphericalKmeansResult; count: NonNullable<RoundReport['classCount']> } {
    const K = this.K;
    const rawDispersion = oneClusterDispersion(feats, n, this.bank.dim);
    const uniform = rawDispersion < DEFAULT_MIN_DISPERSION;
    const count = (k: number): NonNullable<RoundReport['classCount']> => ({ k, dispersion: rawDispersion, uniform });
    const seed = rng.u32();
    const merged = chooseClassCount(codes, n, D, best.assignments, K, { mergeShare: DEFAULT_MERGE_SHARE / 2, minDispersion: 0 });
    if (merged.k < K) {
      const init = groupMeans(codes, n, D, best.assignments, merged.groups, merged.k);
      return { result: sphericalKmeans(codes, n, D, merged.k, { seed, init }), count: count(merged.k) };
    }
    if (uniform || K >= this.maxK || n <= K) return { result: best, count: count(K) };
    // One more centroid at the point its own centroid fits worst.
    const x = normaliseRowsCopy(codes, n, D);
    let far = 0;
    let farSim = Infinity;
    for (let i = 0; i < n; i++) {
      const c = best.assignments[i]!;
      let s = 0;
      for (let j = 0; j < D; j++) s += x[i * D + j]! * best.centroids[c * D + j]!;
      if (s < farSim) {
        farSim = s;
        far = i;
      }
    }
    const init = new Float32Array((K + 1) * D);
    init.set(best.centroids);
    init.set(x.subarray(far * D, (far + 1) * D), K * D);
    const grown = sphericalKmeans(codes, n, D, K + 1, { seed, init });
    this.pace?.();
    const check = chooseClassCount(codes, n, D, grown.assignments, K + 1, { mergeShare: 2 * DEFAULT_MERGE_SHARE, minDispersion: 0 });
    return check.k === K + 1 ? { result: grown, count: count(K + 1) } : { result: best, count: count(K) };
  }

  /**
   * The `maxDispersionRatio` check of a trained head's candidate partitions (labels of the fit
   * points), against k-means on the same points' raw features (warm-started from the last
   * reference fit) and against the serving head's partition of them. Returns the index of the
   * first candidate that passes (-1: none) and its ratio (the first candidate's when none does).
   */
  private checkDispersion(
    old: HeadState,
    feats: Float32Array,
    n: number,
    K: number,
    candidates: readonly Int32Array[],
    rng: Rng,
  ): { accepted: number; ratio: number; reason?: string } {
    const C = this.bank.dim;
    const limit = this.opts.train.maxDispersionRatio ?? DEFAULT_MAX_DISPERSION_RATIO;
    if (n > GUARD_MAX_POINTS) {
      // An even subsample bounds the reference fit's cost at large C (DINO: 384 dims).
      const m = GUARD_MAX_POINTS;
      feats = evenRows(feats, n, C, m);
      candidates = candidates.map((l) => Int32Array.from({ length: m }, (_, i) => l[evenIndex(i, n, m)]!));
      n = m;
    }
    const warm = this.rawCentroids?.length === K * C ? this.rawCentroids : undefined;
    const reference = this.fitCentroids(feats, n, C, K, warm, rng).best;
    this.rawCentroids = reference.centroids;
    const raw = partitionDispersion(feats, n, C, reference.assignments, K);
    // The serving head's partition may have another count (k 'auto'): dispersion takes any.
    const ratioOf = (l: Int32Array, k = K): number => {
      const r = raw > 0 ? partitionDispersion(feats, n, C, l, k) / raw : 1;
      this.pace?.();
      return r;
    };
    const ratios = candidates.map((l) => ratioOf(l));
    if (limit === 0) return { accepted: 0, ratio: ratios[0]! };
    const within = ratios.findIndex((r) => r <= limit);
    if (within >= 0) return { accepted: within, ratio: ratios[within]! };
    // A scene that changed can leave the serving head worse than the limit: any improvement wins.
    const serving = old.weights ? ratioOf(classifyFeatures(old, feats, n), old.k) : 1;
    const better = ratios.findIndex((r) => r < serving);
    if (better >= 0) return { accepted: better, ratio: ratios[better]! };
    const ratio = ratios[0]!;
    return {
      accepted: -1,
      ratio,
      reason: `the trained head's classes fit the backbone features ${ratio.toFixed(3)}x as loosely as k-means on them (limit ${limit}, serving head ${serving.toFixed(3)}x)`,
    };
  }

  /** Up to m bank points, uniformly without replacement, as one [m×C] array. */
  private sampleBankPoints(m: number, rng: Rng): Float32Array {
    const C = this.bank.dim;
    const total = this.bank.totalPoints;
    // Map a global point index to (slot, row) through the slots' cumulative counts.
    const starts = new Float64Array(this.bank.size + 1);
    for (let s = 0; s < this.bank.size; s++) starts[s + 1] = starts[s]! + this.bank.pointCount(s);
    const pick = new Uint32Array(m);
    if (m === total) {
      for (let i = 0; i < m; i++) pick[i] = i;
    } else {
      // Floyd's algorithm: m distinct indices from [0, total) without a total-sized array.
      const chosen = new Set<number>();
      for (let j = total - m; j < total; j++) {
        const t = rng.int(j + 1);
        chosen.add(chosen.has(t) ? j : t);
      }
      let i = 0;
      for (const v of chosen) pick[i++] = v;
      pick.sort();
    }
    const out = new Float32Array(m * C);
    let slot = 0;
    for (let i = 0; i < m; i++) {
      const g = pick[i]!;
      while (g >= starts[slot + 1]!) slot++;
      const row = g - starts[slot]!;
      const pts = this.bank.points(slot);
      out.set(pts.subarray(row * C, (row + 1) * C), i * C);
    }
    return out;
  }

  /**
   * Best of k-means++ restarts and (when given) a warm start from the previous centroids, and
   * that warm start on its own (it may be the best).
   */
  private fitCentroids(
    codes: Float32Array,
    n: number,
    D: number,
    K: number,
    previous: Float32Array | undefined,
    rng: Rng,
    cold = !previous,
  ): { best: SphericalKmeansResult; warm?: SphericalKmeansResult } {
    const iters = this.opts.fit?.iters;
    const base = { seed: rng.u32(), ...(iters === undefined ? {} : { iters }) };
    // k-means++ starts land in poor optima often enough on trained codes (a class split in two
    // while two others share a cluster; seen on 1 of 5 generated scenes with 2 starts), and a
    // cold fit decides the partition every later round warm-starts from. So: many starts, each
    // on an even subsample of the points (cheap), and the best one refined on all of them.
    const restarts = this.opts.fit?.restarts ?? (cold ? COLD_FIT_RESTARTS : WARM_FIT_RESTARTS);
    let best: SphericalKmeansResult;
    if (n >= 2 * RESTART_POINTS) {
      const m = RESTART_POINTS;
      const start = sphericalKmeans(evenRows(codes, n, D, m), m, D, K, { ...base, restarts });
      this.pace?.();
      best = sphericalKmeans(codes, n, D, K, { ...base, init: start.centroids });
    } else {
      best = sphericalKmeans(codes, n, D, K, { ...base, restarts });
    }
    this.pace?.();
    if (!previous) return { best };
    const warm = sphericalKmeans(codes, n, D, K, { ...base, init: previous });
    this.pace?.();
    if (warm.objective >= best.objective) best = warm;
    return { best, warm };
  }
}

/** The fit renumbered by share of the points, largest first (ties: lower index first). */
function byShare(fit: SphericalKmeansResult, n: number, D: number, K: number): SphericalKmeansResult {
  const sizes = new Float64Array(K);
  for (let i = 0; i < n; i++) sizes[fit.assignments[i]!]!++;
  const order = Array.from({ length: K }, (_, i) => i).sort((a, b) => sizes[b]! - sizes[a]! || a - b);
  const rank = new Int32Array(K);
  order.forEach((src, id) => (rank[src] = id));
  const centroids = new Float32Array(K * D);
  order.forEach((src, id) => centroids.set(fit.centroids.subarray(src * D, (src + 1) * D), id * D));
  return { ...fit, centroids, assignments: fit.assignments.map((c) => rank[c]!) };
}

/** Unit mean direction of the codes of each group of clusters (`groups[cluster]` in [0, k)). */
function groupMeans(codes: Float32Array, n: number, D: number, assignments: Int32Array, groups: Int32Array, k: number): Float32Array {
  return classMeans(
    normaliseRowsCopy(codes, n, D),
    n,
    D,
    assignments.map((c) => groups[c]!),
    k,
  );
}

/** 1 - |mean unit vector| of n rows [n×C]: 0 when they all point one way. */
function oneClusterDispersion(x: Float32Array, n: number, C: number): number {
  return n > 0 ? partitionDispersion(x, n, C, new Int32Array(n), 1) : 0;
}

/** `names` with "class <id>" for the ids it lacks. */
function padNames(names: readonly string[], K: number): string[] {
  return Array.from({ length: K }, (_, id) => names[id] ?? `class ${id}`);
}

/**
 * Names and colours after an alignment: each class keeps the name and colour of the old class it
 * carries on (a default name "class <old id>" is renumbered to its new id); new classes get a
 * default name and the first palette colour no kept class uses.
 */
function carryLegend(old: HeadState, oldIds: Int32Array): { names: string[]; colors: Rgb[] } {
  const names: string[] = [];
  const colors: Rgb[] = [];
  oldIds.forEach((o, id) => {
    const name = o >= 0 ? old.names[o] : undefined;
    names.push(name === undefined || name === `class ${o}` ? `class ${id}` : name);
    colors.push(o >= 0 ? (old.colors[o] ?? classColor(o)) : [-1, -1, -1]);
  });
  const used = new Set(colors.map((c) => c.join(',')));
  let p = 0;
  colors.forEach((c, id) => {
    if (c[0] >= 0) return;
    while (used.has(classColor(p).join(','))) p++;
    colors[id] = classColor(p);
    used.add(colors[id].join(','));
  });
  return { names, colors };
}

/** Unit mean of the codes [n×D] of each class (labels in [0, K)); a class with no points gets a zero row. */
function classMeans(codes: Float32Array, n: number, D: number, labels: Int32Array, K: number): Float32Array {
  const out = new Float32Array(K * D);
  for (let i = 0; i < n; i++) {
    const c = labels[i]!;
    for (let j = 0; j < D; j++) out[c * D + j]! += codes[i * D + j]!;
  }
  for (let c = 0; c < K; c++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += out[c * D + j]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < D; j++) out[c * D + j]! *= inv;
  }
  return out;
}

/** Row i of an even spread of m rows over n: the source row it takes. */
function evenIndex(i: number, n: number, m: number): number {
  return Math.floor((i * n) / m);
}

/** An even spread of m of the n rows [n×d] of x (m <= n), as one [m×d] array. */
function evenRows(x: Float32Array, n: number, d: number, m: number): Float32Array {
  const out = new Float32Array(m * d);
  for (let i = 0; i < m; i++) {
    const src = evenIndex(i, n, m);
    out.set(x.subarray(src * d, (src + 1) * d), i * d);
  }
  return out;
}
