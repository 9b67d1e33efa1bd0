import { describe, expect, it, beforeAll } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decode } from 'fast-png';
import { runCli, tempDir } from './helpers/cli.js';
import { writeSceneImages } from '../src/scene/write-scene-files.js';
import { SCENE_CLASSES } from '../src/scene/scene-classes.js';

const FAST = ['--learn-frames', '6', '--train-steps', '5', '--classes', '5'];

interface EvalJson {
  mIoU: number;
  pixelAccuracy: number;
  images: number;
  perClass: { id: number; name: string; iou: number | null; cluster: number }[];
}

describe('stegostream eval', () => {
  let dir: string;
  let images: string;
  let masks: string;

  beforeAll(async () => {
    dir = await tempDir();
    const out = await writeSceneImages(join(dir, 'scene'), { width: 320, height: 192, seed: 3, frames: 6 });
    images = join(dir, 'scene', 'images');
    masks = join(dir, 'scene', 'masks');
    expect(out.images.length).toBe(6);
  });

  it('segments the images and scores them against grey masks', async () => {
    const r = await runCli(['eval', images, masks, '--json', ...FAST]);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as EvalJson;
    expect(res.images).toBe(6);
    expect(res.perClass.length).toBe(5);
    // Better than chance by far on the easy scene (five classes, water alone is ~40% of pixels).
    expect(res.pixelAccuracy).toBeGreaterThan(0.5);
    expect(res.mIoU).toBeGreaterThan(0.25);
    expect(res.mIoU).toBeLessThanOrEqual(1);
  });

  it('scores existing predictions with --pred; perfect predictions score 1', async () => {
    // The ground truth itself, written as indexed PNG predictions with permuted ids, must score 1.
    const pred = join(dir, 'pred');
    mkdirSync(pred);
    const perm = [3, 0, 4, 1, 2];
    for (const f of readdirSync(masks)) {
      const png = decode(readFileSync(join(masks, f)));
      const data = Uint8Array.from(png.data as Uint8Array, (v) => perm[v] as number);
      await sharp(Buffer.from(data), { raw: { width: png.width, height: png.height, channels: 1 } })
        .toColourspace('b-w')
        .png()
        .toFile(join(pred, f));
    }
    const r = await runCli(['eval', images, masks, '--pred', pred, '--json']);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as EvalJson;
    expect(res.mIoU).toBeCloseTo(1, 6);
    expect(res.pixelAccuracy).toBeCloseTo(1, 6);
    expect(res.perClass.map((c) => c.cluster)).toEqual(perm);
    const table = await runCli(['eval', images, masks, '--pred', pred]);
    expect(table.stdout).toMatch(/mIoU: 100\.0%/);
  });

  it('reads RGB-coded masks with a palette file, or --palette auto', async () => {
    const rgbMasks = join(dir, 'rgb-masks');
    mkdirSync(rgbMasks);
    for (const f of readdirSync(masks)) {
      const png = decode(readFileSync(join(masks, f)));
      const rgb = Buffer.alloc(png.width * png.height * 3);
      (png.data as Uint8Array).forEach((v, i) => rgb.set(SCENE_CLASSES[v]!.color, i * 3));
      await sharp(rgb, { raw: { width: png.width, height: png.height, channels: 3 } })
        .png()
        .toFile(join(rgbMasks, f));
    }
    const palette = join(dir, 'palette.json');
    writeFileSync(palette, JSON.stringify(SCENE_CLASSES.map((c) => c.color)));
    const pred = join(dir, 'pred');
    const a = await runCli(['eval', images, rgbMasks, '--pred', pred, '--palette', palette, '--json']);
    expect(a.code).toBe(0);
    expect((JSON.parse(a.stdout) as EvalJson).mIoU).toBeCloseTo(1, 6);
    const b = await runCli(['eval', images, rgbMasks, '--pred', pred, '--palette', 'auto', '--json']);
    expect(b.code).toBe(0);
    expect((JSON.parse(b.stdout) as EvalJson).mIoU).toBeCloseTo(1, 6);
    const c = await runCli(['eval', images, rgbMasks, '--pred', pred]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('is colour-coded: give --palette FILE (colour to class id) or --palette auto');
  });

  it('names the image whose mask is missing', async () => {
    const few = join(dir, 'few-masks');
    mkdirSync(few);
    for (const f of readdirSync(masks)) writeFileSync(join(few, f), readFileSync(join(masks, f)));
    unlinkSync(join(few, 'frame_0002.png'));
    const r = await runCli(['eval', images, few, '--pred', join(dir, 'pred')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `Cannot evaluate: no ground-truth mask for image "frame_0002.png" in "${few}" (expected frame_0002.png) [E_EVAL_INPUT]`,
    );
  });
});

describe('stegostream demo', () => {
  it('renders the scene, segments it and scores it against the ground truth', async () => {
    const dir = await tempDir();
    const r = await runCli(['demo', '--frames', '12', '--out-dir', join(dir, 'demo'), ...FAST]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/against the scene's ground truth: mIoU \d+\.\d%, pixel accuracy \d+\.\d%/);
    expect(readdirSync(join(dir, 'demo')).sort()).toEqual(['dive.mp4', 'masks', 'segmented.mp4', 'stats.csv']);
  });
});
