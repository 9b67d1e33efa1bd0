/** Which operand a product transposes: a·b, aᵀ·b, a·bᵀ (gemm.ts's gemmNN, gemmTN, gemmNT). */
export type GemmVariant = 'nn' | 'tn' | 'nt';

/** Values of the shared state cell between a learner thread and its gemm thread. */
export const GEMM_STATE = {
  /** Sessions are being created. */
  starting: 0,
  /** Ready for a product. */
  idle: 1,
  /** A product was handed over and runs. */
  busy: 2,
  /** The product is in the result slot. */
  done: 3,
  /** Start-up or the product failed (the learner goes on in WebAssembly). */
  failed: 4,
  /** A head backward found no kept forward pass under its id (evicted): the learner recomputes it. */
  missing: 5,
} as const;

/**
 * One product out[n×m] += op(a)·op(b) with inner dimension k, the operands laid out one after
 * the other in `data` (a SharedArrayBuffer) as stored: a [n×k] (nn, nt) or [k×n] (tn), b [k×m]
 * (nn, tn) or [m×k] (nt), then out [n×m], which the result replaces.
 */
export interface GemmJob {
  readonly kind: 'gemm';
  readonly variant: GemmVariant;
  readonly n: number;
  readonly k: number;
  readonly m: number;
  readonly data: SharedArrayBuffer;
}

/**
 * The STEGO head's forward pass on n feature rows (stego-head.ts): `data` holds x [n×C], then
 * mlp1W, mlp1B, linW, linB, mlp2W, mlp2B; code [n×D] replaces the start of it. With `keep`, the
 * helper keeps x and relu(hidden) under `id` for the backward pass (at most HEAD_KEPT_PASSES).
 */
export interface HeadForwardJob {
  readonly kind: 'forward';
  readonly id: number;
  readonly keep: boolean;
  readonly n: number;
  readonly C: number;
  readonly D: number;
  readonly data: SharedArrayBuffer;
}

/**
 * The head's backward pass for the forward pass kept under `id`: `data` holds dL/dcode [n×D]
 * and mlp2W [C×D]; the gradients replace them: linW [C×D], mlp2W [C×D], the code bias [D]
 * (linB's and mlp2B's, which are equal), mlp1B [C], mlp1W [C×C].
 */
export interface HeadBackwardJob {
  readonly kind: 'backward';
  readonly id: number;
  readonly n: number;
  readonly C: number;
  readonly D: number;
  readonly data: SharedArrayBuffer;
}

export type OrtJob = GemmJob | HeadForwardJob | HeadBackwardJob;

/** Forward passes the helper keeps for a backward pass (a training step makes three). */
export const HEAD_KEPT_PASSES = 8;

/** Products below this many multiply-adds stay in WebAssembly (the hand-over costs ~0.1 ms plus copies). */
export const ORT_GEMM_MIN_MACS = 8_000_000;
/**
 * ...and products with a side narrower than this: those are the built-in backbone's (C = 6) and
 * k-means' (K centroids), where copies would cost about what the product does.
 */
export const ORT_GEMM_MIN_SIDE = 32;

/** Whether a product of these sizes goes to ONNX Runtime. */
export function ortGemmWorthIt(n: number, k: number, m: number): boolean {
  return n * k * m >= ORT_GEMM_MIN_MACS && Math.min(n, k, m) >= ORT_GEMM_MIN_SIDE;
}
