/**
 * Accumulating matrix products on row-major Float32Arrays, the only heavy arithmetic of the
 * learner (head forward/backward, correlation matrices, k-means similarities).
 *
 * Products big enough to pay for copying their operands run in a WebAssembly SIMD kernel
 * (simd-gemm.ts: 5-8x the JS loops on the learner's shapes); small ones, and every product on a
 * runtime without WebAssembly SIMD, run in the plain-JS kernels below (`jsGemm*`).
 *
 * The JS kernels are hand-written because no maintained npm package multiplies typed arrays in
 * plain JS without a native or WebAssembly build. The loops are i-k-j (the innermost loop runs
 * over contiguous rows of both operands) and unrolled: two output rows and four terms of the
 * inner dimension per pass, so each loaded element of the right operand feeds several
 * multiply-adds and every output element is loaded and stored a quarter as often. On V8 this
 * measured ~3-4x faster than the plain triple loop.
 */
import { simdAvailable, simdGemmNN, simdGemmNT } from './simd-gemm.js';
import { ortGemmWorthIt } from './ort-gemm-protocol.js';
import type { OrtGemm } from './ort-gemm.js';

/** Where this thread's big products run instead (the learner thread: ort-gemm.ts); none by default. */
let large: OrtGemm | undefined;

/** Sends this thread's big products to ONNX Runtime (undefined: back to WebAssembly / JS). */
export function useOrtGemm(g: OrtGemm | undefined): void {
  large = g;
}

/** This thread's ONNX Runtime helper, if `useOrtGemm` set one (stego-head.ts runs whole passes there). */
export function ortGemmInUse(): OrtGemm | undefined {
  return large;
}

/**
 * Multiply-adds below which a product stays in JS: the copies in and out of the module's memory
 * would cost about as much as the product.
 */
const SIMD_MIN_MACS = 16384;
/**
 * Inner dimensions below this stay in JS (each output element then costs more to copy than to
 * compute). At k = 6 (the built-in backbone's channels) SIMD still measured 1.5-4x.
 */
const SIMD_MIN_K = 4;
/** Output sides below this would be mostly padding (the kernel works on 4×8 blocks). */
const SIMD_MIN_SIDE = 4;

function useSimd(n: number, k: number, m: number): boolean {
  return simdAvailable && k >= SIMD_MIN_K && n >= SIMD_MIN_SIDE && m >= SIMD_MIN_SIDE && n * k * m >= SIMD_MIN_MACS;
}

/** out[n×m] += a[n×k] · b[k×m]. */
export function gemmNN(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number): void {
  if (large && ortGemmWorthIt(n, k, m) && large.run('nn', a, b, out, n, k, m)) return;
  if (useSimd(n, k, m)) simdGemmNN(a, b, out, n, k, m, false);
  else jsGemmNN(a, b, out, n, k, m);
}

/** out[k×m] += aᵀ · g, for a[n×k], g[n×m] (weight gradients: Σ over rows of outer products). */
export function gemmTN(a: Float32Array, g: Float32Array, out: Float32Array, n: number, k: number, m: number): void {
  if (large && ortGemmWorthIt(k, n, m) && large.run('tn', a, g, out, k, n, m)) return;
  if (useSimd(k, n, m)) simdGemmNN(a, g, out, k, n, m, true);
  else jsGemmTN(a, g, out, n, k, m);
}

/** out[n×r] += a · bᵀ, for a[n×k], b[r×k] (all pairwise dot products of rows). */
export function gemmNT(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, r: number): void {
  if (large && ortGemmWorthIt(n, k, r) && large.run('nt', a, b, out, n, k, r)) return;
  if (useSimd(n, k, r)) simdGemmNT(a, b, out, n, k, r);
  else jsGemmNT(a, b, out, n, k, r);
}

