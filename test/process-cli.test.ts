import { describe, expect, it, beforeAll } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync, chmodSync, statSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { countFrames, lavfiVideo, runCli, startCli, tempDir, videoInfo } from './helpers/cli.js';
import { writeSceneImages, writeSceneVideo } from '../src/scene/write-scene-files.js';

// Small inputs and few learning frames keep each run to a few seconds on 2 cores.
const FAST = ['--learn-frames', '8', '--train-steps', '5', '--classes', '5'];

describe('stegostream process on a recorded video', () => {
  let dir: string;
  let video: string;
  const FRAMES = 24;

  beforeAll(async () => {
    dir = await tempDir();
    video = join(dir, 'dive.mp4');
    await writeSceneVideo(video, { width: 320, height: 192, seed: 3, frames: FRAMES, fps: 12 });
  });

  it('writes an overlay video with the input frame count, rate and size, stats rows = frames, one mask per frame', async () => {
    const out = join(dir, 'seg.mp4');
    const stats = join(dir, 'stats.csv');
    const masks = join(dir, 'masks');
    const r = await runCli(['process', video, '--out', out, '--stats', stats, '--masks', masks, ...FAST]);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(r.code).toBe(0);
    expect(countFrames(out)).toBe(FRAMES);
    expect(videoInfo(out)).toEqual({ width: 320, height: 192, fps: '12/1' });
    const lines = readFileSync(stats, 'utf8').trim().split('\n');
    expect(lines[0]).toMatch(/^stream,seq,pts,time,file,head_version,/);
    expect(lines.length - 1).toBe(FRAMES);
    const row = lines[1]!.split(',');
    const fractions = row.slice(6).map(Number);
    expect(fractions.length).toBe(5);
    expect(fractions.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);
    const pngs = readdirSync(masks)
      .filter((f) => f.endsWith('.png'))
      .sort();
    expect(pngs.length).toBe(FRAMES);
    expect(pngs[0]).toBe('frame_000000.png');
    const png = decode(readFileSync(join(masks, pngs[0]!)));
    expect(png.palette?.length).toBeGreaterThanOrEqual(5);
    expect(Math.max(...(png.data as Uint8Array))).toBeLessThan(5);
    expect(r.stdout).toMatch(/24 frames/);
    expect(r.stdout).toMatch(/share/);
    expect(r.stdout).toMatch(/builtin-filterbank/);
  });

  it('writes JSON lines stats and keeps every n-th frame with --every', async () => {
    const stats = join(dir, 'stats.jsonl');
    const out = join(dir, 'every.mp4');
    const r = await runCli(['process', video, '--every', '3', '--stats', stats, '--out', out, ...FAST]);
    expect(r.code).toBe(0);
    const rows = readFileSync(stats, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; pts: number; classes: unknown[]; head_version: number });
    expect(rows.length).toBe(FRAMES / 3);
    expect(rows.map((x) => x.seq)).toEqual([...Array(FRAMES / 3).keys()]);
    // every 3rd frame at 12 fps: pts step 0.25 s
    expect(rows[1]!.pts - rows[0]!.pts).toBeCloseTo(0.25, 3);
    expect(rows[0]!.classes.length).toBe(5);
    expect(countFrames(out)).toBe(FRAMES / 3);
  });

  it('decodes HEVC yuv444p input', async () => {
    const hevc = join(dir, 'hevc444.mp4');
    lavfiVideo(hevc, { codec: 'libx265', pixFmt: 'yuv444p', seconds: 1, rate: 10 });
    const stats = join(dir, 'hevc.csv');
    const r = await runCli(['process', hevc, '--stats', stats, ...FAST]);
    expect(r.code).toBe(0);
    expect(readFileSync(stats, 'utf8').trim().split('\n').length - 1).toBe(10);
  });

  it('names masks after the images of an image folder', async () => {
    const scene = join(dir, 'scene');
    const { images } = await writeSceneImages(scene, { width: 160, height: 96, seed: 2, frames: 3 });
    const folder = join(dir, 'reef');
    mkdirSync(folder);
    images.forEach((img, i) => copyFileSync(img, join(folder, `reef_0${i + 1}.png`)));
    const masks = join(dir, 'reef-masks');
    const r = await runCli(['process', folder, '--masks', masks, ...FAST]);
    expect(r.code).toBe(0);
    expect(
      readdirSync(masks)
        .filter((f) => f.endsWith('.png'))
        .sort(),
    ).toEqual(['reef_01.png', 'reef_02.png', 'reef_03.png']);
  });
});

