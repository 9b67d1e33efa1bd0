import { Observable, type OperatorFunction } from 'rxjs';
import type { OverflowPolicy, StageCounters } from '../types.js';

export interface BatchInferOptions<T> {
  /** Most items per call of `infer` (batch.size). */
  readonly size: number;
  /** How long a partial batch waits for more items once the worker is free, ms (batch.maxDelayMs). */
  readonly maxDelayMs: number;
  /** Key of the stream an item belongs to; each stream has its own queue. */
  readonly key: (item: T) => string;
  /** Overflow policy per stream queue: `wait` (lossless; upstream must be gated), `drop-oldest` (live: latest frame wins), `drop-latest`. */
  readonly policy: (key: string) => OverflowPolicy;
  /** Queue length per stream (1-2 for live feeds). Ignored by `wait`. */
  readonly queueSize: (key: string) => number;
  /** Called with each item the policy dropped (release gate credits, count). */
  readonly onDrop?: (item: T) => void;
  /**
   * Only full batches until the input ends (lossless file processing): batch composition then
   * does not depend on timing, so results are reproducible bit for bit (ONNX Runtime's sums can
   * differ in the last bit between batch sizes).
   */
  readonly fullBatches?: boolean;
  /** Counters per stream, filled in as items pass. */
  readonly counters?: Map<string, StageCounters>;
}

/**
 * Gathers items from all streams into batches for one inference call, like a stream muxer: when
 * the worker is free it takes queued items round-robin across streams (per-stream order kept), up
 * to `size`, waiting at most `maxDelayMs` for a partial batch to fill. While `infer` runs, new
 * items queue per stream under that stream's overflow policy, so a slow model never grows memory
 * behind a live feed. Results are emitted one per input item, in each stream's order.
 *
 * Errors from `infer` error the output. On completion or error of the input, queued items are
 * processed first, then the completion or error is passed on. Unsubscribing drops what is queued and ignores a call in flight.
 */
export function batchInfer<T, R>(options: BatchInferOptions<T>, infer: (batch: T[]) => Promise<R[]>): OperatorFunction<T, R> {
  const { size, maxDelayMs } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size must be an integer >= 1, got ${size}`);
  return (source) =>
    new Observable<R>((subscriber) => {
      const queues = new StreamQueues<T>(options);
      let busy = false;
      let inputDone = false;
      let inputError: { err: unknown } | undefined;
      let closed = false;
      let timer: NodeJS.Timeout | undefined;

      const pump = (): void => {
        if (busy || closed || queues.queued === 0) {
          if (!busy && inputDone && queues.queued === 0 && !closed) {
            if (inputError !== undefined) subscriber.error(inputError.err);
            else subscriber.complete();
          }
          return;
        }
        if (queues.queued < size && !inputDone && options.fullBatches) return;
        if (queues.queued < size && !inputDone && maxDelayMs > 0) {
          timer ??= setTimeout(() => {
            timer = undefined;
            run();
          }, maxDelayMs);
          return;
        }
        run();
      };

      const run = (): void => {
        if (busy || closed || queues.queued === 0) return;
        if (timer) {
          clearTimeout(timer);
          timer = undefined;
        }
        busy = true;
        const batch = queues.take(size);
        infer(batch).then(
          (results) => {
            if (closed) return;
            for (const item of batch) queues.count(options.key(item)).processed++;
            for (const r of results) subscriber.next(r);
            busy = false;
            pump();
          },
          (err: unknown) => {
            if (!closed) subscriber.error(err);
          },
        );
      };

      const sub = source.subscribe({
        next: (item) => {
          if (queues.push(item) && queues.queued >= size && timer) {
            clearTimeout(timer);
            timer = undefined;
          }
          pump();
        },
        // An input error (a decode failure midway) is passed on only after what was queued
        // before it is processed: frames decoded before the failure are not lost.
        error: (err: unknown) => {
          inputError = { err };
          inputDone = true;
          if (timer) {
            clearTimeout(timer);
            timer = undefined;
          }
          pump();
        },
        complete: () => {
          inputDone = true;
          if (timer) {
            clearTimeout(timer);
            timer = undefined;
          }
          pump();
        },
      });

      return () => {
        closed = true;
        if (timer) clearTimeout(timer);
        sub.unsubscribe();
      };
    });
}

/**
 * One queue per stream under that stream's overflow policy, taken from round-robin. Counts what
 * each stream received, dropped and (by the caller) processed.
 */
class StreamQueues<T> {
  private readonly queues = new Map<string, T[]>();
  private readonly counters: Map<string, StageCounters>;
  private rr = 0;
  /** Items queued over all streams. */
  queued = 0;

  constructor(private readonly options: BatchInferOptions<T>) {
    this.counters = options.counters ?? new Map<string, StageCounters>();
  }

  count(key: string): StageCounters {
    let c = this.counters.get(key);
    if (!c) this.counters.set(key, (c = { received: 0, processed: 0, dropped: 0 }));
    return c;
  }

  /** Queues `item`, or drops by the stream's policy; true when it was queued (not dropped). */
  push(item: T): boolean {
    const { options } = this;
    const key = options.key(item);
    const c = this.count(key);
    c.received++;
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    const policy = options.policy(key);
    if (policy !== 'wait' && q.length >= options.queueSize(key)) {
      c.dropped++;
      if (policy === 'drop-oldest') {
        const old = q.shift() as T;
        q.push(item);
        options.onDrop?.(old);
      } else {
        options.onDrop?.(item);
      }
      return false;
    }
    q.push(item);
    this.queued++;
    return true;
  }

  /** Up to `size` items, round-robin across streams (each stream's order kept). */
  take(size: number): T[] {
    const batch: T[] = [];
    const keys = [...this.queues.keys()];
    // Round-robin from a rotating start so no stream is always first or always last.
    for (let pass = 0; batch.length < size && this.queued > 0; pass++) {
      let tookAny = false;
      for (let i = 0; i < keys.length && batch.length < size; i++) {
        const q = this.queues.get(keys[(this.rr + i) % keys.length] as string);
        const item = q?.shift();
        if (item !== undefined) {
          batch.push(item);
          this.queued--;
          tookAny = true;
        }
      }
      if (!tookAny) break;
    }
    this.rr = keys.length > 0 ? (this.rr + 1) % keys.length : 0;
    return batch;
  }
}
