import { DT, type OnnxGraph } from '../internal/onnx-graph.js';

/** The frame as the guided filter reads it (segmentation-graph.ts), all from one pass over its bytes. */
export interface ImageBlocks {
  /** Per colour (R, G, B), the 4x4 blocks' pixels as floats 0-255: [B,1,16,M], pixel py*4+px, block by*bw+bx. */
  readonly pixels: readonly string[];
  /** Per colour, the mean of each 4x4 coarse cell in 0-1: [B,1,h,w] with h = ceil(H/4), w = ceil(W/4). */
  readonly low: readonly string[];
  /** int64 [2]: (h, w). */
  readonly lowHW: string;
  /** int64 [2]: the blocks (h+1, w+1). */
  readonly blocks: string;
  /** int64 [2]: the frame's (H, W). */
  readonly hw: string;
}

/**
 * Cuts the frame (uint8 [B,H,W,3], interleaved as the frames arrive) into 4x4 blocks centred on the
 * corners between the coarse cells: padded by 2 px (edge) before and up to whole blocks after,
 * which is the clamping the bilinear upsampling does at the borders.
 *
 * Each step was chosen for ONNX Runtime's kernels: a transpose is fast when it moves one axis and
 * slow in general (the one 6-d transpose that does this in a step cost three times the whole
 * function), so the bytes are reordered in two single-axis moves, [B·Hp, bw, 4·3] -> [B·Hp, 4·3, bw]
 * and [B, bh, 16·3, bw] -> [B, 16·3, bh, bw], then split by colour and cast to float once.
 *
 * The coarse cells' means come from the same blocks, not from a second pass at full resolution:
 * a cell is the lower-right quarter of the block above-left of it, the lower-left of the one
 * above-right, and so on, so one small MatMul sums each block's four 2x2 quarters and four shifted
 * slices add them up. Where H or W is not a multiple of 4 the last row or column of cells counts
 * the edge pixels repeated to fill it (an average pool would average only the pixels there are).
 */
export function imageBlocks(g: OnnxGraph, image: string): ImageBlocks {
  const i64 = (v: readonly number[]): string => g.constI64(v);
  const concat = (xs: readonly string[]): string => g.op1('Concat', [...xs], { axis: 0 });
  const shape = g.op1('Shape', [image]);
  const hw = g.op1('Slice', [shape, i64([1]), i64([3])]);
  const lowHW = g.op1('Div', [g.op1('Add', [hw, i64([3, 3])]), i64([4, 4])]);
  const blocks = g.op1('Add', [lowHW, i64([1, 1])]);
  const bh = g.op1('Slice', [blocks, i64([0]), i64([1])]);
  const bw = g.op1('Slice', [blocks, i64([1]), i64([2])]);
  const tail = g.op1('Sub', [g.op1('Sub', [g.op1('Mul', [blocks, i64([4, 4])]), i64([2, 2])]), hw]);
  const padded = g.op1('Pad', [image, concat([i64([0, 2, 2, 0, 0]), tail, i64([0])])], { mode: 'edge' });
  // [B·Hp, bw, (px, c)] -> [B·Hp, (px, c), bw] = [B, bh, py, px, c, bw]
  const rows = g.op1('Transpose', [g.op1('Reshape', [padded, concat([i64([-1]), bw, i64([12])])])], { perm: [0, 2, 1] });
  // [B, bh, (py, px, c), bw] -> [B, (py, px, c), bh, bw]
  const byBlock = g.op1('Transpose', [g.op1('Reshape', [rows, concat([i64([-1]), bh, i64([48]), bw])])], { perm: [0, 2, 1, 3] });
  const colours = g.op('Split', [g.op1('Reshape', [byBlock, i64([0, 16, 3, -1])])], { axis: 2 }, 3);
  const pixels = colours.map((c) => g.op1('Cast', [g.op1('Reshape', [c, i64([0, 1, 16, -1])])], { to: DT.FLOAT }));
  // Rows of `quarters`: the block's four 2x2 quarters (top-left, top-right, bottom-left,
  // bottom-right), each pixel weighted 1/(16·255) so the sums of four are cell means in 0-1.
  const quarters = new Float32Array(4 * 16);
  for (let py = 0; py < 4; py++) for (let px = 0; px < 4; px++) quarters[((py >> 1) * 2 + (px >> 1)) * 16 + py * 4 + px] = 1 / (16 * 255);
  const sumQuarters = g.constF(quarters, [4, 16]);
  const quarterShape = concat([i64([0, 4]), blocks]);
  const low = pixels.map((p) => {
    const q = g.op1('Reshape', [g.op1('MatMul', [sumQuarters, p]), quarterShape]); // [B,4,bh,bw]
    const at = (quarter: number, dy: number, dx: number): string =>
      g.op1('Slice', [q, i64([quarter, dy, dx]), concat([i64([quarter + 1]), g.op1('Add', [lowHW, i64([dy, dx])])]), i64([1, 2, 3])]);
    return g.op1('Add', [g.op1('Add', [at(3, 0, 0), at(2, 0, 1)]), g.op1('Add', [at(1, 1, 0), at(0, 1, 1)])]);
  });
  return { pixels, low, lowHW, blocks, hw };
}
