import { describe, expect, it } from 'vitest';
import { countLabels, frameStats } from '../src/operators/frame-stats.js';
import type { Segmentation } from '../src/types.js';

describe('frameStats', () => {
  const seg: Segmentation = {
    frame: {
      streamId: 'cam',
      seq: 4,
      pts: 0.4,
      width: 4,
      height: 2,
      rgb: Buffer.alloc(24),
      capturedAt: 99,
      sourceName: '/x/reef_01.jpg',
      time: Date.UTC(2026, 2, 14, 9, 30),
    },
    labels: Uint8Array.from([0, 0, 1, 1, 1, 2, 2, 9]),
    headVersion: 3,
    classes: [
      { id: 0, name: 'water', color: [0, 0, 255] },
      { id: 1, name: 'sand', color: [255, 255, 0] },
      { id: 2, name: 'rock', color: [90, 90, 90] },
    ],
    objects: [{ box: [0, 0, 2, 2], score: 0.5 }],
  };

  it('counts each class, ignoring ids beyond the legend', () => {
    expect([...countLabels(seg.labels, 3)]).toEqual([2, 3, 2]);
  });

  it('counts the same at any offset and length (four bytes at a time where aligned, one by one elsewhere)', () => {
    const bytes = Uint8Array.from({ length: 4099 }, (_, i) => (i * 7 + (i >> 5)) % 9);
    const naive = (labels: Uint8Array, k: number): number[] => {
      const out = new Array<number>(k).fill(0);
      for (const id of labels) if (id < k) out[id] = (out[id] as number) + 1;
      return out;
    };
    for (const [from, to] of [
      [0, 4096],
      [1, 4099],
      [4, 4097],
      [3, 6],
    ] as const) {
      const labels = bytes.subarray(from, to);
      expect([...countLabels(labels, 6)], `bytes ${from}-${to}`).toEqual(naive(labels, 6));
    }
    expect([...countLabels(new Uint8Array(0), 0)]).toEqual([0]);
  });

  it('builds the record of DESIGN.md: fractions of all pixels, time in ISO, the file name, objects', () => {
    const s = frameStats(seg);
    expect(s).toMatchObject({
      stream: 'cam',
      seq: 4,
      pts: 0.4,
      capturedAt: 99,
      headVersion: 3,
      time: '2026-03-14T09:30:00.000Z',
      file: 'reef_01.jpg',
    });
    expect(s.classes.map((c) => [c.name, c.pixels, c.fraction])).toEqual([
      ['water', 2, 0.25],
      ['sand', 3, 0.375],
      ['rock', 2, 0.25],
    ]);
    expect(s.objects).toEqual(seg.objects);
  });

  it('leaves out time, file and objects when the frame has none', () => {
    const { sourceName: _s, time: _t, ...frame } = seg.frame;
    const { objects: _o, ...rest } = seg;
    const s = frameStats({ ...rest, frame });
    expect(Object.keys(s)).not.toContain('time');
    expect(Object.keys(s)).not.toContain('file');
    expect(Object.keys(s)).not.toContain('objects');
  });
});
