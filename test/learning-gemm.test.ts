import { describe, expect, it } from 'vitest';
import { gemmNN, gemmNT, gemmTN, jsGemmNN, jsGemmNT, jsGemmTN, useOrtGemm } from '../src/learning/gemm.js';
import { GEMM_KERNEL_BASE64 } from '../src/learning/gemm-kernel-bytes.js';
import { Rng } from '../src/learning/rng.js';
import { simdAvailable } from '../src/learning/simd-gemm.js';
import { OrtGemm } from '../src/learning/ort-gemm.js';
import { HEAD_TENSORS, headBackward, headForwardCached, initHead, zeroHead } from '../src/learning/stego-head.js';
// @ts-expect-error: a plain-JS build script without type declarations
import { compileGemmKernel } from '../scripts/gemm-kernel-compile.mjs';

function rand(rng: Rng, len: number): Float32Array {
  return Float32Array.from({ length: len }, () => rng.gaussian());
}

/** Reference: out[i][j] += Σ_p A(i, p)·B(p, j) with accessors, in float64. */
function naive(
  n: number,
  k: number,
  m: number,
  A: (i: number, p: number) => number,
  B: (p: number, j: number) => number,
  out: Float32Array,
): number[] {
  const res: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = out[i * m + j]!;
      for (let p = 0; p < k; p++) s += A(i, p) * B(p, j);
      res.push(s);
    }
  }
  return res;
}

function expectClose(actual: Float32Array, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(expected[i]!))));
}

type Gemm = (a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number) => void;
const KERNELS: readonly { name: string; nn: Gemm; tn: Gemm; nt: Gemm }[] = [
  { name: 'plain JS', nn: jsGemmNN, tn: jsGemmTN, nt: jsGemmNT },
  // Small shapes stay in JS; the large ones below go to the SIMD kernel (padding n to 4 and m to 8).
  { name: 'dispatching (SIMD when large)', nn: gemmNN, tn: gemmTN, nt: gemmNT },
];

describe('the SIMD kernel', () => {
  it('loads on this Node', () => {
    expect(simdAvailable).toBe(true);
  });

  it('is the compiled gemm-kernel.wat (run node scripts/build-gemm-kernel.mjs after editing it)', async () => {
    const bytes = (await compileGemmKernel()) as Uint8Array;
    expect(Buffer.from(bytes).toString('base64')).toBe(GEMM_KERNEL_BASE64);
  });
});

describe.each(KERNELS)(
  'gemm kernels, $name (every remainder of the unrolled loops and of the SIMD padding)',
  ({ nn: gemmNN, tn: gemmTN, nt: gemmNT }) => {
    const rng = new Rng(1);
    for (const [n, k, m] of [
      [1, 1, 1],
      [2, 4, 3],
      [3, 5, 2],
      [5, 7, 6],
      [8, 9, 1],
      [7, 3, 5],
      [121, 70, 121],
      [13, 9, 130],
      [130, 17, 11],
      [5, 300, 70],
      [64, 64, 64],
      [1030, 70, 6],
      [7, 384, 5],
    ] as const) {
      it(`n=${n} k=${k} m=${m}`, () => {
        const a = rand(rng, n * k);
        const b = rand(rng, k * m);
        const init = rand(rng, n * m);
        const expectProduct = (out: Float32Array, A: (i: number, p: number) => number, B: (p: number, j: number) => number): void =>
          expectClose(out, naive(n, k, m, A, B, init));

        const nn = init.slice();
        gemmNN(a, b, nn, n, k, m);
        expectProduct(
          nn,
          (i, p) => a[i * k + p]!,
          (p, j) => b[p * m + j]!,
        );

        // aᵀ·g with a [k×n] stored row-major, g [k×m]: out [n×m]
        const at = rand(rng, k * n);
        const g = rand(rng, k * m);
        const tn = init.slice();
        gemmTN(at, g, tn, k, n, m);
        expectProduct(
          tn,
          (i, p) => at[p * n + i]!,
          (p, j) => g[p * m + j]!,
        );

        // a·bᵀ with b [m×k]
        const bt = rand(rng, m * k);
        const nt = init.slice();
        gemmNT(a, bt, nt, n, k, m);
        expectProduct(
          nt,
          (i, p) => a[i * k + p]!,
          (p, j) => bt[j * k + p]!,
        );
      });
    }
  },
);

