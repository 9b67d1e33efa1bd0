import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backbone } from '../src/backbone/backbone.js';
import { oracleHead, patchOracleTokens } from '../src/eval/patch-oracle.js';
import { ConfusionMatrix } from '../src/eval/segmentation-metrics.js';
import type { HeadState } from '../src/learning/head-state.js';
import { OnlineLearner } from '../src/learning/online-learner.js';
import { Segmenter, type SegmentationHead } from '../src/backbone/segmenter.js';
import { DEFAULT_REFINE } from '../src/backbone/refine-options.js';
import { createScene, type SceneVariant } from '../src/scene/render-scene.js';
import type { Embedding, Frame } from '../src/types.js';

/**
 * Quality of the online-learned head against k-means on raw features (the raw probe), on
 * generated scenes with exact ground truth, through the product's path: built-in backbone,
 * OnlineLearner, ONNX segmenter (bilinear similarity maps refined by the guided filter at
 * DEFAULT_REFINE, argmax), pixel-level mIoU after Hungarian matching. The same heads are also
 * scored without refinement (DESIGN.md's plain path, --refine-radius 0).
 *
 * Learner configuration: the product's defaults (LEARNING_DEFAULTS / OnlineLearner defaults:
 * code dim 70, bank of 256 frames, a 60-step round ending the learning pass, then 10-step
 * rounds, learning-rate decay over 400 steps, dispersion guard 1.1), except k = 5 (the scene's
 * 5 classes; the product default is 6) and the bank holding just the 24 frames the scene is
 * scored on (every 5th frame, 448x256). The long run stands for an hour of stream: 400 more
 * steps in 100-step rounds (the decay and the guard count steps, not rounds).
 *
 * What is asserted (measured figures in brackets), and why not more:
 * - hard scenes (coral has the sand's mean colour), seeds 1-3, after the 60- and a 10-step
 *   round: the learned head scores at least k-means on every seed (+0.018, +0.017, +0.013);
 * - the same after the long run: at least k-means + 0.025 on every seed, + 0.035 on average
 *   (+0.041, +0.045, +0.031; plain: +0.027, +0.031, +0.023; the fish lose their halo of
 *   mislabelled water), and at least half of the headroom on every seed: of what the patch
 *   oracle (patchOracleTokens: 0.911, 0.913, 0.886) scores above k-means, the head takes 0.54, 0.56,
 *   0.70;
 * - refinement: the long-run head refined beats the same head plain by 0.05 on every seed
 *   (0.876 against 0.793, 0.878 / 0.785, 0.872 / 0.795), and so does k-means (0.835 / 0.766,
 *   0.834 / 0.753, 0.841 / 0.773): the patch grid's boundaries were most of the error;
 * - easy scenes, seeds 1-2, short and long: at least k-means - 0.005 (+0.006, +0.010 and
 *   +0.009, +0.014; plain: -0.001, +0.004 and +0.002, +0.007; plain without the guard the long
 *   run ended at -0.010, -0.013, and with neither guard nor decay the head collapsed, 0.35-0.42
 *   mIoU after 860 steps);
 * - stability: after one more 10-step round, >= 95% of pixels keep their class id, after the
 *   short and after the long run (99.95-99.99%).
 * The issue asks for +0.05 mIoU over k-means on hard scenes. With the built-in backbone v2 the
 * head reaches +0.031 to +0.045 here (+0.052, +0.056, +0.041 after 3070 steps, about an hour of
 * stream at the defaults). On seed 3 the bar is out of a head's reach on these features: k-means
 * + 0.05 is 0.891, above the patch oracle's 0.886, and a straddling patch's features are those of
 * its most uniform quarter, which say nothing of how much of each class the patch holds. k-means on these features labels 97.5-100% of whole
 * (62 of 64 pixels) patches right; what is left is inside the patches that straddle two classes.
 */
