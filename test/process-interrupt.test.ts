/**
 * Whatever stops `process` (Ctrl-C, SIGTERM, a full disk, a damaged input), its outputs agree:
 * the overlay video holds exactly the frames the stats hold, masks name the same frames, the CSV
 * has its header, the checkpoint loads. Waits on files and output lines, never on speed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countFrames, lavfiVideo, startCli, tempDir, type CliResult } from './helpers/cli.js';
import { loadCheckpoint } from '../src/learning/checkpoint.js';

const FAST = ['--train-steps', '5', '--classes', '5'];
const HEADER = /^stream,seq,pts,time,file,head_version,class 0,class 1,class 2,class 3,class 4$/;

/** Polls until `check` holds; rejects after `ms` (generous: the machine may be busy). */
async function until(check: () => boolean, what: string, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function csvRows(path: string): string[] {
  return readFileSync(path, 'utf8').trim().split('\n');
}

function statsRows(path: string): number {
  return existsSync(path) ? Math.max(0, readFileSync(path, 'utf8').split('\n').length - 2) : 0;
}

describe('process stopped by a signal', () => {
  let dir: string;
  let video: string;
  // Long enough that no run here reaches its end: 4000 frames at 448x320.
  const FRAMES = 4000;

  beforeAll(async () => {
    dir = await tempDir();
    video = join(dir, 'long.mp4');
    lavfiVideo(video, { seconds: FRAMES / 25, rate: 25, size: '448x320' });
  });

  it('Ctrl-C during the learning pass: exits 130 before the input is read, no unsegmented video, CSV header only', async () => {
    const out = join(dir, 'learn-seg.mp4');
    const stats = join(dir, 'learn.csv');
    const masks = join(dir, 'learn-masks');
    // A stale overlay from an earlier run must not survive as if it were this run's.
    writeFileSync(out, 'stale');
    const { child, done } = startCli([
      'process',
      video,
      '--out',
      out,
      '--stats',
      stats,
      '--masks',
      masks,
      '--learn-frames',
      String(FRAMES),
      ...FAST,
    ]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    // The plain progress line of the learning pass: frames are being learned from.
    await until(() => /learning: [1-9]\d*\/4000 frames/.test(stderr), 'the learning pass to report progress');
    expect(csvRows(stats)).toEqual([expect.stringMatching(HEADER)]);
    child.kill('SIGINT');
    const r: CliResult = await done;
    expect(r.code).toBe(130);
    const m = /0 frames in .* \(interrupted during the learning pass, after (\d+) frames\)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThan(0);
    expect(Number(m?.[1])).toBeLessThan(FRAMES);
    expect(csvRows(stats)).toHaveLength(1);
    expect(csvRows(stats)[0]).toMatch(HEADER);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(masks)).toEqual([]);
    expect(r.stdout).not.toContain(out);
  });

  it('SIGTERM midway: overlay frames = stats rows = masks, and the checkpoint loads', async () => {
    const out = join(dir, 'term-seg.mp4');
    const stats = join(dir, 'term.csv');
    const masks = join(dir, 'term-masks');
    const ckpt = join(dir, 'state', 'head.ckpt');
    mkdirSync(join(dir, 'state'));
    const { child, done } = startCli([
      'process',
      video,
      '--out',
      out,
      '--stats',
      stats,
      '--masks',
      masks,
      '--checkpoint',
      ckpt,
      '--learn-frames',
      '16',
      '--train-every',
      '8',
      ...FAST,
    ]);
    await until(() => statsRows(stats) >= 20, '20 stats rows');
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/\(interrupted\)/);
    const lines = csvRows(stats);
    expect(lines[0]).toMatch(HEADER);
    const rows = lines.length - 1;
    expect(rows).toBeGreaterThanOrEqual(20);
    expect(rows).toBeLessThan(FRAMES);
    expect(new RegExp(`^${rows} frames in`, 'm').test(r.stdout.trim())).toBe(true);
    expect(countFrames(out)).toBe(rows);
    const pngs = readdirSync(masks)
      .filter((f) => f.endsWith('.png'))
      .sort();
    expect(pngs).toHaveLength(rows);
    expect(pngs.at(-1)).toBe(`frame_${String(rows - 1).padStart(6, '0')}.png`);
    expect(lines.slice(1).map((l) => Number(l.split(',')[1]))).toEqual([...Array(rows).keys()]);
    const head = await loadCheckpoint(ckpt, { k: 5 });
    expect(head.version).toBeGreaterThan(0);
    // No half-written temporary beside it.
    expect(readdirSync(join(dir, 'state'))).toEqual(['head.ckpt']);
  });
});

