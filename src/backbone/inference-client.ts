import { availableParallelism } from 'node:os';
import type { Embedding, Frame } from '../types.js';
import type { BackboneInfo } from './backbone.js';
import type { SegmentationHead } from './segmenter.js';
import type { InferenceOptions, WireHead } from './inference-protocol.js';
import { InferenceThread } from './inference-thread.js';

export interface InferenceResult {
  readonly embeddings: Embedding[];
  /** Label maps per frame (height*width), when a head was given. */
  readonly labels?: Uint8Array[];
  readonly backboneMs: number;
  readonly segmentMs: number;
}

/** A head as the segmentation thread takes it: its tensors and the version that names them. */
export type VersionedHead = SegmentationHead & { readonly version: number };

/**
 * Backbone and segmentation, each in its own worker thread (see inference-worker.ts for why):
 * `embed` runs a batch through the backbone, `segment` runs head, probe and refinement on
 * embeddings, so one batch can be segmented while the next is embedded. The head's tensors cross
 * the thread boundary only when its version changes. Errors keep their code (ModelContractError, ...).
 */
export class InferenceClient {
  private sentHeadVersion = -1;

  private constructor(
    private readonly backbone: InferenceThread,
    private readonly segmentation: InferenceThread,
    readonly info: BackboneInfo,
  ) {}

  /** Loads the backbone (checking its contract) and the segmentation sessions, in two new workers. */
  static async start(spec: string, options: InferenceOptions = {}): Promise<InferenceClient> {
    const segmentThreads = options.segmentThreads ?? options.threads ?? Math.max(1, Math.floor(availableParallelism() / 2));
    const started = await Promise.allSettled([
      InferenceThread.start('backbone', spec, options),
      InferenceThread.start('segmentation', spec, { ...options, segmentThreads }),
    ]);
    const [bb, seg] = started;
    if (bb.status === 'rejected' || seg.status === 'rejected') {
      await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
      throw bb.status === 'rejected' ? bb.reason : (seg as PromiseRejectedResult).reason;
    }
    const info = bb.value.ready.info;
    if (!info) throw new Error('the backbone thread did not describe its model');
    return new InferenceClient(bb.value, seg.value, info);
  }

  /** Runs a batch (frames of one size) through the backbone. */
  async embed(frames: readonly Frame[]): Promise<Embedding[]> {
    return (await this.embedTimed(frames)).embeddings;
  }

  /**
   * Label maps (height*width each) of a batch from its embeddings, computed before by `embed` (or
   * kept from a learning pass). The frames give the output size and, when refining, the pixels.
   */
  async segment(frames: readonly Frame[], head: VersionedHead, embeddings: readonly Embedding[]): Promise<Uint8Array[]> {
    return (await this.segmentTimed(frames, head, embeddings)).labels;
  }

  /**
   * Runs a batch through the backbone and, given a head, the segmentation. `embedded`: the
   * backbone's outputs for exactly these frames, computed before (a learning pass kept them):
   * only the segmentation runs.
   */
  async infer(frames: readonly Frame[], head?: VersionedHead, embedded?: readonly Embedding[]): Promise<InferenceResult> {
    if (frames.length === 0) return { embeddings: [], backboneMs: 0, segmentMs: 0 };
    const e = embedded && embedded.length === frames.length ? { embeddings: [...embedded], ms: 0 } : await this.embedTimed(frames);
    if (!head) return { embeddings: e.embeddings, backboneMs: e.ms, segmentMs: 0 };
    const s = await this.segmentTimed(frames, head, e.embeddings);
    return { embeddings: e.embeddings, labels: s.labels, backboneMs: e.ms, segmentMs: s.ms };
  }

  /** Waits for the calls in flight, then stops both workers. Idempotent. */
  async close(): Promise<void> {
    await Promise.all([this.backbone.close(), this.segmentation.close()]);
  }

  private async embedTimed(frames: readonly Frame[]): Promise<{ embeddings: Embedding[]; ms: number }> {
    if (frames.length === 0) return { embeddings: [], ms: 0 };
    const reply = await this.backbone.call<'embedded'>({
      type: 'embed',
      frames: frames.map((f) => ({ width: f.width, height: f.height, rgb: f.rgb })),
    });
    const { gridH, gridW, dim, tokens, cls, keys } = reply;
    const n = gridH * gridW;
    const embeddings = frames.map((frame, b) => ({
      frame,
      gridH,
      gridW,
      dim,
      patchTokens: tokens.subarray(b * n * dim, (b + 1) * n * dim),
      clsToken: cls.subarray(b * dim, (b + 1) * dim),
      ...(keys ? { keys: keys.subarray(b * n * dim, (b + 1) * n * dim) } : {}),
    }));
    return { embeddings, ms: reply.ms };
  }

  private async segmentTimed(
    frames: readonly Frame[],
    head: VersionedHead,
    embeddings: readonly Embedding[],
  ): Promise<{ labels: Uint8Array[]; ms: number }> {
    const first = embeddings[0];
    const frame = frames[0];
    if (!first || !frame) return { labels: [], ms: 0 };
    if (embeddings.length !== frames.length) throw new Error(`${frames.length} frames but ${embeddings.length} embeddings`);
    const { width, height } = frame;
    const { gridH, gridW, dim } = first;
    const n = gridH * gridW;
    // One contiguous copy of the tokens (and of the pixels, for refinement), moved to the worker.
    const tokens = new Float32Array(embeddings.length * n * dim);
    embeddings.forEach((e, i) => tokens.set(e.patchTokens, i * n * dim));
    let pixels: Uint8Array | undefined;
    if (this.segmentation.ready.refines) {
      pixels = new Uint8Array(frames.length * width * height * 3);
      frames.forEach((f, i) => {
        if (f.rgb.length !== width * height * 3) throw new Error(`frame ${i} of the batch is not ${width}x${height} RGB`);
        (pixels as Uint8Array).set(f.rgb, i * width * height * 3);
      });
    }
    const wireHead: WireHead =
      head.version === this.sentHeadVersion
        ? { version: head.version, k: head.k }
        : { version: head.version, k: head.k, weights: head.weights, centroids: head.centroids };
    this.sentHeadVersion = head.version;
    const reply = await this.segmentation
      .call<'labels'>(
        { type: 'segment', width, height, head: wireHead, embedded: { gridH, gridW, dim, tokens }, ...(pixels ? { pixels } : {}) },
        [tokens.buffer, ...(pixels ? [pixels.buffer as ArrayBuffer] : [])],
      )
      .catch((err: unknown) => {
        // The worker may not hold the head we think it does after a failure: resend next time.
        this.sentHeadVersion = -1;
        throw err;
      });
    const px = width * height;
    return { labels: frames.map((_, b) => reply.labels.subarray(b * px, (b + 1) * px)), ms: reply.ms };
  }
}
