import { BadOptionError } from '../errors.js';
import { DEFAULT_LEARN_CPU_SHARE } from './duty-cycle.js';
import { DEFAULT_LR_DECAY_STEPS, DEFAULT_MAX_CLASSES, DEFAULT_MAX_DISPERSION_RATIO, type OnlineLearnerOptions } from './online-learner.js';

/** Learning knobs shared by `process`, `demo` and pipeline files (README "Learning"). */
export interface LearningOptions {
  /** Classes K, or 'auto': the count the features hold, at most `maxClasses`. */
  readonly k: number | 'auto';
  /** With k 'auto': most classes. */
  readonly maxClasses: number;
  /** Clusters beyond K (STEGO's extra clusters). */
  readonly extraClusters: number;
  /** Code dimension D of the head. */
  readonly codeDim: number;
  /** A training round every this many frames. */
  readonly trainEvery: number;
  /** Adam steps per online round (kept small: rounds share the CPU with inference). */
  readonly trainSteps: number;
  /** Adam steps of the round that ends the learning pass (process, demo). */
  readonly learnSteps: number;
  /** Learning-rate decay T in Adam steps (lr · (T/(T+t))²); 0 = constant rate. */
  readonly lrDecaySteps: number;
  /** Guard on a trained head's dispersion against k-means on raw features; 0 = none. */
  readonly maxDispersionRatio: number;
  /** Share of the machine's CPU a round that runs beside inference may take, in (0, 1]; 1 = no limit. */
  readonly cpuShare: number;
  /** Feature bank capacity, frames. */
  readonly bankFrames: number;
  /** Frames of the learning pass before output starts (process); 0 = none. */
  readonly learnFrames: number;
  readonly seed: number;
  /** Checkpoint file written after each round and at the end. */
  readonly checkpoint?: string;
  /** Start from the checkpoint file. */
  readonly resume: boolean;
  /** Start from this head file. */
  readonly head?: string;
  /** Keep the loaded head fixed: no learning (reproducible output). */
  readonly freeze: boolean;
  readonly names?: readonly string[];
}

export const LEARNING_DEFAULTS = {
  k: 'auto',
  maxClasses: DEFAULT_MAX_CLASSES,
  extraClusters: 0,
  codeDim: 70,
  trainEvery: 300,
  trainSteps: 10,
  learnSteps: 60,
  lrDecaySteps: DEFAULT_LR_DECAY_STEPS,
  maxDispersionRatio: DEFAULT_MAX_DISPERSION_RATIO,
  cpuShare: DEFAULT_LEARN_CPU_SHARE,
  bankFrames: 256,
  learnFrames: 64,
  seed: 1,
} as const;

/** The learner's class-count options from the learning knobs. */
export function learnerClassOptions(
  l: Pick<LearningOptions, 'k' | 'maxClasses' | 'extraClusters'>,
): Pick<OnlineLearnerOptions, 'k' | 'maxClasses' | 'extraClusters'> {
  return { k: l.k, maxClasses: l.maxClasses, extraClusters: l.extraClusters };
}

/** The class count a head must have for these knobs (to check a loaded one), or undefined with k 'auto'. */
export function expectedClassCount(l: Pick<LearningOptions, 'k' | 'extraClusters'>): number | undefined {
  return l.k === 'auto' ? undefined : l.k + l.extraClusters;
}

/** The learner's round options from the learning knobs (CLI flags and YAML `learning:` share these names). */
export function learnerTrainOptions(
  l: Pick<LearningOptions, 'trainEvery' | 'trainSteps' | 'lrDecaySteps' | 'maxDispersionRatio' | 'cpuShare'>,
): OnlineLearnerOptions['train'] {
  return {
    everyFrames: l.trainEvery,
    steps: l.trainSteps,
    lrDecaySteps: l.lrDecaySteps,
    maxDispersionRatio: l.maxDispersionRatio,
    cpuShare: l.cpuShare,
  };
}

/**
 * The learner's options from the learning knobs: the one place `process`, `serve` and the cluster
 * trainer turn CLI flags or YAML `learning:` into an OnlineLearner configuration. `initial` is a
 * loaded head; `extra` adds what only one runner sets (e.g. `recount`).
 */
export function learnerOptions(
  l: Pick<
    LearningOptions,
    | 'k'
    | 'maxClasses'
    | 'extraClusters'
    | 'codeDim'
    | 'seed'
    | 'bankFrames'
    | 'trainEvery'
    | 'trainSteps'
    | 'lrDecaySteps'
    | 'maxDispersionRatio'
    | 'cpuShare'
  > & { readonly freeze?: boolean | undefined; readonly names?: readonly string[] | undefined },
  initial?: OnlineLearnerOptions['initial'],
  extra: Partial<Omit<OnlineLearnerOptions, 'dim' | 'backboneName'>> = {},
): Omit<OnlineLearnerOptions, 'dim' | 'backboneName'> {
  return {
    ...learnerClassOptions(l),
    ...extra,
    codeDim: l.codeDim,
    seed: l.seed,
    ...(l.freeze !== undefined ? { freeze: l.freeze } : {}),
    bank: { capacityFrames: l.bankFrames },
    train: learnerTrainOptions(l),
    ...(l.names ? { names: l.names } : {}),
    ...(initial ? { initial } : {}),
  };
}

/**
 * Checks class names against the class count they name (README "Naming your classes"): no
 * duplicates (case and spaces ignored), and exactly `k` of them when the count is known (a
 * loaded head's, or a numeric -k), at most `maxClasses` with k 'auto'.
 * @throws BadOptionError naming `option` and the problem.
 */
export function checkClassNames(names: readonly string[], k: number | undefined, maxClasses: number, option = '--names'): void {
  const seen = new Map<string, number>();
  names.forEach((n, i) => {
    const key = n.trim().toLowerCase();
    const first = seen.get(key);
    if (first !== undefined)
      throw new BadOptionError(option, `each name once (line ${first + 1} and line ${i + 1} are both "${n}")`, names.join(', '));
    seen.set(key, i);
  });
  if (k !== undefined && names.length !== k)
    throw new BadOptionError(option, `${k} names, one per class (it lists ${names.length})`, names.join(', '));
  if (k === undefined && names.length > maxClasses)
    throw new BadOptionError(
      option,
      `at most ${maxClasses} names (--max-classes) with -k auto (it lists ${names.length})`,
      names.join(', '),
    );
}
