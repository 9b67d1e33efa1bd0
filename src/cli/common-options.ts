import { Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { DEVICES } from '../backbone/execution-device.js';
import { LEARNING_DEFAULTS, type LearningOptions } from '../learning/learning-options.js';
import { classCount, integer, nonNegativeInt, oneOf, positiveInt, positiveNumber, ratioOrZero, share } from './parse-options.js';
import { DEFAULT_REFINE, refineFrom, type RefineOptions } from '../backbone/refine-options.js';
import { LOG_LEVELS } from '../internal/logger.js';
import { BadOptionError } from '../errors.js';
import type { Device } from '../backbone/execution-device.js';
import type { ProcessOptions } from '../process/run-process.js';
import type { Variant } from '../models/model-catalog.js';
import { resolveBackbone } from '../models/resolve-backbone.js';
import { runsOnGpu } from '../backbone/execution-device.js';

/** Flags added by addModelOptions. */
export interface ModelFlags {
  backbone: string;
  device: Device;
  threads?: number;
  width?: number;
  height?: number;
  batch: number;
  objects: boolean;
  logLevel: string;
  refineRadius: number;
  refineEps: number;
}

/** The ProcessOptions fields that come from model flags. */
export function modelOptionsFrom(
  flags: ModelFlags,
): Pick<ProcessOptions, 'backbone' | 'device' | 'batchSize' | 'objects' | 'threads' | 'width' | 'height' | 'refine'> {
  return {
    backbone: flags.backbone,
    refine: refineFromFlags(flags),
    device: flags.device,
    batchSize: flags.batch,
    objects: flags.objects,
    ...(flags.threads ? { threads: flags.threads } : {}),
    ...(flags.width ? { width: flags.width } : {}),
    ...(flags.height ? { height: flags.height } : {}),
  };
}

/**
 * `--backbone NAME` (dino-vits8, hub:OWNER/REPO) to the cached ONNX file, pulling it first unless
 * offline (README "Models"); `builtin` and paths pass through. Call before building options.
 */
export async function resolveModelFlags(flags: ModelFlags & { progress?: boolean }, variant?: Variant): Promise<void> {
  flags.backbone = await resolveBackbone(flags.backbone, {
    onGpu: runsOnGpu(flags.device),
    ...(variant ? { variant } : {}),
    ...(flags.width ? { width: flags.width } : {}),
    ...(flags.height ? { height: flags.height } : {}),
    ...(flags.progress !== undefined ? { progress: flags.progress } : {}),
  });
}

/** `--backbone`'s help: every form it takes. */
export const BACKBONE_HELP =
  'backbone: builtin (filter bank), a model name (dino-vits8, ... as in models list; pulled when not cached), hub:OWNER/REPO, or an ONNX file';

/** Default state folder for checkpoints (README "Learning"). */
export const DEFAULT_STATE_DIR = '.stegostream';

/** Backbone, device, batching and working-size options shared by every command that segments. */
export function addModelOptions(cmd: Command): Command {
  return cmd
    .option('--backbone <builtin|name|file.onnx>', BACKBONE_HELP, 'builtin')
    .addOption(new Option('--device <device>', 'execution provider').choices(DEVICES).default('auto'))
    .option(
      '--threads <n>',
      'ONNX Runtime threads of the backbone and of the segmentation (default: all cores; half for the segmentation)',
      positiveInt('--threads'),
    )
    .option('--width <px>', 'working width (multiple of the patch size; default 448 or the model size)', positiveInt('--width'))
    .option('--height <px>', 'working height (default: keeps the aspect ratio)', positiveInt('--height'))
    .option('--batch <n>', 'frames per backbone call', positiveInt('--batch'), 4)
    .option('--objects', 'find the main object per frame (LOST) and report its box', false)
    .addOption(new Option('--log-level <level>', 'JSON log level on stderr').choices(LOG_LEVELS).default('warn'))
    .option(...REFINE_RADIUS_OPTION)
    .option(...REFINE_EPS_OPTION);
}

/** The guided filter's flags, shared with `worker` (README "Learning", refinement). */
export const REFINE_RADIUS_OPTION = [
  '--refine-radius <px>',
  "radius of the guided filter that moves class boundaries onto the frame's colour edges (0: off, plain bilinear maps)",
  nonNegativeInt('--refine-radius'),
  DEFAULT_REFINE.radius,
] as const;
export const REFINE_EPS_OPTION = [
  '--refine-eps <e>',
  "the guided filter's regulariser in (0-1 colour units)²: larger keeps closer to the patch grid",
  positiveNumber('--refine-eps'),
  DEFAULT_REFINE.eps,
] as const;

export function refineFromFlags(flags: { refineRadius: number; refineEps: number }): RefineOptions | null {
  return refineFrom(flags.refineRadius, flags.refineEps, '--refine-radius/--refine-eps');
}

/** Learning knobs (README "Learning"). */
export function addLearningOptions(cmd: Command): Command {
  return cmd
    .option(
      '-k, --classes <k|auto>',
      'number of classes, or auto: as many as the features hold, at most --max-classes',
      classCount('--classes'),
      LEARNING_DEFAULTS.k,
    )
    .option('--max-classes <n>', 'most classes -k auto picks', positiveInt('--max-classes'), LEARNING_DEFAULTS.maxClasses)
    .option('--extra-clusters <n>', 'clusters beyond --classes', nonNegativeInt('--extra-clusters'), LEARNING_DEFAULTS.extraClusters)
    .option('--code-dim <d>', 'code dimension of the head', positiveInt('--code-dim'), LEARNING_DEFAULTS.codeDim)
    .option('--train-every <frames>', 'a training round every N frames', positiveInt('--train-every'), LEARNING_DEFAULTS.trainEvery)
    .option('--train-steps <n>', 'Adam steps per online round', positiveInt('--train-steps'), LEARNING_DEFAULTS.trainSteps)
    .option(
      '--learn-steps <n>',
      'Adam steps of the round that ends the learning pass',
      positiveInt('--learn-steps'),
      LEARNING_DEFAULTS.learnSteps,
    )
    .option(
      '--lr-decay-steps <n>',
      "learning-rate decay: step t runs at lr·(N/(N+t))² over the head's life (0: constant rate)",
      nonNegativeInt('--lr-decay-steps'),
      LEARNING_DEFAULTS.lrDecaySteps,
    )
    .option(
      '--max-dispersion-ratio <r>',
      "keep a trained head only while its classes fit the features within r times k-means' dispersion (0: no check)",
      ratioOrZero('--max-dispersion-ratio'),
      LEARNING_DEFAULTS.maxDispersionRatio,
    )
    .option(
      '--learn-cpu <share>',
      "share of the machine's CPU a training round beside inference takes while the machine is busy; idle cores are taken too (1: no limit)",
      share('--learn-cpu'),
      LEARNING_DEFAULTS.cpuShare,
    )
    .option('--bank-frames <n>', 'feature bank size in frames', positiveInt('--bank-frames'), LEARNING_DEFAULTS.bankFrames)
    .option(
      '--learn-frames <n>',
      'frames of the learning pass before output starts (0: none)',
      nonNegativeInt('--learn-frames'),
      LEARNING_DEFAULTS.learnFrames,
    )
    .option('--seed <n>', 'random seed (learning is reproducible for a seed)', integer('--seed'), LEARNING_DEFAULTS.seed)
    .option(
      '--checkpoint <file>',
      `head checkpoint written after each round and at the end (default ${DEFAULT_STATE_DIR}/head.ckpt when --resume)`,
    )
    .option('--resume', 'start from the checkpoint file', false)
    .option('--head <file>', 'start from this head checkpoint')
    .option('--freeze', 'keep the loaded head fixed (reproducible output); needs --head or --resume', false)
    .option('--names <file>', 'class names, one per line (line n names class n-1)');
}

export interface LearningFlags {
  classes: number | 'auto';
  maxClasses: number;
  extraClusters: number;
  codeDim: number;
  trainEvery: number;
  trainSteps: number;
  learnSteps: number;
  lrDecaySteps: number;
  maxDispersionRatio: number;
  learnCpu: number;
  bankFrames: number;
  learnFrames: number;
  seed: number;
  checkpoint?: string;
  resume: boolean;
  head?: string;
  freeze: boolean;
  names?: string;
}

export function learningFrom(flags: LearningFlags): LearningOptions {
  if (flags.freeze && !flags.head && !flags.resume)
    throw new BadOptionError('--freeze', 'a head to freeze: add --head FILE or --resume', true);
  if (flags.classes === 'auto' && flags.extraClusters > 0)
    throw new BadOptionError(
      '--extra-clusters',
      '0 with -k auto (it picks the count itself); give -k a number to add clusters',
      flags.extraClusters,
    );
  const checkpoint = flags.checkpoint ?? (flags.resume ? `${DEFAULT_STATE_DIR}/head.ckpt` : undefined);
  let names: string[] | undefined;
  if (flags.names) {
    try {
      names = readFileSync(flags.names, 'utf8')
        .split('\n')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    } catch {
      throw new BadOptionError('--names', 'a readable text file with one class name per line', flags.names);
    }
  }
  return {
    k: flags.classes,
    maxClasses: flags.maxClasses,
    extraClusters: flags.extraClusters,
    codeDim: flags.codeDim,
    trainEvery: flags.trainEvery,
    trainSteps: flags.trainSteps,
    learnSteps: flags.learnSteps,
    lrDecaySteps: flags.lrDecaySteps,
    maxDispersionRatio: flags.maxDispersionRatio,
    cpuShare: flags.learnCpu,
    bankFrames: flags.bankFrames,
    learnFrames: flags.learnFrames,
    seed: flags.seed,
    resume: flags.resume,
    freeze: flags.freeze,
    ...(checkpoint ? { checkpoint } : {}),
    ...(flags.head ? { head: flags.head } : {}),
    ...(names ? { names } : {}),
  };
}

export { oneOf };
