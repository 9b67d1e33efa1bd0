import { Worker } from 'node:worker_threads';
import { workerUrl } from '../internal/worker-url.js';
import type { Embedding, Frame } from '../types.js';
import { StegoError, type ErrorCode } from '../errors.js';
import type { BackboneInfo } from './backbone.js';
import type { SegmentationHead } from './segmenter.js';
import type { InferenceOptions, InferenceReply, InferenceRequest, WireEmbedded, WireHead } from './inference-protocol.js';

export interface InferenceResult {
  readonly embeddings: Embedding[];
  /** Label maps per frame (height*width), when a head was given. */
  readonly labels?: Uint8Array[];
  readonly backboneMs: number;
  readonly segmentMs: number;
}

/**
 * Backbone + segmentation in a worker thread (see inference-worker.ts for why). One call runs a
 * batch through the backbone and, given a head, the probe; the head's tensors cross the thread
 * boundary only when its version changes. Errors keep their code (ModelContractError, ...).
 */
export class InferenceClient {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: Extract<InferenceReply, { type: 'result' }>) => void; reject: (e: Error) => void }
  >();
  private sentHeadVersion = -1;
  private readonly inFlight = new Set<Promise<unknown>>();
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly info: BackboneInfo,
  ) {
    worker.on('message', (msg: InferenceReply) => {
      if (msg.type === 'result') {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.resolve(msg);
      } else if (msg.type === 'error') {
        const err = rebuild(msg);
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          p?.reject(err);
        } else this.fail(err);
      }
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`inference worker exited with code ${code}`));
    });
  }

  /** Loads the backbone (checking its contract) in a new worker. */
  static async start(spec: string, options: InferenceOptions = {}): Promise<InferenceClient> {
    const worker = new Worker(workerUrl(import.meta.url, 'inference-worker.js', 'backbone'));
    const info = await new Promise<BackboneInfo>((resolve, reject) => {
      const onMsg = (msg: InferenceReply): void => {
        worker.off('message', onMsg);
        if (msg.type === 'ready') resolve(msg.info);
        else if (msg.type === 'error') reject(rebuild(msg));
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
      worker.postMessage({ type: 'init', spec, options } satisfies InferenceRequest);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new InferenceClient(worker, info);
  }

  /**
   * Runs a batch through the backbone and, given a head, the segmentation. `embedded`: the
   * backbone's outputs for exactly these frames, computed before (a learning pass kept them):
   * only the segmentation runs.
   */
  async infer(
    frames: readonly Frame[],
    head?: SegmentationHead & { version: number },
    embedded?: readonly Embedding[],
  ): Promise<InferenceResult> {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('inference client is closed');
    if (frames.length === 0) return { embeddings: [], backboneMs: 0, segmentMs: 0 };
    let wireHead: WireHead | undefined;
    if (head) {
      wireHead =
        head.version === this.sentHeadVersion
          ? { version: head.version, k: head.k }
          : { version: head.version, k: head.k, weights: head.weights, centroids: head.centroids };
      this.sentHeadVersion = head.version;
    }
    const id = this.nextId++;
    const wire = embedded && embedded.length === frames.length ? toWire(embedded) : undefined;
    const call = new Promise<Extract<InferenceReply, { type: 'result' }>>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: InferenceRequest = {
        type: 'infer',
        id,
        frames: frames.map((f) => ({ width: f.width, height: f.height, rgb: f.rgb })),
        ...(wireHead ? { head: wireHead } : {}),
        ...(wire ? { embedded: wire } : {}),
      };
      // The batch's copy of cached outputs is moved, not cloned, to the worker.
      this.worker.postMessage(
        msg,
        wire ? ([wire.tokens, wire.cls, ...(wire.keys ? [wire.keys] : [])].map((a) => a.buffer) as ArrayBuffer[]) : [],
      );
    });
    this.inFlight.add(call);
    const reply = await call
      .catch((err: unknown) => {
        // The worker may not hold the head we think it does after a failure: resend next time.
        this.sentHeadVersion = -1;
        throw err;
      })
      .finally(() => this.inFlight.delete(call));
    const { gridH, gridW, dim, tokens, cls, keys, labels } = reply;
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
    const px = (frames[0] as Frame).width * (frames[0] as Frame).height;
    return {
      embeddings,
      ...(labels ? { labels: frames.map((_, b) => labels.subarray(b * px, (b + 1) * px)) } : {}),
      backboneMs: reply.backboneMs,
      segmentMs: reply.segmentMs,
    };
  }

  /**
   * Waits for the calls in flight, then stops the worker. Terminating a worker while ONNX Runtime
   * runs in it aborts the whole process (a native exception), so never before. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.inFlight);
    await this.worker.terminate();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** One contiguous copy of each backbone output of a batch (the cached arrays stay the caller's). */
function toWire(embedded: readonly Embedding[]): WireEmbedded {
  const first = embedded[0] as Embedding;
  const n = first.gridH * first.gridW;
  const C = first.dim;
  const tokens = new Float32Array(embedded.length * n * C);
  const cls = new Float32Array(embedded.length * C);
  const hasKeys = embedded.every((e) => e.keys !== undefined);
  const keys = hasKeys ? new Float32Array(embedded.length * n * C) : undefined;
  embedded.forEach((e, i) => {
    tokens.set(e.patchTokens, i * n * C);
    cls.set(e.clsToken, i * C);
    if (keys && e.keys) keys.set(e.keys, i * n * C);
  });
  return { gridH: first.gridH, gridW: first.gridW, dim: C, tokens, cls, ...(keys ? { keys } : {}) };
}

function rebuild(msg: { message: string; code?: string; details?: Record<string, unknown> }): Error {
  if (!msg.code) return new Error(msg.message);
  return new StegoError(msg.code as ErrorCode, msg.message, { details: msg.details ?? {} });
}
