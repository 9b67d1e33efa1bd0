import { describe, expect, it } from 'vitest';
import { gemmNN, gemmNT, gemmTN, jsGemmNN, jsGemmNT, jsGemmTN } from '../src/learning/gemm.js';
import { GEMM_KERNEL_BASE64 } from '../src/learning/gemm-kernel-bytes.js';
import { Rng } from '../src/learning/rng.js';
import { simdAvailable } from '../src/learning/simd-gemm.js';
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
