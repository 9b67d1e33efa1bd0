/**
 * The STEGO head's tensors (stego-head.ts), on their own so that modules below stego-head.ts
 * (ort-gemm.ts, which runs its passes in ONNX Runtime) can name them without an import cycle.
 */
export interface HeadWeights {
  /** Feature dimension C (backbone embed_dim). */
  readonly inDim: number;
  /** Code dimension D. */
  readonly codeDim: number;
  readonly linW: Float32Array;
  readonly linB: Float32Array;
  readonly mlp1W: Float32Array;
  readonly mlp1B: Float32Array;
  readonly mlp2W: Float32Array;
  readonly mlp2B: Float32Array;
}
