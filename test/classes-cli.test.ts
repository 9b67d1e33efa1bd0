/**
 * Naming classes (README "Naming your classes"): `classes list | rename | sheet`, `--names` on a
 * loaded head, `--head` taking the class count from the checkpoint, and the names reaching every
 * output: summary, stats header, the masks' classes.json and the overlay's legend. Real CLI,
 * generated clip.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/learning/checkpoint.js';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { runCli, tempDir } from './helpers/cli.js';

const FAST = ['--learn-frames', '12', '--train-steps', '5', '--no-progress'];

/** One decoded frame of a video as RGB, for comparing regions. */
function frameRgb(video: string, n: number, w: number, h: number): Buffer {
  const r = spawnSync(
    'ffmpeg',
    ['-v', 'error', '-i', video, '-vf', `select=eq(n\\,${n})`, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    {
      maxBuffer: 64 << 20,
    },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
  expect(r.stdout.length).toBe(w * h * 3);
  return r.stdout;
}

/** Mean absolute difference of two RGB frames over a rectangle. */
function diff(a: Buffer, b: Buffer, w: number, rect: { x: number; y: number; w: number; h: number }): number {
  let sum = 0;
  for (let y = rect.y; y < rect.y + rect.h; y++)
    for (let x = rect.x; x < rect.x + rect.w; x++)
      for (let c = 0; c < 3; c++) sum += Math.abs((a[(y * w + x) * 3 + c] as number) - (b[(y * w + x) * 3 + c] as number));
  return sum / (rect.w * rect.h * 3);
}

describe('naming classes', () => {
  let dir: string;
  let video: string;
  let ckpt: string;

  beforeAll(async () => {
    dir = await tempDir('stegostream-classes-');
    video = join(dir, 'dive.mp4');
    await writeSceneVideo(video, { width: 320, height: 180, seed: 3, frames: 24, fps: 10 });
    ckpt = join(dir, 'head.ckpt');
    const r = await runCli(['process', video, '--checkpoint', ckpt, '--classes', '5', ...FAST]);
    expect(r.code).toBe(0);
  });

  it('rename writes the names into the checkpoint atomically; list shows them', async () => {
    const r = await runCli(['classes', 'rename', ckpt, '0=water', '1=sand', '2=sea grass']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await loadCheckpoint(ckpt)).names).toEqual(['water', 'sand', 'sea grass', 'class 3', 'class 4']);
    // No temporary file left beside it.
    expect(readdirSync(dir).filter((f) => f.startsWith('head.ckpt'))).toEqual(['head.ckpt']);
    const list = await runCli(['classes', 'list', ckpt, '--json']);
    expect(JSON.parse(list.stdout)).toMatchObject({
      classes: [{ id: 0, name: 'water' }, { id: 1, name: 'sand' }, { id: 2, name: 'sea grass' }, {}, {}],
    });
  });

  it('refuses a bad rename with one coded line and leaves the checkpoint as it was', async () => {
    const before = readFileSync(ckpt);
    for (const [args, message] of [
      [['7=kelp'], /class id 0-4 \(the checkpoint has 5 classes\)/],
      [['kelp'], /ID=NAME/],
      [['3=Water'], /classes 0 and 3 would both be "Water"/],
      [['3=a', '3=b'], /each class id once/],
      [['3='], /a name of 1-64 characters/],
    ] as const) {
      const r = await runCli(['classes', 'rename', ckpt, ...args]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/\[E_BAD_OPTION\]\n$/);
    }
    expect(readFileSync(ckpt).equals(before)).toBe(true);
    const missing = await runCli(['classes', 'rename', join(dir, 'none.ckpt'), '0=x']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\[E_CHECKPOINT\]/);
  });

  it('process --head --freeze shows the names in the summary, stats header, classes.json and the overlay legend', async () => {
    const out = join(dir, 'named.mp4');
    const plain = join(dir, 'plain.mp4');
    const stats = join(dir, 'named.csv');
    const masks = join(dir, 'named-masks');
    expect((await runCli(['classes', 'rename', ckpt, '0=water', '1=sand', '2=sea grass'])).code).toBe(0);
    // No -k: the checkpoint's 5 classes.
    const r = await runCli([
      'process',
      video,
      '--head',
      ckpt,
      '--freeze',
      '--out',
      out,
      '--stats',
      stats,
      '--masks',
      masks,
      '--no-progress',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\s+2\s+sea grass\s+\d/m);
    expect(readFileSync(stats, 'utf8').split('\n')[0]).toBe('stream,seq,pts,time,file,head_version,water,sand,sea grass,class 3,class 4');
    const legend = JSON.parse(readFileSync(join(masks, 'classes.json'), 'utf8')) as {
      head_version: number;
      classes: { id: number; name: string; color: number[] }[];
    };
    expect(legend.classes.map((c) => c.name)).toEqual(['water', 'sand', 'sea grass', 'class 3', 'class 4']);
    expect(legend.head_version).toBe((await loadCheckpoint(ckpt)).version);
    // The colours of classes.json are the masks' palette.
    const { decode } = await import('fast-png');
    const png = decode(readFileSync(join(masks, 'frame_000000.png')));
    expect(legend.classes.map((c) => png.palette?.[c.id])).toEqual(legend.classes.map((c) => c.color));

    const r2 = await runCli(['process', video, '--head', ckpt, '--freeze', '--out', plain, '--no-legend', '--no-progress']);
    expect(r2.code).toBe(0);
    // The legend sits in the top-left corner: frames differ there, and hardly anywhere else.
    const a = frameRgb(out, 5, 320, 180);
    const b = frameRgb(plain, 5, 320, 180);
    expect(diff(a, b, 320, { x: 6, y: 6, w: 60, h: 30 })).toBeGreaterThan(20);
    expect(diff(a, b, 320, { x: 160, y: 90, w: 150, h: 80 })).toBeLessThan(3);
  });

  it('--names names a loaded head, frozen or not; the wrong count or a repeated name is refused', async () => {
    const names = join(dir, 'names.txt');
    writeFileSync(names, 'open water\nsand\nrock\ncoral\nfish\n');
    for (const freeze of [['--freeze'], []]) {
      const stats = join(dir, `names${freeze.length}.csv`);
      const r = await runCli(['process', video, '--head', ckpt, ...freeze, '--names', names, '--stats', stats, ...FAST]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(readFileSync(stats, 'utf8').split('\n')[0]).toBe('stream,seq,pts,time,file,head_version,open water,sand,rock,coral,fish');
    }
    writeFileSync(names, 'water\nsand\nrock\n');
    const short = await runCli(['process', video, '--head', ckpt, '--freeze', '--names', names, ...FAST]);
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/5 names, one per class \(it lists 3\) for --names/);
    writeFileSync(names, 'water\nsand\nrock\nSand\nfish\n');
    const dup = await runCli(['process', video, '--head', ckpt, '--freeze', '--names', names, ...FAST]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/each name once \(line 2 and line 4 are both "Sand"\)/);
  });

  it('--head takes the class count from the checkpoint; a -k that disagrees says so', async () => {
    const r = await runCli(['process', video, '--head', ckpt, '--freeze', '--classes', '3', ...FAST]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/checkpoint has 5 classes, this run asks for 3 .*leave the count out \(auto\) to use the checkpoint's 5/);
    expect(r.stderr).toMatch(/\[E_CHECKPOINT\]/);
    const ok = await runCli(['process', video, '--head', ckpt, '--freeze', '--classes', '5', ...FAST]);
    expect(ok.code).toBe(0);
  });

  it('sheet draws one row per class with examples from the input', async () => {
    const sheet = join(dir, 'sheet.png');
    const r = await runCli(['classes', 'sheet', ckpt, video, '--out', sheet, '--frames', '6', '--crops', '3', '--no-progress']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/5 classes, examples from \d+ frames/);
    const meta = await sharp(sheet).metadata();
    // Header 44 px, then 5 rows of 120 px with 10 px gaps; label column and 3 crops of 192 px.
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 260 + 3 * 202 + 10, 44 + 5 * 130 + 10]);
    // Each row's crops are not blank: the sheet's crop area is mostly not the background colour.
    const { data, info } = await sharp(sheet).raw().toBuffer({ resolveWithObject: true });
    const row0 = data.subarray((44 + 60) * info.width * info.channels, (44 + 61) * info.width * info.channels);
    const x = 270 * info.channels;
    expect([row0[x], row0[x + 1], row0[x + 2]]).not.toEqual([10, 20, 28]);
    expect(existsSync(sheet)).toBe(true);
  });
});

describe('names outside process', () => {
  it("the demo names its classes after the scene's ground truth", async () => {
    const dir = await tempDir('stegostream-demo-names-');
    const r = await runCli([
      'demo',
      '--out-dir',
      dir,
      '--frames',
      '20',
      '--classes',
      '5',
      '--learn-frames',
      '12',
      '--train-steps',
      '5',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { classes: { name: string }[] };
    expect(j.classes.map((c) => c.name).sort()).toEqual(['coral', 'fish', 'rock', 'sand', 'water']);
    expect(readFileSync(join(dir, 'stats.csv'), 'utf8').split('\n')[0]).toMatch(
      /^stream,seq,pts,time,file,head_version,(water|sand|rock|coral|fish)(,(water|sand|rock|coral|fish)){4}$/,
    );
    const legend = JSON.parse(readFileSync(join(dir, 'masks', 'classes.json'), 'utf8')) as { classes: { name: string }[] };
    expect(legend.classes.map((c) => c.name).sort()).toEqual(['coral', 'fish', 'rock', 'sand', 'water']);
  });
});
