// Calibrates the built-in backbone: per-channel mean/std of its raw features over generated scenes
// and the videos given as arguments. Run after npm run build: node scripts/calibrate-builtin.mjs VIDEO...
// Paste the output into src/backbone/builtin-calibration.ts.
import * as ort from 'onnxruntime-node';
import { buildBuiltinBackbone, BUILTIN_DIM } from '../dist/backbone/builtin-backbone.js';
import { createScene } from '../dist/scene/render-scene.js';
import { fileSource } from '../dist/sources/file-source.js';
import { firstValueFrom, toArray, take } from 'rxjs';
const dim = BUILTIN_DIM;
const ones = new Float32Array(dim).fill(1);
// weights off for calibration: std scaled back below
const { groupWeights } = await import('../dist/backbone/builtin-backbone.js');
const gw = groupWeights();
const sess = await ort.InferenceSession.create(buildBuiltinBackbone({ mean: new Float32Array(dim), std: gw }));
const W = 448, H = 256;
const frames = [];
for (const variant of ['easy', 'hard']) for (const seed of [11, 12, 13]) {
  const sc = createScene({ width: W, height: H, seed, variant });
  for (const i of [0, 60]) frames.push(sc.render(i).rgb);
}
for (const f of process.argv.slice(2)) {
  const fr = await firstValueFrom(fileSource({ path: f, width: W, height: H }).pipe(take(32), toArray()));
  frames.push(fr[0].rgb, fr[16].rgb, fr[31].rgb);
}
const m = [0.485, 0.456, 0.406], s = [0.229, 0.224, 0.225];
const sum = new Float64Array(dim), sq = new Float64Array(dim); let n = 0;
for (const rgb of frames) {
  const x = new Float32Array(3 * W * H);
  for (let i = 0; i < W * H; i++) for (let c = 0; c < 3; c++) x[c * W * H + i] = (rgb[i * 3 + c] / 255 - m[c]) / s[c];
  const out = await sess.run({ image: new ort.Tensor('float32', x, [1, 3, H, W]) });
  const t = out.patch_tokens.data;
  for (let p = 0; p < t.length / dim; p++) { for (let c = 0; c < dim; c++) { const v = t[p * dim + c]; sum[c] += v; sq[c] += v * v; } n++; }
}
const mean = Array.from(sum, (v) => v / n);
const std = Array.from(sq, (v, c) => Math.sqrt(Math.max(v / n - mean[c] ** 2, 1e-8)));
const f = (a) => '[' + a.map((v) => +v.toPrecision(5)).join(', ') + ']';
console.log(`MEAN ${f(mean)}\nSTD ${f(std)}\nframes ${frames.length} patches ${n}`);
