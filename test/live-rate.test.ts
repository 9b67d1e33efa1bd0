import { describe, expect, it } from 'vitest';
import { MIN_KEPT_FPS, nextKeepEvery } from '../src/engine/live-rate.js';
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
    // Started at 6 (a busier moment): one step a window back down to 1.
    expect(settle(60, 6).slice(0, 7)).toEqual([6, 5, 4, 3, 2, 1, 1]);
  });

  it('holds its step while a feed is stalled or starting (too few frames to judge)', () => {
    expect(nextKeepEvery(4, { kept: 0, dropped: 0, seconds: 2 })).toBe(4);
    expect(nextKeepEvery(4, { kept: 3, dropped: 3, seconds: 2 })).toBe(4);
  });

  it('never leaves a feed fewer than MIN_KEPT_FPS frames a second, however slow the model', () => {
    // 1 frame a window taken of a 30 fps feed would ask for 1 in 48: 1 in 10 keeps 3 fps.
    expect(settle(1).at(-1)).toBe(Math.floor(30 / MIN_KEPT_FPS));
    // A 15 fps feed: 1 in 5.
    let k = 1;
    for (let i = 0; i < 6; i++) k = nextKeepEvery(k, window(k, 30, 1));
    expect(k).toBe(5);
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
