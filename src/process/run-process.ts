import type { RefineOptions } from '../backbone/refine-options.js';
import { fromEvent, NEVER, of, take } from 'rxjs';
import type { Logger } from 'pino';
import type { Frame, ProgressFactory, ProgressMeter, Segmentation, StagedCall } from '../types.js';
import { InferenceClient } from '../backbone/inference-client.js';
import type { BackboneInfo } from '../backbone/backbone.js';
import type { Device } from '../backbone/execution-device.js';
import { workingSize } from '../internal/working-size.js';
import { expandInputs } from '../sources/input-files.js';
import { loadCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { checkClassNames, expectedClassCount, learnerOptions, type LearningOptions } from '../learning/learning-options.js';
import { ObjectFinder } from '../objects/object-finder.js';
import type { X264Preset } from '../sinks/overlay-video-writer.js';
import { SegmentationEngine } from '../engine/segmentation-engine.js';
import type { OnlineLearnerOptions } from '../learning/online-learner.js';
import { DEFAULT_EMBEDDING_CACHE_BYTES } from '../engine/embedding-cache.js';
import { ClassSummary } from '../engine/class-summary.js';
import { DamagedInputError, DecodeError, ImageUnreadableError } from '../errors.js';
import { openProcessInput, type ProcessInput } from './process-input.js';
import { ProcessOutputs, writtenPaths, type InputOutputs } from './process-outputs.js';
import { learningPass, segmentingPass, type PassContext } from './process-passes.js';

export interface ProcessOptions {
  /** A video file or a folder of images (one input). */
  readonly input?: string;
  /** Several inputs, one after another with the head carried over: files, folders (of videos or images), globs. */
  readonly inputs?: readonly string[];
  /** Overlay video; with several inputs a template with `{stream}`. */
  readonly out?: string;
  readonly outSize?: { readonly width: number; readonly height: number };
  /** Masks folder; `{stream}` for one per input, else one folder (names prefixed by stream when several). */
  readonly masks?: string;
  /** `input` (default): masks at the input's size (nearest neighbour); `working`: at the working size. */
  readonly masksSize?: 'input' | 'working';
  /** Stats file; `{stream}` for one per input, else one for all with a `stream` column. */
  readonly stats?: string;
  /** COCO-style annotations of the object boxes. */
  readonly coco?: string;
  /** Burn a legend (colour, name, share) into the overlay video (default true). */
  readonly legend?: boolean;
  /** libx264 preset of the overlay video (default veryfast). */
  readonly outPreset?: X264Preset;
  /** When the (first) input started, ms since the epoch: overrides its creation time; later inputs follow on. */
  readonly startTime?: number;
  /** A learning pass at the start of every input, not only the first. */
  readonly learnPerFile?: boolean;
  readonly backbone: string;
  readonly device: Device;
  readonly threads?: number;
  /** Guided-filter refinement; omitted: DEFAULT_REFINE; null: off. */
  readonly refine?: RefineOptions | null;
  readonly width?: number;
  readonly height?: number;
  readonly every: number;
  readonly batchSize: number;
  readonly learning: LearningOptions;
  /** Mark LOST object boxes in stats and overlay. */
  readonly objects: boolean;
  /** Progress meters for the learning and segmenting passes (the CLI's bars); none when omitted. */
  readonly progress?: ProgressFactory;
  readonly logger: Logger;
  /** Called with each segmentation, in order (the demo scores it against the scene's ground truth). */
  readonly onSegment?: (seg: Segmentation) => void;
  /**
   * Names classes from the first segmented batch, before any output is written (the demo matches
   * them to the scene's ground truth); undefined to try again with the next batch. With it, CSV
   * headers are written with the first row, so they carry the names.
   */
  readonly nameClasses?: (segs: readonly Segmentation[]) => ReadonlyMap<number, string> | undefined;
  /** Aborting finishes the run early: what was processed is written and finalised. */
  readonly signal?: AbortSignal;
}

/** How one input of a run went. */
export interface InputResult {
  readonly stream: string;
  readonly path: string;
  readonly frames: number;
  /** Why the input stopped early (outputs hold its frames before that). */
  readonly error?: string;
}

export interface ProcessResult {
  readonly frames: number;
  /** Segmenting time, s (the passes that wrote outputs). */
  readonly seconds: number;
  /** Frames segmented per second of segmenting time. */
  readonly fps: number;
  /** Wall time of the whole run, s: start-up, learning passes and segmenting. */
  readonly wallSeconds: number;
  readonly interrupted: boolean;
  /** Frames the learning pass read (0 without one); with `interrupted` and `frames` 0, it stopped the pass. */
  readonly learned: number;
  /** Frames segmented from the learning pass's backbone outputs (not run through the backbone twice). */
  readonly reused: number;
  readonly headVersion: number;
  readonly summary: string;
  readonly shares: readonly { id: number; name: string; share: number }[];
  readonly backbone: string;
  readonly outputs: readonly string[];
  readonly inputs: readonly InputResult[];
  /** Things the user should know about the result (e.g. frames too uniform to segment). */
  readonly warnings: readonly string[];
  /** Set when an input failed midway: outputs hold the frames before the failure (the other inputs go on). */
  readonly error?: Error;
}

/**
 * `stegostream process`: recorded videos (or image folders) in, one after another with the head
 * carried over; overlay videos, label-map PNGs, per-frame statistics and a summary out. Learning:
 * a first pass over the first `learning.learnFrames` frames fits the head (unless a head is loaded
 * and frozen; with `learnPerFile` at the start of every input), then each input is segmented while
 * the head keeps learning every `learning.trainEvery` frames (class ids stay stable across rounds).
 * Outputs are finalised on success, on abort and on a decode error, and they agree: the overlay
 * video, the masks and the stats hold the same frames (a run stopped during the learning pass writes
 * none, the CSV header only), and messages count what was written. An input that fails midway is
 * reported and the next one goes on.
 */
export async function runProcess(options: ProcessOptions): Promise<ProcessResult> {
  const t0 = performance.now();
  const { logger } = options;
  const files = expandInputs(options.inputs ?? (options.input !== undefined ? [options.input] : []));
  const inputs: ProcessInput[] = [];
  for (const f of files) inputs.push(await openProcessInput(f, options.every, logger));
  ProcessOutputs.check(options, inputs);
  const backbone = await InferenceClient.start(options.backbone, {
    device: options.device,
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.refine !== undefined ? { refine: options.refine } : {}),
  });
  const info = backbone.info;
  logger.info(
    { backbone: info.name, source: info.source, provider: info.provider, reason: info.providerReason, dim: info.dim },
    'backbone loaded',
  );
  const sizes = new Map(inputs.map((i) => [i, processWorkingSize(info, i.size, options, logger)]));
  const working = (i: ProcessInput): { width: number; height: number } => sizes.get(i) as { width: number; height: number };
  const initial = await loadHead(options.learning, info.dim, logger).catch(async (err: unknown) => {
    await backbone.close();
    throw err;
  });
  // Outputs open before any work, so an unwritable path fails fast.
  const outputs = await ProcessOutputs.open(options, inputs, working).catch(async (err: unknown) => {
    await backbone.close();
    throw err;
  });
  // LOST's N² degree pass runs in ONNX Runtime (ObjectFinder): in JS it costs as much as the backbone.
  const finder = options.objects
    ? await ObjectFinder.create(info.patchSize, options.threads !== undefined ? { threads: options.threads } : {})
    : undefined;
  const learning = options.learning;
  const engine = await SegmentationEngine.create({
    inference: backbone,
    logger,
    objects: options.objects,
    ...(learning.checkpoint && !learning.freeze ? { checkpoint: learning.checkpoint } : {}),
    // With a learning pass, its closing call makes the first fit (the raw probe) and then trains,
    // both while the backbone runs ahead (learningPass): the probe is not due before. Without
    // one, the first batch is fitted on.
    warmupFrames: learning.learnFrames > 0 ? learning.learnFrames + 1 : 1,
    learnPassSteps: learning.learnSteps,
    // A recorded input has no deadline: rounds at fixed frame counts make a seed's output reproducible.
    syncRounds: true,
    reuseLearnedBytes: DEFAULT_EMBEDDING_CACHE_BYTES,
    // One set of classes across the CSV columns, the masks and the summary: the count is decided
    // at the first fit (a live service lets rounds move it).
    learner: unniced(learnerOptions(learning, initial, { recount: false })),
  }).catch(async (err: unknown) => {
    await Promise.allSettled([outputs.abort(), backbone.close(), finder?.close()]);
    throw err;
  });
  // The CSV headers name the classes now, so the files have them whatever stops the run.
  if (!options.nameClasses) for (const s of outputs.statsWriters) s.start(engine.classInfo);

  const run = await runInputs(options, inputs, working, engine, outputs, finder);
  // Finalise every output whatever happened: valid files with the frames done so far.
  const closing = await Promise.allSettled([outputs.close(), engine.close(), backbone.close(), finder?.close()]);
  let error = run.error;
  for (const c of closing) if (c.status === 'rejected' && !error) error = c.reason as Error;
  const classes = engine.classInfo;
  return {
    frames: run.frames,
    seconds: run.seconds,
    fps: run.seconds > 0 ? run.frames / run.seconds : 0,
    wallSeconds: (performance.now() - t0) / 1000,
    interrupted: options.signal?.aborted ?? false,
    learned: run.learned,
    reused: engine.reusedFrames,
    headVersion: engine.headState.version,
    summary: run.summary.table(classes),
    shares: run.summary.rows(classes),
    backbone: info.name,
    outputs: writtenPaths(outputs, options, inputs),
    inputs: run.inputs,
    warnings: engine.warning ? [engine.warning] : [],
    ...(error ? { error } : {}),
  };
}

