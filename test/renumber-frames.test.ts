import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { renumberFrames } from '../src/operators/renumber-frames.js';
import type { Frame } from '../src/types.js';

const frame = (seq: number, pts: number): Frame => ({ streamId: 's', seq, pts, width: 1, height: 1, rgb: Buffer.alloc(3), capturedAt: 0 });
const scheduler = (): TestScheduler => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('renumberFrames', () => {
  it('passes a stream that never restarts through with seq from 0', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const src = cold('a-b-c|', { a: frame(5, 0), b: frame(6, 0.1), c: frame(7, 0.2) });
      expectObservable(src.pipe(renumberFrames())).toBe('a-b-c|', { a: frame(0, 0), b: frame(1, 0.1), c: frame(2, 0.2) });
    });
  });

  it('continues seq and pts when the source starts over (a looping file, a reconnect)', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const src = cold('abcd|', { a: frame(0, 0), b: frame(1, 0.5), c: frame(0, 0), d: frame(1, 0.5) });
      expectObservable(src.pipe(renumberFrames())).toBe('abcd|', { a: frame(0, 0), b: frame(1, 0.5), c: frame(2, 1), d: frame(3, 1.5) });
    });
  });

  it('keeps its state per subscription', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('ab|', { a: frame(0, 0), b: frame(1, 1) });
      const renumbered = src.pipe(renumberFrames());
      expectObservable(renumbered).toBe('ab|', { a: frame(0, 0), b: frame(1, 1) });
      expectObservable(renumbered).toBe('ab|', { a: frame(0, 0), b: frame(1, 1) });
      expectSubscriptions(src.subscriptions).toBe(['^-!', '^-!']);
    });
  });
});
