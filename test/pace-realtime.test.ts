import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Subject } from 'rxjs';
import { paceRealtime } from '../src/operators/pace-realtime.js';
import type { Frame } from '../src/types.js';

const frame = (seq: number, pts: number): Frame => ({ streamId: 's', seq, pts, width: 1, height: 1, rgb: Buffer.alloc(3), capturedAt: 0 });

describe('paceRealtime', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  it('emits each frame at its pts after the first, by the clock, stamping capturedAt on the way out', () => {
    const src = new Subject<Frame>();
    const out: Array<{ seq: number; at: number; capturedAt: number }> = [];
    const t0 = Date.now();
    src.pipe(paceRealtime()).subscribe((f) => out.push({ seq: f.seq, at: Date.now() - t0, capturedAt: f.capturedAt - t0 }));
    src.next(frame(0, 10));
    src.next(frame(1, 10.5));
    src.next(frame(2, 11));
    expect(out.map((o) => o.seq)).toEqual([0]);
    vi.advanceTimersByTime(499);
    expect(out).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(out.map((o) => o.seq)).toEqual([0, 1]);
    vi.advanceTimersByTime(500);
    expect(out).toEqual([
      { seq: 0, at: 0, capturedAt: 0 },
      { seq: 1, at: 500, capturedAt: 500 },
      { seq: 2, at: 1000, capturedAt: 1000 },
    ]);
  });

  it('passes a frame that is already late at once, and starts its clock per subscription', () => {
    const src = new Subject<Frame>();
    const paced = src.pipe(paceRealtime());
    const first: number[] = [];
    const sub = paced.subscribe((f) => first.push(f.seq));
    src.next(frame(0, 0));
    vi.advanceTimersByTime(3000);
    src.next(frame(1, 1));
    expect(first).toEqual([0, 1]);
    sub.unsubscribe();
    const second: number[] = [];
    paced.subscribe((f) => second.push(f.seq));
    src.next(frame(5, 100));
    src.next(frame(6, 100.25));
    expect(second).toEqual([5]);
    vi.advanceTimersByTime(250);
    expect(second).toEqual([5, 6]);
  });

  it('unsubscribing drops a frame waiting for its time', () => {
    const src = new Subject<Frame>();
    const got: number[] = [];
    const sub = src.pipe(paceRealtime()).subscribe((f) => got.push(f.seq));
    src.next(frame(0, 0));
    src.next(frame(1, 1));
    sub.unsubscribe();
    vi.advanceTimersByTime(2000);
    expect(got).toEqual([0]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