describe('process on a full disk', () => {
  let dir: string;
  let video: string;
  const mounts: string[] = [];
  const FRAMES = 90;

  /** A tmpfs of `kib` KiB with `freeKib` left free (mounting needs root; CI runs as root). */
  function smallDisk(name: string, kib: number, freeKib = kib): string | string[] {
    const mnt = join(dir, name);
    mkdirSync(mnt);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', mnt], { encoding: 'utf8' });
    if (r.status !== 0) return [(r.stderr || r.error?.message || 'mount failed').trim()];
    mounts.push(mnt);
    if (freeKib < kib) writeFileSync(join(mnt, 'filler'), Buffer.alloc((kib - freeKib) * 1024));
    return mnt;
  }

  beforeAll(async () => {
    dir = await tempDir();
    video = join(dir, 'dive.mp4');
    lavfiVideo(video, { seconds: FRAMES / 15, rate: 15, size: '320x240' });
  });

  afterAll(() => {
    for (const m of mounts) spawnSync('umount', [m]);
  });

  const run = (args: string[]): Promise<CliResult> => startCli(['process', video, ...args, '--learn-frames', '8', ...FAST]).done;
  const reported = (r: CliResult): number => {
    const m = /^(\d+) frames in .*\(stopped by an error\)/m.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    return Number(m?.[1]);
  };

  it('stats on /dev/full: coded error naming the file; nothing else holds a frame the stats lack', async () => {
    const stats = join(dir, 'full.csv');
    symlinkSync('/dev/full', stats);
    const out = join(dir, 'full-seg.mp4');
    const masks = join(dir, 'full-masks');
    const r = await run(['--out', out, '--masks', masks, '--stats', stats]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Cannot write output "${stats}": no space left on its device (ENOSPC)`);
    expect(r.stderr).toContain('[E_OUTPUT_FULL]');
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(reported(r)).toBe(0);
    expect(existsSync(out)).toBe(false);
    // No mask (classes.json, the legend, may be there).
    expect(readdirSync(masks).filter((f) => f.endsWith('.png'))).toEqual([]);
  });

  it('stats filling a disk midway: the overlay and masks are finalised with the frames written before it', async (ctx) => {
    const disk = smallDisk('stats-disk', 256, 4);
    if (Array.isArray(disk)) return ctx.skip(`cannot mount a small tmpfs here (${disk[0]}); needs root`);
    const stats = join(disk, 'stats.csv');
    const out = join(dir, 'stats-disk.mp4');
    const masks = join(dir, 'stats-disk-masks');
    const r = await run(['--out', out, '--masks', masks, '--stats', stats]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`Cannot write output "${stats.replace(/[.]/g, '\\.')}": no space left on its device \\(ENOSPC\\) at frame \\d+`),
    );
    expect(r.stderr).toContain('[E_OUTPUT_FULL]');
    const frames = reported(r);
    expect(frames).toBeGreaterThan(0);
    expect(frames).toBeLessThan(FRAMES);
    expect(countFrames(out)).toBe(frames);
    expect(readdirSync(masks).filter((f) => f.endsWith('.png'))).toHaveLength(frames);
    expect(csvRows(stats)[0]).toMatch(HEADER);
  });

  it('masks filling a disk: coded error naming the folder; stats and overlay finalised, agreeing with the masks', async (ctx) => {
    const disk = smallDisk('masks-disk', 64);
    if (Array.isArray(disk)) return ctx.skip(`cannot mount a small tmpfs here (${disk[0]}); needs root`);
    const masks = join(disk, 'masks');
    const stats = join(dir, 'masks-disk.csv');
    const out = join(dir, 'masks-disk.mp4');
    const r = await run(['--out', out, '--masks', masks, '--stats', stats]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Cannot write output "${masks}": no space left on its device (ENOSPC) at frame `);
    expect(r.stderr).toContain('[E_OUTPUT_FULL]');
    const frames = reported(r);
    expect(frames).toBeGreaterThan(0);
    const rows = csvRows(stats);
    expect(rows[0]).toMatch(HEADER);
    expect(rows.length - 1).toBe(frames);
    // No partial PNG is left: the folder names exactly the frames the stats hold.
    expect(
      readdirSync(masks)
        .filter((f) => f.endsWith('.png'))
        .sort(),
    ).toEqual([...Array(frames).keys()].map((i) => `frame_${String(i).padStart(6, '0')}.png`));
    expect(countFrames(out)).toBe(frames);
  });

  it('overlay filling a disk: coded error naming the video; stats finalised', async (ctx) => {
    const disk = smallDisk('video-disk', 16);
    if (Array.isArray(disk)) return ctx.skip(`cannot mount a small tmpfs here (${disk[0]}); needs root`);
    const out = join(disk, 'seg.mp4');
    const stats = join(dir, 'video-disk.jsonl');
    const r = await run(['--out', out, '--stats', stats]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Cannot write output "${out}": no space left on its device (ENOSPC)`);
    expect(r.stderr).toContain('[E_OUTPUT_FULL]');
    const rows = readFileSync(stats, 'utf8').trim().split('\n');
    expect(rows.length).toBe(reported(r));
    expect(rows.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([...Array(rows.length).keys()]);
  });
});

describe('process stopped by a bad input', () => {
  it('an image folder with a corrupt image midway: masks and stats hold the images before it, and the message says so', async () => {
    const dir = await tempDir();
    const folder = join(dir, 'photos');
    mkdirSync(folder);
    // Five real PNGs from ffmpeg; the fourth file is not an image.
    const r0 = spawnSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=160x96:rate=5:duration=1',
      '-frames:v',
      '5',
      join(folder, 'reef_%02d.png'),
    ]);
    expect(r0.status).toBe(0);
    writeFileSync(join(folder, 'reef_04.png'), 'not a png at all');
    const stats = join(dir, 'photos.csv');
    const masks = join(dir, 'masks');
    const r = await startCli(['process', folder, '--stats', stats, '--masks', masks, '--learn-frames', '2', '--batch', '2', ...FAST]).done;
    expect(r.code).toBe(1);
    // Since image folders decode through libvips or ffmpeg, an image neither reads is
    // E_IMAGE_UNREADABLE naming the file (it was E_DECODE).
    expect(r.stderr).toContain('[E_IMAGE_UNREADABLE]');
    expect(r.stderr).toContain('reef_04.png');
    expect(r.stderr).toContain('Outputs hold the 3 frame(s) before it.');
    expect(r.stdout).toMatch(/^3 frames in .*\(stopped by an error\)/m);
    expect(csvRows(stats)).toHaveLength(4);
    expect(
      readdirSync(masks)
        .filter((f) => f.endsWith('.png'))
        .sort(),
    ).toEqual(['reef_01.png', 'reef_02.png', 'reef_03.png']);
  });
});