describe('stegostream process on bad input', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });

  it('missing file', async () => {
    const r = await runCli(['process', join(dir, 'nope.mp4')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Cannot read input "${join(dir, 'nope.mp4')}": no such file or folder. Check the path. [E_INPUT_NOT_FOUND]`);
  });

  it('zero-length file', async () => {
    const empty = join(dir, 'empty.mp4');
    writeFileSync(empty, '');
    const r = await runCli(['process', empty]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `Cannot process "${empty}": the file is empty (0 bytes). Give a video file with at least one frame. [E_INPUT_EMPTY]`,
    );
  });

  it('not a video', async () => {
    const text = join(dir, 'notes.mp4');
    writeFileSync(text, 'dive log: 12 fish, 3 rocks\n'.repeat(50));
    const r = await runCli(['process', text, '--stats', join(dir, 'x.csv')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`Cannot process "${text.replace(/[.]/g, '\\.')}": ffmpeg finds no video stream in it \\(is it a video\\?\\)`),
    );
    expect(r.stderr).toContain('E_INPUT_NOT_VIDEO');
  });

  it('a video damaged midway: every decodable frame is processed, outputs are valid, exit is non-zero with a message', async () => {
    const ts = join(dir, 'good.ts');
    lavfiVideo(ts, { seconds: 4, rate: 15 });
    const good = readFileSync(ts);
    const damaged = join(dir, 'damaged.ts');
    const garbage = Buffer.alloc(30000, 0x47); // sync bytes with nonsense payloads
    for (let i = 0; i < garbage.length; i += 7) garbage[i] = (i * 31) & 0xff;
    writeFileSync(damaged, Buffer.concat([good.subarray(0, good.length / 2), garbage, good.subarray((good.length * 2) / 3)]));
    const out = join(dir, 'damaged-seg.mp4');
    const stats = join(dir, 'damaged.csv');
    const r = await runCli(['process', damaged, '--out', out, '--stats', stats, ...FAST]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/holds damaged data: ffmpeg reported \d+ decoding error/);
    expect(r.stderr).toContain('E_INPUT_DAMAGED');
    const rows = readFileSync(stats, 'utf8').trim().split('\n').length - 1;
    expect(rows).toBeGreaterThan(20);
    expect(countFrames(out)).toBe(rows);
    // The count in the message is what the outputs hold, not what was decoded before a batch was dropped.
    expect(r.stderr).toContain(`outputs hold all ${rows} frame(s) it decoded`);
    expect(r.stdout).toMatch(new RegExp(`^${rows} frames in .*\\(stopped by an error\\)`, 'm'));
  });

  it('unwritable output path fails before any work', async () => {
    const v = join(dir, 'ok.mp4');
    lavfiVideo(v, { seconds: 1 });
    const r = await runCli(['process', v, '--out', join(dir, 'no', 'such', 'dir', 'seg.mp4')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /Cannot write output ".*seg\.mp4": folder .* does not exist or is not writable\. Choose a writable path\. \[E_OUTPUT_UNWRITABLE\]/,
    );
    const ro = join(dir, 'readonly');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    // root ignores directory permissions; the check only means something for other users
    if (process.getuid?.() !== 0) {
      const r2 = await runCli(['process', v, '--stats', join(ro, 's.csv')]);
      expect(r2.code).toBe(1);
      expect(r2.stderr).toContain('E_OUTPUT_UNWRITABLE');
    }
  });

  it('unknown option and bad option values', async () => {
    const r = await runCli(['process', 'x.mp4', '--colour', 'red']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: unknown option '--colour'");
    const r2 = await runCli(['process', 'x.mp4', '--every', '1.5']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('Expected positive integer for --every but received "1.5"');
    const r3 = await runCli(['process', 'x.mp4', '--stats', 'out.txt']);
    expect(r3.code).toBe(1);
  });
});

describe('stegostream process interrupted', () => {
  it('Ctrl-C (SIGINT) midway leaves a valid video and stats with the same frame count', async () => {
    const dir = await tempDir();
    const video = join(dir, 'long.mp4');
    lavfiVideo(video, { seconds: 60, rate: 15, size: '320x240' });
    const out = join(dir, 'seg.mp4');
    const stats = join(dir, 'stats.csv');
    const { child, done } = startCli(['process', video, '--out', out, '--stats', stats, ...FAST]);
    // Wait until some rows are written, then interrupt.
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        const rows = existsSync(stats) && statSync(stats).size > 0 ? readFileSync(stats, 'utf8').split('\n').length - 2 : 0;
        if (rows >= 10) {
          clearInterval(poll);
          resolve();
        } else if (Date.now() - t0 > 90_000) {
          clearInterval(poll);
          reject(new Error('no progress'));
        }
      }, 100);
    });
    child.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/interrupted/);
    const rows = readFileSync(stats, 'utf8').trim().split('\n').length - 1;
    expect(rows).toBeGreaterThanOrEqual(10);
    expect(rows).toBeLessThan(900);
    expect(countFrames(out)).toBe(rows);
  });
});