describe('products in ONNX Runtime (ort-gemm.ts, the learner thread at ViT widths)', () => {
  it('routes big products to its helper thread and gives what the reference gives; small ones stay here', () => {
    const ort = new OrtGemm();
    useOrtGemm(ort);
    try {
      const rng = new Rng(11);
      // 300·200·150 = 9 M multiply-adds, every side >= 32: big enough to go.
      const [n, k, m] = [300, 200, 150];
      const a = rand(rng, n * k);
      const b = rand(rng, k * m);
      const bt = rand(rng, m * k);
      const g = rand(rng, n * m);
      const close = expectClose;
      const nn = rand(rng, n * m);
      const nnWant = naive(
        n,
        k,
        m,
        (i, p) => a[i * k + p]!,
        (p, j) => b[p * m + j]!,
        nn,
      );
      gemmNN(a, b, nn, n, k, m);
      close(nn, nnWant);
      const tn = rand(rng, k * m);
      const tnWant = naive(
        k,
        n,
        m,
        (i, p) => a[p * k + i]!,
        (p, j) => g[p * m + j]!,
        tn,
      );
      gemmTN(a, g, tn, n, k, m);
      close(tn, tnWant);
      const nt = rand(rng, n * m);
      const ntWant = naive(
        n,
        k,
        m,
        (i, p) => a[i * k + p]!,
        (p, j) => bt[j * k + p]!,
        nt,
      );
      gemmNT(a, bt, nt, n, k, m);
      close(nt, ntWant);
      expect(ort.products).toBe(3);
      expect(ort.error).toBeUndefined();
      // A k-means-shaped product (K = 6 centroids) stays in WebAssembly.
      const small = new Float32Array(4000 * 6);
      gemmNN(rand(rng, 4000 * 384), rand(rng, 384 * 6), small, 4000, 384, 6);
      expect(ort.products).toBe(3);
    } finally {
      useOrtGemm(undefined);
    }
  }, 60_000);
});

describe('the STEGO head’s passes in ONNX Runtime (stego-head.ts with a helper)', () => {
  it('gives the codes and gradients of the passes in this thread, also when the helper dropped the forward pass', () => {
    const [C, D, n] = [128, 70, 600];
    const rng = new Rng(4);
    const head = initHead(C, D, 9);
    // Biases non-zero so their gradients and the bias inputs are exercised.
    head.linB.set(rand(rng, D));
    head.mlp1B.set(rand(rng, C).map((v) => v * 0.1));
    head.mlp2B.set(rand(rng, D));
    const feats = rand(rng, n * C);
    const dCode = rand(rng, n * D);
    const here = headForwardCached(head, feats, n);
    const hereGrads = zeroHead(C, D);
    headBackward(head, feats, n, here.cache, dCode, hereGrads);

    const ort = new OrtGemm();
    useOrtGemm(ort);
    try {
      const there = headForwardCached(head, feats, n);
      expect(there.cache.kept).toBeDefined();
      const thereGrads = zeroHead(C, D);
      headBackward(head, feats, n, there.cache, dCode, thereGrads);
      const close = (got: Float32Array, want: Float32Array, what: string): void => {
        expect(got.length, what).toBe(want.length);
        expectClose(got, Array.from(want));
      };
      close(there.code, here.code, 'code');
      for (const name of HEAD_TENSORS) close(thereGrads[name], hereGrads[name], name);
      // Nine more kept passes push the first one out: its backward pass is recomputed here.
      const first = headForwardCached(head, feats, n);
      for (let i = 0; i < 9; i++) headForwardCached(head, feats, n);
      const again = zeroHead(C, D);
      headBackward(head, feats, n, first.cache, dCode, again);
      for (const name of HEAD_TENSORS) close(again[name], hereGrads[name], `${name} (recomputed)`);
      expect(ort.error).toBeUndefined();
    } finally {
      useOrtGemm(undefined);
    }
  }, 60_000);
});
