/** The file and image-folder sources on their own, with real ffmpeg and generated media. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { fileSource } from '../src/sources/file-source.js';
import { imageFolderSource, listImages } from '../src/sources/image-folder-source.js';
import { FlowGate } from '../src/internal/flow-gate.js';
import { StegoError } from '../src/errors.js';
import { lavfiVideo, tempDir } from './helpers/cli.js';

/** ffmpeg processes reading `path` (a unique file name per test, so other tests' ffmpegs do not count). */
const ffmpegReading = (path: string): number => {
  try {
    return execFileSync('pgrep', ['-f', `ffmpeg.*${path}`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean).length;
  } catch {
    return 0; // pgrep exits 1 when nothing matches
  }
};

describe('fileSource', () => {
  let dir: string;
  let video: string;
  beforeAll(async () => {
    dir = await tempDir('stegostream-file-source-');
    video = join(dir, 'clip.mp4');
    lavfiVideo(video, { size: '320x240', rate: 10, seconds: 2 });
  });

  it('decodes every frame at the working size, in order, with pts from ffmpeg and the start time', async () => {
    const frames = await lastValueFrom(
      fileSource({ path: video, width: 160, height: 96, streamId: 'cam', startTime: 1_000_000 }).pipe(toArray()),
    );
    expect(frames).toHaveLength(20);
    expect(frames.map((f) => f.seq)).toEqual([...Array(20).keys()]);
    expect(frames[3]).toMatchObject({ streamId: 'cam', width: 160, height: 96, pts: expect.closeTo(0.3, 3), time: 1_000_300 });
    expect(frames[0]?.rgb.length).toBe(160 * 96 * 3);
  });

  it('keeps every n-th frame; with a gate, waits for credits (memory stays flat)', async () => {
    const gate = new FlowGate(2);
    const got: number[] = [];
    const sub = fileSource({ path: video, width: 64, height: 48, every: 4, gate }).subscribe((f) => got.push(f.seq));
    await expect.poll(() => got.length, { timeout: 20_000, interval: 50 }).toBe(2);
    // Two credits, none given back: no third frame, however long we wait (a slow machine only waits less).
    await new Promise((r) => setTimeout(r, 500));
    expect(got).toEqual([0, 1]);
    gate.release(10);
    gate.close();
    await expect.poll(() => got.length, { timeout: 20_000, interval: 50 }).toBe(5);
    expect(got).toEqual([0, 1, 2, 3, 4]);
    sub.unsubscribe();
  });

  it('stops ffmpeg when unsubscribed', async () => {
    const own = join(dir, 'stop-me.mp4');
    lavfiVideo(own, { size: '320x240', rate: 10, seconds: 20 });
    // A gate never given back: ffmpeg blocks on a full pipe, and only the unsubscribe can end it.
    const gate = new FlowGate(1);
    let got = 0;
    const sub = fileSource({ path: own, width: 64, height: 48, gate }).subscribe(() => got++);
    await expect.poll(() => got, { timeout: 20_000, interval: 50 }).toBe(1);
    expect(ffmpegReading(own)).toBeGreaterThan(0);
    sub.unsubscribe();
    await expect.poll(() => ffmpegReading(own), { timeout: 20_000, interval: 100 }).toBe(0);
  });

  it('refuses a missing, empty or folder path with a coded error at call time', () => {
    const empty = join(dir, 'empty.mp4');
    writeFileSync(empty, '');
    for (const [path, code] of [
      [join(dir, 'none.mp4'), 'E_INPUT_NOT_FOUND'],
      [empty, 'E_INPUT_EMPTY'],
      [dir, 'E_BAD_OPTION'],
    ] as const) {
      expect(() => fileSource({ path, width: 64, height: 48 })).toThrow(StegoError);
      try {
        fileSource({ path, width: 64, height: 48 });
      } catch (err) {
        expect((err as StegoError).code).toBe(code);
      }
    }
  });
});

describe('imageFolderSource', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('stegostream-image-source-');
    const images = join(dir, 'reef');
    mkdirSync(images);
    for (const [i, n] of [2, 10, 1].entries()) {
      await sharp({ create: { width: 40 + i * 8, height: 30, channels: 3, background: { r: 10 * n, g: 100, b: 200 } } })
        .png()
        .toFile(join(images, `img_${n}.png`));
    }
    writeFileSync(join(images, 'notes.txt'), 'not an image');
  });

  it('lists images in natural order, leaves other files out, and emits them resized with their names', async () => {
    const images = join(dir, 'reef');
    expect(listImages(images).map((p) => p.slice(images.length + 1))).toEqual(['img_1.png', 'img_2.png', 'img_10.png']);
    const frames = await lastValueFrom(imageFolderSource({ dir: images, width: 32, height: 16, streamId: 'reef' }).pipe(toArray()));
    expect(frames.map((f) => [f.seq, f.pts, f.sourceName?.slice(images.length + 1), f.width, f.height, f.rgb.length])).toEqual([
      [0, 0, 'img_1.png', 32, 16, 32 * 16 * 3],
      [1, 1, 'img_2.png', 32, 16, 32 * 16 * 3],
      [2, 2, 'img_10.png', 32, 16, 32 * 16 * 3],
    ]);
    // The colour survives the resize: img_10 is r=100.
    expect(frames[2]?.rgb[0]).toBe(100);
  });

  it('an image that does not decode errors the stream after the images before it, naming the file', async () => {
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } })
      .png()
      .toFile(join(bad, 'a.png'));
    writeFileSync(join(bad, 'b.png'), 'garbage');
    const seen: string[] = [];
    const err = await lastValueFrom(imageFolderSource({ dir: bad, width: 8, height: 8 }).pipe(toArray())).catch((e: unknown) => e);
    imageFolderSource({ dir: bad, width: 8, height: 8 }).subscribe({ next: (f) => seen.push(f.sourceName ?? ''), error: () => undefined });
    await new Promise((r) => setTimeout(r, 500));
    expect(seen.map((p) => p.slice(bad.length + 1))).toEqual(['a.png']);
    expect((err as StegoError).code).toBe('E_IMAGE_UNREADABLE');
    expect((err as Error).message).toContain(join(bad, 'b.png'));
  });

  it('a folder without images is a coded error', () => {
    const none = join(dir, 'none');
    mkdirSync(none);
    expect(() => imageFolderSource({ dir: none, width: 8, height: 8 })).toThrow(/holds no images/);
  });
});
