import { from, lastValueFrom, Subject, take, toArray } from 'rxjs';
import { describe, expect, it, vi } from 'vitest';
import { batchInfer, type BatchInferOptions } from '../src/operators/batch-infer.js';
import type { OverflowPolicy, StageCounters, StagedCall } from '../src/types.js';

interface Item {
  readonly s: string;
  readonly n: number;
}
const item = (s: string, n: number): Item => ({ s, n });
const name = (i: Item): string => `${i.s}${i.n}`;

/** An `infer` whose calls are recorded and resolved (or rejected) by the test. */
function controlledInfer(): {
  infer: (batch: Item[]) => Promise<string[]>;
  calls: string[][];
  resolveNext: () => Promise<void>;
  rejectNext: (err: Error) => Promise<void>;
} {
  const calls: string[][] = [];
  const pending: Array<{ resolve: (r: string[]) => void; reject: (e: Error) => void; batch: Item[] }> = [];
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
  return {
    calls,
    infer: (batch) =>
      new Promise((resolve, reject) => {
        calls.push(batch.map(name));
        pending.push({ resolve, reject, batch });
      }),
    resolveNext: async () => {
      const p = pending.shift();
      p?.resolve(p.batch.map(name));
      await flush();
    },
    rejectNext: async (err) => {
      pending.shift()?.reject(err);
      await flush();
    },
  };
}

function options(over: Partial<BatchInferOptions<Item>> = {}, policy: OverflowPolicy = 'wait', queueSize = 8): BatchInferOptions<Item> {
  return { size: 2, maxDelayMs: 0, key: (i) => i.s, policy: () => policy, queueSize: () => queueSize, ...over };
}

describe('batchInfer', () => {
  it('batches what is queued when the worker is free and emits one result per item, in order', async () => {
    const c = controlledInfer();
    const src = new Subject<Item>();
    const out: string[] = [];
    src.pipe(batchInfer(options(), c.infer)).subscribe((r) => out.push(r));
    src.next(item('a', 1)); // the worker is free: a batch of one at once
    src.next(item('a', 2));
    src.next(item('a', 3));
    expect(c.calls).toEqual([['a1']]);
    await c.resolveNext();
    expect(c.calls).toEqual([['a1'], ['a2', 'a3']]);
    await c.resolveNext();
    expect(out).toEqual(['a1', 'a2', 'a3']);
  });

  it('takes items round-robin across streams, so a busy stream cannot starve a quiet one', async () => {
    const c = controlledInfer();
    const src = new Subject<Item>();
    src.pipe(batchInfer(options(), c.infer)).subscribe();
    src.next(item('a', 0));
    for (let n = 1; n <= 4; n++) src.next(item('a', n));
    src.next(item('b', 1));
    await c.resolveNext();
    // Next batch of 2: one of each stream, not a1 a2.
    expect(c.calls[1]?.slice().sort()).toEqual(['a1', 'b1']);
  });

  it('drop-oldest keeps the newest frames and counts the dropped ones; drop-latest keeps the oldest', async () => {
    for (const [policy, kept, dropped] of [
      ['drop-oldest', ['a3'], ['a2']],
      ['drop-latest', ['a2'], ['a3']],
    ] as const) {
      const c = controlledInfer();
      const counters = new Map<string, StageCounters>();
      const onDrop = vi.fn((i: Item) => name(i));
      const src = new Subject<Item>();
      src.pipe(batchInfer(options({ counters, onDrop }, policy, 1), c.infer)).subscribe();
      src.next(item('a', 1)); // running
      src.next(item('a', 2)); // queued
      src.next(item('a', 3)); // the queue holds one: policy decides
      expect(onDrop.mock.calls.map(([i]) => name(i))).toEqual(dropped);
      await c.resolveNext();
      expect(c.calls[1]).toEqual(kept);
      await c.resolveNext();
      expect(counters.get('a')).toEqual({ received: 3, processed: 2, dropped: 1 });
    }
  });

  it('an input error is passed on only after what was queued before it is processed', async () => {
    const c = controlledInfer();
    const src = new Subject<Item>();
    const out: string[] = [];
    let error: unknown;
    src.pipe(batchInfer(options(), c.infer)).subscribe({ next: (r) => out.push(r), error: (e: unknown) => (error = e) });
    src.next(item('a', 1));
    src.next(item('a', 2));
    src.error(new Error('decode failed'));
    expect(error).toBeUndefined();
    await c.resolveNext();
    expect(error).toBeUndefined();
    await c.resolveNext();
    expect(out).toEqual(['a1', 'a2']);
    expect((error as Error).message).toBe('decode failed');
  });

  it('a rejected infer errors the output', async () => {
    const c = controlledInfer();
    const src = new Subject<Item>();
    let error: unknown;
    src.pipe(batchInfer(options(), c.infer)).subscribe({ error: (e: unknown) => (error = e) });
    src.next(item('a', 1));
    await c.rejectNext(new Error('ORT failed'));
    expect((error as Error).message).toBe('ORT failed');
  });

  it('unsubscribing mid-batch ignores the call in flight, drops the queue and leaves no timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const c = controlledInfer();
      const src = new Subject<Item>();
      const out: string[] = [];
      const sub = src.pipe(batchInfer(options({ maxDelayMs: 50, size: 4 }), c.infer)).subscribe((r) => out.push(r));
      src.next(item('a', 1)); // a partial batch waits up to 50 ms
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(50);
      expect(c.calls).toEqual([['a1']]);
      src.next(item('a', 2));
      sub.unsubscribe();
      expect(src.observed).toBe(false);
      vi.useRealTimers();
      await c.resolveNext();
      expect(out).toEqual([]);
      expect(c.calls).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a synchronous source stopped downstream by take(n) completes', async () => {
    const infer = (batch: Item[]): Promise<string[]> => Promise.resolve(batch.map(name));
    const out = await lastValueFrom(
      from([1, 2, 3, 4, 5, 6].map((n) => item('a', n))).pipe(
        batchInfer(options({ size: 2, fullBatches: true }), infer),
        take(3),
        toArray(),
      ),
    );
    expect(out).toEqual(['a1', 'a2', 'a3']);
  });

  it('refuses a batch size that is not a positive integer', () => {
    expect(() => batchInfer(options({ size: 0 }), async () => [])).toThrow('batch size must be an integer >= 1, got 0');
  });
});

