import { OnnxGraph, DT } from '../internal/onnx-graph.js';
import { textureBank } from './builtin-filters.js';
import { BUILTIN_FEATURE_MEAN, BUILTIN_FEATURE_STD } from './builtin-calibration.js';

export const BUILTIN_NAME = 'builtin-filterbank-v1';
export const BUILTIN_PATCH_SIZE = 8;
const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** Keeps log() finite on perfectly flat patches. */
const LOG_EPS = 1e-4;

/** Feature layout per patch, before the 3x3 context copy: colour mean, colour log-variance, texture log-energy at two scales. */
export const BUILTIN_BASE_DIM = 3 + 3 + 2 * textureBank().kernels.length;
/** Standardised features, plus one constant channel (see BIAS_CHANNEL). */
export const BUILTIN_DIM = BUILTIN_BASE_DIM * 2 + 1;
const FEATURE_DIM = BUILTIN_BASE_DIM * 2;

export interface BuiltinOptions {
  /** Per-channel standardisation; defaults to the constants calibrated once (builtin-calibration.ts). */
  readonly mean?: Float32Array;
  readonly std?: Float32Array;
}

/**
 * Builds the built-in backbone: a fixed-weight ONNX graph that needs no download. Per 8x8 patch it
 * gives opponent-colour means and variances and the log energy of a Gabor / difference-of-Gaussian
 * filter bank, plus the same features averaged over the 3x3 neighbourhood of patches (context, as
 * a ViT's attention would give), standardised per channel. It keeps the backbone contract of
 * DESIGN.md: input `image` [B,3,H,W] ImageNet-normalised, outputs `patch_tokens`, `cls_token`
 * and `keys` (the tokens themselves, for LOST). H and W may be any multiple of 8.
 */
