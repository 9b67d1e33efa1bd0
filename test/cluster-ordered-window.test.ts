import { describe, expect, it } from 'vitest';
import { OrderedWindow } from '../src/cluster/ordered-window.js';

describe('OrderedWindow', () => {
  it('releases in seq order and drops duplicates', () => {
    const w = new OrderedWindow<string>();
    expect(w.push(1, 'b').items).toEqual([]);
    expect(w.push(1, 'b again').items).toEqual([]);
    expect(w.push(0, 'a').items).toEqual(['a', 'b']);
    expect(w.push(0, 'a again').items).toEqual([]);
    expect(w.push(2, 'c').items).toEqual(['c']);
    expect(w.duplicates).toBe(2);
    expect(w.next).toBe(3);
  });

  it('gives up a missing seq when the window overflows', () => {
    const w = new OrderedWindow<number>({ window: 2 });
    w.push(1, 1);
    w.push(2, 2);
    const r = w.push(3, 3);
    expect(r.gaps).toEqual([[0, 0]]);
    expect(r.items).toEqual([1, 2, 3]);
    expect(w.lost).toBe(1);
    expect(w.push(0, 0).items).toEqual([]);
    expect(w.duplicates).toBe(1);
  });

  it('gives up a missing seq after the gap timeout, and drains at the end', () => {
    let now = 0;
    const w = new OrderedWindow<number>({ gapTimeoutMs: 100, now: () => now });
    w.push(2, 2);
    now = 50;
    expect(w.expire().items).toEqual([]);
    now = 100;
    const r = w.expire();
    expect(r.gaps).toEqual([[0, 1]]);
    expect(r.items).toEqual([2]);
    w.push(5, 5);
    w.push(4, 4);
    expect(w.drain()).toEqual({ items: [4, 5], gaps: [[3, 3]] });
  });
});