/** gemmNN in plain JS. */
export function jsGemmNN(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number): void {
  const k4 = k - (k % 4);
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a0 = i * k;
    const a1 = a0 + k;
    const o0 = i * m;
    const o1 = o0 + m;
    let p = 0;
    for (; p < k4; p += 4) {
      const x0 = a[a0 + p]!;
      const x1 = a[a0 + p + 1]!;
      const x2 = a[a0 + p + 2]!;
      const x3 = a[a0 + p + 3]!;
      const y0 = a[a1 + p]!;
      const y1 = a[a1 + p + 1]!;
      const y2 = a[a1 + p + 2]!;
      const y3 = a[a1 + p + 3]!;
      const b0 = p * m;
      const b1 = b0 + m;
      const b2 = b1 + m;
      const b3 = b2 + m;
      for (let j = 0; j < m; j++) {
        const v0 = b[b0 + j]!;
        const v1 = b[b1 + j]!;
        const v2 = b[b2 + j]!;
        const v3 = b[b3 + j]!;
        out[o0 + j]! += x0 * v0 + x1 * v1 + x2 * v2 + x3 * v3;
        out[o1 + j]! += y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3;
      }
    }
    for (; p < k; p++) {
      const x = a[a0 + p]!;
      const y = a[a1 + p]!;
      const bo = p * m;
      for (let j = 0; j < m; j++) {
        const v = b[bo + j]!;
        out[o0 + j]! += x * v;
        out[o1 + j]! += y * v;
      }
    }
  }
  for (; i < n; i++) {
    const ao = i * k;
    const oo = i * m;
    for (let p = 0; p < k; p++) {
      const x = a[ao + p]!;
      const bo = p * m;
      for (let j = 0; j < m; j++) out[oo + j]! += x * b[bo + j]!;
    }
  }
}

/** gemmTN in plain JS. */
export function jsGemmTN(a: Float32Array, g: Float32Array, out: Float32Array, n: number, k: number, m: number): void {
  const n4 = n - (n % 4);
  let i = 0;
  for (; i < n4; i += 4) {
    const a0 = i * k;
    const a1 = a0 + k;
    const a2 = a1 + k;
    const a3 = a2 + k;
    const g0 = i * m;
    const g1 = g0 + m;
    const g2 = g1 + m;
    const g3 = g2 + m;
    let p = 0;
    for (; p + 1 < k; p += 2) {
      const x0 = a[a0 + p]!;
      const x1 = a[a1 + p]!;
      const x2 = a[a2 + p]!;
      const x3 = a[a3 + p]!;
      const y0 = a[a0 + p + 1]!;
      const y1 = a[a1 + p + 1]!;
      const y2 = a[a2 + p + 1]!;
      const y3 = a[a3 + p + 1]!;
      const o0 = p * m;
      const o1 = o0 + m;
      for (let j = 0; j < m; j++) {
        const v0 = g[g0 + j]!;
        const v1 = g[g1 + j]!;
        const v2 = g[g2 + j]!;
        const v3 = g[g3 + j]!;
        out[o0 + j]! += x0 * v0 + x1 * v1 + x2 * v2 + x3 * v3;
        out[o1 + j]! += y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3;
      }
    }
    for (; p < k; p++) {
      const x0 = a[a0 + p]!;
      const x1 = a[a1 + p]!;
      const x2 = a[a2 + p]!;
      const x3 = a[a3 + p]!;
      const o0 = p * m;
      for (let j = 0; j < m; j++) {
        out[o0 + j]! += x0 * g[g0 + j]! + x1 * g[g1 + j]! + x2 * g[g2 + j]! + x3 * g[g3 + j]!;
      }
    }
  }
  for (; i < n; i++) {
    const ao = i * k;
    const go = i * m;
    for (let p = 0; p < k; p++) {
      const x = a[ao + p]!;
      const oo = p * m;
      for (let j = 0; j < m; j++) out[oo + j]! += x * g[go + j]!;
    }
  }
}

/** gemmNT in plain JS. */
export function jsGemmNT(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, r: number): void {
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a0 = i * k;
    const a1 = a0 + k;
    const o0 = i * r;
    const o1 = o0 + r;
    let q = 0;
    for (; q + 1 < r; q += 2) {
      const b0 = q * k;
      const b1 = b0 + k;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      for (let p = 0; p < k; p++) {
        const x = a[a0 + p]!;
        const y = a[a1 + p]!;
        const u = b[b0 + p]!;
        const v = b[b1 + p]!;
        s00 += x * u;
        s01 += x * v;
        s10 += y * u;
        s11 += y * v;
      }
      out[o0 + q]! += s00;
      out[o0 + q + 1]! += s01;
      out[o1 + q]! += s10;
      out[o1 + q + 1]! += s11;
    }
    for (; q < r; q++) {
      const bo = q * k;
      let s0 = 0;
      let s1 = 0;
      for (let p = 0; p < k; p++) {
        const u = b[bo + p]!;
        s0 += a[a0 + p]! * u;
        s1 += a[a1 + p]! * u;
      }
      out[o0 + q]! += s0;
      out[o1 + q]! += s1;
    }
  }
  for (; i < n; i++) {
    const ao = i * k;
    const oo = i * r;
    for (let q = 0; q < r; q++) {
      const bo = q * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[ao + p]! * b[bo + p]!;
      out[oo + q]! += s;
    }
  }
}
