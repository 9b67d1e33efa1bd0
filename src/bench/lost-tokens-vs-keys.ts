/**
 * LOST on patch tokens against LOST on attention keys, on the generated scene: hub models have no
 * `keys` output, so `--objects` correlates their patch tokens instead (README "Models"). This
 * measures what that costs with a backbone that has both (a tools/export_dino.py export): per
 * frame, the IoU of each path's box with the nearest fish in the scene's ground truth (and with the
 * nearest fish, rock or coral region), and the IoU of the two boxes with each other.
 *
 *   node dist/bench/lost-tokens-vs-keys.js model.onnx [frames=24] [seed=7]
 */
import { Backbone } from '../backbone/backbone.js';
import { lostBox } from '../objects/lost.js';
import { createScene } from '../scene/render-scene.js';
import { SceneClass } from '../scene/scene-classes.js';

type Box = readonly [number, number, number, number];

function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const area = (r: Box): number => (r[2] - r[0]) * (r[3] - r[1]);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/** Bounding boxes (x1, y1 exclusive) of the 4-connected regions of one class in a label map. */
function regionBoxes(labels: Uint8Array, width: number, height: number, cls: number): Box[] {
  const seen = new Uint8Array(labels.length);
  const boxes: Box[] = [];
  for (let start = 0; start < labels.length; start++) {
    if (seen[start] || labels[start] !== cls) continue;
    let [x0, y0, x1, y1] = [width, height, 0, 0];
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const i = stack.pop() as number;
      const x = i % width;
      const y = (i - x) / width;
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x + 1), Math.max(y1, y + 1)];
      for (const j of [x > 0 ? i - 1 : -1, x < width - 1 ? i + 1 : -1, y > 0 ? i - width : -1, y < height - 1 ? i + width : -1]) {
        if (j >= 0 && !seen[j] && labels[j] === cls) {
          seen[j] = 1;
          stack.push(j);
        }
      }
    }
    boxes.push([x0, y0, x1, y1]);
  }
  return boxes;
}

const [model, framesArg = '24', seedArg = '7'] = process.argv.slice(2);
if (!model) {
  process.stderr.write('usage: node dist/bench/lost-tokens-vs-keys.js model.onnx [frames] [seed]\n');
  process.exit(2);
}
const backbone = await Backbone.load(model, { device: 'cpu' });
const { patchSize, hasKeys } = backbone.info;
if (!hasKeys) {
  process.stderr.write(`${model} has no keys output: give a tools/export_dino.py export (or builtin)\n`);
  process.exit(2);
}
const width = backbone.info.inputWidth || 448;
const height = backbone.info.inputHeight || 256;
const scene = createScene({ width, height, seed: Number(seedArg), fps: 5 });
const sums = { keys: 0, tokens: 0, agree: 0, keysHit: 0, tokensHit: 0, keysAny: 0, tokensAny: 0, frames: 0 };
for (let seq = 0; seq < Number(framesArg); seq++) {
  const f = scene.render(seq);
  const truth = regionBoxes(f.labels, width, height, SceneClass.fish);
  const objects = [SceneClass.fish, SceneClass.rock, SceneClass.coral].flatMap((c) => regionBoxes(f.labels, width, height, c));
  if (truth.length === 0) continue;
  const [e] = await backbone.embed([{ streamId: 'scene', seq, pts: seq, width, height, rgb: f.rgb, capturedAt: 0 }]);
  if (!e?.keys) continue;
  const byKeys = lostBox(e.keys, e.gridH, e.gridW, e.dim, patchSize).box;
  const byTokens = lostBox(e.patchTokens, e.gridH, e.gridW, e.dim, patchSize).box;
  const best = (b: Box): number => Math.max(...truth.map((t) => iou(b, t)));
  sums.keys += best(byKeys);
  sums.tokens += best(byTokens);
  sums.keysHit += best(byKeys) >= 0.5 ? 1 : 0;
  sums.tokensHit += best(byTokens) >= 0.5 ? 1 : 0;
  sums.agree += iou(byKeys, byTokens);
  sums.keysAny += Math.max(...objects.map((t) => iou(byKeys, t)));
  sums.tokensAny += Math.max(...objects.map((t) => iou(byTokens, t)));
  sums.frames++;
}
await backbone.close();
const n = Math.max(1, sums.frames);
process.stdout.write(
  JSON.stringify({
    model: backbone.info.name,
    size: `${width}x${height}`,
    frames: sums.frames,
    meanIoUKeys: +(sums.keys / n).toFixed(3),
    meanIoUTokens: +(sums.tokens / n).toFixed(3),
    hitRateKeys: +(sums.keysHit / n).toFixed(3),
    hitRateTokens: +(sums.tokensHit / n).toFixed(3),
    meanIoUKeysVsTokens: +(sums.agree / n).toFixed(3),
    anyObjectIoUKeys: +(sums.keysAny / n).toFixed(3),
    anyObjectIoUTokens: +(sums.tokensAny / n).toFixed(3),
  }) + '\n',
);
