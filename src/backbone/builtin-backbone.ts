import { OnnxGraph, DT } from '../internal/onnx-graph.js';
import { textureBank } from './builtin-filters.js';
import { BUILTIN_FEATURE_MEAN, BUILTIN_FEATURE_STD } from './builtin-calibration.js';

export const BUILTIN_NAME = 'builtin-filterbank-v3';
export const BUILTIN_PATCH_SIZE = 8;
const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** Raw features per patch, in this order (see buildBuiltinBackbone). */
export const BUILTIN_FEATURE_NAMES = ['red-green', 'blue-yellow', 'texture', 'log-relative-luminance', 'coarse-texture'] as const;
/** Raw features per patch. */
export const BUILTIN_FEATURE_DIM = BUILTIN_FEATURE_NAMES.length;
/** Standardised features plus one constant channel (see BIAS_CHANNEL). */
export const BUILTIN_DIM = BUILTIN_FEATURE_DIM + 1;

/**
 * Chromaticity is opponent colour over (luminance + this), in 0-1 units. Dividing by luminance
 * makes colour independent of lamp fall-off and shading; the offset only keeps black finite. It is
 * small because a larger one greys out everything dark (shadowed sand drifted towards the grey of
 * rock: 0.05 split rock into rock and "rock + shadowed sand" more often than 0.02).
 */
const CHROMA_OFFSET = 0.02;
/**
 * Texture energy is divided by (luminance + this)^2: it measures contrast, not brightness, so a
 * surface keeps its texture value in the lamp's fall-off; the offset (a tenth of full scale) keeps
 * the noise of near-black regions from reading as strong texture.
 */
const TEXTURE_LUMINANCE_OFFSET = 0.1;
/**
 * Contrast energy at which texture reads 0.5 on its 0-1 scale (e / (e + this)). Set between
 * smooth surfaces (water, sand: about 0.001-0.003) and textured ones (rock, coral: 0.03-0.3), so
 * texture says "smooth or textured" and saturates inside each; in log units the within-class
 * spread of rock and coral was as large as the gap to sand.
 */
const TEXTURE_HALF = 0.008;
/**
 * Weight of texture energy against colour variance (both 0-1 units) when picking a patch's most
 * uniform quarter: a quarter next to an edge has little colour variance but some texture energy
 * leaking in through the filters, and is passed over for one farther away.
 */
const QUARTER_TEXTURE_WEIGHT = 4;
/** Keeps log() finite on black. */
const LUMINANCE_LOG_OFFSET = 0.02;
/**
 * The illumination estimate: each patch's mean luminance, box-blurred ILLUMINATION_PASSES times
 * over ILLUMINATION_KERNEL x ILLUMINATION_KERNEL patches (a near-Gaussian of about 6 patches'
 * sigma: 50 pixels, a ninth of the default 448-pixel width). Wider than a rock or a coral, so
 * an object does not divide itself away; narrower than a lamp's spot, so the spot's fall-off is
 * followed.
 */
const ILLUMINATION_KERNEL = 13;
const ILLUMINATION_PASSES = 3;
/**
 * Luminance every patch is brought to: its features are computed as if the frame had been
 * multiplied by ILLUMINATION_TARGET / illumination there. Mid-grey, about the level of the
 * evenly lit scenes the other constants were tuned on, so those keep their meaning.
 */
const ILLUMINATION_TARGET = 0.45;
/**
 * Added to the illumination estimate (0-1 luminance): caps the gain at TARGET / this (45x), so
 * that black (water beyond the lamps' reach, 0-2 levels of 255) stays dark rather than its
 * compression noise being lifted to full scale. 0.03 left the dim rim of a lit floor darker and
 * greyer than its middle, a ring class on the Ventana clips.
 */
const ILLUMINATION_FLOOR = 0.01;

