import { spawnSync } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLabelMask } from '../src/eval/read-label-mask.js';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { runCli, tempDir } from './helpers/cli.js';

/**
 * README "Learning": a seed gives the same output on every run (rounds at fixed frame counts,
 * seeded sampling, one ONNX Runtime thread), class ids come in a canonical order (largest share
 * first) so another seed names the same stuff alike, and `-k auto` (the default) counts the
 * classes the footage holds, or warns when it holds none.
 *
 * The clip is the generated easy scene (5 true classes: water, sand, rock, coral, fish). The
 * learning knobs make training rounds fall inside the segmenting pass (learning pass of 16
 * frames, then a round every 16 frames), so their timing is what is being tested.
 */
const LEARN = ['--learn-frames', '16', '--learn-steps', '30', '--train-every', '16', '--train-steps', '5', '--no-progress', '--json'];
/** Three slow CLI runs on a busy machine. */
const RUN_MS = 300_000;

interface RunOutput {
  readonly json: { headVersion: number; classes: { id: number; share: number }[]; warnings: string[] };
  readonly stats: Buffer;
  readonly masks: string;
}

let dir: string;
let clip: string;

async function run(name: string, input: string, extra: readonly string[]): Promise<RunOutput> {
  const stats = join(dir, `${name}.csv`);
  const masks = join(dir, `${name}-masks`);
  const r = await runCli(['process', input, '--stats', stats, '--masks', masks, ...LEARN, ...extra]);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  return { json: JSON.parse(r.stdout) as RunOutput['json'], stats: await readFile(stats), masks };
}

async function maskFiles(masks: string): Promise<string[]> {
  return (await readdir(masks)).filter((f) => f.endsWith('.png')).sort();
}

async function labels(path: string): Promise<Uint8Array> {
  const png = decode(await readFile(path));
  return readLabelMask(path, png.width, png.height);
}

/** Share of mask pixels with the same class id in two runs' masks (no matching of ids). */
async function agreement(a: string, b: string): Promise<number> {
  let same = 0;
  let total = 0;
  for (const f of await maskFiles(a)) {
    const [x, y] = await Promise.all([labels(join(a, f)), labels(join(b, f))]);
    for (let i = 0; i < x.length; i++) same += x[i] === y[i] ? 1 : 0;
    total += x.length;
  }
  return same / total;
}

beforeAll(async () => {
  dir = await tempDir('stegostream-repro-');
  clip = join(dir, 'scene.mp4');
  await writeSceneVideo(clip, { width: 320, height: 192, seed: 3, variant: 'easy', fps: 15, frames: 64 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('reproducible runs and canonical class ids', () => {
  let first: RunOutput;

  it(
    'two runs with --seed 1 --threads 1 write identical stats and masks, with rounds during the pass',
    async () => {
      first = await run('a', clip, ['--seed', '1', '--threads', '1']);
      const second = await run('b', clip, ['--seed', '1', '--threads', '1']);
      // The learning pass's round, then rounds at 16-frame steps while segmenting.
      expect(first.json.headVersion).toBeGreaterThanOrEqual(4);
      expect(second.json.headVersion).toBe(first.json.headVersion);
      expect(second.stats.equals(first.stats)).toBe(true);
      const files = await maskFiles(first.masks);
      expect(files).toHaveLength(64);
      expect(await maskFiles(second.masks)).toEqual(files);
      for (const f of files) {
        const [a, b] = await Promise.all([readFile(join(first.masks, f)), readFile(join(second.masks, f))]);
        expect(a.equals(b), f).toBe(true);
      }
    },
    RUN_MS,
  );

  it(
    '-k auto (the default) finds 4-6 classes in the 5-class scene, ids by share, largest first',
    () => {
      const classes = first.json.classes;
      expect(classes.length).toBeGreaterThanOrEqual(4);
      expect(classes.length).toBeLessThanOrEqual(6);
      expect(first.json.warnings).toEqual([]);
      // Canonical order: the first fit numbers classes by share (later rounds keep ids, so the
      // run's shares may drift a little from that order, not reverse it).
      expect(classes[0]!.share).toBeGreaterThan(classes[classes.length - 1]!.share);
    },
    RUN_MS,
  );

  it(
    'with the default threads, the same seed gives the same class ids (a boundary pixel may flip)',
    async () => {
      const threaded = await run('d', clip, ['--seed', '1']);
      expect(threaded.json.classes.map((c) => c.id)).toEqual(first.json.classes.map((c) => c.id));
      expect(await agreement(first.masks, threaded.masks)).toBeGreaterThanOrEqual(0.99);
    },
    RUN_MS,
  );

  it(
    '--seed 2 gives the same ids to the same stuff: >= 90% of mask pixels agree, unmatched',
    async () => {
      const other = await run('c', clip, ['--seed', '2', '--threads', '1']);
      expect(await agreement(first.masks, other.masks)).toBeGreaterThanOrEqual(0.9);
    },
    RUN_MS,
  );
});

describe('-k auto on footage with nothing to segment', () => {
  it(
    'an almost uniform clip (flat colour, slight noise) gets one class and a warning, not invented classes; -k 6 a warning',
    async () => {
      const flat = join(dir, 'flat.mp4');
      const r = spawnSync(
        'ffmpeg',
        [
          '-v',
          'error',
          '-y',
          '-f',
          'lavfi',
          '-i',
          'color=c=0x103a50:size=320x192:rate=15,noise=alls=6:allf=t',
          '-t',
          '2',
          '-c:v',
          'libx264',
          '-pix_fmt',
          'yuv420p',
          flat,
        ],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
      const out = await run('flat', flat, []);
      expect(out.json.classes).toHaveLength(1);
      expect(out.json.warnings).toHaveLength(1);
      expect(out.json.warnings[0]).toMatch(/^the frames barely vary \(feature dispersion [0-9.e+-]+\): one class, nothing to segment/);
      // A fixed count is kept as asked, with a warning that its classes are noise.
      const forced = await run('flat6', flat, ['-k', '6']);
      expect(forced.json.classes).toHaveLength(6);
      expect(forced.json.warnings).toHaveLength(1);
      expect(forced.json.warnings[0]).toMatch(
        /^the frames barely vary \(feature dispersion [0-9.e+-]+\): the 6 classes split noise, not stuff/,
      );
    },
    RUN_MS,
  );
});
