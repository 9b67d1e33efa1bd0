/**
 * The result side of the cluster: subscribes to `<prefix>.*.stats`, drops duplicates by
 * (stream, seq), restores each stream's order within a bounded window (./ordered-window.ts) and
 * writes one stats file per stream (.csv or .jsonl, `{stream}` and `{run}` in the path template).
 *
 * A stream is complete when every seq below its frame count was written or given up: the count
 * comes from `expect()` (process --cluster knows it) or from ingest's end-of-stream event on
 * `<prefix>.<stream>.events` (header `frames`). A stream's results of a new ingest run (header
 * `run`) end the previous run's window first. Files are finalised on completion and on `close()`.
 */
import type { Msg, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import type { FrameStats } from '../types.js';
import { StatsFileWriter } from '../sinks/stats-file-writer.js';
import { DEFAULT_PREFIX, statsWildcard } from '../sinks/nats-subjects.js';
import { OrderedWindow } from './ordered-window.js';

/** How often held results are checked against the gap timeout, ms. */
const EXPIRE_INTERVAL_MS = 1_000;

export interface CollectedStats {
  readonly stats: FrameStats;
  /** Header `worker` of the result message: which worker segmented the frame. */
  readonly worker: string;
}

export interface StreamSummary {
  readonly stream: string;
  readonly run: string;
  /** Results written, in order, once each. */
  readonly written: number;
  readonly duplicates: number;
  /** Seqs given up (never arrived within the window or the gap timeout). */
  readonly lost: number;
  readonly file?: string;
}

export interface StatsCollectorOptions {
  readonly nc: NatsConnection;
  readonly prefix?: string;
  /** Stats file per stream: a path template with `{stream}` (and optionally `{run}`); none: no files. */
  readonly statsPath?: string;
  /** Only these streams (by name); default all. */
  readonly streams?: readonly string[];
  /** Only results of this ingest run (header `run`); default any. */
  readonly run?: string;
  /** Results held while an earlier seq is missing (default 4096). */
  readonly window?: number;
  /** How long a missing seq holds later ones back, ms (default 60 000). */
  readonly gapTimeoutMs?: number;
  readonly logger: Logger;
  /** Each result, in order, once. */
  readonly onStats?: (r: CollectedStats) => void;
  /** Each stream as it completes. */
  readonly onComplete?: (s: StreamSummary) => void;
}

interface StreamState {
  readonly stream: string;
  readonly run: string;
  readonly window: OrderedWindow<CollectedStats>;
  written: number;
  total: number | undefined;
  writer: Promise<StatsFileWriter> | undefined;
  queue: Promise<void>;
  file: string | undefined;
  done: boolean;
  /** Set once done: resolves when the file is closed. */
  finished: Promise<StreamSummary> | undefined;
  readonly waiters: Array<(s: StreamSummary) => void>;
}

export interface StatsCollector {
  /** Resolves when `stream` has all `frames` seqs written or given up. */
  expect(stream: string, frames: number): Promise<StreamSummary>;
  /** Per-stream counters so far. */
  summaries(): StreamSummary[];
  /** Stops listening, writes what is held (in order, gaps skipped) and closes the files. Idempotent. */
  close(): Promise<StreamSummary[]>;
}

export function createStatsCollector(options: StatsCollectorOptions): StatsCollector {
  const { nc, logger } = options;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const log = logger.child({ stage: 'collector' });
  const only = options.streams ? new Set(options.streams) : undefined;
  const states = new Map<string, StreamState>();
  /** Runs that ended per stream: their late results are dropped. */
  const endedRuns = new Set<string>();
  const expected = new Map<string, number>();
  const pendingWaiters = new Map<string, Array<(s: StreamSummary) => void>>();
  let closing: Promise<StreamSummary[]> | undefined;

  const summary = (s: StreamState): StreamSummary => ({
    stream: s.stream,
    run: s.run,
    written: s.written,
    duplicates: s.window.duplicates,
    lost: s.window.lost,
    ...(s.file !== undefined ? { file: s.file } : {}),
  });

  function open(stream: string, run: string): StreamState {
    const window = new OrderedWindow<CollectedStats>({
      ...(options.window !== undefined ? { window: options.window } : {}),
      ...(options.gapTimeoutMs !== undefined ? { gapTimeoutMs: options.gapTimeoutMs } : {}),
    });
    const s: StreamState = {
      stream,
      run,
      window,
      written: 0,
      total: expected.get(stream),
      writer: undefined,
      queue: Promise.resolve(),
      file: undefined,
      done: false,
      finished: undefined,
      waiters: pendingWaiters.get(stream) ?? [],
    };
    pendingWaiters.delete(stream);
    if (options.statsPath !== undefined) {
      s.file = options.statsPath.replaceAll('{stream}', stream).replaceAll('{run}', run || 'run');
      s.writer = StatsFileWriter.open(s.file);
      s.writer.catch((err: unknown) => log.error({ err, file: s.file }, 'cannot open stats file'));
    }
    states.set(stream, s);
    return s;
  }

  function emit(s: StreamState, released: { items: CollectedStats[]; gaps: Array<readonly [number, number]> }): void {
    for (const [from, to] of released.gaps) log.warn({ stream: s.stream, from, to }, 'results never arrived; giving them up');
    for (const r of released.items) {
      s.written++;
      options.onStats?.(r);
      const w = s.writer;
      if (w !== undefined) {
        s.queue = s.queue
          .then(async () => (await w).write(r.stats))
          .catch((err: unknown) => log.error({ err, file: s.file }, 'stats file write failed'));
      }
    }
    checkDone(s);
  }

  function checkDone(s: StreamState): void {
    if (s.done || s.total === undefined || s.window.next < s.total) return;
    s.done = true;
    s.finished = finish(s);
    void s.finished.then((sum) => {
      log.info(sum, 'stream complete');
      options.onComplete?.(sum);
      for (const w of s.waiters.splice(0)) w(sum);
    });
  }

  async function finish(s: StreamState): Promise<StreamSummary> {
    await s.queue;
    if (s.writer !== undefined)
      await (
        await s.writer.catch(() => undefined)
      )
        ?.close()
        .catch((err: unknown) => log.error({ err, file: s.file }, 'closing stats file failed'));
    return summary(s);
  }

  function onStats(msg: Msg): void {
    let stats: FrameStats;
    try {
      stats = JSON.parse(Buffer.from(msg.data).toString('utf8')) as FrameStats;
    } catch (err) {
      log.warn({ err, subject: msg.subject }, 'ignoring a stats message that is not JSON');
      return;
    }
    if (typeof stats.stream !== 'string' || !Number.isInteger(stats.seq)) return;
    if (only && !only.has(stats.stream)) return;
    const run = msg.headers?.get('run') ?? '';
    if (options.run !== undefined && run !== options.run) return;
    if (endedRuns.has(`${stats.stream}\n${run}`)) return;
    let s = states.get(stats.stream);
    if (s !== undefined && s.run !== run) {
      // A new ingest run of this stream: finish the old one with what it has.
      log.warn({ stream: s.stream, oldRun: s.run, run }, 'a new ingest run of the stream started; finishing the previous one');
      endedRuns.add(`${s.stream}\n${s.run}`);
      const old = s;
      emit(old, old.window.drain());
      old.total = old.window.next;
      checkDone(old);
      s = undefined;
    }
    s ??= open(stats.stream, run);
    if (s.done) {
      s.window.duplicates++;
      return;
    }
    emit(s, s.window.push(stats.seq, { stats, worker: msg.headers?.get('worker') ?? '' }));
  }

  function setTotal(stream: string, frames: number): void {
    expected.set(stream, frames);
    const s = states.get(stream);
    if (s !== undefined && !s.done) {
      s.total = frames;
      checkDone(s);
    }
  }

  function onEvent(msg: Msg): void {
    // Only ingest's end-of-stream event carries `frames` (nats.js answers '' for a missing header).
    const header = msg.headers?.get('frames') ?? '';
    const frames = Number(header);
    if (header === '' || !Number.isInteger(frames) || frames < 0) return;
    let e: { type?: string; stream?: string; state?: string };
    try {
      e = JSON.parse(Buffer.from(msg.data).toString('utf8')) as typeof e;
    } catch {
      return;
    }
    if (e.type !== 'source-state' || e.state !== 'stopped' || typeof e.stream !== 'string') return;
    if (only && !only.has(e.stream)) return;
    if (options.run !== undefined && msg.headers?.get('run') !== options.run) return;
    setTotal(e.stream, frames);
  }

  const subs: Subscription[] = [
    nc.subscribe(statsWildcard(prefix), { callback: (err, msg) => (err ? log.error({ err }, 'stats subscription failed') : onStats(msg)) }),
    nc.subscribe(`${prefix}.*.events`, { callback: (err, msg) => (err ? log.error({ err }, 'events subscription failed') : onEvent(msg)) }),
  ];
  const timer = setInterval(() => {
    for (const s of states.values()) if (!s.done) emit(s, s.window.expire());
  }, EXPIRE_INTERVAL_MS);
  timer.unref();

  return {
    expect(stream, frames) {
      return new Promise<StreamSummary>((resolve) => {
        const s = states.get(stream);
        if (s?.finished !== undefined) return void s.finished.then(resolve);
        if (s !== undefined) s.waiters.push(resolve);
        else pendingWaiters.set(stream, [...(pendingWaiters.get(stream) ?? []), resolve]);
        setTotal(stream, frames);
        if (frames === 0 && s === undefined) resolve({ stream, run: '', written: 0, duplicates: 0, lost: 0 });
      });
    },
    summaries: () => [...states.values()].map(summary),
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        for (const sub of subs) sub.unsubscribe();
        const out: StreamSummary[] = [];
        for (const s of states.values()) {
          if (!s.done) {
            emit(s, s.window.drain());
            s.done = true;
            s.finished = finish(s);
          }
          out.push(await (s.finished as Promise<StreamSummary>));
        }
        return out;
      })();
      return closing;
    },
  };
}
