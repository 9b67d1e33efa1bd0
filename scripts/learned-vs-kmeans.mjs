// Compares the learned STEGO head with k-means on raw features on generated scenes.
// Run after npm run build: node scripts/learned-vs-kmeans.mjs [easy|hard] [seeds] [rounds] [steps] [train-json]
//   steps: Adam steps per round, or a comma list for the rounds in turn (the product: 60,10,10);
//   train-json: extra learner train options, e.g. '{"shiftQuantile":0.8}'.
// Scores the product's path (similarity maps refined by the guided filter at DEFAULT_REFINE);
// REFINE_RADIUS=0 scores the plain bilinear maps instead. BACKBONE=model.onnx measures another
// backbone (a DINO export: the scenes are rendered at its input size) instead of the built-in one.
// Each seed's line starts with the patch oracle (eval/patch-oracle.ts) on the same path: the most
// a head deciding whole patches can reach, so oracle - k-means is the head's headroom.
// Prints per round the mIoU, the share of pixels that kept their class id ("kept") and the
// dispersion guard's ratio (and whether it turned the round's head away).
// The hour of stream of the README: node scripts/learned-vs-kmeans.mjs hard 1,2,3 12 60,10,300
import { Backbone } from '../dist/backbone/backbone.js';
import { Segmenter } from '../dist/backbone/segmenter.js';
import { DEFAULT_REFINE, refineFrom } from '../dist/backbone/refine-options.js';
import { createScene } from '../dist/scene/render-scene.js';
import { OnlineLearner } from '../dist/learning/online-learner.js';
import { ConfusionMatrix } from '../dist/eval/segmentation-metrics.js';
import { oracleHead, patchOracleTokens } from '../dist/eval/patch-oracle.js';

const variant = process.argv[2] ?? 'hard';
const seeds = (process.argv[3] ?? '1,2,3').split(',').map(Number);
const rounds = Number(process.argv[4] ?? 3);
const stepList = (process.argv[5] ?? '40').split(',').map(Number);
const stepsOf = (r) => stepList[Math.min(r, stepList.length - 1)];
const trainExtra = JSON.parse(process.argv[6] ?? '{}');
const K = 5;
const FRAMES = 24;
const bb = await Backbone.load(process.env.BACKBONE ?? 'builtin');
const W = bb.info.inputWidth || 448;
const H = bb.info.inputHeight || 256;
const P = bb.info.patchSize;
const radius = process.env.REFINE_RADIUS === undefined ? DEFAULT_REFINE.radius : Number(process.env.REFINE_RADIUS);
const seg = await Segmenter.create(undefined, refineFrom(radius, DEFAULT_REFINE.eps, 'REFINE_RADIUS') ?? undefined);

async function score(em, frames, head) {
  const cm = new ConfusionMatrix(K, 5);
  const all = [];
  for (let i = 0; i < em.length; i += 4) {
    const labs = await seg.segment(
      em.slice(i, i + 4),
      head,
      H,
      W,
      frames.slice(i, i + 4).map((x) => x.f.rgb),
    );
    labs.forEach((l, j) => cm.add(l, frames[i + j].gt));
    all.push(...labs);
  }
  return { mIoU: cm.score().mIoU, labels: all };
}

function kept(a, b) {
  let same = 0;
  let total = 0;
  a.forEach((x, i) => {
    for (let j = 0; j < x.length; j++) same += x[j] === b[i][j] ? 1 : 0;
    total += x.length;
  });
  return same / total;
}

for (const seed of seeds) {
  const sc = createScene({ width: W, height: H, seed, variant });
  const frames = [];
  for (let i = 0; i < FRAMES; i++) {
    const r = sc.render(i * 5);
    frames.push({ f: { streamId: 's', seq: i, pts: i, width: W, height: H, rgb: r.rgb, capturedAt: 0 }, gt: r.labels });
  }
  const em = [];
  for (let i = 0; i < FRAMES; i += 4) em.push(...(await bb.embed(frames.slice(i, i + 4).map((x) => x.f))));
  const learner = new OnlineLearner({
    dim: bb.info.dim,
    k: K,
    seed: 1,
    train: { everyFrames: 1, steps: stepsOf(0), ...trainExtra },
    bank: { capacityFrames: 256 },
  });
  for (const e of em) learner.observe(e.patchTokens, e.gridH * e.gridW);
  learner.runRound();
  const oracleEm = frames.map((x, i) => ({ ...em[i], dim: K, patchTokens: patchOracleTokens(x.gt, W, H, P, K), keys: undefined }));
  const oracle = await score(oracleEm, frames, oracleHead(K));
  let prev = await score(em, frames, learner.state);
  const out = [`${variant} seed ${seed}: patch oracle ${oracle.mIoU.toFixed(3)}, k-means raw ${prev.mIoU.toFixed(3)}`];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    learner.runRound(undefined, stepsOf(r));
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    const cur = await score(em, frames, learner.state);
    const rep = learner.lastRound;
    const guard =
      rep.dispersionRatio === undefined
        ? ''
        : `, dispersion x${rep.dispersionRatio.toFixed(3)}${rep.kind === 'rejected' ? ' rejected' : ''}`;
    out.push(`r${r + 1} ${cur.mIoU.toFixed(3)} (${s}s, kept ${kept(prev.labels, cur.labels).toFixed(3)}${guard})`);
    prev = cur;
  }
  console.log(out.join('  '));
}