export interface BuiltinOptions {
  /** Per-channel standardisation; defaults to the constants calibrated once (builtin-calibration.ts). */
  readonly mean?: Float32Array;
  readonly std?: Float32Array;
  /** Per-channel weights after standardisation; defaults to groupWeights(). */
  readonly weights?: Float32Array;
  /** Value of the constant channel; defaults to BIAS_CHANNEL. */
  readonly bias?: number;
  /**
   * Divide out the frame's low-frequency illumination (default true); false leaves that step out
   * (v2's features, standardised with v3's constants), to measure what it buys.
   */
  readonly normaliseIllumination?: boolean;
}

/**
 * Builds the built-in backbone: a fixed-weight ONNX graph that needs no download. Per 8x8 patch it
 * gives chromaticity (opponent colour over luminance), texture (Gabor energy over squared
 * luminance, squashed to 0-1) at two scales and log luminance relative to the surroundings,
 * standardised per channel and weighted by group, plus a constant channel. The frame's
 * low-frequency illumination (the lamps' spot and fall-off, vignetting, the water's depth
 * gradient) is divided out first, so that how brightly a patch is lit is not a feature: see the
 * ILLUMINATION_* constants. It keeps the backbone contract of DESIGN.md: input
 * `image` [B,3,H,W] ImageNet-normalised, outputs `patch_tokens`, `cls_token` and `keys` (the
 * tokens without the constant channel, so that LOST's correlations are centred). H and W may be
 * any multiple of 8.
 *
 * A patch straddling two regions takes its features from its most uniform 4x4 quarter (least
 * colour variance and texture), so it looks like one of the regions rather than like a blend of
 * both: blends form clusters of their own ("edge" classes) under k-means. For the same reason
 * there is no copy of the features averaged over neighbouring patches (v1 had one): it gave the
 * water around every fish and along the horizon a look of its own, a halo class.
 */
