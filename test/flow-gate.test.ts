import { describe, expect, it } from 'vitest';
import { FlowGate } from '../src/internal/flow-gate.js';

/** Resolves to whether `p` settled within the current macrotask turn. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('FlowGate', () => {
  it('gives credits up to its limit, then makes acquirers wait for a release, in order', async () => {
    const gate = new FlowGate(2);
    expect(await settled(gate.acquire())).toBe(true);
    expect(await settled(gate.acquire())).toBe(true);
    expect(gate.pending).toBe(2);
    const order: number[] = [];
    const third = gate.acquire().then(() => order.push(3));
    const fourth = gate.acquire().then(() => order.push(4));
    expect(await settled(third)).toBe(false);
    gate.release();
    await third;
    expect(order).toEqual([3]);
    expect(await settled(fourth)).toBe(false);
    gate.release();
    await fourth;
    expect(order).toEqual([3, 4]);
    expect(gate.pending).toBe(2);
  });

  it('release(n) frees several credits; pending never goes below 0', async () => {
    const gate = new FlowGate(3);
    for (let i = 0; i < 3; i++) await gate.acquire();
    const waiting = [gate.acquire(), gate.acquire()];
    gate.release(2);
    await Promise.all(waiting);
    expect(gate.pending).toBe(3);
    gate.release(10);
    expect(gate.pending).toBe(0);
  });

  it('close() lets every waiter through and every later acquire at once', async () => {
    const gate = new FlowGate(1);
    await gate.acquire();
    const waiting = [gate.acquire(), gate.acquire()];
    gate.close();
    expect(await settled(Promise.all(waiting))).toBe(true);
    expect(await settled(gate.acquire())).toBe(true);
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new FlowGate(0)).toThrow(RangeError);
    expect(() => new FlowGate(1.5)).toThrow('FlowGate limit must be an integer >= 1, got 1.5');
  });
});
