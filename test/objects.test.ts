import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addObjects, ObjectFinder } from '../src/objects/object-finder.js';
import { lostBox, lostDegrees } from '../src/objects/lost.js';
import type { Segmentation } from '../src/types.js';
import { runCli, tempDir } from './helpers/cli.js';

/**
 * LOST object boxes in the pipeline: ObjectFinder (degrees in ONNX Runtime) agrees with the JS
 * operator, and `process --objects` boxes the one distinct object of a generated video, in the
 * statistics and on the overlay.
 */

type Box = readonly [number, number, number, number];

function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const area = (r: Box): number => (r[2] - r[0]) * (r[3] - r[1]);
  return inter / (area(a) + area(b) - inter);
}

/** mulberry32: seeded, so failures reproduce. */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A segmentation carrying only what LOST reads: the embedding's keys and grid. */
function segWithKeys(keys: Float32Array, gridH: number, gridW: number, dim: number): Segmentation {
  const frame = { streamId: 's', seq: 0, pts: 0, width: gridW * 8, height: gridH * 8, rgb: Buffer.alloc(0), capturedAt: 0 };
  return {
    frame,
    labels: new Uint8Array(0),
    headVersion: 1,
    classes: [],
    embedding: { frame, gridH, gridW, dim, patchTokens: keys, clsToken: new Float32Array(dim), keys },
  };
}

describe('ObjectFinder (LOST degrees in ONNX Runtime)', () => {
  let finder: ObjectFinder;
  beforeAll(async () => {
    finder = await ObjectFinder.create(8, { threads: 1 });
  });
  afterAll(async () => {
    await finder.close();
    await finder.close(); // idempotent
  });

  it('gives the boxes, scores and degrees of the JS operator, also on keys that are views into a batch', async () => {
    const [gridH, gridW, dim] = [12, 20, 24];
    const n = gridH * gridW;
    const rand = uniform(5);
    // Background keys around one direction, an object block around another, plus noise.
    const batch = new Float32Array(3 * n * dim);
    for (let b = 0; b < 3; b++) {
      for (let p = 0; p < n; p++) {
        const y = Math.floor(p / gridW);
        const x = p % gridW;
        const inside = y >= 2 + b && y < 7 + b && x >= 4 + 3 * b && x < 10 + 3 * b;
        for (let c = 0; c < dim; c++) {
          const base = c === 0 ? (inside ? -0.7 : 1) : c === 1 && inside ? 1 : 0;
          batch[(b * n + p) * dim + c] = base + 0.35 * (rand() - 0.5);
        }
      }
    }
    const segs = [0, 1, 2].map((b) => segWithKeys(batch.subarray(b * n * dim, (b + 1) * n * dim), gridH, gridW, dim));
    const viaOrt = await finder.add(segs);
    const viaJs = segs.map(addObjects(8));
    expect(viaOrt.map((s) => s.objects)).toEqual(viaJs.map((s) => s.objects));
    expect(viaOrt[1]?.objects?.[0]?.box).toEqual([56, 24, 104, 64]);
    // The degrees ORT's float32 GEMM gives, fed back to the operator, reproduce the JS result.
    const keys = batch.subarray(n * dim, 2 * n * dim);
    expect(lostBox(keys, gridH, gridW, dim, 8, { degree: lostDegrees(keys, n, dim) }).box).toEqual([56, 24, 104, 64]);
  });

  it('passes segmentations without an embedding through, and refuses degrees that do not fit', async () => {
    const seg = segWithKeys(new Float32Array(4 * 2), 2, 2, 2);
    const { embedding: _e, ...bare } = seg;
    expect(await finder.add([bare])).toEqual([bare]);
    expect(() => lostBox(new Float32Array(8), 2, 2, 2, 8, { degree: [0, 1, 2] })).toThrow(
      'Expected gridH*gridW = 4 values for opts.degree but received 3 of type number',
    );
    expect(() => lostBox(new Float32Array(8), 2, 2, 2, 8, { degree: [0, 1, 2, 4] })).toThrow(
      'Expected an integer in [0, 3] for opts.degree[3] but received 4 of type number',
    );
  });
});

const W = 448;
const H = 256;
const FRAMES = 30;
const FPS = 10;

/**
 * A uniform blue-green noise texture with one bright orange ellipse crossing it; returns the
 * ellipse's true box per frame (pixels, x1/y1 exclusive).
 */