const K = 5;
const W = 448;
const H = 256;
const FRAMES = 24;
const EVERY = 5;
/** The product's learning-pass round and online rounds (LEARNING_DEFAULTS learnSteps, trainSteps). */
const LEARN_STEPS = 60;
const TRAIN_STEPS = 10;
/** The long run: this many more rounds of LONG_ROUND_STEPS steps. */
const LONG_ROUNDS = 4;
const LONG_ROUND_STEPS = 100;
/** About 25 s a seed on 2 busy cores; generous, since speed is the bench's business, not this test's. */
const LONG_TEST_MS = 900_000;

let backbone: Backbone;
/** The product's path: refined by the guided filter (DEFAULT_REFINE). */
let segmenter: Segmenter;
/** DESIGN.md's baseline path, bilinear maps only (--refine-radius 0). */
let plain: Segmenter;

beforeAll(async () => {
  backbone = await Backbone.load('builtin');
  [segmenter, plain] = await Promise.all([Segmenter.create(undefined, DEFAULT_REFINE), Segmenter.create()]);
});

afterAll(async () => {
  await Promise.all([backbone.close(), segmenter.close(), plain.close()]);
});

interface SceneData {
  readonly embeddings: Embedding[];
  readonly truth: Uint8Array[];
  readonly rgb: Uint8Array[];
}

async function sceneData(variant: SceneVariant, seed: number): Promise<SceneData> {
  const scene = createScene({ width: W, height: H, seed, variant });
  const frames: Frame[] = [];
  const truth: Uint8Array[] = [];
  const rgb: Uint8Array[] = [];
  for (let i = 0; i < FRAMES; i++) {
    const r = scene.render(i * EVERY);
    frames.push({ streamId: 'scene', seq: i, pts: i, width: W, height: H, rgb: r.rgb, capturedAt: 0 });
    truth.push(r.labels);
    rgb.push(r.rgb);
  }
  const embeddings: Embedding[] = [];
  for (let i = 0; i < FRAMES; i += 4) embeddings.push(...(await backbone.embed(frames.slice(i, i + 4))));
  return { embeddings, truth, rgb };
}

/** The patch oracle's frames (patchOracleTokens) at the built-in backbone's patch size, and its head. */
function patchOracle(data: SceneData): { embeddings: Embedding[]; head: SegmentationHead } {
  const p = backbone.info.patchSize;
  const embeddings = data.truth.map((labels, i): Embedding => ({
    frame: data.embeddings[i]!.frame,
    gridH: H / p,
    gridW: W / p,
    dim: K,
    patchTokens: patchOracleTokens(labels, W, H, p, K),
    clsToken: new Float32Array(K),
  }));
  return { embeddings, head: oracleHead(K) };
}

async function labels(data: Pick<SceneData, 'embeddings' | 'rgb'>, head: SegmentationHead, seg = segmenter): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < FRAMES; i += 4)
    out.push(...(await seg.segment(data.embeddings.slice(i, i + 4), head, H, W, data.rgb.slice(i, i + 4))));
  return out;
}

function mIoU(data: SceneData, pred: Uint8Array[]): number {
  const cm = new ConfusionMatrix(K, K);
  pred.forEach((p, i) => cm.add(p, data.truth[i]!));
  return cm.score().mIoU;
}

function sameFraction(a: Uint8Array[], b: Uint8Array[]): number {
  let same = 0;
  let total = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    for (let j = 0; j < x.length; j++) same += x[j] === y[j] ? 1 : 0;
    total += x.length;
  });
  return same / total;
}

interface RunResult {
  readonly kmeans: number;
  /** The patch oracle on the product's path (patchOracle). */
  readonly oracle: number;
  /** The same heads without refinement. */
  readonly plainKmeans: number;
  readonly plainLong: number;
  /** After the learning-pass round and one online round. */
  readonly short: number;
  readonly shortStable: number;
  /** After LONG_ROUNDS more rounds of LONG_ROUND_STEPS. */
  readonly long: number;
  readonly longStable: number;
  readonly rounds: string;
}

/** Share of pixels that keep their class id across one more online round (which must swap a new head in). */
async function stability(data: SceneData, learner: OnlineLearner, head: HeadState, before: Uint8Array[]): Promise<number> {
  const next = learner.runRound();
  expect(learner.lastRound?.kind).toBe('train');
  expect(next.version).toBe(head.version + 1);
  return sameFraction(before, await labels(data, next));
}

