import * as ort from 'onnxruntime-node';
import type { Embedding } from '../types.js';
import { buildSegmentationGraph } from './segmentation-graph.js';
import type { RefineOptions } from './refine-options.js';
import type { HeadWeights } from '../learning/stego-head.js';

/** Head weights (src/learning layout): code = f·linW + linB + relu(f·mlp1W + mlp1B)·mlp2W + mlp2B. */
export type HeadTensors = HeadWeights;

/** What segmentation needs of a head state: weights (null = probe on raw features) and unit centroids [K×D]. */
export interface SegmentationHead {
  readonly weights: HeadTensors | null;
  readonly centroids: Float32Array;
  readonly k: number;
}

/**
 * Runs head + cluster probe + upsampling + argmax in ONNX Runtime for a batch of embeddings.
 * Two sessions are built once (with and without head); the head's tensors are fed per call, so a
 * new head takes effect on the next batch.
 */
export class Segmenter {
  private constructor(
    private readonly withHead: ort.InferenceSession,
    private readonly raw: ort.InferenceSession,
    readonly refine: RefineOptions | undefined,
  ) {}

  /** @param refine the guided filter's settings; omitted: plain bilinear maps (`segment` then needs no pixels). */
  static async create(threads?: number, refine?: RefineOptions): Promise<Segmenter> {
    const opts: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      // ffmpeg and the learner share the cores: idle ORT threads must sleep, not spin.
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      executionProviders: ['cpu'],
      ...(threads !== undefined ? { intraOpNumThreads: threads } : {}),
    };
    const [a, b] = await Promise.all([
      ort.InferenceSession.create(buildSegmentationGraph(true, refine), opts),
      ort.InferenceSession.create(buildSegmentationGraph(false, refine), opts),
    ]);
    return new Segmenter(a, b, refine);
  }

  /**
   * Label maps (uint8, outH*outW) per embedding. All embeddings must share grid and dim. With
   * refinement, `images` are the frames' RGB (HWC, outW x outH), one per embedding.
   */
  async segment(
    embeddings: readonly Embedding[],
    head: SegmentationHead,
    outH: number,
    outW: number,
    images?: readonly Uint8Array[],
  ): Promise<Uint8Array[]> {
    const first = embeddings[0];
    if (!first) return [];
    const { gridH, gridW, dim } = first;
    const B = embeddings.length;
    const tokens = packTokens(embeddings);
    let pixels: Uint8Array | undefined;
    if (this.refine) {
      if (!images || images.length !== B) throw new Error(`refinement needs the ${B} frames' pixels, got ${images?.length ?? 0}`);
      pixels = packImages(images, outW, outH);
    }
    const labels = await this.segmentTokens({ tokens, batch: B, gridH, gridW, dim }, head, outH, outW, pixels);
    const px = outH * outW;
    return embeddings.map((_, i) => labels.slice(i * px, (i + 1) * px));
  }

  /**
   * The batch's label maps, one after the other (B*outH*outW), from its patch tokens [B×N×C] in
   * one array (as the backbone thread sends them). `pixels`: the frames' RGB [B×outH×outW×3],
   * required with refinement.
   */
  async segmentTokens(
    batch: { readonly tokens: Float32Array; readonly batch: number; readonly gridH: number; readonly gridW: number; readonly dim: number },
    head: SegmentationHead,
    outH: number,
    outW: number,
    pixels?: Uint8Array,
  ): Promise<Uint8Array> {
    const { tokens, batch: B, gridH, gridW, dim } = batch;
    const w = head.weights;
    const codeDim = w ? w.codeDim : dim;
    const feeds: Record<string, ort.Tensor> = {
      tokens: new ort.Tensor('float32', tokens, [B, gridH * gridW, dim]),
      grid: new ort.Tensor('int64', BigInt64Array.from([B, dim, gridH, gridW].map(BigInt)), [4]),
      out_size: new ort.Tensor('int64', BigInt64Array.from([B, head.k, outH, outW].map(BigInt)), [4]),
      centroids: new ort.Tensor('float32', head.centroids, [head.k, codeDim]),
    };
    if (this.refine) {
      if (pixels?.length !== B * outH * outW * 3) {
        throw new Error(`refinement needs the ${B} frames' pixels (${B * outH * outW * 3} bytes), got ${pixels?.length ?? 0}`);
      }
      feeds['image'] = new ort.Tensor('uint8', pixels, [B, outH, outW, 3]);
    }
    if (w) {
      feeds['lin_w'] = new ort.Tensor('float32', w.linW, [w.inDim, w.codeDim]);
      feeds['lin_b'] = new ort.Tensor('float32', w.linB, [w.codeDim]);
      feeds['mlp1_w'] = new ort.Tensor('float32', w.mlp1W, [w.inDim, w.inDim]);
      feeds['mlp1_b'] = new ort.Tensor('float32', w.mlp1B, [w.inDim]);
      feeds['mlp2_w'] = new ort.Tensor('float32', w.mlp2W, [w.inDim, w.codeDim]);
      feeds['mlp2_b'] = new ort.Tensor('float32', w.mlp2B, [w.codeDim]);
    }
    const out = await (w ? this.withHead : this.raw).run(feeds);
    return out['labels']?.data as Uint8Array;
  }

  async close(): Promise<void> {
    await Promise.all([this.withHead.release(), this.raw.release()]);
  }
}

/** The patch tokens of a batch (one grid and dim) in one array [B×N×C], as the graph takes them. */
export function packTokens(embeddings: readonly Embedding[]): Float32Array {
  const first = embeddings[0];
  if (!first) return new Float32Array(0);
  const size = first.gridH * first.gridW * first.dim;
  const tokens = new Float32Array(embeddings.length * size);
  embeddings.forEach((e, i) => tokens.set(e.patchTokens, i * size));
  return tokens;
}

/** A batch's RGB frames (width x height each) in one array [B×H×W×3], as the refinement takes them. */
export function packImages(images: readonly Uint8Array[], width: number, height: number): Uint8Array {
  const bytes = width * height * 3;
  const out = new Uint8Array(images.length * bytes);
  images.forEach((im, i) => {
    if (im.length !== bytes) throw new Error(`frame ${i} has ${im.length} bytes, not ${width}x${height} RGB`);
    out.set(im, i * bytes);
  });
  return out;
}
