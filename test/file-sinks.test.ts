/** The file sinks on their own: stats file, masks folder, overlay video (real ffmpeg), COCO file. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { beforeAll, describe, expect, it } from 'vitest';
import { StatsFileWriter } from '../src/sinks/stats-file-writer.js';
import { MaskWriter } from '../src/sinks/mask-writer.js';
import { OverlayVideoWriter } from '../src/sinks/overlay-video-writer.js';
import { frameStats } from '../src/operators/frame-stats.js';
import { StegoError } from '../src/errors.js';
import type { Segmentation } from '../src/types.js';
import { countFrames, tempDir, videoInfo } from './helpers/cli.js';

const W = 64;
const H = 32;
function seg(seq: number, names = ['water', 'sand']): Segmentation {
  const labels = new Uint8Array(W * H);
  labels.fill(1, (W * H) / 2);
  return {
    frame: {
      streamId: 'cam',
      seq,
      pts: seq / 10,
      width: W,
      height: H,
      rgb: Buffer.alloc(W * H * 3, 90),
      capturedAt: 5,
      time: Date.UTC(2026, 0, 1) + seq * 100,
    },
    labels,
    headVersion: 2,
    classes: names.map((name, id) => ({ id, name, color: id === 0 ? [0, 0, 255] : [255, 255, 0] })),
    objects: [{ box: [8, 4, 24, 20], score: 0.5 }],
  };
}

describe('file sinks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('stegostream-file-sinks-');
  });

  it('StatsFileWriter: the CSV header at start, a row per frame, close finalises; JSON lines in snake_case with COCO boxes', async () => {
    const csv = await StatsFileWriter.open(join(dir, 's.csv'));
    csv.start(seg(0).classes);
    for (let i = 0; i < 3; i++) await csv.write(frameStats(seg(i)));
    expect(csv.written).toBe(3);
    await csv.close();
    const lines = readFileSync(join(dir, 's.csv'), 'utf8').trim().split('\n');
    expect(lines[0]).toBe('stream,seq,pts,time,file,head_version,water,sand');
    expect(lines[2]).toBe('cam,1,0.100000,2026-01-01T00:00:00.100Z,,2,0.500000,0.500000');
    const jsonl = await StatsFileWriter.open(join(dir, 's.jsonl'), { boxScale: { x: 2, y: 3 } });
    await jsonl.write(frameStats(seg(0)));
    await jsonl.close();
    const row = JSON.parse(readFileSync(join(dir, 's.jsonl'), 'utf8')) as Record<string, unknown>;
    expect(row).toMatchObject({ stream: 'cam', head_version: 2, captured_at: 5, objects: [{ bbox: [16, 12, 32, 48], score: 0.5 }] });
  });

  it('StatsFileWriter: another extension and a missing folder are coded errors', async () => {
    await expect(StatsFileWriter.open(join(dir, 's.txt'))).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
    await expect(StatsFileWriter.open(join(dir, 'no', 'such', 's.csv'))).rejects.toMatchObject({ code: 'E_OUTPUT_UNWRITABLE' });
  });

  it('MaskWriter: one indexed PNG per frame at the size asked, values the class ids, classes.json beside them', async () => {
    const masks = join(dir, 'masks');
    const w = await MaskWriter.open(masks, { size: { width: W * 2, height: H * 2 }, prefix: 'cam_' });
    await w.write(seg(0));
    await w.write(seg(1));
    expect(readdirSync(masks).sort()).toEqual(['cam_frame_000000.png', 'cam_frame_000001.png', 'classes.json']);
    const png = decode(readFileSync(join(masks, 'cam_frame_000001.png')));
    expect([png.width, png.height]).toEqual([W * 2, H * 2]);
    expect(png.data[0]).toBe(0);
    expect(png.data[png.data.length - 1]).toBe(1);
    expect(JSON.parse(readFileSync(join(masks, 'classes.json'), 'utf8'))).toEqual({
      head_version: 2,
      classes: [
        { id: 0, name: 'water', color: [0, 0, 255] },
        { id: 1, name: 'sand', color: [255, 255, 0] },
      ],
    });
    // A rename rewrites it.
    await w.write(seg(2, ['open water', 'sand']));
    expect((JSON.parse(readFileSync(join(masks, 'classes.json'), 'utf8')) as { classes: { name: string }[] }).classes[0]?.name).toBe(
      'open water',
    );
  });

  it('MaskWriter: a folder that cannot be made is a coded error', async () => {
    // Under a file: no user (root neither) can make that folder.
    const err = await MaskWriter.open(join(dir, 's.csv', 'masks')).catch((e: unknown) => e);
    expect((err as StegoError).code).toBe('E_OUTPUT_UNWRITABLE');
  });

  it('OverlayVideoWriter: the frames written, at the output size, finalised by close; none written leaves no file', async () => {
    const path = join(dir, 'o.mp4');
    const v = await OverlayVideoWriter.open({ path, width: W, height: H, fps: 10, outWidth: 128, outHeight: 64 });
    for (let i = 0; i < 5; i++) await v.write(seg(i));
    expect(v.framesWritten).toBe(5);
    await v.close();
    expect(countFrames(path)).toBe(5);
    expect(videoInfo(path)).toEqual({ width: 128, height: 64, fps: '10/1' });
    const none = join(dir, 'none.mp4');
    const n = await OverlayVideoWriter.open({ path: none, width: W, height: H, fps: 10, outWidth: 128, outHeight: 64 });
    await n.close();
    expect(readdirSync(dir)).not.toContain('none.mp4');
  });

  it('OverlayVideoWriter: a folder, a missing folder or an unknown container is refused before any work', async () => {
    const base = { width: W, height: H, fps: 10, outWidth: W, outHeight: H };
    await expect(OverlayVideoWriter.open({ ...base, path: dir })).rejects.toMatchObject({ code: 'E_OUTPUT_UNWRITABLE' });
    await expect(OverlayVideoWriter.open({ ...base, path: join(dir, 'no', 'o.mp4') })).rejects.toMatchObject({
      code: 'E_OUTPUT_UNWRITABLE',
    });
    await expect(OverlayVideoWriter.open({ ...base, path: join(dir, 'o.avi') })).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });
});
