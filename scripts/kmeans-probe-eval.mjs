// Unsupervised mIoU of plain spherical k-means on the built-in backbone's raw features, on the
// procedural scene. Run from the repository root after building (npx tsc -p tsconfig.build.json):
//   node scripts/kmeans-probe-eval.mjs [easy|hard] [K] [seeds 1,2,3,4,5] [restarts 2] [k-means seeds 1]
// Per scene seed: 16 frames at 448x256 are embedded, clustered together, segmented at pixel level
// with the Segmenter and scored with Hungarian matching. Writes tmp/km.png: the first frame of the
// first seed above its clusters. KM_CLUSTERS=1 also prints what each cluster holds, per run.
import { mkdirSync } from 'node:fs';
import sharp from 'sharp';
import { Backbone } from '../dist/backbone/backbone.js';
import { Segmenter } from '../dist/backbone/segmenter.js';
import { createScene } from '../dist/scene/render-scene.js';
import { sphericalKmeans } from '../dist/learning/spherical-kmeans.js';
import { ConfusionMatrix } from '../dist/eval/segmentation-metrics.js';

const variant = process.argv[2] ?? 'easy';
const K = Number(process.argv[3] ?? 5);
const list = (arg, fallback) => (arg ?? fallback).split(',').map(Number);
const seeds = list(process.argv[4], '1,2,3,4,5');
const restarts = Number(process.argv[5] ?? 2);
const kmSeeds = list(process.argv[6], '1');
const W = 448,
  H = 256,
  FRAMES = 16,
  BATCH = 4;
const bb = await Backbone.load('builtin');
const seg = await Segmenter.create();
const all = [];
let picture;
for (const seed of seeds) {
  const sc = createScene({ width: W, height: H, seed, variant });
  const frames = [];
  for (let i = 0; i < FRAMES; i++) {
    const r = sc.render(i * 8);
    frames.push({ f: { streamId: 's', seq: i, pts: i, width: W, height: H, rgb: r.rgb, capturedAt: 0 }, gt: r.labels });
  }
  const em = [];
  for (let i = 0; i < FRAMES; i += BATCH) em.push(...(await bb.embed(frames.slice(i, i + BATCH).map((x) => x.f))));
  const n = em[0].gridH * em[0].gridW,
    C = em[0].dim;
  const data = new Float32Array(FRAMES * n * C);
  em.forEach((e, i) => data.set(e.patchTokens, i * n * C));
  const scores = [];
  let detail = '';
  for (const kmSeed of kmSeeds) {
    const km = sphericalKmeans(data, FRAMES * n, C, K, { seed: kmSeed, restarts });
    const cm = new ConfusionMatrix(K, sc.classNames.length);
    for (let i = 0; i < FRAMES; i += BATCH) {
      const labs = await seg.segment(em.slice(i, i + BATCH), { weights: null, centroids: km.centroids, k: K }, H, W);
      labs.forEach((l, j) => cm.add(l, frames[i + j].gt));
      if (!picture) picture = { rgb: frames[0].f.rgb, labels: labs[0] };
    }
    const s = cm.score(sc.classNames);
    if (process.env['KM_CLUSTERS'])
      console.log('  ', s.mIoU.toFixed(3), 'objective', km.objective.toFixed(1), describeClusters(cm, sc.classNames, FRAMES * W * H));
    scores.push(s.mIoU);
    all.push(s.mIoU);
    if (kmSeed === kmSeeds[0]) detail = s.perClass.map((c) => `${c.name}:${c.iou.toFixed(2)}`).join(' ');
  }
  console.log(variant, 'seed', seed, 'K', K, 'mIoU', scores.map((v) => v.toFixed(3)).join('/'), detail);
}
console.log(
  variant,
  `min ${Math.min(...all).toFixed(3)} mean ${(all.reduce((a, b) => a + b, 0) / all.length).toFixed(3)} runs >= 0.65: ${all.filter((v) => v >= 0.65).length}/${all.length}`,
  `(seeds ${seeds.join(',')}, restarts ${restarts}, k-means seeds ${kmSeeds.join(',')})`,
);

/** Each cluster as its main class (and a second one above 15%) with its share of all pixels, e.g. "sand+coral 12%". */
function describeClusters(cm, names, total) {
  const rows = [];
  for (let k = 0; k < cm.clusters; k++) {
    const row = names.map((_, c) => cm.counts[k * cm.classes + c]);
    const sum = row.reduce((a, b) => a + b, 0);
    const order = row.map((_, c) => c).sort((a, b) => row[b] - row[a]);
    const second = row[order[1]] / sum > 0.15 ? `+${names[order[1]]}` : '';
    rows.push(`${names[order[0]]}${second} ${((100 * sum) / total).toFixed(0)}%`);
  }
  return rows.sort().join(', ');
}

const pal = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
  [255, 255, 0],
  [255, 0, 255],
  [0, 255, 255],
  [255, 255, 255],
  [0, 0, 0],
];
const out = Buffer.alloc(W * H * 3 * 2);
picture.rgb.copy(out, 0);
for (let i = 0; i < W * H; i++) out.set(pal[picture.labels[i] % pal.length], W * H * 3 + i * 3);
mkdirSync('tmp', { recursive: true });
await sharp(out, { raw: { width: W, height: H * 2, channels: 3 } })
  .png()
  .toFile('tmp/km.png');
await seg.close();
await bb.close();
