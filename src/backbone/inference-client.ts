import { availableParallelism } from 'node:os';
import type { Embedding, Frame } from '../types.js';
import type { BackboneInfo } from './backbone.js';
import { packImages, packTokens, type SegmentationHead } from './segmenter.js';
import type { InferenceOptions, WireHead } from './inference-protocol.js';
import { InferenceThread } from './inference-thread.js';

/** Batches whose packed pixels are kept for their segmentation (see InferenceClient.packed). */
const PACKED_KEPT = 8;

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
  /**
   * Per batch embedded, by its first embedding: the packed pixels that came back from the backbone.
   * Only the last PACKED_KEPT batches: a batch is segmented soon after it is embedded or not at
   * all (a learning pass's outputs are segmented with the frames decoded again), so older ones
   * would only hold memory.
   */
  private readonly packed = new Map<Embedding, { readonly pixels: Uint8Array; readonly frames: readonly Frame[] }>();

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
    const frame = frames[0];
    if (!frame) return [];
    const { width, height } = frame;
    // The one copy of the batch's pixels on this thread: moved to the backbone, moved back, and
    // moved on to the segmentation with the same frames (see segment).
    const packed = packFrames(frames);
    const reply = await this.backbone.call<'embedded'>({ type: 'embed', width, height, pixels: packed }, [packed.buffer as ArrayBuffer]);
    const { gridH, gridW, dim, tokens, cls, keys, pixels } = reply;
    const n = gridH * gridW;
    const embeddings = frames.map((f, b) => ({
      frame: f,
      gridH,
      gridW,
      dim,
      patchTokens: tokens.subarray(b * n * dim, (b + 1) * n * dim),
      clsToken: cls.subarray(b * dim, (b + 1) * dim),
      ...(keys ? { keys: keys.subarray(b * n * dim, (b + 1) * n * dim) } : {}),
    }));
    if (embeddings[0]) {
      this.packed.set(embeddings[0], { pixels, frames });
      const oldest = this.packed.keys().next().value;
      if (this.packed.size > PACKED_KEPT && oldest !== undefined) this.packed.delete(oldest);
    }
    return embeddings;
  }

  /**
   * Label maps (height*width each) of a batch from its embeddings, computed before by `embed` (or
   * kept from a learning pass). The frames give the output size and, when refining, the pixels.
   */
  async segment(frames: readonly Frame[], head: VersionedHead, embeddings: readonly Embedding[]): Promise<Uint8Array[]> {
    const first = embeddings[0];
    const frame = frames[0];
    if (!first || !frame) return [];
    if (embeddings.length !== frames.length) throw new Error(`${frames.length} frames but ${embeddings.length} embeddings`);
    const { width, height } = frame;
    const { gridH, gridW, dim } = first;
    // One contiguous copy of the tokens moved to the worker, and the pixels for refinement: those
    // embed packed when these are its frames and they were not moved on yet, else a new copy.
    const tokens = packTokens(embeddings);
    const pixels = this.segmentation.ready.refines ? this.takePacked(first, frames) : undefined;
    const wireHead: WireHead =
      head.version === this.sentHeadVersion
        ? { version: head.version, k: head.k }
        : { version: head.version, k: head.k, weights: head.weights, centroids: head.centroids };
    this.sentHeadVersion = head.version;
    const reply = await this.segmentation
      .call<'labels'>(
        { type: 'segment', width, height, head: wireHead, embedded: { gridH, gridW, dim, tokens }, ...(pixels ? { pixels } : {}) },
        [tokens.buffer as ArrayBuffer, ...(pixels ? [pixels.buffer as ArrayBuffer] : [])],
      )
      .catch((err: unknown) => {
        // The worker may not hold the head we think it does after a failure: resend next time.
        this.sentHeadVersion = -1;
        throw err;
      });
    const px = width * height;
    return frames.map((_, b) => reply.labels.subarray(b * px, (b + 1) * px));
  }

  /** The pixels embed packed for exactly these frames (once: moving them detaches them), else a new pack. */
  private takePacked(first: Embedding, frames: readonly Frame[]): Uint8Array {
    const packed = this.packed.get(first);
    this.packed.delete(first);
    const same =
      packed !== undefined &&
      packed.pixels.byteLength > 0 &&
      packed.frames.length === frames.length &&
      packed.frames.every((f, i) => f === frames[i]);
    return same ? packed.pixels : packFrames(frames);
  }

  /** Waits for the calls in flight, then stops both workers. Idempotent. */
  async close(): Promise<void> {
    await Promise.all([this.backbone.close(), this.segmentation.close()]);
  }
}

/** A batch's pixels in one buffer (frames of the first frame's size), ready to move to a thread. */
function packFrames(frames: readonly Frame[]): Uint8Array {
  const { width, height } = frames[0] as Frame;
  return packImages(
    frames.map((f) => f.rgb),
    width,
    height,
  );
}
