import { Backbone } from '../dist/backbone/backbone.js';
import { Segmenter } from '../dist/operators/segmenter.js';
import { createScene } from '../dist/scene/render-scene.js';
import { sphericalKmeans } from '../dist/learning/spherical-kmeans.js';
import { ConfusionMatrix } from '../dist/eval/segmentation-metrics.js';
const bb = await Backbone.load('builtin');
const seg = await Segmenter.create();
const W = 448, H = 256;
const variant = process.argv[2] ?? 'easy';
const K = Number(process.argv[3] ?? 5);
for (const seed of [1, 2, 3]) {
  const sc = createScene({ width: W, height: H, seed, variant });
  const frames = [];
  for (let i = 0; i < 16; i++) { const r = sc.render(i * 8); frames.push({ f: { streamId: 's', seq: i, pts: i, width: W, height: H, rgb: r.rgb, capturedAt: 0 }, gt: r.labels }); }
  const em = [];
  for (let i = 0; i < 16; i += 4) em.push(...await bb.embed(frames.slice(i, i + 4).map(x => x.f)));
  const n = em[0].gridH * em[0].gridW, C = em[0].dim;
  const data = new Float32Array(16 * n * C); em.forEach((e, i) => data.set(e.patchTokens, i * n * C));
  const km = sphericalKmeans(data, 16 * n, C, K, { seed: 1, restarts: 3 });
  const cm = new ConfusionMatrix(K, 5);
  for (let i = 0; i < 16; i += 4) {
    const labs = await seg.segment(em.slice(i, i + 4), { weights: null, centroids: km.centroids, k: K }, H, W);
    labs.forEach((l, j) => cm.add(l, frames[i + j].gt));
  }
  const s = cm.score(sc.classNames);
  console.log(variant, 'seed', seed, 'K', K, 'mIoU', s.mIoU.toFixed(3), s.perClass.map(c => c.name + ':' + c.iou.toFixed(2)).join(' '));
}
// visual for the last seed
import sharp from 'sharp';
{
  const sc = createScene({ width: W, height: H, seed: 1, variant });
  const r = sc.render(0);
  const e = await bb.embed([{ streamId: 's', seq: 0, pts: 0, width: W, height: H, rgb: r.rgb, capturedAt: 0 }]);
  const n = e[0].gridH * e[0].gridW, C = e[0].dim;
  const km = sphericalKmeans(e[0].patchTokens, n, C, K, { seed: 1, restarts: 3 });
  const [lab] = await seg.segment(e, { weights: null, centroids: km.centroids, k: K }, H, W);
  const pal = [[255,0,0],[0,255,0],[0,0,255],[255,255,0],[255,0,255],[0,255,255],[255,255,255],[0,0,0]];
  const out = Buffer.alloc(W * H * 3 * 2);
  r.rgb.copy(out, 0);
  for (let i = 0; i < W * H; i++) { const c = pal[lab[i]]; out[W*H*3 + i*3] = c[0]; out[W*H*3 + i*3+1] = c[1]; out[W*H*3+i*3+2] = c[2]; }
  await sharp(out, { raw: { width: W, height: H * 2, channels: 3 } }).png().toFile('tmp/km.png');
}
