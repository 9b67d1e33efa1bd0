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
 * - CPU per frame, raw and pipeline: on a machine other processes load, wall-clock fps swings by
 *   2x between runs a minute apart, so the bench also counts CPU time (all threads, and ffmpeg for
 *   the pipeline) per frame. Raw: this process's CPU time during the loop. Pipeline: the child's
 *   CPU time (/proc/<pid>/stat, its ffmpeg children included) from the log line of the round
 *   that ends the learning pass to its result, which is the segmenting pass. `raw / pipeline CPU
 *   per frame` is the share of the pipeline's work that is the backbone's; it barely moves with
 *   other load, and bounds the fps ratio on an otherwise idle machine from above (the pipeline
 *   also loses the time its inference worker waits between batches).
 *
 * Where the difference went when profiled (per-thread CPU from /proc, --cpu-prof, batch 1 and 4):
 * the inference worker and its ORT threads use ~96% of the pipeline's CPU, and of that 3-5% is
 * the segmentation graph (head, probe, upsampling, argmax), ~1% normalising frames; the main
 * thread ~1.5%, the learner ~1%, ffmpeg 1-2%. The worker is inside ORT 94-96% of the wall time of
 * the segmenting pass; the rest is the first batch filling (~0.15 s) and a round trip to the
 * main thread between batches (5-20 ms).
 *
 * Skipped, with `skipped` saying why, when /usr/bin/python3 lacks torch or onnx.
 */
import * as ort from 'onnxruntime-node';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSceneVideo } from '../scene/write-scene-files.js';
import { benchLog } from './bench-log.js';

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

const log = benchLog();

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

/**
 * Frames per second of `session.run` on one pre-made batch, over `seconds` after two warm-up runs,
 * and the CPU seconds (all threads) it used per frame.
 */
async function rawFps(session: ort.InferenceSession, batch: number, seconds: number): Promise<{ fps: number; cpuPerFrame: number }> {
  const data = new Float32Array(batch * 3 * SIZE * SIZE);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 1.5;
  const feeds = { image: new ort.Tensor('float32', data, [batch, 3, SIZE, SIZE]) };
  await session.run(feeds);
  await session.run(feeds);
  let frames = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run(feeds);
    frames += batch;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { fps: frames / wall, cpuPerFrame: (cpu.user + cpu.system) / 1e6 / frames };
}

interface ProcessJson {
  readonly frames: number;
  readonly seconds: number;
  readonly fps: number;
  readonly error?: string;
}

/** Clock ticks per second of /proc/<pid>/stat times. */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU seconds a process and its reaped children have used, or undefined off Linux / once gone. */
function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime, stime, cutime, cstime are 14-17.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `stegostream process` and measures the CPU time of its segmenting pass: from the log line
 * of the round that ends the learning pass to the printed result.
 */
function pipelineRun(video: string, model: string, batch: number): Promise<ProcessJson & { cpuSeconds: number | undefined }> {
  const args = [CLI, 'process', video, '--backbone', model, '--batch', String(batch), '--learn-frames', '8'].concat([
    '--learn-steps',
    '2',
    '--train-steps',
    '2',
    '--json',
    '--no-progress',
    '--log-level',
    'info',
  ]);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid as number;
    let out = '';
    let err = '';
    let cpuAtStart: number | undefined;
    let cpuAtEnd: number | undefined;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      cpuAtEnd ??= processCpuSeconds(pid);
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      // Each round of the learning pass logs "head trained"; the last one precedes segmenting.
      if (d.toString().includes('"head trained"')) cpuAtStart = processCpuSeconds(pid);
    });
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`stegostream process --batch ${batch} exited ${code}: ${err}`));
      const json = JSON.parse(out.trim().split('\n').pop() ?? '{}') as ProcessJson;
      const cpuSeconds = cpuAtStart !== undefined && cpuAtEnd !== undefined ? cpuAtEnd - cpuAtStart : undefined;
      resolve({ ...json, cpuSeconds });
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
        const raw = (before.fps + after.fps) / 2;
        const rawCpu = (before.cpuPerFrame + after.cpuPerFrame) / 2;
        const pipeCpu = run.cpuSeconds !== undefined ? run.cpuSeconds / run.frames : undefined;
        rows.push({
          batch,
          rawOrtFps: round(raw),
          rawOrtFpsBefore: round(before.fps),
          rawOrtFpsAfter: round(after.fps),
          rawOrtFpsDefaultOptions: round(defaults.fps),
          pipelineFps: round(run.fps),
          pipelineFrames: run.frames,
          'pipeline / raw': round(run.fps / raw, 3),
          'pipeline / raw with default options': round(run.fps / defaults.fps, 3),
          rawCpuMsPerFrame: round(rawCpu * 1000, 1),
          ...(pipeCpu !== undefined
            ? { pipelineCpuMsPerFrame: round(pipeCpu * 1000, 1), 'raw / pipeline CPU per frame': round(rawCpu / pipeCpu, 3) }
            : {}),
        });
      }
    } finally {
      await Promise.allSettled([plain.release(), sameOptions.release()]);
    }
    const worst = Math.min(...rows.map((r) => r['pipeline / raw'] as number));
    const worstCpu = Math.min(...rows.map((r) => r['raw / pipeline CPU per frame'] ?? Number.NaN));
    return {
      model: `random-weight ViT-S/16 (DINO layout: 12 blocks, dim 384, 6 heads), ${SIZE}x${SIZE} input (${(SIZE / 16) ** 2} patches), exported by tools/export_dino.py --random-vits16`,
      input: `${VIDEO_FRAMES}-frame ${SIZE}x${SIZE} H.264 dive scene (generated)`,
      pipelineCommand: 'stegostream process VIDEO --backbone MODEL --batch B --learn-frames 8 --learn-steps 2 --train-steps 2 --json',
      loadAverage1m: { before: round(loadBefore[0] ?? 0, 2), after: round(loadavg()[0] ?? 0, 2) },
      batches: rows,
      target: `pipeline / raw >= ${BATCHING_TARGET_RATIO} at every batch size`,
      targetMet: worst >= BATCHING_TARGET_RATIO,
      targetMetByCpuPerFrame: worstCpu >= BATCHING_TARGET_RATIO,
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