/** k-means (raw probe) score, then the learned head's score and stability after a short and after a long run. */
async function run(variant: SceneVariant, seed: number): Promise<RunResult> {
  const data = await sceneData(variant, seed);
  const learner = new OnlineLearner({ dim: backbone.info.dim, k: K, seed: 1, train: { everyFrames: 300, steps: TRAIN_STEPS } });
  for (const e of data.embeddings) learner.observe(e.patchTokens, e.gridH * e.gridW);
  const probe = learner.runRound();
  expect(probe.weights).toBeNull();
  const kmeans = mIoU(data, await labels(data, probe));
  const plainKmeans = mIoU(data, await labels(data, probe, plain));
  const best = patchOracle(data);
  const oracle = mIoU(data, await labels({ embeddings: best.embeddings, rgb: data.rgb }, best.head));
  learner.runRound(undefined, LEARN_STEPS);
  let head = learner.runRound();
  expect(head.weights).not.toBeNull();
  let before = await labels(data, head);
  const short = mIoU(data, before);
  const shortStable = await stability(data, learner, head, before);
  const kinds: string[] = [];
  for (let r = 0; r < LONG_ROUNDS; r++) {
    learner.runRound(undefined, LONG_ROUND_STEPS);
    kinds.push(`${learner.lastRound?.kind} ${learner.lastRound?.dispersionRatio?.toFixed(3)}`);
  }
  head = learner.state;
  before = await labels(data, head);
  const long = mIoU(data, before);
  const plainLong = mIoU(data, await labels(data, head, plain));
  // The guard may have turned the last rounds away; the stability round must still swap a head in.
  const longStable = await stability(data, learner, head, before).catch(() => Number.NaN);
  return { kmeans, oracle, plainKmeans, plainLong, short, shortStable, long, longStable, rounds: kinds.join(', ') };
}

const log = (x: unknown): void => {
  if (process.env['LEARNER_LOG']) console.log(x);
};

describe('learned head vs k-means on raw features (built-in backbone, generated scenes)', () => {
  it(
    'hard scenes (coral with the colour of sand): no worse at once, better after a long run on every seed by half the headroom to the patch oracle, stable across a round, and refined well above the plain maps',
    async () => {
      const results: Array<RunResult & { seed: number }> = [];
      for (const seed of [1, 2, 3]) results.push({ seed, ...(await run('hard', seed)) });
      log(results.map((r) => ({ ...r, headroomTaken: (r.long - r.kmeans) / (r.oracle - r.kmeans) })));
      for (const r of results) {
        expect(r.short).toBeGreaterThanOrEqual(r.kmeans);
        expect(r.long).toBeGreaterThanOrEqual(r.kmeans + 0.025);
        // More than half of what a perfect patch classifier would add over k-means on this path.
        expect(r.long - r.kmeans).toBeGreaterThanOrEqual(0.5 * (r.oracle - r.kmeans));
        expect(r.long).toBeGreaterThanOrEqual(r.plainLong + 0.05);
        expect(r.kmeans).toBeGreaterThanOrEqual(r.plainKmeans + 0.05);
        expect(r.shortStable).toBeGreaterThanOrEqual(0.95);
        expect(r.longStable).toBeGreaterThanOrEqual(0.95);
      }
      const mean = (f: (r: RunResult) => number): number => results.reduce((s, r) => s + f(r), 0) / results.length;
      expect(mean((r) => r.long - r.kmeans)).toBeGreaterThanOrEqual(0.035);
    },
    LONG_TEST_MS,
  );

  it(
    'easy scenes: no worse than k-means - 0.005, at once and after a long run',
    async () => {
      const results: Array<RunResult & { seed: number }> = [];
      for (const seed of [1, 2]) results.push({ seed, ...(await run('easy', seed)) });
      log(results);
      for (const r of results) {
        expect(r.short).toBeGreaterThanOrEqual(r.kmeans - 0.005);
        expect(r.long).toBeGreaterThanOrEqual(r.kmeans - 0.005);
        expect(r.long).toBeGreaterThanOrEqual(r.plainLong + 0.05);
      }
    },
    LONG_TEST_MS,
  );
});
