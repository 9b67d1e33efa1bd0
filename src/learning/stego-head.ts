/**
 * The STEGO segmentation head on typed arrays:
 *
 *   code(f) = f·linW + linB + relu(f·mlp1W + mlp1B)·mlp2W + mlp2B
 *
 * (the paper's two 1x1-convolution branches, DESIGN.md "The algorithm"). All tensors are
 * row-major Float32Arrays in exactly the layout the ONNX inference graph is built from:
 * linW [C×D], linB [D], mlp1W [C×C], mlp1B [C], mlp2W [C×D], mlp2B [D].
 *
 * Matrix products run through gemm.ts. In a thread with an ONNX Runtime helper (the learner's,
 * ort-gemm.ts) and at ViT widths, each whole pass runs there as one graph instead: the step's
 * big arrays then cross threads once, and the ReLU and bias loops run there too.
 */
import { BadOptionError } from '../errors.js';
import { gemmNN, gemmNT, gemmTN, ortGemmInUse } from './gemm.js';
import { ortGemmWorthIt } from './ort-gemm-protocol.js';
import { Rng } from './rng.js';
import type { HeadWeights } from './head-weights.js';

export type { HeadWeights } from './head-weights.js';

/** Tensor names in a fixed order: checkpoints, optimisers and gradient checks iterate over it. */
export const HEAD_TENSORS = ['linW', 'linB', 'mlp1W', 'mlp1B', 'mlp2W', 'mlp2B'] as const;
export type HeadTensorName = (typeof HEAD_TENSORS)[number];

/** Default code dimension D (STEGO's `dim`). */
export const DEFAULT_CODE_DIM = 70;

/** Shape of each tensor for a head C -> D. */
export function headShapes(inDim: number, codeDim: number): Record<HeadTensorName, readonly number[]> {
  return {
    linW: [inDim, codeDim],
    linB: [codeDim],
    mlp1W: [inDim, inDim],
    mlp1B: [inDim],
    mlp2W: [inDim, codeDim],
    mlp2B: [codeDim],
  };
}

/** The six tensors in HEAD_TENSORS order. */
export function headTensors(w: HeadWeights): Float32Array[] {
  return [w.linW, w.linB, w.mlp1W, w.mlp1B, w.mlp2W, w.mlp2B];
}

function checkDims(inDim: number, codeDim: number): void {
  if (!Number.isInteger(inDim) || inDim < 1) throw new BadOptionError('head inDim', 'positive integer', inDim);
  if (!Number.isInteger(codeDim) || codeDim < 1) throw new BadOptionError('head codeDim', 'positive integer', codeDim);
}

/** A head of zeros (also the shape of a gradient accumulator). */
export function zeroHead(inDim: number, codeDim: number): HeadWeights {
  checkDims(inDim, codeDim);
  return {
    inDim,
    codeDim,
    linW: new Float32Array(inDim * codeDim),
    linB: new Float32Array(codeDim),
    mlp1W: new Float32Array(inDim * inDim),
    mlp1B: new Float32Array(inDim),
    mlp2W: new Float32Array(inDim * codeDim),
    mlp2B: new Float32Array(codeDim),
  };
}

/** Deep copy: training works on a clone so the head in use for inference never changes under it. */
export function cloneHead(w: HeadWeights): HeadWeights {
  return {
    inDim: w.inDim,
    codeDim: w.codeDim,
    linW: w.linW.slice(),
    linB: w.linB.slice(),
    mlp1W: w.mlp1W.slice(),
    mlp1B: w.mlp1B.slice(),
    mlp2W: w.mlp2W.slice(),
    mlp2B: w.mlp2B.slice(),
  };
}

/**
 * A fresh head whose codes keep the similarity structure of the features:
 * - linW has orthonormal columns (Gram-Schmidt on a Gaussian C×D matrix when D <= C), so the
 *   linear branch is a random orthogonal projection, entries of size ~1/sqrt(C);
 * - mlp1W ~ N(0, 1/C) (a He-like scale for the ReLU branch), mlp2W ~ N(0, (0.1)²/C): the
 *   nonlinear branch starts small but not zero, so its first layer gets gradient from step one;
 * - biases zero.
 * With `basis` ([C×D], orthonormal columns, e.g. `principalBasis` of bank features), linW is
 * that basis instead of a random one. Deterministic for a seed.
 */
export function initHead(inDim: number, codeDim: number, seed: number, basis?: Float32Array): HeadWeights {
  const w = zeroHead(inDim, codeDim);
  const rng = new Rng(seed);
  const C = inDim;
  const D = codeDim;
  const s = 1 / Math.sqrt(C);
  for (let i = 0; i < w.linW.length; i++) w.linW[i] = rng.gaussian() * s;
  if (basis !== undefined) {
    if (basis.length !== C * D) throw new BadOptionError('head basis', `a Float32Array of ${C}×${D} values`, `length ${basis.length}`);
    w.linW.set(basis);
  } else if (D <= C) {
    orthonormaliseColumns(w.linW, C, D);
  }
  for (let i = 0; i < w.mlp1W.length; i++) w.mlp1W[i] = rng.gaussian() * s;
  for (let i = 0; i < w.mlp2W.length; i++) w.mlp2W[i] = rng.gaussian() * 0.1 * s;
  return w;
}

