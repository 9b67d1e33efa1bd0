import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { findObjects, type ObjectBoxer } from '../src/operators/find-objects.js';
import { ObjectFinder } from '../src/objects/object-finder.js';
import type { Segmentation } from '../src/types.js';

function segmentation(seq: number, withEmbedding: boolean): Segmentation {
  const gridH = 4;
  const gridW = 4;
  const dim = 3;
  // A bright 2x2 block of patches (one object) on a background of another direction.
  const tokens = new Float32Array(gridH * gridW * dim);
  for (let i = 0; i < gridH * gridW; i++) {
    const inside = Math.floor(i / gridW) >= 1 && Math.floor(i / gridW) <= 2 && i % gridW >= 1 && i % gridW <= 2;
    tokens.set(inside ? [1, 0.1, 0] : [-0.2, 1, 0.3], i * dim);
  }
  const frame = { streamId: 's', seq, pts: seq, width: 32, height: 32, rgb: Buffer.alloc(32 * 32 * 3), capturedAt: 0 };
  return {
    frame,
    labels: new Uint8Array(32 * 32),
    headVersion: 1,
    classes: [],
    ...(withEmbedding ? { embedding: { frame, gridH, gridW, dim, patchTokens: tokens, clsToken: new Float32Array(dim) } } : {}),
  };
}

describe('findObjects', () => {
  it('passes segmentations through unchanged without a finder', async () => {
    const segs = [segmentation(0, true), segmentation(1, true)];
    const out = await lastValueFrom(from(segs).pipe(findObjects(undefined), toArray()));
    expect(out).toEqual(segs);
  });

  it('adds a box to each segmentation, in order, one at a time', async () => {
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const slow: ObjectBoxer = {
      async addOne(seg) {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 5 - seg.frame.seq));
        running--;
        order.push(seg.frame.seq);
        return { ...seg, objects: [{ box: [0, 0, 1, 1], score: 1 }] };
      },
    };
    const out = await lastValueFrom(from([0, 1, 2, 3].map((i) => segmentation(i, true))).pipe(findObjects(slow), toArray()));
    expect(out.map((s) => s.frame.seq)).toEqual([0, 1, 2, 3]);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(most).toBe(1);
    expect(out.every((s) => s.objects?.length === 1)).toBe(true);
  });

  it('with the ONNX ObjectFinder boxes the distinct block of patches; a segmentation without features is left alone', async () => {
    const finder = await ObjectFinder.create(8, { threads: 1 });
    try {
      const [a, b] = await lastValueFrom(from([segmentation(0, true), segmentation(1, false)]).pipe(findObjects(finder), toArray()));
      expect(a?.objects?.[0]?.box).toEqual([8, 8, 24, 24]);
      expect(b?.objects).toBeUndefined();
    } finally {
      await finder.close();
    }
  });
});
