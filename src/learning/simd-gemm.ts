/**
 * The WebAssembly SIMD side of gemm.ts: one kernel (gemm-kernel.wat), A·b on 4×8 blocks of the
 * output, where A is row-major or a transposed view (so aᵀ·g needs no transposed copy), and the
 * glue that copies operands into the module's memory padded to the block sizes. a·bᵀ runs on a
 * transposed copy of b. On the learner's shapes (121×70 codes, 121×121 correlations, 1024
 * points × 6 centroids) the products ran 5-8x faster than the plain-JS kernels, copies included.
 *
 * One instance per thread (module state is per isolate). Rows and columns added by padding are
 * never read back, so they need no zeroing; the inner dimension is never padded.
 */
import { GEMM_KERNEL_BASE64 } from './gemm-kernel-bytes.js';

type NnKernel = (a: number, ars: number, acs: number, b: number, o: number, n: number, k: number, m: number) => void;

/** The slice of the WebAssembly API used here (the project's TypeScript lib has no DOM types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}

interface Kernel {
  readonly memory: WasmMemory;
  readonly nn: NnKernel;
}

const PAGE = 65536;

function load(): Kernel | undefined {
  try {
    const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
    if (!wasm) return undefined;
    const bytes = Buffer.from(GEMM_KERNEL_BASE64, 'base64');
    const instance = new wasm.Instance(new wasm.Module(bytes));
    const e = instance.exports;
    return { memory: e['memory'] as WasmMemory, nn: e['nn'] as NnKernel };
  } catch {
    // No WebAssembly SIMD here (very old V8, or --no-experimental-wasm-simd): gemm.ts stays in JS.
    return undefined;
  }
}

const kernel = load();
let heap = kernel ? new Float32Array(kernel.memory.buffer) : new Float32Array(0);

/** True when the SIMD kernel loaded; gemm.ts falls back to plain JS otherwise. */
export const simdAvailable = kernel !== undefined;

function up(x: number, q: number): number {
  return Math.ceil(x / q) * q;
}

/** The module's memory as floats, grown to hold at least `floats` of them. */
function reserve(floats: number): Float32Array {
  const mem = kernel!.memory;
  const need = floats * 4 - mem.buffer.byteLength;
  if (need > 0) mem.grow(Math.ceil(need / PAGE));
  if (heap.buffer !== mem.buffer) heap = new Float32Array(mem.buffer);
  return heap;
}

/** Rows shorter than this are copied element by element: a subarray per row costs more than the copy. */
const SHORT_ROW = 32;

/**
 * Copies `rows` rows of `cols` floats from src (rows `srcStride` floats apart, from `srcOff`)
 * to dst (rows `dstStride` apart, from `dstOff`): operands into the padded heap and results out.
 */
function copyRows(
  src: Float32Array,
  srcOff: number,
  srcStride: number,
  dst: Float32Array,
  dstOff: number,
  dstStride: number,
  rows: number,
  cols: number,
): void {
  if (srcStride === cols && dstStride === cols) {
    dst.set(src.subarray(srcOff, srcOff + rows * cols), dstOff);
  } else if (cols < SHORT_ROW) {
    for (let r = 0; r < rows; r++) {
      const s = srcOff + r * srcStride;
      const d = dstOff + r * dstStride;
      for (let c = 0; c < cols; c++) dst[d + c] = src[s + c]!;
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const s = srcOff + r * srcStride;
      dst.set(src.subarray(s, s + cols), dstOff + r * dstStride);
    }
  }
}

/**
 * out[n×m] += A·b, b [k×m]; A is a [n×k], or with `transA` the transpose of a [k×n]. Callers
 * check `simdAvailable` first.
 */
export function simdGemmNN(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number, transA: boolean): void {
  const nP = up(n, 4);
  const mP = up(m, 8);
  // The kernel reads A's padding rows: past the end of a, so a's region has room for them.
  const aLen = transA ? k * n + 4 : nP * k;
  const bOff = up(aLen, 4);
  const oOff = bOff + k * mP;
  const h = reserve(oOff + nP * mP);
  h.set(a.subarray(0, k * n), 0);
  copyRows(b, 0, m, h, bOff, mP, k, m);
  copyRows(out, 0, m, h, oOff, mP, n, m);
  // Element (r, c) of A: a[r·k + c] row-major, a[c·n + r] transposed.
  const [ars, acs] = transA ? [4, 4 * n] : [4 * k, 4];
  kernel!.nn(0, ars, acs, bOff * 4, oOff * 4, nP, k, mP);
  copyRows(h, oOff, mP, out, 0, m, n, m);
}

/**
 * out[n×m] += a·bᵀ for a [n×k], b [m×k], through the nn kernel on a transposed copy of b: the
 * copy is m·k moves against n·m·k multiply-adds, and measured faster than a dot-product kernel
 * (121×70 codes: 0.23 vs 0.29 ms; 1024 points × 6 centroids: 0.10 vs 0.21 ms). Callers check
 * `simdAvailable` first.
 */
export function simdGemmNT(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number): void {
  const nP = up(n, 4);
  const mP = up(m, 8);
  const bOff = up(nP * k, 4);
  const oOff = bOff + k * mP;
  const h = reserve(oOff + nP * mP);
  h.set(a.subarray(0, n * k), 0);
  for (let j = 0; j < m; j++) {
    const src = j * k;
    let d = bOff + j;
    for (let p = 0; p < k; p++, d += mP) h[d] = b[src + p]!;
  }
  copyRows(out, 0, m, h, oOff, mP, n, m);
  kernel!.nn(0, 4 * k, 4, bOff * 4, oOff * 4, nP, k, mP);
  copyRows(h, oOff, mP, out, 0, m, n, m);
}