/** Modified Gram-Schmidt on the columns of a row-major [rows×cols] matrix, in float64. */
function orthonormaliseColumns(m: Float32Array, rows: number, cols: number): void {
  const q = new Float64Array(rows * cols);
  for (let i = 0; i < m.length; i++) q[i] = m[i]!;
  for (let j = 0; j < cols; j++) {
    for (let p = 0; p < j; p++) {
      let dot = 0;
      for (let r = 0; r < rows; r++) dot += q[r * cols + j]! * q[r * cols + p]!;
      for (let r = 0; r < rows; r++) q[r * cols + j]! -= dot * q[r * cols + p]!;
    }
    let nrm = 0;
    for (let r = 0; r < rows; r++) nrm += q[r * cols + j]! ** 2;
    nrm = Math.sqrt(nrm) || 1;
    for (let r = 0; r < rows; r++) q[r * cols + j]! /= nrm;
  }
  for (let i = 0; i < m.length; i++) m[i] = q[i]!;
}

/** What the backward pass needs from the forward pass. */
export interface HeadCache {
  /** Pre-activation of the hidden layer, f·mlp1W + mlp1B, [n×C]. */
  readonly hidden: Float32Array;
  /** relu(hidden), [n×C]. */
  readonly relu: Float32Array;
  /** The pass ran in the ONNX Runtime helper, which keeps x and relu(hidden) under this id (hidden and relu are empty). */
  readonly kept?: number;
}

const EMPTY = new Float32Array(0);

function checkFeats(w: HeadWeights, feats: Float32Array, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new BadOptionError('n', 'non-negative integer', n);
  if (feats.length < n * w.inDim) {
    throw new BadOptionError('feats', `a Float32Array of at least ${n}×${w.inDim} values`, `length ${feats.length}`);
  }
}

/** Codes [n×D] for n feature rows [n×C] (no cache: inference and tests). */
export function headForward(w: HeadWeights, feats: Float32Array, n: number): Float32Array {
  checkFeats(w, feats, n);
  const helper = ortGemmInUse();
  if (helper && ortGemmWorthIt(n, w.inDim, w.inDim)) {
    const r = helper.headForward(w, feats, n, false);
    if (r) return r.code;
  }
  return forwardHere(w, feats, n).code;
}

/** Forward pass keeping the hidden activations for `headBackward`. */
export function headForwardCached(w: HeadWeights, feats: Float32Array, n: number): { code: Float32Array; cache: HeadCache } {
  checkFeats(w, feats, n);
  const helper = ortGemmInUse();
  if (helper && ortGemmWorthIt(n, w.inDim, w.inDim)) {
    const r = helper.headForward(w, feats, n, true);
    if (r) return { code: r.code, cache: { hidden: EMPTY, relu: EMPTY, kept: r.id } };
  }
  return forwardHere(w, feats, n);
}

/** The forward pass in this thread. */
function forwardHere(w: HeadWeights, feats: Float32Array, n: number): { code: Float32Array; cache: HeadCache } {
  const C = w.inDim;
  const D = w.codeDim;
  const hidden = new Float32Array(n * C);
  for (let i = 0; i < n; i++) hidden.set(w.mlp1B, i * C);
  gemmNN(feats, w.mlp1W, hidden, n, C, C);
  const relu = new Float32Array(n * C);
  for (let i = 0; i < relu.length; i++) {
    const h = hidden[i]!;
    relu[i] = h > 0 ? h : 0;
  }
  const code = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    const o = i * D;
    for (let j = 0; j < D; j++) code[o + j] = w.linB[j]! + w.mlp2B[j]!;
  }
  gemmNN(feats, w.linW, code, n, C, D);
  gemmNN(relu, w.mlp2W, code, n, C, D);
  return { code, cache: { hidden, relu } };
}

/**
 * Accumulates into `grads` the gradient of a loss w.r.t. every head tensor, given dL/dcode
 * [n×D] for the rows `feats` [n×C] that `cache` came from. `grads` has the head's shapes.
 */
export function headBackward(
  w: HeadWeights,
  feats: Float32Array,
  n: number,
  cache: HeadCache,
  dCode: Float32Array,
  grads: HeadWeights,
): void {
  const C = w.inDim;
  const D = w.codeDim;
  if (cache.kept !== undefined) {
    if (ortGemmInUse()?.headBackward(cache.kept, w, n, dCode, grads)) return;
    // The helper no longer holds the forward pass (or failed): recompute it here.
    cache = forwardHere(w, feats, n).cache;
  }
  const { hidden, relu } = cache;
  for (let i = 0; i < n; i++) {
    const go = i * D;
    for (let j = 0; j < D; j++) {
      const g = dCode[go + j]!;
      grads.linB[j]! += g;
      grads.mlp2B[j]! += g;
    }
  }
  gemmTN(feats, dCode, grads.linW, n, C, D);
  gemmTN(relu, dCode, grads.mlp2W, n, C, D);
  // dHidden = (dCode · mlp2Wᵀ) ⊙ [hidden > 0]
  const dHidden = new Float32Array(n * C);
  gemmNT(dCode, w.mlp2W, dHidden, n, D, C);
  for (let i = 0; i < dHidden.length; i++) if (!(hidden[i]! > 0)) dHidden[i] = 0;
  for (let i = 0; i < n; i++) {
    const o = i * C;
    for (let j = 0; j < C; j++) grads.mlp1B[j]! += dHidden[o + j]!;
  }
  gemmTN(feats, dHidden, grads.mlp1W, n, C, C);
}
