// Compares the learned STEGO head with k-means on raw features on generated scenes.
// Run after npm run build: node scripts/learned-vs-kmeans.mjs [easy|hard] [seeds] [rounds] [steps]
import { Backbone } from '../dist/backbone/backbone.js';
import { Segmenter } from '../dist/operators/segmenter.js';
import { createScene } from '../dist/scene/render-scene.js';
import { OnlineLearner } from '../dist/learning/online-learner.js';
import { ConfusionMatrix } from '../dist/eval/segmentation-metrics.js';

const variant = process.argv[2] ?? 'hard';
const seeds = (process.argv[3] ?? '1,2,3').split(',').map(Number);
const rounds = Number(process.argv[4] ?? 3);
const steps = Number(process.argv[5] ?? 40);
const K = 5,
  W = 448,
  H = 256,
  FRAMES = 24;
const bb = await Backbone.load('builtin');
const seg = await Segmenter.create();

async function score(em, frames, head) {
  const cm = new ConfusionMatrix(K, 5);
  for (let i = 0; i < em.length; i += 4) {
    const labs = await seg.segment(em.slice(i, i + 4), head, H, W);
    labs.forEach((l, j) => cm.add(l, frames[i + j].gt));
  }
  return cm.score().mIoU;
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
  const learner = new OnlineLearner({ dim: bb.info.dim, k: K, seed: 1, train: { everyFrames: 1, steps }, bank: { capacityFrames: 256 } });
  for (const e of em) learner.observe(e.patchTokens, e.gridH * e.gridW);
  learner.runRound();
  const raw = await score(em, frames, learner.state);
  const out = [`${variant} seed ${seed}: k-means raw ${raw.toFixed(3)}`];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    learner.runRound();
    out.push(`r${r + 1} ${(await score(em, frames, learner.state)).toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(1)}s)`);
  }
  console.log(out.join('  '));
}