interface RunTotals {
  readonly frames: number;
  readonly learned: number;
  /** Segmenting time, s. */
  readonly seconds: number;
  readonly summary: ClassSummary;
  readonly inputs: InputResult[];
  readonly error?: Error;
}

/** Each input in turn: a learning pass when due, then segmenting into its outputs. */
async function runInputs(
  options: ProcessOptions,
  inputs: readonly ProcessInput[],
  working: (i: ProcessInput) => { width: number; height: number },
  engine: SegmentationEngine,
  outputs: ProcessOutputs,
  finder: ObjectFinder | undefined,
): Promise<RunTotals> {
  const signal = options.signal;
  // fromEvent alone would miss an abort that came while the backbone was loading.
  const abort$ = signal ? (signal.aborted ? of(true) : fromEvent(signal, 'abort').pipe(take(1))) : NEVER;
  const interrupted = (): boolean => signal?.aborted ?? false;
  const learning = options.learning;
  const learns = !learning.freeze && learning.learnFrames > 0 && !learning.head && !(learning.resume && learning.checkpoint);
  const summary = new ClassSummary();
  const total = inputs.every((i) => i.totalFrames !== undefined) ? inputs.reduce((n, i) => n + (i.totalFrames ?? 0), 0) : undefined;
  const results: InputResult[] = [];
  const segment = namingSegmenter(engine, options);
  let meter: ProgressMeter | undefined;
  let frames = 0;
  let learned = 0;
  let seconds = 0;
  let error: Error | undefined;
  let startTime = options.startTime;
  for (const [i, input] of inputs.entries()) {
    if (interrupted()) break;
    const ctx: PassContext = {
      input,
      size: working(input),
      startTime: startTime ?? input.creationTime,
      engine,
      segment,
      batchSize: options.batchSize,
      abort$,
      logger: options.logger,
      interrupted,
    };
    if (learns && (i === 0 || options.learnPerFile)) {
      const n = Math.min(learning.learnFrames, input.totalFrames ?? Infinity);
      learned += await learningPass(
        ctx,
        learning.learnFrames,
        progressOf(options, inputs.length > 1 ? `learning ${input.stream}` : 'learning', n),
      );
    }
    meter ??= progressOf(options, 'segmenting', total);
    const t = performance.now();
    const own = outputs.inputs[i] as InputOutputs;
    const pass = await segmentingPass(ctx, {
      sink: outputs.sinkFor(i),
      finder,
      masks: options.masks !== undefined && options.masksSize === 'working',
      summary,
      meter,
      onSegment: options.onSegment,
    });
    seconds += (performance.now() - t) / 1000;
    frames += pass.frames;
    engine.dropLearned();
    const closed = await own.close().then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    const failure = pass.error ?? closed ?? (pass.inputError ? withFramesWritten(pass.inputError, pass.frames) : undefined);
    results.push({ stream: input.stream, path: input.path, frames: pass.frames, ...(failure ? { error: failure.message } : {}) });
    error ??= failure;
    // A failing output (a full disk) stops the run; a failing input only itself.
    if (pass.error || closed) break;
    if (startTime !== undefined && input.duration !== undefined) startTime += input.duration * 1000;
  }
  meter?.stop();
  return { frames, learned, seconds, summary, inputs: results, ...(error ? { error } : {}) };
}

