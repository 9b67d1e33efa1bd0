/**
 * Batching bench (a section of `npm run bench`): how close `stegostream process` comes to the
 * throughput ONNX Runtime alone gives on the same ViT, per batch size.
 *
 * The model is a ViT-S/16 with random weights (the shapes and cost of DINO ViT-S/16: 12 blocks,
 * dim 384, 6 heads), exported by tools/export_dino.py --random-vits16 through the same path as
 * real checkpoints, at 224x224 (196 patches). 224x224 rather than 448x256 (448 patches, attention
 * 2.3x larger): on 2 shared cores ViT-S/16 runs at ~5-10 fps at 224x224, so four batch sizes,
 * each measured raw and through the pipeline, fit in about 2-3 minutes.
 *
 * Per batch size B (1, 2, 4, 8):
 * - raw ORT fps: an `ort.InferenceSession` running `image` [B,3,224,224] tensors made beforehand,
 *   in a loop, with the session options the pipeline's backbone uses (graph optimisation all, no
 *   thread spinning, all cores); measured just before and just after the pipeline run and
 *   averaged, so a change in the machine's background load during the run weighs on both sides.
 *   Also once with ORT's default options (threads spin while idle), for reference: on a machine
 *   other processes load, spinning threads lose their time slices and that figure drops, often
 *   far below the pipeline's, which is why it is not the baseline.
 * - pipeline fps: `stegostream process video --backbone model.onnx --batch B --learn-frames 8
 *   --json` on a generated 224x224 dive scene, the fps it reports (segmenting pass only: decode,
 *   backbone and segmentation in the inference worker, learner feeding, statistics). A short first
 *   round (--learn-steps 2, --train-steps 2) keeps the learner's start-up (tens of seconds of JS
 *   GEMMs at dim 384 with the default 60 steps) out of the budget; no round falls inside the
 *   measured pass (rounds every 300 frames).
 * - ratio pipeline / raw; the target is >= 0.85.
 *
 * Skipped, with `skipped` saying why, when /usr/bin/python3 lacks torch or onnx.
 */
import * as ort from 'onnxruntime-node';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSceneVideo } from '../scene/write-scene-files.js';

const PYTHON = '/usr/bin/python3';
const EXPORTER = fileURLToPath(new URL('../../tools/export_dino.py', import.meta.url));
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const BATCH_SIZES = [1, 2, 4, 8] as const;
const SIZE = 224;
/** Frames of the generated video: every batch size divides it. */
const VIDEO_FRAMES = 48;
/** Seconds of each raw ORT measurement (after two warm-up runs). */
const RAW_SECONDS = 2;
/** The target for pipeline fps / raw ORT fps at the same batch size. */
export const BATCHING_TARGET_RATIO = 0.85;

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

function pythonProblem(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} cannot be run (${r.error.message})`;
  if (r.status !== 0)
    return `${PYTHON} cannot import torch and onnx (${r.stderr.trim().split('\n').pop() ?? ''}): install python3-torch and python3-onnx`;
  return undefined;
}

function exportModel(out: string): Promise<void> {
  const args = [EXPORTER, '--random-vits16', '--height', String(SIZE), '--width', String(SIZE), '--out', out];
  return new Promise((resolve, reject) => {
    execFile(PYTHON, args, { timeout: 300_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`export_dino.py failed: ${stderr || err.message}`)) : resolve(),
    );
  });
}

/** Frames per second of `session.run` on one pre-made batch, over `seconds` after two warm-up runs. */
async function rawFps(session: ort.InferenceSession, batch: number, seconds: number): Promise<number> {
  const data = new Float32Array(batch * 3 * SIZE * SIZE);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 1.5;
  const feeds = { image: new ort.Tensor('float32', data, [batch, 3, SIZE, SIZE]) };
  await session.run(feeds);
  await session.run(feeds);
  let frames = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run(feeds);
    frames += batch;
  }
  return frames / ((performance.now() - t0) / 1000);
}

interface ProcessJson {
  readonly frames: number;
  readonly seconds: number;
  readonly fps: number;
  readonly error?: string;
}

function pipelineRun(video: string, model: string, batch: number): Promise<ProcessJson> {
  const args = [CLI, 'process', video, '--backbone', model, '--batch', String(batch), '--learn-frames', '8'].concat([
    '--learn-steps',
    '5',
    '--train-steps',
    '5',
    '--json',
    '--no-progress',
  ]);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`stegostream process --batch ${batch} exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as ProcessJson);
    });
  });
}

export async function benchBatching(): Promise<Record<string, unknown>> {
  const problem = pythonProblem();
  if (problem !== undefined) return { skipped: `batching bench skipped: ${problem}` };
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'stegostream-bench-batching-'));
  const loadBefore = loadavg();
  try {
    const model = join(dir, `vits16-random-${SIZE}.onnx`);
    const video = join(dir, `dive-${SIZE}.mp4`);
    log(`batching: exporting a random-weight ViT-S/16 at ${SIZE}x${SIZE}, rendering a ${VIDEO_FRAMES}-frame ${SIZE}x${SIZE} scene`);
    await Promise.all([exportModel(model), writeSceneVideo(video, { width: SIZE, height: SIZE, seed: 5, frames: VIDEO_FRAMES, fps: 15 })]);

    const plain = await ort.InferenceSession.create(model);
    const sameOptions = await ort.InferenceSession.create(model, {
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
    const rows: Record<string, number>[] = [];
    try {
      for (const batch of BATCH_SIZES) {
        log(`batching: batch ${batch}: raw ONNX Runtime, then stegostream process, then raw again`);
        const before = await rawFps(sameOptions, batch, RAW_SECONDS);
        const defaults = await rawFps(plain, batch, RAW_SECONDS);
        const run = await pipelineRun(video, model, batch);
        const after = await rawFps(sameOptions, batch, RAW_SECONDS);
        const raw = (before + after) / 2;
        rows.push({
          batch,
          rawOrtFps: round(raw),
          rawOrtFpsBefore: round(before),
          rawOrtFpsAfter: round(after),
          rawOrtFpsDefaultOptions: round(defaults),
          pipelineFps: round(run.fps),
          pipelineFrames: run.frames,
          'pipeline / raw': round(run.fps / raw, 3),
          'pipeline / raw with default options': round(run.fps / defaults, 3),
        });
      }
    } finally {
      await Promise.allSettled([plain.release(), sameOptions.release()]);
    }
    const worst = Math.min(...rows.map((r) => r['pipeline / raw'] as number));
    return {
      model: `random-weight ViT-S/16 (DINO layout: 12 blocks, dim 384, 6 heads), ${SIZE}x${SIZE} input (${(SIZE / 16) ** 2} patches), exported by tools/export_dino.py --random-vits16`,
      input: `${VIDEO_FRAMES}-frame ${SIZE}x${SIZE} H.264 dive scene (generated)`,
      pipelineCommand: 'stegostream process VIDEO --backbone MODEL --batch B --learn-frames 8 --learn-steps 2 --train-steps 2 --json',
      loadAverage1m: { before: round(loadBefore[0] ?? 0, 2), after: round(loadavg()[0] ?? 0, 2) },
      batches: rows,
      target: `pipeline / raw >= ${BATCHING_TARGET_RATIO} at every batch size`,
      targetMet: worst >= BATCHING_TARGET_RATIO,
      seconds: round((performance.now() - started) / 1000),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

// Run on its own: node dist/bench/bench-batching.js
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(JSON.stringify(await benchBatching(), null, 2) + '\n');
}