async function writeBlobVideo(path: string): Promise<Box[]> {
  const rand = uniform(3);
  const background = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H; i++) {
    const v = rand();
    background[i * 3] = 20 + 30 * v;
    background[i * 3 + 1] = 60 + 50 * v;
    background[i * 3 + 2] = 90 + 60 * v;
  }
  const input = ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${W}x${H}`, '-r', String(FPS), '-i', 'pipe:0'];
  const output = ['-c:v', 'libx264', '-crf', '18', '-pix_fmt', 'yuv420p', path];
  const ff = spawn('ffmpeg', ['-v', 'error', '-y', ...input, ...output], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  ff.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const boxes: Box[] = [];
  const [rx, ry] = [38, 28];
  for (let f = 0; f < FRAMES; f++) {
    const cx = Math.round(40 + rx + (f * (W - 2 * rx - 80)) / (FRAMES - 1));
    const cy = Math.round(H / 2 + 50 * Math.sin(f / 5));
    const frame = Buffer.from(background);
    for (let y = cy - ry; y < cy + ry; y++) {
      for (let x = cx - rx; x < cx + rx; x++) {
        if (((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2 <= 1) frame.set([250, 170, 40], (y * W + x) * 3);
      }
    }
    boxes.push([cx - rx, cy - ry, cx + rx, cy + ry]);
    if (!ff.stdin.write(frame)) await once(ff.stdin, 'drain');
  }
  ff.stdin.end();
  const [code] = (await once(ff, 'close')) as [number | null];
  if (code !== 0) throw new Error(`ffmpeg failed: ${stderr}`);
  return boxes;
}

describe('stegostream process --objects', () => {
  let dir: string;
  let video: string;
  let truth: Box[];

  beforeAll(async () => {
    dir = await tempDir('stegostream-objects-');
    video = join(dir, 'blob.mp4');
    truth = await writeBlobVideo(video);
  });

  it('boxes the one distinct object (IoU >= 0.5 on >= 70% of frames) in the stats and outlines it on the overlay', async () => {
    const stats = join(dir, 's.jsonl');
    const out = join(dir, 'o.mp4');
    const fast = ['--learn-frames', '8', '--learn-steps', '5', '--train-steps', '5', '--no-progress'];
    const r = await runCli(['process', video, '--objects', '--stats', stats, '--out', out, ...fast]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = readFileSync(stats, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; objects: { bbox: [number, number, number, number]; score: number }[] })
      // Stats files give COCO boxes [x, y, width, height] in input pixels (= working pixels here).
      .map((row) => ({
        ...row,
        objects: row.objects.map((o) => ({
          box: [o.bbox[0], o.bbox[1], o.bbox[0] + o.bbox[2], o.bbox[1] + o.bbox[3]] as Box,
          score: o.score,
        })),
      }));
    expect(rows.length).toBe(FRAMES);
    const ious = rows.map((row) => iou(row.objects[0]?.box as Box, truth[row.seq] as Box));
    const good = ious.filter((v) => v >= 0.5).length;
    expect(good / FRAMES, `IoU per frame: ${ious.map((v) => v.toFixed(2)).join(' ')}`).toBeGreaterThanOrEqual(0.7);
    for (const row of rows) {
      expect(row.objects.length).toBe(1);
      expect(row.objects[0]?.score).toBeGreaterThan(0.5);
    }

    // The overlay (input size = working size here) has the white outline on the box edges and
    // not 10 px outside them.
    const decoded = spawnSync('ffmpeg', ['-v', 'error', '-i', out, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
      maxBuffer: 1 << 28,
    });
    expect(decoded.status).toBe(0);
    const pixels = decoded.stdout;
    expect(pixels.length).toBe(FRAMES * W * H * 3);
    const white = (f: number, x: number, y: number): boolean => {
      const i = (f * W * H + y * W + x) * 3;
      return Math.min(pixels[i] as number, pixels[i + 1] as number, pixels[i + 2] as number) > 200;
    };
    for (const row of rows) {
      const [x0, y0, x1, y1] = row.objects[0]?.box as Box;
      const edge: boolean[] = [];
      const outside: boolean[] = [];
      for (let x = x0 + 2; x < x1 - 2; x += 3) {
        edge.push(white(row.seq, x, y0), white(row.seq, x, y1 - 1));
        if (y0 >= 10) outside.push(white(row.seq, x, y0 - 10));
        if (y1 + 9 < H) outside.push(white(row.seq, x, y1 + 9));
      }
      for (let y = y0 + 2; y < y1 - 2; y += 3) edge.push(white(row.seq, x0, y), white(row.seq, x1 - 1, y));
      expect(edge.filter(Boolean).length / edge.length, `frame ${row.seq} box ${row.objects[0]?.box.join(',')}`).toBeGreaterThan(0.9);
      expect(outside.filter(Boolean).length).toBe(0);
    }
  });
});
