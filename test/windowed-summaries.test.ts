import { describe, expect, it } from 'vitest';
import { WindowedSummaries } from '../src/operators/windowed-summaries.js';
import type { FrameStats, WindowSummary } from '../src/types.js';

function stats(seq: number, fractions: Record<number, number>, headVersion = 1): FrameStats {
  return {
    stream: 'cam',
    seq,
    pts: seq / 10,
    capturedAt: 0,
    headVersion,
    classes: Object.entries(fractions).map(([id, fraction]) => ({ id: Number(id), name: `c${id}`, color: [0, 0, 0], pixels: 0, fraction })),
  };
}

describe('WindowedSummaries', () => {
  it('summarises each wall-clock window once it has ended: frames, seq range, mean, min and max per class', () => {
    let now = 10_000_200;
    const out: WindowSummary[] = [];
    const w = new WindowedSummaries(
      (s) => out.push(s),
      ['1s', '10s'],
      () => now,
    );
    w.add(stats(0, { 0: 0.2, 1: 0.8 }));
    now += 300;
    w.add(stats(1, { 0: 0.4, 1: 0.6 }, 2));
    now += 300;
    w.add(stats(2, { 0: 0.6, 1: 0.4 }, 2));
    expect(out).toEqual([]);
    now = 10_001_000; // the 1 s window [10 000 000, 10 001 000) has ended
    w.flush();
    expect(out).toHaveLength(1);
    const s = out[0] as WindowSummary;
    expect(s).toMatchObject({ stream: 'cam', window: '1s', frames: 3, firstSeq: 0, lastSeq: 2, headVersion: 2 });
    expect(s.start).toBe(new Date(10_000_000).toISOString());
    expect(s.end).toBe(new Date(10_001_000).toISOString());
    expect(s.classes[0]?.mean).toBeCloseTo(0.4, 12);
    expect(s.classes[0]).toMatchObject({ id: 0, name: 'c0', min: 0.2, max: 0.6 });
    expect(s.classes[1]?.mean).toBeCloseTo(0.6, 12);
    // The 10 s window is still open; a quiet stretch emits nothing.
    now = 10_005_000;
    w.flush();
    expect(out).toHaveLength(1);
    now = 10_010_000;
    w.flush();
    expect(out.map((x) => x.window)).toEqual(['1s', '10s']);
    expect(out[1]?.frames).toBe(3);
  });

  it('a class missing from some frames counts as 0 there (class count changed mid-window)', () => {
    let now = 0;
    const out: WindowSummary[] = [];
    const w = new WindowedSummaries(
      (s) => out.push(s),
      ['1s'],
      () => now,
    );
    w.add(stats(0, { 0: 1 }));
    w.add(stats(1, { 0: 0.5, 1: 0.5 }));
    w.add(stats(2, { 0: 1 }));
    now = 1000;
    w.flush();
    const c1 = out[0]?.classes.find((c) => c.id === 1);
    // The legend is the last frame's: class 1 is gone from it.
    expect(c1).toBeUndefined();
    const c0 = out[0]?.classes.find((c) => c.id === 0);
    expect(c0?.min).toBe(0.5);
    expect(c0?.mean).toBeCloseTo(2.5 / 3, 12);
    out.length = 0;
    w.add(stats(3, { 0: 1 }));
    w.add(stats(4, { 0: 0.25, 1: 0.75 }));
    now = 2000;
    w.flush();
    expect(out[0]?.classes.find((c) => c.id === 1)).toMatchObject({ min: 0, max: 0.75, mean: 0.375 });
  });

  it('keeps streams apart', () => {
    let now = 0;
    const out: WindowSummary[] = [];
    const w = new WindowedSummaries(
      (s) => out.push(s),
      ['1s'],
      () => now,
    );
    w.add(stats(0, { 0: 1 }));
    w.add({ ...stats(0, { 0: 0 }), stream: 'other' });
    now = 1000;
    w.flush();
    expect(out.map((s) => [s.stream, s.classes[0]?.mean])).toEqual([
      ['cam', 1],
      ['other', 0],
    ]);
  });
});
