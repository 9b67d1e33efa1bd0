import { OnnxGraph, DT } from '../internal/onnx-graph.js';
import { imageBlocks, type ImageBlocks } from './image-blocks.js';
import { REFINE_CANDIDATES, REFINE_SCALE, type RefineOptions } from './refine-options.js';

/**
 * The segmentation graph: patch tokens -> STEGO head (when `withHead`) -> cosine similarity to
 * the K centroids -> bilinear upsampling of the similarity maps to the output size (and, with
 * `refine`, the guided filter that moves class boundaries onto the frame's colour edges) -> argmax.
 * Similarities are upsampled, never labels (DESIGN.md). Head weights and centroids are graph
 * inputs, not constants, so a newly trained head is swapped in by feeding new tensors: no session
 * rebuild, no pause.
 *
 * Inputs: `tokens` [B,N,C], `grid` int64 [4] = (B, C, gridH, gridW), `out_size` int64 [4] =
 * (B, K, H, W), `centroids` [K,D], with `refine` `image` uint8 [B,H,W,3], and with the head `lin_w` [C,D], `lin_b` [D], `mlp1_w` [C,C],
 * `mlp1_b` [C], `mlp2_w` [C,D], `mlp2_b` [D]. Output `labels` uint8 [B,H,W].
 */
export function buildSegmentationGraph(withHead: boolean, refine?: RefineOptions): Uint8Array {
  const g = new OnnxGraph(withHead ? 'stego-head-probe' : 'raw-probe');
  const tokens = g.input('tokens', DT.FLOAT, ['batch', 'patches', 'dim']);
  const grid = g.input('grid', DT.INT64, [4]);
  const outSize = g.input('out_size', DT.INT64, [4]);
  const centroids = g.input('centroids', DT.FLOAT, ['classes', 'code_dim']);
  let codes = tokens;
  if (withHead) {
    const linW = g.input('lin_w', DT.FLOAT, ['dim', 'code_dim']);
    const linB = g.input('lin_b', DT.FLOAT, ['code_dim']);
    const m1W = g.input('mlp1_w', DT.FLOAT, ['dim', 'dim']);
    const m1B = g.input('mlp1_b', DT.FLOAT, ['dim']);
    const m2W = g.input('mlp2_w', DT.FLOAT, ['dim', 'code_dim']);
    const m2B = g.input('mlp2_b', DT.FLOAT, ['code_dim']);
    const linear = g.op1('Add', [g.op1('MatMul', [tokens, linW]), linB]);
    const hidden = g.op1('Relu', [g.op1('Add', [g.op1('MatMul', [tokens, m1W]), m1B])]);
    const mlp = g.op1('Add', [g.op1('MatMul', [hidden, m2W]), m2B]);
    codes = g.op1('Add', [linear, mlp]);
  }
  // Cosine: L2-normalise codes (centroids arrive unit-norm), then one MatMul.
  const norm = g.op1('Sqrt', [g.op1('Add', [g.op1('ReduceSumSquare', [codes], { axes: [2], keepdims: 1 }), g.constF([1e-12], [1])])]);
  const unit = g.op1('Div', [codes, norm]);
  const sims = g.op1('MatMul', [unit, g.op1('Transpose', [centroids], { perm: [1, 0] })]); // [B,N,K]
  const simsT = g.op1('Transpose', [sims], { perm: [0, 2, 1] }); // [B,K,N]
  // grid gives (B, C, gh, gw); the maps need (B, K, gh, gw): take K from the centroids' shape.
  const k = g.op1('Slice', [g.op1('Shape', [centroids]), g.constI64([0]), g.constI64([1])]);
  const mapShape = g.op1(
    'Concat',
    [g.op1('Slice', [grid, g.constI64([0]), g.constI64([1])]), k, g.op1('Slice', [grid, g.constI64([2]), g.constI64([4])])],
    { axis: 0 },
  );
  const maps = g.op1('Reshape', [simsT, mapShape]);
  const labels = refine
    ? refinedLabels(g, maps, grid, k, refine)
    : g.op1('Cast', [g.op1('ArgMax', [resize(g, maps, outSize)], { axis: 1, keepdims: 0 })], { to: DT.UINT8 });
  g.output('labels', DT.UINT8, ['batch', 'height', 'width']);
  g.op1('Identity', [labels], {}, 'labels');
  return g.toBytes({ name: withHead ? 'stego-head-probe' : 'raw-probe' });
}

