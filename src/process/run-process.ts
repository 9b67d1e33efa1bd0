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
import { unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Frame, Segmentation } from '../types.js';
import { InferenceClient } from '../backbone/inference-client.js';
import type { Device } from '../backbone/execution-device.js';
import { probeVideo } from '../internal/probe-video.js';
import { workingSize } from '../internal/working-size.js';
import { FlowGate } from '../internal/flow-gate.js';
import { assertVideoFile, fileSource } from '../sources/file-source.js';
import { imageFolderSource, imageSize, listImages } from '../sources/image-folder-source.js';
import { batchInfer } from '../operators/batch-infer.js';
import { frameStats } from '../operators/frame-stats.js';
import { OverlayVideoWriter } from '../sinks/overlay-video-writer.js';
import { MaskWriter } from '../sinks/mask-writer.js';
import { StatsFileWriter } from '../sinks/stats-file-writer.js';
import { loadCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { SegmentationEngine } from '../engine/segmentation-engine.js';
import { ProgressReporter } from '../cli/progress-reporter.js';
import { ClassSummary } from '../engine/class-summary.js';
import { DamagedInputError, DecodeError, ImageUnreadableError, InputNotFoundError } from '../errors.js';
import { ObjectFinder } from '../objects/object-finder.js';
import { expectedClassCount, learnerClassOptions, learnerTrainOptions, type LearningOptions } from '../learning/learning-options.js';

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
  readonly progress: boolean;
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
  const { input, logger } = options;
  let isDir: boolean;
  try {
    isDir = statSync(input).isDirectory();
  } catch {
    throw new InputNotFoundError(input, 'input');
  }
  if (!isDir) assertVideoFile(input);
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

  // Geometry: the model's fixed size, else the working width with the input's aspect.
  let inputSize: { width: number; height: number };
  let fps = 1;
  let totalFrames: number | undefined;
  if (isDir) {
    const files = listImages(input);
    inputSize = await imageSize(files[0] as string);
    totalFrames = Math.ceil(files.length / options.every);
  } else {
    const v = await probeVideo(input);
    inputSize = { width: v.width, height: v.height };
    fps = v.fps / options.every;
    totalFrames = v.frames !== undefined ? Math.ceil(v.frames / options.every) : undefined;
    logger.info({ input, codec: v.codec, pixFmt: v.pixFmt, width: v.width, height: v.height, fps: v.fps, frames: v.frames }, 'input');
  }
  const size =
    info.inputWidth > 0
      ? { width: info.inputWidth, height: info.inputHeight }
      : workingSize(inputSize, info.patchSize, { width: options.width, height: options.height });
  if (info.inputWidth > 0 && (options.width !== undefined || options.height !== undefined)) {
    logger.warn({ model: info.name, size }, '--width/--height ignored: the model has a fixed input size');
    process.stderr.write(
      `stegostream: --width/--height ignored: ${info.name} takes ${size.width}x${size.height} frames (export it at another size to change that)\n`,
    );
  }

  const learning = options.learning;
  let initial: HeadState | undefined;
  const headFile = learning.head ?? (learning.resume ? learning.checkpoint : undefined);
  if (headFile) {
    const k = expectedClassCount(learning);
    initial = await loadCheckpoint(headFile, { dim: info.dim, ...(k === undefined ? {} : { k }) });
    logger.info({ head: headFile, version: initial.version }, 'head loaded');
  }

  // Outputs open before any work, so an unwritable path fails fast.
  const outputs: string[] = [];
  let overlay: OverlayVideoWriter | undefined;
  let masks: MaskWriter | undefined;
  let stats: StatsFileWriter | undefined;
  const closeEarly = async (): Promise<void> => {
    await Promise.allSettled([overlay?.abort(), stats?.close(), backbone.close()]);
  };
  try {
    overlay = options.out
      ? await OverlayVideoWriter.open({
          path: options.out,
          width: size.width,
          height: size.height,
          fps: isDir ? 5 : fps,
          outWidth: options.outSize?.width ?? inputSize.width,
          outHeight: options.outSize?.height ?? inputSize.height,
          ...(isDir ? {} : { background: { file: input, every: options.every } }),
        })
      : undefined;
    masks = options.masks ? await MaskWriter.open(options.masks) : undefined;
    stats = options.stats ? await StatsFileWriter.open(options.stats) : undefined;
  } catch (err) {
    await closeEarly();
    throw err;
  }
  if (options.out) outputs.push(options.out);
  if (options.masks) outputs.push(options.masks);
  if (options.stats) outputs.push(options.stats);

  // LOST's N² degree pass runs in ONNX Runtime (ObjectFinder): in JS it costs as much as the backbone.
  const finder = options.objects
    ? await ObjectFinder.create(info.patchSize, options.threads !== undefined ? { threads: options.threads } : {})
    : undefined;
  const engine = await SegmentationEngine.create({
    inference: backbone,
    logger,
    objects: options.objects,
    ...(learning.checkpoint && !learning.freeze ? { checkpoint: learning.checkpoint } : {}),
    warmupFrames: Math.max(1, Math.min(learning.learnFrames, totalFrames ?? learning.learnFrames)),
    learnPassSteps: learning.learnSteps,
    // A recorded input has no deadline: rounds at fixed frame counts make a seed's output reproducible.
    syncRounds: true,
    learner: {
      ...learnerClassOptions(learning),
      // One set of classes across the CSV columns, the masks and the summary: the count is
      // decided at the first fit (a live service lets rounds move it).
      recount: false,
      codeDim: learning.codeDim,
      seed: learning.seed,
      freeze: learning.freeze,
      bank: { capacityFrames: learning.bankFrames },
      train: learnerTrainOptions(learning),
      ...(learning.names ? { names: learning.names } : {}),
      ...(initial ? { initial } : {}),
    },
  }).catch(async (err: unknown) => {
    await closeEarly();
    throw err;
  });
  // The CSV header names the classes now, so the file has it whatever stops the run.
  stats?.start(engine.classInfo);

  const makeSource = (gate: FlowGate): Observable<Frame> =>
    isDir
      ? imageFolderSource({ dir: input, width: size.width, height: size.height, every: options.every, gate })
      : fileSource({ path: input, width: size.width, height: size.height, every: options.every, gate, fps: fps * options.every });

  const signal = options.signal;
  // fromEvent alone would miss an abort that came while the backbone was loading.
  const abort$ = signal ? (signal.aborted ? of(true) : fromEvent(signal, 'abort').pipe(take(1))) : NEVER;
  const interrupted = (): boolean => signal?.aborted ?? false;

  let learned = 0;
  // Learning pass: the head is fitted on the first frames before output starts, so the first
  // segmented frame already uses learned classes. An input error here is left to the pass that
  // writes outputs, which decodes the same frames and reports it with what it wrote.
  if (!learning.freeze && !initial && learning.learnFrames > 0 && !interrupted()) {
    const gate = new FlowGate(options.batchSize * 2);
    const pass = new ProgressReporter('learning', Math.min(learning.learnFrames, totalFrames ?? Infinity), options.progress);
    await lastValueFrom(
      makeSource(gate).pipe(
        take(learning.learnFrames),
        catchError((err: unknown) => {
          logger.warn({ err: (err as Error).message }, 'input error during the learning pass; learning from the frames before it');
          return EMPTY;
        }),
        takeUntil(abort$),
        bufferCount(options.batchSize),
        concatMap(async (batch) => {
          if (interrupted()) return;
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
    if (!interrupted()) await engine.finishLearningPass();
  }

  const summary = new ClassSummary();
  const progress = new ProgressReporter('segmenting', totalFrames, options.progress);
  const gate = new FlowGate(options.batchSize * 3);
  const started = performance.now();
  let runError: Error | undefined;
  // A failing input ends the stream instead of erroring it, so every frame decoded before the
  // failure is segmented and written (an error would drop the batch in flight); it is reported after.
  let inputError: Error | undefined;
  let frames = 0;
  try {
    if (!interrupted()) {
      await lastValueFrom(
        makeSource(gate).pipe(
          catchError((err: unknown) => {
            inputError = err as Error;
            return EMPTY;
          }),
          takeUntil(abort$),
          batchInfer<Frame, Segmentation>(
            {
              size: options.batchSize,
              maxDelayMs: 0,
              fullBatches: true,
              key: (f) => f.streamId,
              policy: () => 'wait',
              queueSize: () => options.batchSize,
            },
            async (batch) => {
              const segs = await engine.process(batch);
              return finder ? finder.add(segs) : segs;
            },
          ),
          concatMap(async (seg) => {
            // One output after the other, so a failing one (a full disk) leaves the others at the
            // same frames: a mask whose stats row failed is taken back; the overlay goes last.
            overlay?.assertRunning();
            const mask = await masks?.write(seg);
            try {
              await stats?.write(frameStats(seg));
            } catch (err) {
              if (mask) await unlink(mask).catch(() => undefined);
              throw err;
            }
            await overlay?.write(seg);
            summary.add(seg.labels);
            options.onSegment?.(seg);
            frames++;
            gate.release();
            progress.tick();
          }),
          tap({ error: () => undefined }),
        ),
        { defaultValue: undefined },
      );
    }
  } catch (err) {
    runError = err as Error;
  } finally {
    progress.stop();
    gate.close();
    // Finalise every output whatever happened: a valid file with the frames done so far.
    const closing = await Promise.allSettled([overlay?.close(), stats?.close(), engine.close(), backbone.close(), finder?.close()]);
    for (const c of closing) if (c.status === 'rejected' && !runError) runError = c.reason as Error;
  }
  if (!runError && inputError) runError = withFramesWritten(inputError, frames);
  if (overlay && overlay.framesWritten === 0) outputs.splice(outputs.indexOf(options.out as string), 1);
  const seconds = (performance.now() - started) / 1000;
  const classes = engine.classInfo;
  const result: ProcessResult = {
    frames,
    seconds,
    fps: seconds > 0 ? frames / seconds : 0,
    interrupted: interrupted(),
    learned,
    headVersion: engine.headState.version,
    summary: summary.table(classes),
    shares: summary.rows(classes),
    backbone: info.name,
    outputs,
    warnings: engine.warning ? [engine.warning] : [],
    ...(runError ? { error: runError } : {}),
  };
  return result;
}

/** An input error restated with the frames the outputs hold. */
function withFramesWritten(err: Error, frames: number): Error {
  return err instanceof DecodeError || err instanceof DamagedInputError || err instanceof ImageUnreadableError
    ? err.withFramesWritten(frames)
    : err;
}
