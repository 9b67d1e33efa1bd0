// Scores the demo on the evenly lit scene ('easy') and under a deep-sea ROV's lamps ('lit'), same
// frames and seeds, through the CLI (`stegostream demo --json`), and times the built-in backbone
// with and without its illumination normalisation. Run after building (npx tsc -p tsconfig.build.json):
//   node scripts/lit-vs-unlit.mjs [seeds] [frames] [K]        (defaults: 1,2,3 16 5)
// BACKBONE=model.onnx scores another backbone; NO_ILLUMINATION=1 scores the built-in backbone
// without the normalisation (the same graph with the step left out), to see what it buys.
// Prints one JSON document: per seed the mIoU and per-class IoU of both variants and the gap, then
// backbone-only fps at 448x256 (batches of 4) with and without the normalisation, and their ratio.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { buildBuiltinBackbone } from '../dist/backbone/builtin-backbone.js';
import { createScene } from '../dist/scene/render-scene.js';

const seeds = (process.argv[2] ?? '1,2,3').split(',').map(Number);
const frames = process.argv[3] ?? '16';
const K = process.argv[4] ?? '5';
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lit-vs-unlit-'));
let backbone = process.env.BACKBONE;
if (process.env.NO_ILLUMINATION === '1') {
  backbone = join(dir, 'no-illumination.onnx');
  writeFileSync(backbone, buildBuiltinBackbone({ normaliseIllumination: false }));
}

function demo(variant, seed) {
  const args = [cli, 'demo', '--variant', variant, '--scene-seed', String(seed), '--frames', frames, '--classes', K, '--json'];
  args.push('--out-dir', join(dir, `${variant}-${seed}`), ...(backbone ? ['--backbone', backbone] : []));
  const r = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  return { mIoU: +r.mIoU.toFixed(3), perClass: Object.fromEntries(r.perClass.map((c) => [c.name, +(c.iou ?? 0).toFixed(2)])) };
}

const scenes = [];
for (const seed of seeds) {
  const unlit = demo('easy', seed);
  const lit = demo('lit', seed);
  scenes.push({ seed, unlit, lit, gap: +(lit.mIoU - unlit.mIoU).toFixed(3) });
  process.stderr.write(`seed ${seed}: unlit ${unlit.mIoU}, lit ${lit.mIoU}\n`);
}

// Backbone-only fps, normalised against not, alternating runs so that load drifts hit both alike.
const W = 448;
const H = 256;
const scene = createScene({ width: W, height: H, seed: 1, variant: 'lit' });
const batch = new Float32Array(4 * 3 * W * H);
const mean = [0.485, 0.456, 0.406];
const std = [0.229, 0.224, 0.225];
for (let b = 0; b < 4; b++) {
  const rgb = scene.render(b * 10).rgb;
  for (let i = 0; i < W * H; i++) for (let c = 0; c < 3; c++) batch[(b * 3 + c) * W * H + i] = (rgb[i * 3 + c] / 255 - mean[c]) / std[c];
}
const feeds = { image: new ort.Tensor('float32', batch, [4, 3, H, W]) };
const sessions = {
  normalised: await ort.InferenceSession.create(buildBuiltinBackbone()),
  plain: await ort.InferenceSession.create(buildBuiltinBackbone({ normaliseIllumination: false })),
};
const seconds = { normalised: 0, plain: 0 };
for (const s of Object.values(sessions)) await s.run(feeds); // warm-up
for (let rep = 0; rep < 8; rep++) {
  for (const [name, s] of Object.entries(sessions)) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 5; i++) await s.run(feeds);
    seconds[name] += Number(process.hrtime.bigint() - t0) / 1e9;
  }
}
const fps = (name) => +((8 * 5 * 4) / seconds[name]).toFixed(1);
console.log(
  JSON.stringify(
    {
      frames: Number(frames),
      classes: Number(K),
      backbone: backbone ?? 'builtin',
      scenes,
      backboneFps: { normalised: fps('normalised'), plain: fps('plain'), ratio: +(seconds.plain / seconds.normalised).toFixed(3) },
    },
    null,
    2,
  ),
);