function resize(g: OnnxGraph, x: string, sizes: string): string {
  return g.op1('Resize', [x, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' });
}

/**
 * The fast guided filter (He & Sun 2015) of the class maps, guided by the frame's colours: in each
 * window a class score is modelled as an affine function of the pixel's RGB, fitted (ridge, eps)
 * to the bilinear map, so class boundaries move onto the colour edges that the 8x8 or 16x16 patch
 * grid cannot place. It plays the part of the dense CRF in STEGO's pipeline at a fraction of the
 * cost: the fit runs on a grid REFINE_SCALE times coarser, only the affine coefficients are upsampled.
 * Box means are AveragePools without padding in the count, so windows shrink at the borders.
 * Input `image` uint8 [B,H,W,3] (the frames' own buffers, at the output size).
 */
function refinedLabels(g: OnnxGraph, maps: string, grid: string, k: string, o: RefineOptions): string {
  const image = imageBlocks(g, g.input('image', DT.UINT8, ['batch', 'height', 'width', 3]));
  const s = REFINE_SCALE;
  const batch = g.op1('Slice', [grid, g.constI64([0]), g.constI64([1])]);
  const lowHW = image.lowHW;
  // Fewer classes than the last stage's candidates (K = 1 or 2): padded with classes that score
  // -1e4 everywhere, so they are picked last and never win. On the patch grid, where it is cheap.
  // Raw similarities, not softmax probabilities: a softmax at temperature 0.03 before the filter
  // measured 0.01-0.02 mIoU lower for learned heads.
  const missing = g.op1('Max', [g.op1('Sub', [g.constI64([REFINE_CANDIDATES]), k]), g.constI64([0])]);
  const classPads = g.op1('Concat', [g.constI64([0, 0, 0, 0, 0]), missing, g.constI64([0, 0])], { axis: 0 });
  const mapsC = g.op1('Pad', [maps, classPads, g.constF([-1e4], [])], { mode: 'constant' });
  const kC = g.op1('Max', [k, g.constI64([REFINE_CANDIDATES])]);
  const p = resize(g, mapsC, g.op1('Concat', [batch, kC, lowHW], { axis: 0 }));
  const r = Math.max(1, Math.round(o.radius / s));
  const box = (x: string): string =>
    g.op1('AveragePool', [x], { kernel_shape: [2 * r + 1, 2 * r + 1], strides: [1, 1], pads: [r, r, r, r], count_include_pad: 0 });
  const mul = (a: string, b: string): string => g.op1('Mul', [a, b]);
  const sub = (a: string, b: string): string => g.op1('Sub', [a, b]);
  const add = (...xs: string[]): string => xs.reduce((a, b) => g.op1('Add', [a, b]));
  const I = image.low;
  const mI = [0, 1, 2].map((c) => box(I[c] as string));
  const pairs: ReadonlyArray<readonly [number, number]> = [
    [0, 0],
    [0, 1],
    [0, 2],
    [1, 1],
    [1, 2],
    [2, 2],
  ];
  const eps = g.constF([o.eps], [1]);
  // Colour covariance per window (symmetric: six entries), plus eps on the diagonal.
  const cov = pairs.map(([i, j]) => {
    const c = sub(box(mul(I[i] as string, I[j] as string)), mul(mI[i] as string, mI[j] as string));
    return i === j ? g.op1('Add', [c, eps]) : c;
  });
  const [a, b, c, d, e, f] = cov as [string, string, string, string, string, string];
  // Its inverse by cofactors: a 3x3 per pixel is cheaper elementwise than any solver.
  const cA = sub(mul(d, f), mul(e, e));
  const cB = sub(mul(c, e), mul(b, f));
  const cC = sub(mul(b, e), mul(c, d));
  const cD = sub(mul(a, f), mul(c, c));
  const cE = sub(mul(b, c), mul(a, e));
  const cF = sub(mul(a, d), mul(b, b));
  const det = add(mul(a, cA), mul(b, cB), mul(c, cC));
  const inv = [cA, cB, cC, cB, cD, cE, cC, cE, cF].map((x) => g.op1('Div', [x, det]));
  const mp = box(p);
  const covIp = [0, 1, 2].map((i) => sub(box(mul(I[i] as string, p)), mul(mI[i] as string, mp)));
  const coef = [0, 1, 2].map((i) => add(...[0, 1, 2].map((j) => mul(inv[i * 3 + j] as string, covIp[j] as string))));
  const offset = sub(mp, add(...[0, 1, 2].map((i) => mul(coef[i] as string, mI[i] as string))));
  // The smoothed coefficients, all classes in one pass: [B,4,K,h,w] (R, G, B weights and offset).
  const coefShape = g.op1('Concat', [batch, g.constI64([4]), kC, lowHW], { axis: 0 });
  const smooth = g.op1('Reshape', [box(g.op1('Concat', [...coef, offset], { axis: 1 })), coefShape]);
  return labelsFromCoefficients(g, smooth, image);
}

/**
 * The guided filter's last stage, q_k(x) = A_k(x)·I(x) + b_k(x) with A_k, b_k bilinearly upsampled
 * from the coarse grid, then the argmax over classes. Done naively (a Resize of 4K maps to full
 * resolution) it cost four times the plain graph. Two things cut it:
 *
 * - Only REFINE_CANDIDATES (3) classes per pixel are scored: those that come closest to winning on
 *   the 2x2 coarse cells around it (each cell's refined scores at its mean colour, as margins to
 *   the cell's best). Another class could win only where four classes meet within about 8 px. The
 *   other candidates' scores minus the first's are upsampled: 2 maps per pixel, not K.
 * - The upsampling is a product with fixed weights, not a Resize: with the output cut into 4x4
 *   blocks centred on the corners between coarse cells, every pixel of a block interpolates the
 *   same 2x2 cells (at REFINE_SCALE = 4, half-pixel alignment, weights 7/8, 5/8, 3/8, 1/8). A block
 *   gathers its candidates' coefficients from those 4 cells and one MatMul [4 cells -> 16 pixels]
 *   interpolates them. The output is padded by 2 px (edge) to whole blocks, which is the same
 *   clamping Resize's half_pixel mode does at the borders, and cropped after.
 *
 * Everything at full resolution stays planar, a block's pixels as 16 channels (image-blocks.ts),
 * and is split by colour channel, coefficient and candidate while still bytes or coarse: the same
 * steps with the block's pixels last measured slower than the naive filter, all in 6-d Transposes
 * and Splits, which ONNX Runtime runs slowly (a transpose is fast only when it moves one axis).
 * The graph alone (B = 4, 448x256, K = 6, 2 threads): 18.4 ms naive, 10.8 ms this way at first,
 * 3.6 ms without refinement. At 1 thread (as in `process` on 2 cores), the blocks' reordering,
 * one gather per candidate with the borders clamped in its indices, and two transposes in place
 * of a DepthToSpace took the whole graph from 14.9-16.7 to 11.0-11.8 ms (back-to-back runs).
 * Coefficients [B,4,K,h,w]; `image` the frame's blocks and coarse cells.
 */
function labelsFromCoefficients(g: OnnxGraph, coef: string, image: ImageBlocks): string {
  const s = REFINE_SCALE;
  if (s !== 4) throw new Error('labelsFromCoefficients: the block weights assume REFINE_SCALE = 4');
  const C: number = REFINE_CANDIDATES;
  const i64 = (v: readonly number[]): string => g.constI64(v);
  const slice = (x: string, starts: readonly number[], ends: readonly number[], axes: readonly number[]): string =>
    g.op1('Slice', [x, i64(starts), i64(ends), i64(axes)]);
  const shape = (x: string, from: number, to: number): string => slice(g.op1('Shape', [x]), [from], [to], [0]);
  // Each coarse cell's refined scores at its own mean colour, as margins to its best class.
  const low = image.low[0] as string;
  const ones = g.op1('Expand', [g.constF([1], [1, 1, 1, 1]), g.op1('Shape', [low])]);
  const lowAug = g.op1('Unsqueeze', [g.op1('Concat', [...image.low, ones], { axis: 1 }), i64([2])]); // [B,4,1,h,w]
  const qLow = g.op1('ReduceSum', [g.op1('Mul', [coef, lowAug]), i64([1])], { keepdims: 0 }); // [B,K,h,w]
  const margin = g.op1('Sub', [qLow, g.op1('ReduceMax', [qLow], { axes: [1], keepdims: 1 })]);
  const pads = (rank: number, before: readonly [number, number], after: readonly [number, number]): string => {
    const p = new Array<number>(2 * rank).fill(0);
    [p[rank - 2], p[rank - 1], p[2 * rank - 2], p[2 * rank - 1]] = [before[0], before[1], after[0], after[1]];
    return i64(p);
  };
  // Per block (h+1 x w+1 of them): the classes best placed on its 2x2 cells.
  const near = g.op1('MaxPool', [g.op1('Pad', [margin, pads(4, [1, 1], [1, 1])], { mode: 'edge' })], {
    kernel_shape: [2, 2],
    strides: [1, 1],
  });
  const [, top] = g.op('TopK', [near, i64([C])], { axis: 1, largest: 1, sorted: 1 }, 2) as [string, string]; // [B,C,h+1,w+1]
  const cells = candidateCells(g, coef, top, image); // C-1 x [B,4,4 cells,M]
  const wt = [0.875, 0.625, 0.375, 0.125];
  const weights = new Float32Array(16 * 4);
  for (let py = 0; py < 4; py++)
    for (let px = 0; px < 4; px++)
      for (let cy = 0; cy < 2; cy++)
        for (let cx = 0; cx < 2; cx++) {
          const wy = cy === 0 ? (wt[py] as number) : 1 - (wt[py] as number);
          const wx = cx === 0 ? (wt[px] as number) : 1 - (wt[px] as number);
          weights[(py * 4 + px) * 4 + cy * 2 + cx] = wy * wx;
        }
  // Split while coarse; the colour weights take the 1/255 (pixels stay 0-255 floats). Each other
  // candidate's score minus the first's, per pixel: A·I + b, [B,1,16,M], one candidate at a time
  // (splitting a stacked full-resolution tensor would copy it).
  const w16 = g.constF(weights, [16, 4]);
  const pixels = image.pixels; // the frame in the same blocks, [B,1,16,M] per colour
  const add = (...xs: string[]): string => xs.reduce((a, b) => g.op1('Add', [a, b]));
  const leads = cells.map((cand) => {
    const perPixel = (g.op('Split', [cand], { axis: 1 }, 4) as string[]).map((c, i) =>
      g.op1('MatMul', [w16, i < 3 ? g.op1('Mul', [c, g.constF([1 / 255], [1])]) : c]),
    ); // 4 x [B,1,16,M]
    return add(...[0, 1, 2].map((i) => g.op1('Mul', [perPixel[i] as string, pixels[i] as string])), perPixel[3] as string);
  });
  const classes = g.op1('Reshape', [
    g.op1('Cast', [top], { to: DT.UINT8 }),
    g.op1('Concat', [shape(top, 0, 2), i64([1, -1])], { axis: 0 }),
  ]); // [B,C,1,M]
  // The candidate with the highest score: Where ops on the leads (an ArgMax over a stacked axis
  // cost more than all of them).
  const zero = g.constF([0], [1]);
  const pick = (i: number): string => slice(classes, [i], [i + 1], [1]);
  let picked = g.op1('Where', [g.op1('Greater', [leads[0] as string, zero]), pick(1), pick(0)]);
  let best = leads[0] as string;
  for (let i = 1; i < leads.length; i++) {
    const l = leads[i] as string;
    picked = g.op1('Where', [g.op1('Greater', [l, g.op1('Max', [best, zero])]), pick(i + 1), picked]);
    best = g.op1('Max', [best, l]);
  }
  // Back to rows of pixels in two single-axis moves (a DepthToSpace is a 6-d transpose, slower):
  // [B, (py, px), bh, bw] -> [B, bh, (py, px), bw], then [B·bh·py, px, bw] -> [B·bh·py, bw, px].
  const cat = (xs: string[]): string => g.op1('Concat', xs, { axis: 0 });
  const bw = g.op1('Slice', [image.blocks, i64([1]), i64([2])]);
  const byRow = g.op1('Transpose', [g.op1('Reshape', [picked, cat([i64([0, 16]), image.blocks])])], { perm: [0, 2, 1, 3] });
  const rows = g.op1('Transpose', [g.op1('Reshape', [byRow, cat([i64([-1, 4]), bw])])], { perm: [0, 2, 1] });
  const out = g.op1('Reshape', [rows, cat([i64([-1]), g.op1('Mul', [image.blocks, i64([s, s])])])]); // [B,4(h+1),4(w+1)]
  return g.op1('Slice', [out, i64([2, 2]), g.op1('Add', [image.hw, i64([2, 2])]), i64([1, 2])]);
}

/**
 * For each block, each of its 4 cells (top-left, top-right, bottom-left, bottom-right) and each
 * candidate but the first: the candidate's 4 coefficients minus the first candidate's, [B,4,4,M] each.
 * One GatherElements over the classes and cells flattened, with the cells' positions clamped at the
 * borders in the indices (as the edge padding of the coefficients did, without copying them).
 * Coefficients [B,4,K,h,w]; `top` the candidates per block, int64 [B,C,h+1,w+1].
 */
function candidateCells(g: OnnxGraph, coef: string, top: string, image: ImageBlocks): string[] {
  const C: number = REFINE_CANDIDATES;
  const i64 = (v: readonly number[]): string => g.constI64(v);
  const at = (x: string, i: number): string => g.op1('Slice', [x, i64([i]), i64([i + 1])]);
  const [h, w] = [at(image.lowHW, 0), at(image.lowHW, 1)];
  const [bh, bw] = [at(image.blocks, 0), at(image.blocks, 1)];
  const zero = i64([0]);
  // Block b's cells are b-1 and b along each axis, clamped to the grid: [2, bh] rows, [2, bw] columns.
  const clamped = (n: string, last: string): string =>
    g.op1('Min', [
      g.op1('Max', [g.op1('Add', [g.op1('Unsqueeze', [g.op1('Range', [zero, n, i64([1])]), zero]), g.constI64([-1, 0], [2, 1])]), zero]),
      g.op1('Sub', [last, i64([1])]),
    ]);
  const rows = g.op1('Mul', [clamped(bh, h), w]); // [2,bh]
  const cols = clamped(bw, w); // [2,bw]
  // Flat position of each block's 4 cells in a class's h x w map: [4,bh,bw], cell dy*2+dx.
  const cellAt = g.op1('Add', [g.op1('Reshape', [rows, i64([2, 1, -1, 1])]), g.op1('Reshape', [cols, i64([1, 2, 1, -1])])]);
  const cellPos = g.op1('Reshape', [cellAt, g.op1('Concat', [i64([4]), bh, bw], { axis: 0 })]);
  const data = g.op1('Reshape', [coef, i64([0, 4, -1])]); // [B,4,K·h·w]
  const perClass = g.op1('Mul', [h, w]);
  // One gather per candidate, so that each comes out on its own (no split of the stacked result).
  const gather = (c: number): string => {
    const classPos = g.op1('Mul', [g.op1('Slice', [top, i64([c]), i64([c + 1]), i64([1])]), perClass]); // [B,1,bh,bw]
    const flat = g.op1('Reshape', [g.op1('Add', [classPos, cellPos]), i64([0, 1, -1])]); // [B,1,4·M]
    const index = g.op1('Expand', [g.op1('Cast', [flat], { to: DT.INT32 }), i64([1, 4, 1])]);
    return g.op1('GatherElements', [data, index], { axis: 2 }); // [B,4,4·M]
  };
  const first = gather(0);
  return Array.from({ length: C - 1 }, (_, c) => g.op1('Reshape', [g.op1('Sub', [gather(c + 1), first]), i64([0, 4, 4, -1])]));
}
