import type { RefineOptions } from '../backbone/refine-options.js';
import {
  catchError,
  concatMap,
  EMPTY,
  fromEvent,
  lastValueFrom,
  NEVER,
  of,
  take,
  takeUntil,
  tap,
  bufferCount,
  type Observable,
} from 'rxjs';
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Frame, ProgressFactory, ProgressMeter, Segmentation } from '../types.js';
import { InferenceClient } from '../backbone/inference-client.js';
import type { BackboneInfo } from '../backbone/backbone.js';
import type { Device } from '../backbone/execution-device.js';
import { probeVideo } from '../internal/probe-video.js';
import { workingSize } from '../internal/working-size.js';
import { FlowGate } from '../internal/flow-gate.js';
import { assertVideoFile, fileSource } from '../sources/file-source.js';
import { imageFolderSource, imageSize, listImages } from '../sources/image-folder-source.js';
import { OverlayVideoWriter } from '../sinks/overlay-video-writer.js';
import { MaskWriter } from '../sinks/mask-writer.js';
import { StatsFileWriter } from '../sinks/stats-file-writer.js';
import { fileOutputsSink } from '../sinks/file-outputs-sink.js';
import type { Sink } from '../sinks/sink.js';
import { loadCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { expectedClassCount, learnerOptions, type LearningOptions } from '../learning/learning-options.js';
import { ObjectFinder } from '../objects/object-finder.js';
import { SegmentationEngine } from '../engine/segmentation-engine.js';
import { segmentPipeline, publishTo } from '../engine/segment-pipeline.js';
import { ClassSummary } from '../engine/class-summary.js';
import { DamagedInputError, DecodeError, ImageUnreadableError, InputNotFoundError } from '../errors.js';

export interface ProcessOptions {
  /** A video file or a folder of images. */
  readonly input: string;
  readonly out?: string;
  readonly outSize?: { readonly width: number; readonly height: number };
  readonly masks?: string;
  readonly stats?: string;
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
  /** Aborting finishes the run early: what was processed is written and finalised. */
  readonly signal?: AbortSignal;
}

export interface ProcessResult {
  readonly frames: number;
  readonly seconds: number;
  readonly fps: number;
  readonly interrupted: boolean;
  /** Frames the learning pass read (0 without one); with `interrupted` and `frames` 0, it stopped the pass. */
  readonly learned: number;
  readonly headVersion: number;
  readonly summary: string;
  readonly shares: readonly { id: number; name: string; share: number }[];
  readonly backbone: string;
  readonly outputs: readonly string[];
  /** Things the user should know about the result (e.g. frames too uniform to segment). */
  readonly warnings: readonly string[];
  /** Set when the input failed midway: outputs hold the frames before the failure. */
  readonly error?: Error;
}

/**
 * `stegostream process`: a recorded video (or image folder) in; overlay video, label-map PNGs,
 * per-frame statistics and a summary out. Learning: a first pass over the first
 * `learning.learnFrames` frames fits the head (unless a head is loaded and frozen), then the whole
 * input is segmented while the head keeps learning every `learning.trainEvery` frames (class ids
 * stay stable across rounds). Outputs are finalised on success, on abort and on a decode error,
 * and they agree: the overlay video, the masks and the stats hold the same frames (a run stopped
 * during the learning pass writes none, the CSV header only), and messages count what was written.
 */
export async function runProcess(options: ProcessOptions): Promise<ProcessResult> {
  const { logger } = options;
  const input = await openProcessInput(options.input, options.every, logger);
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
  const size = processWorkingSize(info, input.size, options, logger);
  const learning = options.learning;
  let initial: HeadState | undefined;
  const headFile = learning.head ?? (learning.resume ? learning.checkpoint : undefined);
  if (headFile) {
    const k = expectedClassCount(learning);
    initial = await loadCheckpoint(headFile, { dim: info.dim, ...(k === undefined ? {} : { k }) });
    logger.info({ head: headFile, version: initial.version }, 'head loaded');
  }

  // Outputs open before any work, so an unwritable path fails fast.
  const outputs = await openProcessOutputs(options, size, input).catch(async (err: unknown) => {
    await backbone.close();
    throw err;
  });
  const closeEarly = async (): Promise<void> => {
    await Promise.allSettled([outputs.abort(), backbone.close()]);
  };
  // LOST's N² degree pass runs in ONNX Runtime (ObjectFinder): in JS it costs as much as the backbone.
  const finder = options.objects
    ? await ObjectFinder.create(info.patchSize, options.threads !== undefined ? { threads: options.threads } : {})
    : undefined;
  const engine = await SegmentationEngine.create({
    inference: backbone,
    logger,
    objects: options.objects,
    ...(learning.checkpoint && !learning.freeze ? { checkpoint: learning.checkpoint } : {}),
    warmupFrames: Math.max(1, Math.min(learning.learnFrames, input.totalFrames ?? learning.learnFrames)),
    learnPassSteps: learning.learnSteps,
    // A recorded input has no deadline: rounds at fixed frame counts make a seed's output reproducible.
    syncRounds: true,
    // One set of classes across the CSV columns, the masks and the summary: the count is decided
    // at the first fit (a live service lets rounds move it).
    learner: learnerOptions(learning, initial, { recount: false }),
  }).catch(async (err: unknown) => {
    await closeEarly();
    throw err;
  });
  // The CSV header names the classes now, so the file has it whatever stops the run.
  outputs.stats?.start(engine.classInfo);

  const signal = options.signal;
  // fromEvent alone would miss an abort that came while the backbone was loading.
  const abort$ = signal ? (signal.aborted ? of(true) : fromEvent(signal, 'abort').pipe(take(1))) : NEVER;
  const run: ProcessRun = { options, input, size, engine, abort$, interrupted: () => signal?.aborted ?? false };
  const learned = !learning.freeze && !initial && learning.learnFrames > 0 ? await learningPass(run) : 0;
  const started = performance.now();
  const pass = await segmentingPass(run, outputs, finder);
  // Finalise every output whatever happened: a valid file with the frames done so far.
  const closing = await Promise.allSettled([outputs.sink.close(), engine.close(), backbone.close(), finder?.close()]);
  let runError = pass.error;
  for (const c of closing) if (c.status === 'rejected' && !runError) runError = c.reason as Error;
  if (!runError && pass.inputError) runError = withFramesWritten(pass.inputError, pass.frames);
  const paths = outputs.paths.filter((p) => p !== options.out || (outputs.overlay?.framesWritten ?? 0) > 0);
  const seconds = (performance.now() - started) / 1000;
  const classes = engine.classInfo;
  return {
    frames: pass.frames,
    seconds,
    fps: seconds > 0 ? pass.frames / seconds : 0,
    interrupted: run.interrupted(),
    learned,
    headVersion: engine.headState.version,
    summary: pass.summary.table(classes),
    shares: pass.summary.rows(classes),
    backbone: info.name,
    outputs: paths,
    warnings: engine.warning ? [engine.warning] : [],
    ...(runError ? { error: runError } : {}),
  };
}

/** A video file or image folder, probed: its size, rate, frame count and how to read it. */
interface ProcessInput {
  readonly path: string;
  readonly isDir: boolean;
  readonly size: { width: number; height: number };
  /** Frames per second after `every` (image folders: 1). */
  readonly fps: number;
  readonly totalFrames: number | undefined;
  source(size: { width: number; height: number }, gate: FlowGate): Observable<Frame>;
}

async function openProcessInput(path: string, every: number, logger: Logger): Promise<ProcessInput> {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new InputNotFoundError(path, 'input');
  }
  if (isDir) {
    const files = listImages(path);
    return {
      path,
      isDir,
      size: await imageSize(files[0] as string),
      fps: 1,
      totalFrames: Math.ceil(files.length / every),
      source: (size, gate) => imageFolderSource({ dir: path, width: size.width, height: size.height, every, gate }),
    };
  }
  assertVideoFile(path);
  const v = await probeVideo(path);
  logger.info({ input: path, codec: v.codec, pixFmt: v.pixFmt, width: v.width, height: v.height, fps: v.fps, frames: v.frames }, 'input');
  return {
    path,
    isDir,
    size: { width: v.width, height: v.height },
    fps: v.fps / every,
    totalFrames: v.frames !== undefined ? Math.ceil(v.frames / every) : undefined,
    source: (size, gate) => fileSource({ path, width: size.width, height: size.height, every, gate, fps: v.fps }),
  };
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

interface ProcessOutputs {
  readonly overlay?: OverlayVideoWriter | undefined;
  readonly stats?: StatsFileWriter | undefined;
  readonly sink: Sink;
  /** The paths asked for, in the order of the summary. */
  readonly paths: string[];
  /** Stops the encoder at once and closes the stats file (a start that failed). */
  abort(): Promise<void>;
}

async function openProcessOutputs(
  options: ProcessOptions,
  size: { width: number; height: number },
  input: ProcessInput,
): Promise<ProcessOutputs> {
  let overlay: OverlayVideoWriter | undefined;
  let stats: StatsFileWriter | undefined;
  try {
    overlay = options.out
      ? await OverlayVideoWriter.open({
          path: options.out,
          width: size.width,
          height: size.height,
          fps: input.isDir ? 5 : input.fps,
          outWidth: options.outSize?.width ?? input.size.width,
          outHeight: options.outSize?.height ?? input.size.height,
          ...(input.isDir ? {} : { background: { file: input.path, every: options.every } }),
        })
      : undefined;
    const masks = options.masks ? await MaskWriter.open(options.masks) : undefined;
    stats = options.stats ? await StatsFileWriter.open(options.stats) : undefined;
    const paths = [options.out, options.masks, options.stats].filter((p): p is string => p !== undefined);
    const abort = async (): Promise<void> => {
      await Promise.allSettled([overlay?.abort(), stats?.close()]);
    };
    return { overlay, stats, sink: fileOutputsSink({ overlay, masks, stats }), paths, abort };
  } catch (err) {
    await Promise.allSettled([overlay?.abort(), stats?.close()]);
    throw err;
  }
}

/** What both passes of a run share. */
interface ProcessRun {
  readonly options: ProcessOptions;
  readonly input: ProcessInput;
  readonly size: { width: number; height: number };
  readonly engine: SegmentationEngine;
  readonly abort$: Observable<unknown>;
  interrupted(): boolean;
}

/**
 * Learning pass: the head is fitted on the first frames before output starts, so the first
 * segmented frame already uses learned classes. An input error here is left to the pass that
 * writes outputs, which decodes the same frames and reports it with what it wrote. Returns the
 * frames read.
 */
async function learningPass(run: ProcessRun): Promise<number> {
  const { options, engine } = run;
  const learning = options.learning;
  if (run.interrupted()) return 0;
  let learned = 0;
  const gate = new FlowGate(options.batchSize * 2);
  const pass = meter(options, 'learning', Math.min(learning.learnFrames, run.input.totalFrames ?? Infinity));
  await lastValueFrom(
    run.input.source(run.size, gate).pipe(
      take(learning.learnFrames),
      catchError((err: unknown) => {
        options.logger.warn({ err: (err as Error).message }, 'input error during the learning pass; learning from the frames before it');
        return EMPTY;
      }),
      takeUntil(run.abort$),
      bufferCount(options.batchSize),
      concatMap(async (batch) => {
        if (run.interrupted()) return;
        await engine.learn(batch);
        learned += batch.length;
        gate.release(batch.length);
        pass.tick(batch.length);
      }),
    ),
    { defaultValue: undefined },
  ).finally(() => {
    pass.stop();
    gate.close();
  });
  // Interrupted: no closing round (it can take seconds); the run ends with nothing segmented.
  if (!run.interrupted()) await engine.finishLearningPass();
  return learned;
}

interface PassResult {
  readonly frames: number;
  readonly summary: ClassSummary;
  /** What stopped the pass (an output failed, inference failed). */
  readonly error?: Error;
  /** The input failed midway: every frame decoded before it was segmented and written. */
  readonly inputError?: Error;
}

/** Segments the whole input through the shared pipeline into the files. */
async function segmentingPass(run: ProcessRun, outputs: ProcessOutputs, finder: ObjectFinder | undefined): Promise<PassResult> {
  const { options, engine } = run;
  const summary = new ClassSummary();
  const progress = meter(options, 'segmenting', run.input.totalFrames);
  const gate = new FlowGate(options.batchSize * 3);
  let frames = 0;
  // A failing input ends the stream instead of erroring it, so every frame decoded before the
  // failure is segmented and written (an error would drop the batch in flight); it is reported after.
  let inputError: Error | undefined;
  let error: Error | undefined;
  try {
    if (!run.interrupted()) {
      await lastValueFrom(
        run.input.source(run.size, gate).pipe(
          catchError((err: unknown) => {
            inputError = err as Error;
            return EMPTY;
          }),
          takeUntil(run.abort$),
          segmentPipeline({
            batch: {
              size: options.batchSize,
              maxDelayMs: 0,
              fullBatches: true,
              key: (f) => f.streamId,
              policy: () => 'wait',
              queueSize: () => options.batchSize,
            },
            segment: (batch) => engine.process(batch),
            objects: finder,
            render: { png: () => options.masks !== undefined, jpeg: () => false },
          }),
          publishTo(outputs.sink),
          tap((r) => {
            summary.add(r.seg.labels);
            options.onSegment?.(r.seg);
            frames++;
            gate.release();
            progress.tick();
          }),
        ),
        { defaultValue: undefined },
      );
    }
  } catch (err) {
    error = err as Error;
  } finally {
    progress.stop();
    gate.close();
  }
  return { frames, summary, ...(error ? { error } : {}), ...(inputError ? { inputError } : {}) };
}

function meter(options: ProcessOptions, label: string, total: number | undefined): ProgressMeter {
  return options.progress?.(label, total) ?? { tick: () => undefined, stop: () => undefined };
}

/** An input error restated with the frames the outputs hold. */
function withFramesWritten(err: Error, frames: number): Error {
  return err instanceof DecodeError || err instanceof DamagedInputError || err instanceof ImageUnreadableError
    ? err.withFramesWritten(frames)
    : err;
}
