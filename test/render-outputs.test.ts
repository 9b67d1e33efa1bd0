import { decode } from 'fast-png';
import sharp from 'sharp';
import { firstValueFrom, from, lastValueFrom, Subject, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { renderOutputs } from '../src/operators/render-outputs.js';
import type { ClassInfo, RenderedFrame, Segmentation } from '../src/types.js';

const classes: ClassInfo[] = [
  { id: 0, name: 'water', color: [0, 0, 255] },
  { id: 1, name: 'sand', color: [255, 255, 0] },
];

/** A 16x8 frame, left half class 0, right half class 1. */
function segmentation(stream: string, seq: number, width = 16, height = 8): Segmentation {
  const labels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = width / 2; x < width; x++) labels[y * width + x] = 1;
  return {
    frame: { streamId: stream, seq, pts: seq / 10, width, height, rgb: Buffer.alloc(width * height * 3, 128), capturedAt: 1000 + seq },
    labels,
    headVersion: 3,
    classes,
  };
}

describe('renderOutputs', () => {
  it('makes the stats record and header of every frame, and PNG and JPEG only when wanted', async () => {
    const out = await lastValueFrom(
      from([segmentation('a', 0), segmentation('b', 1)]).pipe(
        renderOutputs({ png: (seg) => seg.frame.streamId === 'a', jpeg: (stream) => stream === 'b' }),
        toArray(),
      ),
    );
    expect(out).toHaveLength(2);
    const [a, b] = out as [RenderedFrame, RenderedFrame];
    expect(a.stats).toMatchObject({ stream: 'a', seq: 0, headVersion: 3 });
    expect(a.stats.classes.map((c) => c.fraction)).toEqual([0.5, 0.5]);
    expect(a.meta).toEqual({ seq: 0, pts: 0, headVersion: 3, width: 16, height: 8 });
    expect(a.jpeg).toBeUndefined();
    expect(b.png).toBeUndefined();
    // The PNG's pixel values are the class ids; its palette the class colours.
    const png = decode(a.png as Buffer);
    expect([png.width, png.height]).toEqual([16, 8]);
    expect(png.data[0]).toBe(0);
    expect(png.data[15]).toBe(1);
    expect(png.palette?.[1]).toEqual([255, 255, 0]);
    const jpeg = await (b.jpeg as Promise<{ data: Buffer; meta: { width: number } }>);
    const meta = await sharp(jpeg.data).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 16, 8]);
  });

  it('scales overlays wider than maxWidth down and says so in the header', async () => {
    const r = await firstValueFrom(
      from([segmentation('a', 0, 64, 32)]).pipe(renderOutputs({ png: () => false, jpeg: () => true, maxWidth: 32 })),
    );
    const img = await (r.jpeg as Promise<{ data: Buffer; meta: { width: number; height: number } }>);
    expect(img.meta).toMatchObject({ width: 32, height: 16 });
    expect((await sharp(img.data).metadata()).width).toBe(32);
  });

  it("with whileEncoding 'skip', a stream whose JPEG is still encoding gets none for its next frames; other streams still do", async () => {
    const input = new Subject<Segmentation>();
    const got: RenderedFrame[] = [];
    const sub = input.pipe(renderOutputs({ png: () => false, jpeg: () => true, whileEncoding: 'skip' })).subscribe((r) => got.push(r));
    // Synchronous: the first JPEG of `a` cannot have finished before the next frames arrive.
    input.next(segmentation('a', 0));
    input.next(segmentation('a', 1));
    input.next(segmentation('b', 0));
    expect(got.map((r) => r.jpeg !== undefined)).toEqual([true, false, true]);
    await got[0]?.jpeg;
    input.next(segmentation('a', 2));
    expect(got[3]?.jpeg).toBeDefined();
    sub.unsubscribe();
  });

  it("with whileEncoding 'all' (the default) every frame gets its JPEG", async () => {
    const out = await lastValueFrom(
      from([segmentation('a', 0), segmentation('a', 1), segmentation('a', 2)]).pipe(
        renderOutputs({ png: () => false, jpeg: () => true }),
        toArray(),
      ),
    );
    expect(out.every((r) => r.jpeg !== undefined)).toBe(true);
    await Promise.all(out.map((r) => r.jpeg));
  });
});