export function buildBuiltinBackbone(options: BuiltinOptions = {}): Uint8Array {
  const g = new OnnxGraph(BUILTIN_NAME);
  const p = BUILTIN_PATCH_SIZE;
  const q = p / 2;
  const F = BUILTIN_FEATURE_DIM;
  const image = g.input('image', DT.FLOAT, ['batch', 3, 'height', 'width']);
  const c = (v: number): string => g.constF([v], [1]);
  const i64 = (v: readonly number[]): string => g.constI64(v);
  const slice = (x: string, from: number, to: number, axis: number): string => g.op1('Slice', [x, i64([from]), i64([to]), i64([axis])]);
  const pool = (x: string, k: number): string => g.op1('AveragePool', [x], { kernel_shape: [k, k], strides: [k, k] });
  const square = (x: string): string => g.op1('Mul', [x, x]);

  // ImageNet-normalised input back to 0..1 RGB, then to opponent colour (luminance, red-green,
  // blue-yellow), folded into one 1x1 convolution.
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
  // Only luminance is needed at full resolution (for fine texture); colour statistics come from
  // the half-resolution image, which is four times cheaper and loses nothing a 4x4 quarter needs.
  const lum = g.op1('Conv', [image, g.constF(w.slice(0, 3), [1, 3, 1, 1]), g.constF(b.slice(0, 1), [1])]);
  const colourHalf = g.op1('Conv', [pool(image, 2), g.constF(w, [3, 3, 1, 1]), g.constF(b, [3])]);
  const lumHalf = slice(colourHalf, 0, 1, 1);

  // Texture energy: the Gabor bank, squared and summed over the bank (quadrature pairs make it
  // phase-invariant; the 1/2 per pair is folded into the kernels), at full and at half resolution.
  const bank = textureBank();
  const k = bank.kernels.length;
  const kw = new Float32Array(k * bank.size * bank.size);
  const perPair = Math.sqrt(2 / k);
  bank.kernels.forEach((kernel, i) =>
    kw.set(
      Float32Array.from(kernel.weights, (v) => v * perPair),
      i * bank.size * bank.size,
    ),
  );
  const kernels = g.constF(kw, [k, 1, bank.size, bank.size]);
  const pad = (bank.size - 1) / 2;
  // Reflect padding: zero padding would see a step at the image border and light every border
  // patch up as strong texture.
  const padSpec = i64([0, 0, pad, pad, 0, 0, pad, pad]);
  const energy = (x: string): string =>
    g.op1('ReduceSumSquare', [g.op1('Conv', [g.op1('Pad', [x, padSpec], { mode: 'reflect' }), kernels])], { axes: [1], keepdims: 1 });
  const fine = energy(lum);
  const coarse = energy(lumHalf);

  // Statistics per 4x4 quarter: colour mean, colour mean square, texture energy (fine, coarse).
  const quarters = g.op1('Concat', [pool(colourHalf, q / 2), pool(square(colourHalf), q / 2), pool(fine, q), pool(coarse, q / 2)], {
    axis: 1,
  });
  const S = 8;
  // [B, S, H/4, W/4] -> [B, 4 quarters, S, patches].
  const byQuarter = g.op1('Reshape', [g.op1('SpaceToDepth', [quarters], { blocksize: 2 }), i64([0, 4, S, -1])]);
  const mean3 = slice(byQuarter, 0, 3, 2);
  const variance = g.op1('ReduceSum', [g.op1('Sub', [slice(byQuarter, 3, 6, 2), square(mean3)]), i64([2])], { keepdims: 1 });
  const unevenness = g.op1('Add', [variance, g.op1('Mul', [slice(byQuarter, 6, 7, 2), c(QUARTER_TEXTURE_WEIGHT)])]);
  const pick = g.op1('Expand', [g.op1('ArgMin', [unevenness], { axis: 1, keepdims: 1 }), i64([1, 1, S, 1])]);
  const chosen = g.op1('Squeeze', [g.op1('GatherElements', [byQuarter, pick], { axis: 1 }), i64([1])]); // [B, S, N]

  // Illumination: divided out of the chosen quarter's statistics, patch by patch (colour and
  // luminance scale with the gain, texture energy with its square). The estimate is smooth, so a
  // gain per patch is as good as one per pixel, and far cheaper.
  const normalise = options.normaliseIllumination ?? true;
  let lit = chosen;
  if (normalise) {
    let light = g.op1('Relu', [pool(lumHalf, q)]); // [B, 1, H/8, W/8]
    for (let i = 0; i < ILLUMINATION_PASSES; i++) {
      const r = (ILLUMINATION_KERNEL - 1) / 2;
      // count_include_pad 0: at the border the mean is over the patches that exist, not over zeros.
      light = g.op1('AveragePool', [light], {
        kernel_shape: [ILLUMINATION_KERNEL, ILLUMINATION_KERNEL],
        pads: [r, r, r, r],
        count_include_pad: 0,
      });
    }
    const gain = g.op1('Div', [c(ILLUMINATION_TARGET), g.op1('Add', [g.op1('Reshape', [light, i64([0, 1, -1])]), c(ILLUMINATION_FLOOR)])]);
    const colour = g.op1('Mul', [slice(chosen, 0, 3, 1), gain]);
    const energies = g.op1('Mul', [slice(chosen, 6, 8, 1), square(gain)]);
    lit = g.op1('Concat', [colour, slice(chosen, 3, 6, 1), energies], { axis: 1 });
  }

  const L = slice(lit, 0, 1, 1);
  const chroma = g.op1('Div', [slice(lit, 1, 3, 1), g.op1('Add', [L, c(CHROMA_OFFSET)])]);
  const contrastScale = square(g.op1('Add', [L, c(TEXTURE_LUMINANCE_OFFSET)]));
  const squash = (e: string): string => {
    const contrast = g.op1('Div', [e, contrastScale]);
    return g.op1('Div', [contrast, g.op1('Add', [contrast, c(TEXTURE_HALF)])]);
  };
  const logL = g.op1('Log', [g.op1('Add', [g.op1('Relu', [L]), c(LUMINANCE_LOG_OFFSET)])]);
  const raw = g.op1('Concat', [chroma, squash(slice(lit, 6, 7, 1)), logL, squash(slice(lit, 7, 8, 1))], { axis: 1 });

  const mean = options.mean ?? BUILTIN_FEATURE_MEAN;
  const std = options.std ?? BUILTIN_FEATURE_STD;
  const weights = options.weights ?? groupWeights();
  const inv = Float32Array.from(std, (s, i) => (weights[i] as number) / Math.max(s, 1e-6));
  const standard = g.op1('Mul', [g.op1('Sub', [raw, g.constF(mean, [1, F, 1])]), g.constF(inv, [1, F, 1])]);
  // Standardised features of the most common look (open water, open sand) lie near the origin,
  // where cosine similarity turns noise into direction. A constant channel keeps them away from it.
  const first = slice(standard, 0, 1, 1);
  const zero = g.op1('Sub', [first, first]); // [B, 1, N] of +0 (x * 0 would give -0 for negative x)
  const tokens = g.op1('Concat', [standard, g.op1('Add', [zero, c(options.bias ?? BIAS_CHANNEL)])], { axis: 1 });
  const keys = g.op1('Concat', [standard, zero], { axis: 1 });

  g.output('patch_tokens', DT.FLOAT, ['batch', 'patches', BUILTIN_DIM]);
  g.output('cls_token', DT.FLOAT, ['batch', BUILTIN_DIM]);
  g.output('keys', DT.FLOAT, ['batch', 'patches', BUILTIN_DIM]);
  const patchTokens = g.op1('Transpose', [tokens], { perm: [0, 2, 1] }, 'patch_tokens');
  g.op1('ReduceMean', [patchTokens], { axes: [1], keepdims: 0 }, 'cls_token');
  g.op1('Transpose', [keys], { perm: [0, 2, 1] }, 'keys');

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
 * Weight of chromaticity (shared by its two channels). Colour is what tells the scene's classes
 * apart best and is the most stable within a class once divided by luminance, so it dominates:
 * about three times the texture weight (at 4 fish were often merged into sand, at 8 no better).
 */
const CHROMA_WEIGHT = 6;
/**
 * Weight of fine texture: the only cue between sand and coral of the sand's colour (the 'hard'
 * scene), and a second one between rock and sand. 1.5 lost coral in 'hard' more often, 2.5 let
 * textured edges form classes of their own.
 */
const TEXTURE_WEIGHT = 2;
/**
 * Weight of log luminance: low, since brightness follows the lamps and the water's depth
 * gradient more than the material (at 1, k-means split the water into lighter and darker halves).
 */
const LUMINANCE_WEIGHT = 0.3;
/** Weight of the coarse texture: a hint for larger structure; higher, it merely adds noise. */
const COARSE_TEXTURE_WEIGHT = 0.5;

/**
 * Per-channel weights applied after standardisation (BUILTIN_FEATURE_NAMES order): after it every
 * channel has unit variance, and these set how much each cue counts in cosine similarity.
 */
export function groupWeights(): Float32Array {
  const perChroma = CHROMA_WEIGHT / Math.SQRT2;
  return Float32Array.from([perChroma, perChroma, TEXTURE_WEIGHT, LUMINANCE_WEIGHT, COARSE_TEXTURE_WEIGHT]);
}

/**
 * Value of the constant channel, in weighted standard deviations. Large against the features'
 * spread (classes lie some 5-15 units apart), so cosine similarity behaves like Euclidean distance
 * and does not crowd classes that share a direction (sand and fish are both "more yellow than
 * average"); k-means found the classes less often at 12, far less at 2-6.
 */
const BIAS_CHANNEL = 20;
