import { concatMap, mergeMap, pipe, type OperatorFunction } from 'rxjs';
import type { Frame, Segmentation, StagedCall } from '../types.js';
import { batchInfer, type BatchInferOptions } from '../operators/batch-infer.js';
import { findObjects, type ObjectBoxer } from '../operators/find-objects.js';
import { renderOutputs, type RenderedFrame, type RenderOptions } from '../operators/render-outputs.js';
import type { Sink } from '../sinks/sink.js';

export interface SegmentPipelineOptions {
  /** How frames of all streams are batched onto the backbone (sizes, per-stream queues and policies). */
  readonly batch: BatchInferOptions<Frame>;
  /**
   * Embeds and segments one batch: `SegmentationEngine.stage` (learning head; the next batch's
   * backbone overlaps this one's segmentation) in `process` and `serve`, the head from the KV
   * bucket in the cluster worker.
   */
  readonly segment: (frames: Frame[]) => Promise<Segmentation[]> | StagedCall<Segmentation>;
  /** LOST object boxes (`--objects`, model.objects). */
  readonly objects?: ObjectBoxer | undefined;
  /** What is rendered for the sinks. */
  readonly render: RenderOptions;
}

/**
 * The dataflow of DESIGN.md, the same for `process`, `serve` and the cluster worker:
 * frames of every stream → batched across streams → embedded and segmented → object boxes →
 * rendered (stats, label PNG, overlay JPEG). Runners open the source and the sinks, add
 * `publishTo(sink)`, and own subscription and teardown.
 */
export function segmentPipeline(options: SegmentPipelineOptions): OperatorFunction<Frame, RenderedFrame> {
  return pipe(batchInfer<Frame, Segmentation>(options.batch, options.segment), findObjects(options.objects), renderOutputs(options.render));
}

/**
 * Hands each rendered frame to `sink` and waits for it (a file sink resolves when its outputs are
 * written; a live sink at once). `concurrency` > 1 lets that many writes overlap (the cluster
 * worker stores a batch's results in parallel); order of completion is then not kept.
 */
export function publishTo(sink: Sink, concurrency = 1): OperatorFunction<RenderedFrame, RenderedFrame> {
  const write = async (r: RenderedFrame): Promise<RenderedFrame> => {
    await sink.write(r);
    return r;
  };
  return concurrency > 1 ? mergeMap(write, concurrency) : concatMap(write);
}