/**
 * The learner's thread at normal priority: a recorded input waits for its rounds (they are the
 * run's critical path, and the learning pass runs the backbone beside its closing round).
 */
function unniced(o: Omit<OnlineLearnerOptions, 'dim' | 'backboneName'>): Omit<OnlineLearnerOptions, 'dim' | 'backboneName'> {
  return { ...o, train: { ...o.train, niced: false } };
}

/**
 * `engine.stage`, naming the classes with `options.nameClasses` once it gives names. Until then a
 * batch is segmented whole before the next starts, so the batch after the naming one carries the names.
 */
function namingSegmenter(
  engine: SegmentationEngine,
  options: ProcessOptions,
): (frames: Frame[]) => Promise<Segmentation[]> | StagedCall<Segmentation> {
  const nameClasses = options.nameClasses;
  if (!nameClasses) return (frames) => engine.stage(frames);
  let named = false;
  const naming = async (frames: Frame[]): Promise<Segmentation[]> => {
    const segs = await engine.process(frames);
    if (named) return segs;
    const names = nameClasses(segs);
    if (!names) return segs;
    named = true;
    for (const [id, name] of names) {
      try {
        engine.rename(id, name);
      } catch (err) {
        options.logger.warn({ err: (err as Error).message, id, name }, 'class not named');
      }
    }
    const classes = engine.classInfo;
    return segs.map((s) => ({ ...s, classes }));
  };
  return (frames) => (named ? engine.stage(frames) : naming(frames));
}

