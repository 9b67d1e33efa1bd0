// Calibrates the built-in backbone: per-channel mean/std of its raw features over generated scenes
// and the videos given as arguments. Run after building (npx tsc -p tsconfig.build.json):
//   node scripts/calibrate-builtin.mjs VIDEO...
// and paste the two printed lines into src/backbone/builtin-calibration.ts.
import * as ort from 'onnxruntime-node';
import { firstValueFrom, toArray, take } from 'rxjs';
import { buildBuiltinBackbone, groupWeights, BUILTIN_DIM, BUILTIN_FEATURE_DIM } from '../dist/backbone/builtin-backbone.js';
import { createScene } from '../dist/scene/render-scene.js';
import { fileSource } from '../dist/sources/file-source.js';

const F = BUILTIN_FEATURE_DIM;
// Mean 0 and std = the group weights make the graph's standardisation the identity: it outputs
// the raw features (then the constant channel, ignored here).
const sess = await ort.InferenceSession.create(buildBuiltinBackbone({ mean: new Float32Array(F), std: groupWeights() }));
const W = 448,
  H = 256;
const frames = [];
for (const variant of ['easy', 'hard'])
  for (const seed of [11, 12, 13]) {
    const sc = createScene({ width: W, height: H, seed, variant });
    for (const i of [0, 60]) frames.push(sc.render(i).rgb);
  }
for (const f of process.argv.slice(2)) {
  const fr = await firstValueFrom(fileSource({ path: f, width: W, height: H }).pipe(take(32), toArray()));
  frames.push(fr[0].rgb, fr[16].rgb, fr[31].rgb);
}
const m = [0.485, 0.456, 0.406],
  s = [0.229, 0.224, 0.225];
const sum = new Float64Array(F),
  sq = new Float64Array(F);
let n = 0;
for (const rgb of frames) {
  const x = new Float32Array(3 * W * H);
  for (let i = 0; i < W * H; i++) for (let c = 0; c < 3; c++) x[c * W * H + i] = (rgb[i * 3 + c] / 255 - m[c]) / s[c];
  const out = await sess.run({ image: new ort.Tensor('float32', x, [1, 3, H, W]) });
  const t = out.patch_tokens.data;
  for (let p = 0; p < t.length / BUILTIN_DIM; p++) {
    for (let c = 0; c < F; c++) {
      const v = t[p * BUILTIN_DIM + c];
      sum[c] += v;
      sq[c] += v * v;
    }
    n++;
  }
}
const mean = Array.from(sum, (v) => v / n);
const std = Array.from(sq, (v, c) => Math.sqrt(Math.max(v / n - mean[c] ** 2, 1e-8)));
const f = (a) => '[' + a.map((v) => +v.toPrecision(5)).join(', ') + ']';
console.log(`// ${frames.length} frames, ${n} patches`);
console.log(`export const BUILTIN_FEATURE_MEAN = Float32Array.from(${f(mean)});`);
console.log(`export const BUILTIN_FEATURE_STD = Float32Array.from(${f(std)});`);
