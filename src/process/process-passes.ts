import { bufferCount, catchError, concatMap, EMPTY, lastValueFrom, takeUntil, takeWhile, tap, type Observable } from 'rxjs';
import type { Frame, ProgressMeter, Segmentation, StagedCall } from '../types.js';
import type { Logger } from 'pino';
import { FlowGate } from '../internal/flow-gate.js';
import type { SegmentationEngine } from '../engine/segmentation-engine.js';
import { segmentPipeline, publishTo } from '../engine/segment-pipeline.js';
import type { ClassSummary } from '../engine/class-summary.js';
import type { ObjectFinder } from '../objects/object-finder.js';
import type { Sink } from '../sinks/sink.js';
import type { ProcessInput } from './process-input.js';

/** What the passes over one input share. */
export interface PassContext {
  readonly input: ProcessInput;
  readonly size: { width: number; height: number };
  /** When the input's first frame was taken, ms since the epoch, if known. */
  readonly startTime: number | undefined;
  readonly engine: SegmentationEngine;
  /** Segments a batch (the engine's `process`, or a wrapper that names classes once it can). */
  readonly segment: (frames: Frame[]) => Promise<Segmentation[]> | StagedCall<Segmentation>;
  readonly batchSize: number;
  readonly abort$: Observable<unknown>;
  readonly logger: Logger;
  interrupted(): boolean;
}

/**
 * Learning pass: the head is fitted on the first `frames` frames before output starts, so the
 * first segmented frame already uses learned classes. An input error here is left to the pass that
 * writes outputs, which decodes the same frames and reports it with what it wrote. Returns the
 * frames read for learning.
 *
 * While the closing round trains (seconds at ViT widths), the backbone runs on the frames after
 * the learned ones, in the segmenting pass's batches, and the engine keeps the outputs for it
 * (`engine.prefetch`): the round's time is not all added to the run. What is segmented and
 * learned from does not change: the learner and the head see those frames only in the
 * segmenting pass, as before.
 */
export async function learningPass(ctx: PassContext, frames: number, meter: ProgressMeter): Promise<number> {
  const { engine } = ctx;
  if (ctx.interrupted()) return 0;
  let learned = 0;
  let read = 0;
  /** The closing round, once started; settled: prefetching stops. */
  let closing: Promise<void> | undefined;
  let closed = false;
  let prefetching = true;
  const close = (): void => {
    if (closing || ctx.interrupted()) return;
    meter.stop();
    closing = engine.finishLearningPass().finally(() => (closed = true));
  };
  const gate = new FlowGate(ctx.batchSize * 2);
  await lastValueFrom(
    ctx.input.source(ctx.size, gate, ctx.startTime).pipe(
      takeWhile(() => read++ < frames || (prefetching && !closed && !ctx.interrupted())),
      catchError((err: unknown) => {
        if (read <= frames) {
          ctx.logger.warn({ err: (err as Error).message }, 'input error during the learning pass; learning from the frames before it');
        }
        return EMPTY;
      }),
      takeUntil(ctx.abort$),
      bufferCount(ctx.batchSize),
      concatMap(async (batch) => {
        if (ctx.interrupted()) return;
        const learning = batch.slice(0, Math.max(0, frames - learned));
        if (learning.length > 0) {
          await engine.learn(learning);
          learned += learning.length;
          meter.tick(learning.length);
          if (learned >= frames) close();
        } else if (batch.length === ctx.batchSize && prefetching && !closed) {
          // Whole batches only: the segmenting pass takes a batch from here only if all of it is here.
          prefetching = await engine.prefetch(batch);
        }
        gate.release(batch.length);
      }),
    ),
    { defaultValue: undefined },
  ).finally(() => {
    meter.stop();
    gate.close();
  });
  // A short input (fewer frames than asked for) ends before the round started. Interrupted: no
  // closing round (it can take seconds); the run ends with nothing segmented.
  if (!ctx.interrupted()) close();
  await closing;
  return learned;
}

export interface PassResult {
  readonly frames: number;
  /** What stopped the pass (an output failed, inference failed). */
  readonly error?: Error;
  /** The input failed midway: every frame decoded before it was segmented and written. */
  readonly inputError?: Error;
}

export interface SegmentingOptions {
  readonly sink: Sink;
  readonly finder: ObjectFinder | undefined;
  /** Label PNGs are rendered for the masks folder. */
  readonly masks: boolean;
  readonly summary: ClassSummary;
  readonly meter: ProgressMeter;
  readonly onSegment?: ((seg: Segmentation) => void) | undefined;
}

/** Segments one whole input through the shared pipeline into its files. */
export async function segmentingPass(ctx: PassContext, o: SegmentingOptions): Promise<PassResult> {
  // Four batches: one being written, one segmented, one in the backbone, one being decoded.
  const gate = new FlowGate(ctx.batchSize * 4);
  let frames = 0;
  // A failing input ends the stream instead of erroring it, so every frame decoded before the
  // failure is segmented and written (an error would drop the batch in flight); it is reported after.
  let inputError: Error | undefined;
  let error: Error | undefined;
  try {
    if (!ctx.interrupted()) {
      await lastValueFrom(
        ctx.input.source(ctx.size, gate, ctx.startTime).pipe(
          catchError((err: unknown) => {
            inputError = err as Error;
            return EMPTY;
          }),
          takeUntil(ctx.abort$),
          segmentPipeline({
            batch: {
              size: ctx.batchSize,
              maxDelayMs: 0,
              fullBatches: true,
              key: (f) => f.streamId,
              policy: () => 'wait',
              queueSize: () => ctx.batchSize,
            },
            segment: ctx.segment,
            objects: o.finder,
            render: { png: () => o.masks, jpeg: () => false },
          }),
          publishTo(o.sink),
          tap((r) => {
            o.summary.add(r.stats);
            o.onSegment?.(r.seg);
            frames++;
            gate.release();
            o.meter.tick();
          }),
        ),
        { defaultValue: undefined },
      );
    }
  } catch (err) {
    error = err as Error;
  } finally {
    gate.close();
  }
  return { frames, ...(error ? { error } : {}), ...(inputError ? { inputError } : {}) };
}