/**
 * The head to start from (`--head`, or `--resume`'s checkpoint), with `--names` applied: a loaded
 * head brings its class count, and the names must fit it.
 */
async function loadHead(learning: LearningOptions, dim: number, logger: Logger): Promise<HeadState | undefined> {
  const headFile = learning.head ?? (learning.resume ? learning.checkpoint : undefined);
  const k = expectedClassCount(learning);
  if (!headFile) {
    if (learning.names) checkClassNames(learning.names, k, learning.maxClasses);
    return undefined;
  }
  const initial = await loadCheckpoint(headFile, { dim, ...(k === undefined ? {} : { k }) });
  logger.info({ head: headFile, version: initial.version, classes: initial.k }, 'head loaded');
  if (!learning.names) return initial;
  checkClassNames(learning.names, initial.k, learning.maxClasses);
  return { ...initial, names: [...learning.names] };
}

/** Geometry: the model's fixed size, else the working width with the input's aspect. */
function processWorkingSize(
  info: BackboneInfo,
  inputSize: { width: number; height: number },
  options: ProcessOptions,
  logger: Logger,
): { width: number; height: number } {
  if (info.inputWidth <= 0) return workingSize(inputSize, info.patchSize, { width: options.width, height: options.height });
  const size = { width: info.inputWidth, height: info.inputHeight };
  if (options.width !== undefined || options.height !== undefined) {
    logger.warn({ model: info.name, size }, '--width/--height ignored: the model has a fixed input size');
    process.stderr.write(
      `stegostream: --width/--height ignored: ${info.name} takes ${size.width}x${size.height} frames (export it at another size to change that)\n`,
    );
  }
  return size;
}

function progressOf(options: ProcessOptions, label: string, total: number | undefined): ProgressMeter {
  return options.progress?.(label, total) ?? { tick: () => undefined, stop: () => undefined };
}

/** An input error restated with the frames the outputs hold. */
function withFramesWritten(err: Error, frames: number): Error {
  return err instanceof DecodeError || err instanceof DamagedInputError || err instanceof ImageUnreadableError
    ? err.withFramesWritten(frames)
    : err;
}
