import * as ort from 'onnxruntime-node';
import type { Segmentation } from '../types.js';
import { lostBox } from './lost.js';
import { DT, OnnxGraph } from '../internal/onnx-graph.js';

/**
 * Adds the LOST main-object box (from the backbone's keys, or its tokens) to a segmentation, all
 * in JS on the calling thread. Prefer ObjectFinder in a pipeline: same boxes, the N²·C part in
 * ONNX Runtime.
 */
export function addObjects(patchSize: number): (seg: Segmentation) => Segmentation {
  return (seg) => {
    const e = seg.embedding;
    if (!e) return seg;
    const keys = e.keys ?? e.patchTokens;
    const r = lostBox(keys, e.gridH, e.gridW, e.dim, patchSize);
    return { ...seg, objects: [{ box: r.box, score: r.score }] };
  };
}

/**
 * keys [N,C] in, per patch the count of positive entries of its row of K Kᵀ out (diagonal
 * included: the caller removes it). N and C are free, so one session serves every backbone size.
 */
export function buildDegreeGraph(): Uint8Array {
  const g = new OnnxGraph('lost_degree');
  const keys = g.input('keys', DT.FLOAT, ['patches', 'channels']);
  const gram = g.op1('Gemm', [keys, keys], { transB: 1 });
  const positive = g.op1('Cast', [g.op1('Greater', [gram, g.constF([0], [1])])], { to: DT.FLOAT });
  g.output('positive', DT.FLOAT, ['patches']);
  g.op1('ReduceSum', [positive, g.constI64([1])], { keepdims: 0 }, 'positive');
  return g.toBytes({ name: 'lost_degree' });
}

/**
 * LOST boxes for batches of segmentations, with the degree pass (K Kᵀ, N²·C multiply-adds) in
 * ONNX Runtime and the rest (seed expansion, component, box: O(N·C)) in operators/lost.ts.
 *
 * Why ORT: measured on a shared 2-core machine, the JS degree pass takes 63 ms a frame for the
 * built-in backbone at 448x256 (N = 1792, C = 53) and 350 ms for ViT-S/8 at that size (C = 384),
 * as long as the backbone itself or longer; ORT's GEMM + compare + sum takes 5-7 ms and 14-20 ms.
 * One frame a run: the N×N intermediate (13 MB at N = 1792) is not multiplied by the batch size.
 * Degrees come from float32 sums here and float64 in JS, so a pair of keys within rounding of
 * orthogonal may count differently; boxes agree in practice (test/objects.test.ts).
 *
 * `add` resolves with one segmentation per input, in order, each with `objects: [{ box, score }]`
 * (unchanged when it carries no embedding). `close()` releases the session; idempotent.
 */
export class ObjectFinder {
  private closed = false;
  /** The run in flight, if any: `close()` waits for it (releasing a session mid-run is unsafe). */
  private running: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly patchSize: number,
  ) {}

  /** @param threads ONNX Runtime intra-op threads; default: ORT's choice (all cores). */
  static async create(patchSize: number, options: { readonly threads?: number } = {}): Promise<ObjectFinder> {
    const session = await ort.InferenceSession.create(buildDegreeGraph(), {
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
      // The backbone and ffmpeg share the cores: idle ORT threads must sleep, not spin.
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      ...(options.threads !== undefined ? { intraOpNumThreads: options.threads } : {}),
    });
    return new ObjectFinder(session, patchSize);
  }

  async add(segs: readonly Segmentation[]): Promise<Segmentation[]> {
    const out: Segmentation[] = [];
    for (const seg of segs) out.push(await this.addOne(seg));
    return out;
  }

  /** One segmentation with its box (unchanged when it carries no embedding). */
  async addOne(seg: Segmentation): Promise<Segmentation> {
    if (this.closed) throw new Error('ObjectFinder is closed');
    const e = seg.embedding;
    if (!e) return seg;
    const keys = e.keys ?? e.patchTokens;
    const n = e.gridH * e.gridW;
    const run = this.session.run({ keys: new ort.Tensor('float32', keys, [n, e.dim]) });
    this.running = run.catch(() => undefined);
    const res = await run;
    const positive = res['positive']?.data as Float32Array;
    const degree = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let sq = 0;
      for (let c = i * e.dim, end = c + e.dim; c < end; c++) sq += (keys[c] as number) ** 2;
      degree[i] = (positive[i] as number) - (sq > 0 ? 1 : 0);
    }
    const r = lostBox(keys, e.gridH, e.gridW, e.dim, this.patchSize, { degree });
    return { ...seg, objects: [{ box: r.box, score: r.score }] };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.running;
    await this.session.release();
  }
}