export function buildBuiltinBackbone(options: BuiltinOptions = {}): Uint8Array {
  const g = new OnnxGraph(BUILTIN_NAME);
  const p = BUILTIN_PATCH_SIZE;
  const image = g.input('image', DT.FLOAT, ['batch', 3, 'height', 'width']);

  // ImageNet-normalised input back to 0..1 RGB, then to opponent colour (lum, red-green, blue-yellow),
  // folded into one 1x1 convolution.
  const opp = [
    [1 / 3, 1 / 3, 1 / 3],
    [1, -1, 0],
    [0.5, 0.5, -1],
  ];
  const w = new Float32Array(9);
  const b = new Float32Array(3);
  for (let o = 0; o < 3; o++) {
    for (let i = 0; i < 3; i++) {
      const row = opp[o] as number[];
      w[o * 3 + i] = (row[i] as number) * (IMAGENET_STD[i] as number);
      b[o] = (b[o] as number) + (row[i] as number) * (IMAGENET_MEAN[i] as number);
    }
  }
  const colour = g.op1('Conv', [image, g.constF(w, [3, 3, 1, 1]), g.constF(b, [3])]);
  const lum = g.op1('Slice', [colour, g.constI64([0]), g.constI64([1]), g.constI64([1])]);

  // Texture: the same 7x7 bank at full and half resolution (a two-level pyramid).
  const bank = textureBank();
  const kw = new Float32Array(bank.kernels.length * bank.size * bank.size);
  bank.kernels.forEach((k, i) => kw.set(Float32Array.from(k.weights), i * bank.size * bank.size));
  const kernels = g.constF(kw, [bank.kernels.length, 1, bank.size, bank.size]);
  const pad = (bank.size - 1) / 2;
  // Reflect padding: zero padding would see a step at the image border and light every
  // border patch up as strong texture.
  const padSpec = g.constI64([0, 0, pad, pad, 0, 0, pad, pad]);
  const conv = (x: string): string => g.op1('Conv', [g.op1('Pad', [x, padSpec], { mode: 'reflect' }), kernels]);
  const square = (x: string): string => g.op1('Mul', [x, x]);
  const pool = (x: string, k = p): string => g.op1('AveragePool', [x], { kernel_shape: [k, k], strides: [k, k] });
  const logEps = (x: string): string => g.op1('Log', [g.op1('Add', [x, g.constF([LOG_EPS], [1])])]);
  const lumHalf = pool(lum, 2);
  const fine = pool(square(conv(lum)));
  const coarse = pool(square(conv(lumHalf)), p / 2);

  const colMean = pool(colour);
  const colVar = g.op1('Relu', [g.op1('Sub', [pool(g.op1('Mul', [colour, colour])), g.op1('Mul', [colMean, colMean])])]);
  const base = g.op1('Concat', [colMean, logEps(colVar), logEps(fine), logEps(coarse)], { axis: 1 });
  const context = g.op1('AveragePool', [base], { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 0 });
  const feats = g.op1('Concat', [base, context], { axis: 1 });

  const mean = options.mean ?? BUILTIN_FEATURE_MEAN;
  const std = options.std ?? BUILTIN_FEATURE_STD;
  const weights = groupWeights();
  const inv = Float32Array.from(std, (s, i) => (weights[i] as number) / Math.max(s, 1e-6));
  const standardised = g.op1('Mul', [g.op1('Sub', [feats, g.constF(mean, [1, FEATURE_DIM, 1, 1])]), g.constF(inv, [1, FEATURE_DIM, 1, 1])]);
  // Standardised features of the most common look (e.g. open sand) lie near the origin, where
  // cosine similarity turns noise into direction. A constant channel keeps them away from it.
  const zero = g.op1('Mul', [g.op1('Slice', [standardised, g.constI64([0]), g.constI64([1]), g.constI64([1])]), g.constF([0], [1])]);
  const bias = g.op1('Add', [zero, g.constF([BIAS_CHANNEL], [1])]);
  const standard = g.op1('Concat', [standardised, bias], { axis: 1 });

  const flat = g.op1('Reshape', [standard, g.constI64([0, BUILTIN_DIM, -1])]);
  g.output('patch_tokens', DT.FLOAT, ['batch', 'patches', BUILTIN_DIM]);
  g.output('cls_token', DT.FLOAT, ['batch', BUILTIN_DIM]);
  g.output('keys', DT.FLOAT, ['batch', 'patches', BUILTIN_DIM]);
  const tokens = g.op1('Transpose', [flat], { perm: [0, 2, 1] }, 'patch_tokens');
  g.op1('ReduceMean', [tokens], { axes: [1], keepdims: 0 }, 'cls_token');
  g.op1('Identity', [tokens], {}, 'keys');

  return g.toBytes({
    name: BUILTIN_NAME,
    patch_size: p,
    embed_dim: BUILTIN_DIM,
    // 0: any multiple of patch_size (the graph is fully convolutional).
    input_height: 0,
    input_width: 0,
  });
}


/**
 * After standardisation every channel has unit variance, so the 20 texture channels would
 * outweigh the 3 colour means in cosine similarity. Scale the groups so colour, colour variance
 * and each texture scale carry comparable weight.
 */
export function groupWeights(): Float32Array {
  const t = textureBank().kernels.length;
  const base = [...COLOUR_WEIGHTS.map((w) => w * COLOUR_WEIGHT), ...Array(3).fill(1), ...Array(2 * t).fill(Math.sqrt(3 / t))];
  return Float32Array.from([...base, ...base.map((w) => w * CONTEXT_WEIGHT)]);
}

/** Weight of the 3x3-neighbourhood copy relative to the patch's own features. */
const CONTEXT_WEIGHT = Number(process.env['STEGO_CTX'] ?? 1);

/** Value of the constant channel, in standard deviations. */
const BIAS_CHANNEL = Number(process.env['STEGO_BIAS'] ?? 3);

/** Relative weights of luminance, red-green and blue-yellow: luminance varies most with light. */
const COLOUR_WEIGHTS = (process.env['STEGO_CW3'] ?? '0.5,1,1').split(',').map(Number);

/** Weight of each colour-mean channel relative to a colour-variance channel. */
const COLOUR_WEIGHT = 6;
