import { Observable, type OperatorFunction } from 'rxjs';
import type { OverflowPolicy, StageCounters, StagedCall } from '../types.js';

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

/** Most batches in flight at once with staged calls: one in each stage. */
const STAGED_IN_FLIGHT = 2;

function isStaged<R>(call: Promise<R[]> | StagedCall<R>): call is StagedCall<R> {
  return !(call instanceof Promise);
}

/**
 * Gathers items from all streams into batches for one inference call, like a stream muxer: when
 * the worker is free it takes queued items round-robin across streams (per-stream order kept), up
 * to `size`, waiting at most `maxDelayMs` for a partial batch to fill. While `infer` runs, new
 * items queue per stream under that stream's overflow policy, so a slow model never grows memory
 * behind a live feed. Results are emitted one per input item, in each stream's order.
 *
 * `infer` returns a promise (one batch at a time) or a `StagedCall`: the next batch is then taken
 * as soon as the one before has left its first stage, so a batch's segmentation overlaps the next
 * one's backbone; results still come out in batch order.
 *
 * Errors from `infer` error the output (after the results of the batches before it). On
 * completion or error of the input, queued items are processed first, then the completion or
 * error is passed on. Unsubscribing drops what is queued and ignores calls in flight.
 */
export function batchInfer<T, R>(
  options: BatchInferOptions<T>,
  infer: (batch: T[]) => Promise<R[]> | StagedCall<R>,
): OperatorFunction<T, R> {
  const { size, maxDelayMs } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size must be an integer >= 1, got ${size}`);
  return (source) =>
    new Observable<R>((subscriber) => {
      const queues = new StreamQueues<T>(options);
      /** The batch in its first stage (the worker is busy), if any. */
      let firstStage: number | undefined;
      let batches = 0;
      /** Batches called whose results are not out yet, and the most allowed. */
      let inFlight = 0;
      let maxInFlight = 1;
      /** Results go out in batch order: each batch's emission waits for the one before. */
      let emitted: Promise<void> = Promise.resolve();
      let failed = false;
      let inputDone = false;
      let inputError: { err: unknown } | undefined;
      let closed = false;
      let timer: NodeJS.Timeout | undefined;

      const blocked = (): boolean => firstStage !== undefined || inFlight >= maxInFlight || closed || failed;

      const pump = (): void => {
        if (blocked() || queues.queued === 0) {
          if (inFlight === 0 && inputDone && queues.queued === 0 && !closed && !failed) {
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

      const fail = (err: unknown): void => {
        if (closed || failed) return;
        failed = true;
        subscriber.error(err);
      };

      const run = (): void => {
        if (blocked() || queues.queued === 0) return;
        if (timer) {
          clearTimeout(timer);
          timer = undefined;
        }
        const id = ++batches;
        firstStage = id;
        inFlight++;
        const batch = queues.take(size);
        let call: Promise<R[]> | StagedCall<R>;
        try {
          call = infer(batch);
        } catch (err) {
          call = Promise.reject(err);
        }
        const leaveFirstStage = (): void => {
          if (firstStage !== id) return;
          firstStage = undefined;
          pump();
        };
        const results = isStaged(call) ? call.results : call;
        // Awaited in batch order below; marked handled now, since it may fail before its turn.
        results.catch(() => undefined);
        if (isStaged(call)) {
          maxInFlight = STAGED_IN_FLIGHT;
          // A rejected `taken` is reported through `results`.
          call.taken.then(leaveFirstStage, () => undefined);
        }
        emitted = emitted.then(async () => {
          let out: R[];
          try {
            out = await results;
          } catch (err) {
            fail(err);
            return;
          }
          if (closed || failed) return;
          for (const item of batch) queues.count(options.key(item)).processed++;
          for (const r of out) subscriber.next(r);
          inFlight--;
          leaveFirstStage();
          pump();
        });
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
