import { beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode } from 'fast-png';
import { countFrames, lavfiVideo, runCli, tempDir, videoInfo } from './helpers/cli.js';

/**
 * `stegostream process` end to end on models exported by tools/export_dino.py (random weights,
 * same export path as real DINO checkpoints): the working size is the model's fixed size, outputs
 * are complete, and the float16 export runs too. Debian's torch is installed for /usr/bin/python3
 * only, so that interpreter is called by its path.
 */

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../tools/export_dino.py');
const FAST = ['--learn-frames', '8', '--learn-steps', '5', '--train-steps', '5', '--classes', '4'];
const FRAMES = 20;

function pythonProblem(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} cannot be run (${r.error.message})`;
  if (r.status !== 0)
    return `${PYTHON} cannot import torch, onnx (${r.stderr.trim().split('\n').pop() ?? ''}); install python3-torch and python3-onnx`;
  return undefined;
}

const problem = pythonProblem();
if (problem !== undefined) console.warn(`process-onnx tests skipped: ${problem}`);

function exportTiny(out: string, extra: readonly string[] = []): Promise<void> {
  return new Promise((done, fail) => {
    execFile(
      PYTHON,
      [SCRIPT, '--random-tiny', '--height', '64', '--width', '96', ...extra, '--out', out],
      { timeout: 110_000 },
      (err, _stdout, stderr) => (err ? fail(new Error(`export_dino.py failed: ${stderr}`)) : done()),
    );
  });
}

describe.skipIf(problem !== undefined)('stegostream process --backbone exported.onnx', () => {
  let dir: string;
  let video: string;
  let tiny: string;
  let tiny16: string;

  beforeAll(async () => {
    dir = await tempDir('stegostream-onnx-');
    video = join(dir, 'clip.mp4');
    tiny = join(dir, 'tiny.onnx');
    tiny16 = join(dir, 'tiny16.onnx');
    lavfiVideo(video, { size: '320x180', rate: 10, seconds: FRAMES / 10 });
    await Promise.all([exportTiny(tiny), exportTiny(tiny16, ['--fp16'])]);
  }, 240_000);

  it('segments at the model size (96x64): overlay at the input size, one stats row and one mask per frame', async () => {
    const out = join(dir, 'o.mp4');
    const stats = join(dir, 's.csv');
    const masks = join(dir, 'masks');
    const r = await runCli([
      'process',
      video,
      '--backbone',
      tiny,
      '--stats',
      stats,
      '--out',
      out,
      '--masks',
      masks,
      // Masks at the model's working size (the default is the input's).
      '--masks-size',
      'working',
      '--batch',
      '3',
      '--no-progress',
      ...FAST,
    ]);
    expect(r.stderr).toBe(''); // no ONNX Runtime warnings either
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${FRAMES} frames in`);
    expect(r.stdout).toContain('backbone random_tiny_p8');
    expect(countFrames(out)).toBe(FRAMES);
    expect(videoInfo(out)).toEqual({ width: 320, height: 180, fps: '10/1' });
    const lines = readFileSync(stats, 'utf8').trim().split('\n');
    expect(lines.length - 1).toBe(FRAMES);
    const fractions = (lines[1] as string).split(',').slice(6).map(Number);
    expect(fractions.length).toBe(4);
    expect(fractions.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);
    const pngs = readdirSync(masks)
      .filter((f) => f.endsWith('.png'))
      .sort();
    expect(pngs.length).toBe(FRAMES);
    const png = decode(readFileSync(join(masks, pngs[0] as string)));
    expect([png.width, png.height]).toEqual([96, 64]);
  });

  it('runs the float16 export (--fp16) on the CPU with --json', async () => {
    const stats = join(dir, 's16.jsonl');
    const r = await runCli(['process', video, '--backbone', tiny16, '--stats', stats, '--json', '--no-progress', ...FAST]);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as { frames: number; fps: number; backbone: string; error?: string };
    expect(res).toMatchObject({ frames: FRAMES, backbone: 'random_tiny_p8' });
    expect(res.error).toBeUndefined();
    expect(res.fps).toBeGreaterThan(0);
    const rows = readFileSync(stats, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; classes: { fraction: number }[] });
    expect(rows.map((x) => x.seq)).toEqual([...Array(FRAMES).keys()]);
    expect(rows[0]?.classes.reduce((a, c) => a + c.fraction, 0)).toBeCloseTo(1, 3);
  });

  it('logs the backbone, its provider and why; the model size wins over --width', async () => {
    const stats = join(dir, 'w.csv');
    const r = await runCli([
      'process',
      video,
      '--backbone',
      tiny,
      '--width',
      '448',
      '--stats',
      stats,
      '--log-level',
      'info',
      '--no-progress',
      ...FAST,
    ]);
    expect(r.code).toBe(0);
    const loaded = r.stderr
      .split('\n')
      .filter((l) => l.includes('"backbone loaded"'))
      .map((l) => JSON.parse(l) as { backbone: string; provider: string; reason: string });
    expect(loaded[0]).toMatchObject({ backbone: 'random_tiny_p8', provider: 'cpu' });
    expect(loaded[0]?.reason).toMatch(/^auto: |^requested/);
    expect(readFileSync(stats, 'utf8').trim().split('\n').length - 1).toBe(FRAMES);
  });
});
