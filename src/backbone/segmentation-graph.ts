import { OnnxGraph, DT } from '../internal/onnx-graph.js';
import { REFINE_SCALE, type RefineOptions } from './refine-options.js';

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
  const scores = refine ? guidedScores(g, maps, outSize, grid, k, refine) : resize(g, maps, outSize);
  const arg = g.op1('ArgMax', [scores], { axis: 1, keepdims: 0 });
  g.output('labels', DT.UINT8, ['batch', 'height', 'width']);
  g.op1('Cast', [arg], { to: DT.UINT8 }, 'labels');
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
function guidedScores(g: OnnxGraph, maps: string, outSize: string, grid: string, k: string, o: RefineOptions): string {
  const image = g.input('image', DT.UINT8, ['batch', 'height', 'width', 3]);
  const full = g.op1('Mul', [
    g.op1('Transpose', [g.op1('Cast', [image], { to: DT.FLOAT })], { perm: [0, 3, 1, 2] }),
    g.constF([1 / 255], [1]),
  ]);
  const s = REFINE_SCALE;
  const low = g.op1('AveragePool', [full], { kernel_shape: [s, s], strides: [s, s], ceil_mode: 1 });
  const lowSize = g.op1(
    'Concat',
    [
      g.op1('Slice', [grid, g.constI64([0]), g.constI64([1])]),
      k,
      g.op1('Slice', [g.op1('Shape', [low]), g.constI64([2]), g.constI64([4])]),
    ],
    { axis: 0 },
  );
  // Raw similarities, not softmax probabilities: a softmax at temperature 0.03 before the filter
  // measured 0.01-0.02 mIoU lower for learned heads.
  const p = resize(g, maps, lowSize);
  const r = Math.max(1, Math.round(o.radius / s));
  const box = (x: string): string =>
    g.op1('AveragePool', [x], { kernel_shape: [2 * r + 1, 2 * r + 1], strides: [1, 1], pads: [r, r, r, r], count_include_pad: 0 });
  const ch = (x: string, c: number): string => g.op1('Slice', [x, g.constI64([c]), g.constI64([c + 1]), g.constI64([1])]);
  const mul = (a: string, b: string): string => g.op1('Mul', [a, b]);
  const sub = (a: string, b: string): string => g.op1('Sub', [a, b]);
  const add = (...xs: string[]): string => xs.reduce((a, b) => g.op1('Add', [a, b]));
  const I = [0, 1, 2].map((c) => ch(low, c));
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
  const fullI = [0, 1, 2].map((i) => ch(full, i));
  const terms = [0, 1, 2].map((i) => mul(resize(g, box(coef[i] as string), outSize), fullI[i] as string));
  return add(...terms, resize(g, box(offset), outSize));
}
