/**
 * The learner's big matrix products in ONNX Runtime, for a thread that must stay synchronous.
 *
 * At ViT widths (C = 384, 768) a training step is dominated by products of the step's 2904
 * feature rows with C×C weights: the hidden layer forward and its weight gradient. The
 * WebAssembly kernel (simd-gemm.ts) does them at ~10 GMAC/s; ONNX Runtime's MLAS on one core
 * measured 4x that for a·b and 6-10x for aᵀ·b (C = 384 / 768, 2-core machine). onnxruntime-node
 * only answers asynchronously, and a round is synchronous code in the learner thread, so the
 * products run in a helper thread (ort-gemm-worker.ts) while the learner thread waits on a
 * shared cell (Atomics.wait): the round stays one synchronous computation, and its steps stay
 * where the duty-cycle limiter can pause it.
 *
 * Results are deterministic for a given machine (MLAS on one thread splits no sums), but not
 * bit-equal to the WebAssembly kernel's: only products at least `ORT_GEMM_MIN_MACS` (ort-gemm-protocol.ts) large and
 * no side narrower than `ORT_GEMM_MIN_SIDE` go here, which the built-in backbone's (C = 6) never are.
 */
import { Worker } from 'node:worker_threads';
import { workerUrl } from '../internal/worker-url.js';
import { GEMM_STATE, type GemmVariant, type OrtJob } from './ort-gemm-protocol.js';
import type { HeadWeights } from './head-weights.js';

/** How long the first product waits for the sessions to be created before the learner gives up on them, ms. */
const START_TIMEOUT_MS = 60_000;
/** A product that takes longer than this is taken for a hung thread, ms. */
const JOB_TIMEOUT_MS = 120_000;

export class OrtGemm {
  private readonly state: Int32Array;
  private data = new SharedArrayBuffer(0);
  private failure: string | undefined;
  private nextId = 0;
  private readonly worker: Worker;
  /** Products and head passes run here so far (tests and logs). */
  products = 0;

  /** Starts the helper thread; its sessions are created in the background. */
  constructor(nice = 0) {
    const control = new SharedArrayBuffer(4);
    this.state = new Int32Array(control);
    this.worker = new Worker(workerUrl(import.meta.url, 'ort-gemm-worker.js', 'learning'), { workerData: { control, nice } });
    this.worker.on('message', (msg: { type: 'error'; message: string }) => {
      this.failure ??= msg.message;
    });
    this.worker.on('error', (err) => {
      this.failure ??= err.message;
      Atomics.store(this.state, 0, GEMM_STATE.failed);
    });
    // The learner thread's exit should not wait for an idle helper.
    this.worker.unref();
  }

  /** Why products went back to WebAssembly, if they did. */
  get error(): string | undefined {
    if (Atomics.load(this.state, 0) === GEMM_STATE.failed) return this.failure ?? 'the ONNX Runtime gemm thread failed';
    return undefined;
  }

  /**
   * out[n×m] += op(a)·op(b) (see GemmJob for the layouts). False when it could not run here
   * (the helper failed or hung): the caller computes it itself, and later calls return false.
   */
  run(variant: GemmVariant, a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number): boolean {
    const lenA = n * k;
    const lenB = k * m;
    const lenOut = n * m;
    const f = this.hand(lenA + lenB + lenOut, (f) => {
      f.set(a.subarray(0, lenA), 0);
      f.set(b.subarray(0, lenB), lenA);
      f.set(out.subarray(0, lenOut), lenA + lenB);
      return { kind: 'gemm', variant, n, k, m, data: this.data };
    });
    if (!f) return false;
    out.set(f.subarray(lenA + lenB, lenA + lenB + lenOut));
    this.products++;
    return true;
  }

  /**
   * The head's forward pass on n rows (codes [n×D]); with `keep`, the helper keeps what the
   * backward pass needs under the returned id. Undefined when the helper cannot run it.
   */
  headForward(w: HeadWeights, feats: Float32Array, n: number, keep: boolean): { code: Float32Array; id: number } | undefined {
    const C = w.inDim;
    const D = w.codeDim;
    const parts = [feats.subarray(0, n * C), w.mlp1W, w.mlp1B, w.linW, w.linB, w.mlp2W, w.mlp2B];
    const id = ++this.nextId;
    const f = this.hand(
      parts.reduce((a, p) => a + p.length, 0),
      (f) => {
        let o = 0;
        for (const p of parts) {
          f.set(p, o);
          o += p.length;
        }
        return { kind: 'forward', id, keep, n, C, D, data: this.data };
      },
    );
    if (!f) return undefined;
    this.products++;
    return { code: f.slice(0, n * D), id };
  }

  /**
   * Adds the head's gradients for the forward pass kept under `id` into `grads`. False when
   * the helper no longer holds that pass or cannot run: the caller recomputes it.
   */
  headBackward(id: number, w: HeadWeights, n: number, dCode: Float32Array, grads: HeadWeights): boolean {
    const C = w.inDim;
    const D = w.codeDim;
    const f = this.hand(Math.max(n * D + C * D, 2 * C * D + D + C + C * C), (f) => {
      f.set(dCode.subarray(0, n * D), 0);
      f.set(w.mlp2W, n * D);
      return { kind: 'backward', id, n, C, D, data: this.data };
    });
    if (!f) return false;
    let o = 0;
    const add = (into: Float32Array): void => {
      for (let i = 0; i < into.length; i++) into[i]! += f[o + i]!;
    };
    add(grads.linW);
    o += C * D;
    add(grads.mlp2W);
    o += C * D;
    add(grads.linB);
    add(grads.mlp2B);
    o += D;
    add(grads.mlp1B);
    o += C;
    add(grads.mlp1W);
    this.products++;
    return true;
  }

  /**
   * Hands one job over and waits for it: `fill` writes the operands into shared memory of at
   * least `floats` values. The shared values after the job, or undefined when it did not run.
   */
  private hand(floats: number, fill: (f: Float32Array) => OrtJob): Float32Array | undefined {
    let s = Atomics.load(this.state, 0);
    if (s === GEMM_STATE.starting) {
      Atomics.wait(this.state, 0, GEMM_STATE.starting, START_TIMEOUT_MS);
      s = Atomics.load(this.state, 0);
    }
    if (s !== GEMM_STATE.idle) {
      this.giveUp(s === GEMM_STATE.starting ? 'its sessions took over a minute to start' : undefined);
      return undefined;
    }
    if (this.data.byteLength < floats * 4) this.data = new SharedArrayBuffer(Math.ceil(floats * 4 * 1.25));
    const f = new Float32Array(this.data);
    const job = fill(f);
    Atomics.store(this.state, 0, GEMM_STATE.busy);
    this.worker.postMessage(job);
    if (Atomics.wait(this.state, 0, GEMM_STATE.busy, JOB_TIMEOUT_MS) === 'timed-out') {
      this.giveUp('a product took over two minutes');
      return undefined;
    }
    const done = Atomics.load(this.state, 0);
    if (done === GEMM_STATE.missing) {
      Atomics.store(this.state, 0, GEMM_STATE.idle);
      return undefined;
    }
    if (done !== GEMM_STATE.done) {
      this.giveUp(undefined);
      return undefined;
    }
    Atomics.store(this.state, 0, GEMM_STATE.idle);
    return f;
  }

  private giveUp(reason: string | undefined): void {
    this.failure ??= reason;
    Atomics.store(this.state, 0, GEMM_STATE.failed);
  }
}
