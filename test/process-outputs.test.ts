/**
 * `process` with several inputs, templated outputs, dated rows, masks at input size, COCO boxes
 * and honest containers (README "Outputs for filing"): real ffmpeg, generated clips.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decode } from 'fast-png';
import { runCli, tempDir } from './helpers/cli.js';
import { writeSceneImages, writeSceneVideo } from '../src/scene/write-scene-files.js';

const FAST = ['--learn-frames', '8', '--train-steps', '5', '--classes', '4', '--no-progress'];

/** Copies a video with a creation_time tag (as cameras write it). */
function withCreationTime(src: string, dst: string, iso: string): void {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-i', src, '-c', 'copy', '-metadata', `creation_time=${iso}`, dst], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
}

function csv(path: string): { header: string[]; rows: string[][] } {
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  return { header: (lines[0] as string).split(','), rows: lines.slice(1).map((l) => l.split(',')) };
}

describe('process: several inputs, time, input-size masks, COCO boxes', () => {
  let dir: string;
  let a: string;
  let b: string;

  beforeAll(async () => {
    dir = await tempDir('stegostream-outputs-');
    const plainA = join(dir, 'plain-a.mp4');
    await writeSceneVideo(plainA, { width: 320, height: 180, seed: 3, frames: 12, fps: 10 });
    a = join(dir, 'dive_a.mp4');
    withCreationTime(plainA, a, '2026-03-14T09:30:00.000Z');
    b = join(dir, 'dive_b.mp4');
    await writeSceneVideo(b, { width: 256, height: 144, seed: 4, frames: 8, fps: 8 });
  });

  it('writes a stats file and a masks folder per input, named after it; rows carry time; masks are at the input size', async () => {
    const out = join(dir, 'per');
    const r = await runCli(['process', a, b, '--stats', join(out, '{stream}.csv'), '--masks', join(out, '{stream}/'), ...FAST]);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/dive_a: 12 frames/);
    expect(r.stdout).toMatch(/dive_b: 8 frames/);
    const sa = csv(join(out, 'dive_a.csv'));
    const sb = csv(join(out, 'dive_b.csv'));
    expect(sa.header.slice(0, 6)).toEqual(['stream', 'seq', 'pts', 'time', 'file', 'head_version']);
    expect(sa.rows).toHaveLength(12);
    expect(sb.rows).toHaveLength(8);
    expect(sa.rows.every((row) => row[0] === 'dive_a')).toBe(true);
    // The creation time plus pts, in UTC with milliseconds.
    expect(sa.rows[0]?.[3]).toBe('2026-03-14T09:30:00.000Z');
    expect(sa.rows[5]?.[3]).toBe('2026-03-14T09:30:00.500Z');
    // No creation time and no --start-time: no time to give.
    expect(sb.rows[0]?.[3]).toBe('');
    // The same head carried over: one set of class columns, the learning pass only on the first.
    expect(sb.header).toEqual(sa.header);
    const masksA = readdirSync(join(out, 'dive_a')).filter((f) => f.endsWith('.png'));
    const masksB = readdirSync(join(out, 'dive_b')).filter((f) => f.endsWith('.png'));
    expect(masksA).toHaveLength(12);
    expect(masksB).toHaveLength(8);
    const pa = decode(readFileSync(join(out, 'dive_a', masksA[0] as string)));
    const pb = decode(readFileSync(join(out, 'dive_b', masksB[0] as string)));
    expect([pa.width, pa.height]).toEqual([320, 180]);
    expect([pb.width, pb.height]).toEqual([256, 144]);
    // Each masks folder says what its values mean.
    for (const stream of ['dive_a', 'dive_b']) {
      const legend = JSON.parse(readFileSync(join(out, stream, 'classes.json'), 'utf8')) as { classes: { id: number; name: string }[] };
      expect(legend.classes.map((c) => c.id)).toEqual([0, 1, 2, 3]);
    }
  });

  it('without {stream}: one stats file with a stream column, one masks folder with prefixed names; --start-time dates the first input and the next follows on', async () => {
    const stats = join(dir, 'all.csv');
    const masks = join(dir, 'all-masks');
    const r = await runCli(['process', a, b, '--stats', stats, '--masks', masks, '--start-time', '2026-01-02T03:04:05Z', ...FAST]);
    expect(r.code).toBe(0);
    const s = csv(stats);
    expect(s.rows).toHaveLength(20);
    expect(s.rows.filter((row) => row[0] === 'dive_a')).toHaveLength(12);
    expect(s.rows.filter((row) => row[0] === 'dive_b')).toHaveLength(8);
    expect(s.rows[0]?.[3]).toBe('2026-01-02T03:04:05.000Z');
    // dive_a lasts 1.2 s: dive_b starts there.
    expect(s.rows[12]?.[0]).toBe('dive_b');
    expect(s.rows[12]?.[3]).toBe('2026-01-02T03:04:06.200Z');
    const names = readdirSync(masks).filter((f) => f.endsWith('.png'));
    expect(names.filter((n) => n.startsWith('dive_a_frame_'))).toHaveLength(12);
    expect(names.filter((n) => n.startsWith('dive_b_frame_'))).toHaveLength(8);
  });

  it('a folder of videos and a quoted glob are inputs; --masks-size working keeps the working size', async () => {
    const videos = join(dir, 'videos');
    mkdirSync(videos, { recursive: true });
    await writeSceneVideo(join(videos, 'c1.mp4'), { width: 256, height: 144, seed: 5, frames: 4, fps: 8 });
    await writeSceneVideo(join(videos, 'c2.mp4'), { width: 256, height: 144, seed: 6, frames: 4, fps: 8 });
    const out = join(dir, 'globbed');
    const r = await runCli([
      'process',
      videos,
      join(dir, 'dive_*.mp4'),
      '--stats',
      join(out, '{stream}.jsonl'),
      '--masks',
      join(out, 'm-{stream}'),
      '--masks-size',
      'working',
      ...FAST,
    ]);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(r.code).toBe(0);
    expect(
      readdirSync(out)
        .filter((f) => f.endsWith('.jsonl'))
        .sort(),
    ).toEqual(['c1.jsonl', 'c2.jsonl', 'dive_a.jsonl', 'dive_b.jsonl']);
    const row = JSON.parse(readFileSync(join(out, 'dive_a.jsonl'), 'utf8').split('\n')[0] as string) as Record<string, unknown>;
    // One key style in files: snake_case, as the CSV's columns.
    expect(Object.keys(row)).toEqual(expect.arrayContaining(['stream', 'seq', 'pts', 'time', 'captured_at', 'head_version', 'classes']));
    expect(row['headVersion']).toBeUndefined();
    const png = decode(readFileSync(join(out, 'm-dive_a', 'frame_000000.png')));
    // 320x180 at the working size: a multiple of the built-in backbone's 8-pixel patch.
    expect(png.width).toBe(320);
    expect(png.height).not.toBe(180);
    expect(png.height % 8).toBe(0);
  });

  it('image folders: rows name the file and carry the EXIF time', async () => {
    await writeSceneImages(join(dir, 'stills'), { width: 160, height: 96, seed: 2, frames: 3 });
    const images = join(dir, 'stills', 'images');
    const files = readdirSync(images).sort();
    // Give the second image an EXIF time, as a camera would.
    const second = join(images, files[1] as string);
    const dated = await sharp(second)
      .withExif({ IFD0: { DateTime: '2025:07:01 12:00:00' } })
      .jpeg()
      .toBuffer();
    writeFileSync(second.replace(/\.\w+$/, '.jpg'), dated);
    unlinkSync(second);
    const stats = join(dir, 'stills.csv');
    const r = await runCli(['process', images, '--stats', stats, ...FAST]);
    expect(r.code).toBe(0);
    const s = csv(stats);
    expect(s.rows.map((row) => row[4])).toEqual(readdirSync(images).sort());
    expect(s.rows[1]?.[3]).toBe('2025-07-01T12:00:00.000Z');
    expect(s.rows[0]?.[3]).toBe('');
  });

  it('--coco writes the object boxes in input pixels', async () => {
    const coco = join(dir, 'boxes.json');
    const r = await runCli(['process', a, '--objects', '--coco', coco, '--stats', join(dir, 'boxes.jsonl'), ...FAST]);
    expect(r.code).toBe(0);
    const c = JSON.parse(readFileSync(coco, 'utf8')) as {
      images: { id: number; width: number; height: number; stream: string; time: string }[];
      annotations: { image_id: number; bbox: number[]; category_id: number }[];
      categories: { id: number; name: string }[];
    };
    expect(c.images).toHaveLength(12);
    expect(c.images[0]).toMatchObject({ width: 320, height: 180, stream: 'dive_a', time: '2026-03-14T09:30:00.000Z' });
    expect(c.annotations).toHaveLength(12);
    expect(c.categories).toEqual([{ id: 1, name: 'object', supercategory: 'object' }]);
    for (const ann of c.annotations) {
      const [x, y, w, h] = ann.bbox as [number, number, number, number];
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x + w).toBeLessThanOrEqual(320.01);
      expect(y + h).toBeLessThanOrEqual(180.01);
      expect(w * h).toBeGreaterThan(0);
    }
    const rows = readFileSync(join(dir, 'boxes.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { objects: { bbox: number[] }[] });
    expect(rows[0]?.objects[0]?.bbox).toEqual(c.annotations[0]?.bbox);
  });

  it('containers follow the extension: .mov is QuickTime; .avi and one --out for two inputs are refused before any work', async () => {
    const mov = join(dir, 'seg.mov');
    const ok = await runCli(['process', b, '--out', mov, ...FAST]);
    expect(ok.code).toBe(0);
    const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'format=format_name', '-of', 'csv=p=0', mov], { encoding: 'utf8' });
    expect(probe.stdout).toMatch(/mov/);
    const fast = await runCli(['process', b, '--out', join(dir, 'fast.mp4'), '--out-preset', 'ultrafast', ...FAST]);
    expect(fast.code).toBe(0);
    expect(existsSync(join(dir, 'fast.mp4'))).toBe(true);
    const preset = await runCli(['process', b, '--out', join(dir, 'x.mp4'), '--out-preset', 'turbo', ...FAST]);
    expect(preset.code).not.toBe(0);
    expect(preset.stderr).toMatch(/Expected one of ultrafast, .* for --out-preset but received "turbo"/);
    const avi = await runCli(['process', b, '--out', join(dir, 'seg.avi'), ...FAST]);
    expect(avi.code).toBe(1);
    expect(avi.stderr).toMatch(/\.mp4, \.m4v, \.mov, \.mkv for --out .*seg\.avi.*\[E_BAD_OPTION\]/);
    const two = await runCli(['process', a, b, '--out', join(dir, 'one.mp4'), ...FAST]);
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/\{stream\}.*--out/);
    expect(existsSync(join(dir, 'one.mp4'))).toBe(false);
  });

  it('the summary gives wall time and, separately, segmenting time', async () => {
    const r = await runCli(['process', b, ...FAST]);
    expect(r.code).toBe(0);
    const m = /8 frames in ([\d.]+) s \(segmenting ([\d.]+) s, [\d.]+ fps\)/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(Number(m?.[2]));
  });
});
