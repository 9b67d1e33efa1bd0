import { OnnxGraph, DT } from '../internal/onnx-graph.js';

/**
 * The segmentation graph: patch tokens -> STEGO head (when `withHead`) -> cosine similarity to
 * the K centroids -> bilinear upsampling of the similarity maps to the output size -> argmax.
 * Similarities are upsampled, never labels (DESIGN.md). Head weights and centroids are graph
 * inputs, not constants, so a newly trained head is swapped in by feeding new tensors: no session
 * rebuild, no pause.
 *
 * Inputs: `tokens` [B,N,C], `grid` int64 [4] = (B, C, gridH, gridW), `out_size` int64 [4] =
 * (B, K, H, W), `centroids` [K,D], and with the head `lin_w` [C,D], `lin_b` [D], `mlp1_w` [C,C],
 * `mlp1_b` [C], `mlp2_w` [C,D], `mlp2_b` [D]. Output `labels` uint8 [B,H,W].
 */
export function buildSegmentationGraph(withHead: boolean): Uint8Array {
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
  const up = g.op1('Resize', [maps, '', '', outSize], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' });
  const arg = g.op1('ArgMax', [up], { axis: 1, keepdims: 0 });
  g.output('labels', DT.UINT8, ['batch', 'height', 'width']);
  g.op1('Cast', [arg], { to: DT.UINT8 }, 'labels');
  return g.toBytes({ name: withHead ? 'stego-head-probe' : 'raw-probe' });
}
