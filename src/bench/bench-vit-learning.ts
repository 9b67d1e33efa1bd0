/**
 * `npm run bench -- vit-learning`: what learning costs at ViT widths. For a ViT-S/16- and a
 * ViT-B/16-shaped model with random weights (the shapes and cost of DINO ViT-S/16 and ViT-B/16:
 * C = 384 and 768), exported by tools/export_dino.py at the working size of a 1080p input
 * (448x256), `process` runs a 240-frame 1080p scene twice: learning with the defaults (a
 * 64-frame learning pass and its rounds before output starts), and frozen on the head the first
 * run wrote. Reports wall time with learning / wall time frozen, and the mean training round
 * time (from the run's own log).
 *
 * Random weights give features without the structure of a trained DINO, but the same widths,
 * and the cost of a round depends on the widths only.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSceneVideo } from '../scene/write-scene-files.js';
import { benchLog } from './bench-log.js';

const PYTHON = '/usr/bin/python3';
const EXPORTER = fileURLToPath(new URL('../../tools/export_dino.py', import.meta.url));
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const FRAMES = 240;
/** The target for wall time with learning / frozen. */
export const VIT_LEARNING_TARGET = 1.25;

const MODELS = [
  { name: 'ViT-S/16', flag: '--random-vits16', file: 'vits16.onnx' },
  { name: 'ViT-B/16', flag: '--random-vitb16', file: 'vitb16.onnx' },
] as const;

const log = benchLog('bench-vit-learning');

function exportModel(flag: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [EXPORTER, flag, '--height', '256', '--width', '448', '--out', out], { timeout: 600_000 }, (err, _o, stderr) =>
      err ? reject(new Error(`export_dino.py ${flag} failed: ${stderr || err.message}`)) : resolve(),
    );
  });
}

interface Run {
  readonly wallSeconds: number;
  readonly roundMs: number[];
}

/** One `process` run; the training rounds' times come from its info log. */
function processRun(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'process', ...args, '--json', '--no-progress', '--log-level', 'info'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`stegostream process exited ${code}: ${err.slice(-2000)}`));
      const roundMs: number[] = [];
      for (const line of err.split('\n')) {
        // Kept or turned away (the dispersion check), a trained round took its time.
        if (!line.includes('"kind":"train"') && !line.includes('"kind":"rejected"')) continue;
        const ms = (JSON.parse(line) as { ms?: number }).ms;
        if (typeof ms === 'number') roundMs.push(ms);
      }
      const json = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { wallSeconds: number };
      resolve({ wallSeconds: json.wallSeconds, roundMs });
    });
  });
}

const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits;

export async function benchVitLearning(): Promise<Record<string, unknown>> {
  const check = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`${PYTHON} cannot import torch and onnx: install python3-torch and python3-onnx`);
  const dir = await mkdtemp(join(tmpdir(), 'stegostream-bench-vit-'));
  try {
    const video = join(dir, 'scene.mp4');
    log(`rendering a ${FRAMES}-frame 1080p scene`);
    await writeSceneVideo(video, { width: 1920, height: 1080, frames: FRAMES, seed: 1, variant: 'hard' });
    const result: Record<string, unknown> = {
      input: `${FRAMES} frames of a generated 1920x1080 scene, working size 448x256 (28x16 patches), defaults (64-frame learning pass, 60 steps)`,
    };
    for (const m of MODELS) {
      const model = join(dir, m.file);
      log(`${m.name}: exporting random weights`);
      await exportModel(m.flag, model);
      const ckpt = join(dir, `${m.file}.ckpt`);
      log(`${m.name}: process with learning`);
      const learn = await processRun([video, '--backbone', model, '--stats', join(dir, 'l.csv'), '--checkpoint', ckpt]);
      log(`${m.name}: process frozen on that head`);
      const frozen = await processRun([video, '--backbone', model, '--stats', join(dir, 'f.csv'), '--head', ckpt, '--freeze']);
      const mean = learn.roundMs.length > 0 ? learn.roundMs.reduce((a, b) => a + b, 0) / learn.roundMs.length : Number.NaN;
      result[m.name] = {
        wallSecondsLearning: round(learn.wallSeconds, 1),
        wallSecondsFrozen: round(frozen.wallSeconds, 1),
        'wall time learning / frozen': round(learn.wallSeconds / frozen.wallSeconds),
        target: `<= ${VIT_LEARNING_TARGET}`,
        trainingRounds: learn.roundMs.length,
        meanTrainingRoundMs: Math.round(mean),
      };
    }
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
