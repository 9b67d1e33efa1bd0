import { afterEach, describe, expect, it, vi } from 'vitest';
import { MIN_KEPT_FPS, liveRateControl, nextKeepEvery } from '../src/engine/live-rate.js';
import type { StageCounters } from '../src/types.js';
import { KeepEvery, keepExpression, keepFilter } from '../src/sources/keep-every.js';

/**
 * The live rate control's decision (live-rate.ts), fed the windows a model that takes a fixed
 * rate would produce: a 30 fps feed, 2 s windows, a queue that drops what the model does not take.
 */
function window(k: number, decodedPerWindow: number, takenPerWindow: number): { kept: number; dropped: number; seconds: number } {
  const kept = Math.floor(decodedPerWindow / k);
  return { kept, dropped: Math.max(0, kept - takenPerWindow), seconds: 2 };
}

function settle(taken: number, start = 1): number[] {
  const steps = [start];
  for (let i = 0; i < 12; i++) steps.push(nextKeepEvery(steps.at(-1)!, window(steps.at(-1)!, 60, taken)));
  return steps;
}

describe('live rate control', () => {
  it('settles where the feed keeps about 1.25x what the model takes, and stays there', () => {
    // The model takes 7.5 fps of a 30 fps feed (15 frames a window): keep 1 in 3 (10 fps).
    const steps = settle(15);
    expect(steps.at(-1)).toBe(3);
    expect(new Set(steps.slice(-6))).toEqual(new Set([3]));
    // 3 fps of 30: 1 in 8 (3.75 fps).
    expect(settle(6).at(-1)).toBe(8);
  });

  it('keeps every frame of a feed the model keeps up with, and comes back to it when the model frees up', () => {
    expect(settle(60)).toEqual(new Array<number>(13).fill(1));
    // Started at 6 (a busier moment): about 1.6x the kept rate a window back up to every frame.
    expect(settle(60, 6).slice(0, 5)).toEqual([6, 4, 2, 1, 1]);
    // From the largest step (a 30 fps feed at 2 fps) in five windows, not fourteen.
    expect(settle(60, KeepEvery.MAX).slice(0, 6)).toEqual([15, 9, 5, 3, 2, 1]);
  });

  it('holds its step while a feed is stalled or starting (too few frames to judge)', () => {
    expect(nextKeepEvery(4, { kept: 0, dropped: 0, seconds: 2 })).toBe(4);
    expect(nextKeepEvery(4, { kept: 3, dropped: 3, seconds: 2 })).toBe(4);
  });

  it('at most halves the kept rate in one window, and takes a drop or two as keeping up', () => {
    // The model's first batches (2 frames of 60 taken) would ask for 1 in 10 at once; one window
    // of them moves to 1 in 2, and the next, with the model up to speed, back to every frame.
    expect(nextKeepEvery(1, window(1, 60, 2))).toBe(2);
    expect(nextKeepEvery(2, window(2, 60, 30))).toBe(1);
    // A slow model is still followed, a doubling a window: 7.5 fps of 30 reaches 1 in 3.
    expect(settle(15).slice(0, 4)).toEqual([1, 2, 3, 3]);
    // 2 of 30 kept frames dropped: the step still comes down; 5 of 30 holds it.
    expect(nextKeepEvery(4, { kept: 30, dropped: 2, seconds: 2 })).toBe(2);
    expect(nextKeepEvery(4, { kept: 30, dropped: 5, seconds: 2 })).toBe(4);
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("judges a stream from its second window with frames: the first holds its start's slow batches", () => {
    vi.useFakeTimers();
    const keep = new KeepEvery();
    const counters = new Map<string, StageCounters>([['cam1', { received: 0, processed: 0, dropped: 0 }]]);
    const stop = liveRateControl([{ name: 'cam1', keepEvery: keep }], counters, 2000);
    try {
      const window = (received: number, dropped: number): void => {
        const c = counters.get('cam1')!;
        counters.set('cam1', {
          received: c.received + received,
          processed: c.processed + received - dropped,
          dropped: c.dropped + dropped,
        });
        vi.advanceTimersByTime(2000);
      };
      window(0, 0); // nothing yet (ffmpeg probing)
      window(60, 55); // the first frames, the model warming up: not judged
      expect(keep.value).toBe(1);
      window(60, 40); // the model takes 20 of 60: 1 in 2
      expect(keep.value).toBe(2);
      window(30, 0); // and then all: every frame again
      expect(keep.value).toBe(1);
    } finally {
      stop();
    }
  });

  it('never leaves a feed fewer than MIN_KEPT_FPS frames a second, however slow the model', () => {
    // 1 frame a window taken of a 30 fps feed would ask for 1 in 48: 1 in 10 keeps 3 fps. Reached
    // by doublings, the step can stop one short of it (its count of decoded frames is k x kept).
    const slow = settle(1).at(-1)!;
    expect(30 / slow).toBeGreaterThanOrEqual(MIN_KEPT_FPS);
    expect(slow).toBeGreaterThanOrEqual(Math.floor(30 / MIN_KEPT_FPS) - 1);
    // A 15 fps feed: 1 in 5 at most.
    let k = 1;
    for (let i = 0; i < 6; i++) k = nextKeepEvery(k, window(k, 30, 1));
    expect(15 / k).toBeGreaterThanOrEqual(MIN_KEPT_FPS);
    expect(k).toBeGreaterThanOrEqual(4);
  });

  it('clamps the step and tells listeners only of changes', () => {
    const keep = new KeepEvery();
    const heard: number[] = [];
    keep.onChange((k) => heard.push(k));
    keep.set(3);
    keep.set(3);
    keep.set(100);
    keep.set(0);
    keep.set(Number.NaN);
    expect(heard).toEqual([3, KeepEvery.MAX, 1]);
    expect(keepExpression(1)).toBe('0');
    expect(keepExpression(4)).toBe('mod(n,4)');
    // In a -vf chain the expression's comma is escaped.
    expect(keepFilter(4)).toBe('framestep@keep=step=1073741824:enable=mod(n\\,4)');
  });
});