/** A staged `infer` (backbone, then segmentation) whose two stages the test settles per call. */
function stagedInfer(): {
  infer: (batch: Item[]) => StagedCall<string>;
  calls: string[][];
  take: (i: number) => Promise<void>;
  finish: (i: number, err?: Error) => Promise<void>;
} {
  const calls: string[][] = [];
  const stages: Array<{ take: () => void; failTake: (e: Error) => void; finish: (e?: Error) => void }> = [];
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
  return {
    calls,
    infer: (batch) => {
      calls.push(batch.map(name));
      let take = (): void => undefined;
      let failTake: (e: Error) => void = () => undefined;
      let finish: (e?: Error) => void = () => undefined;
      const taken = new Promise<void>((resolve, reject) => {
        take = resolve;
        failTake = reject;
      });
      const results = new Promise<string[]>((resolve, reject) => {
        finish = (e) => (e ? reject(e) : resolve(batch.map(name)));
      });
      stages.push({ take, failTake, finish });
      return { taken, results };
    },
    take: async (i) => {
      stages[i]?.take();
      await flush();
    },
    finish: async (i, err) => {
      stages[i]?.take();
      stages[i]?.finish(err);
      await flush();
    },
  };
}

describe('batchInfer with staged calls', () => {
  it('takes the next batch once the one before has left its first stage, at most two in flight', async () => {
    const c = stagedInfer();
    const src = new Subject<Item>();
    const out: string[] = [];
    src.pipe(batchInfer(options(), c.infer)).subscribe((r) => out.push(r));
    for (let n = 1; n <= 6; n++) src.next(item('a', n));
    expect(c.calls).toEqual([['a1']]);
    await c.take(0); // batch 0 in its second stage: the next one starts
    expect(c.calls).toEqual([['a1'], ['a2', 'a3']]);
    await c.take(1); // two in flight: the third waits for a result
    expect(c.calls).toHaveLength(2);
    expect(out).toEqual([]);
    await c.finish(0);
    expect(out).toEqual(['a1']);
    expect(c.calls).toEqual([['a1'], ['a2', 'a3'], ['a4', 'a5']]);
  });

  it('emits results in batch order when a later batch finishes first, and completes after the last', async () => {
    const c = stagedInfer();
    const src = new Subject<Item>();
    const out: string[] = [];
    let done = false;
    src.pipe(batchInfer(options(), c.infer)).subscribe({ next: (r) => out.push(r), complete: () => (done = true) });
    src.next(item('a', 1));
    src.next(item('a', 2));
    await c.take(0);
    src.complete();
    await c.finish(1);
    expect(out).toEqual([]);
    expect(done).toBe(false);
    await c.finish(0);
    expect(out).toEqual(['a1', 'a2']);
    expect(done).toBe(true);
  });

  it('errors after the results of the batches before the failing one', async () => {
    const c = stagedInfer();
    const src = new Subject<Item>();
    const out: string[] = [];
    let error: Error | undefined;
    src.pipe(batchInfer(options({ size: 1 }), c.infer)).subscribe({ next: (r) => out.push(r), error: (e: Error) => (error = e) });
    src.next(item('a', 1));
    src.next(item('a', 2));
    await c.take(0);
    await c.finish(1, new Error('segmentation failed'));
    expect(error).toBeUndefined();
    await c.finish(0);
    expect(out).toEqual(['a1']);
    expect(error?.message).toBe('segmentation failed');
  });
});
