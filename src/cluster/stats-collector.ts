/**
 * The result side of the cluster: reads the results stream `<PREFIX>_RESULTS` (every worker
 * stores each result there before it acks the frame), drops duplicates by (stream, seq), restores
 * each stream's order within a bounded window (./ordered-window.ts) and writes one stats file per
 * stream (.csv or .jsonl, `{stream}` and `{run}` in the path template), and on request one mask
 * folder and one overlay video per stream (process --cluster).
 *
 * Without `durable`, it reads results stored from its own start on (an ordered consumer, which
 * resumes by itself after a reconnect). With `durable` (`stegostream collect`), it reads through a
 * durable consumer of that name from the oldest result the stream keeps, and acks each result once
 * written: a collector that starts late reads what was stored while none ran, and one that
 * restarts goes on from the first result it had not written (a stream file of the same run is
 * appended to from its last row on).
 *
 * A stream is complete when every seq below its frame count was written or given up: the count
 * comes from `expect()` (process --cluster knows it) or from ingest's end-of-stream event on
 * `<prefix>.<stream>.events` (header `frames`). A stream's results of a new ingest run (header
 * `run`) end the previous run's window first. Files are finalised on completion and on `close()`.
 */
import {
  AckPolicy,
  DeliverPolicy,
  Events,
  nanos,
  type Consumer,
  type ConsumerMessages,
  type JsMsg,
  type Msg,
  type NatsConnection,
  type Subscription,
} from 'nats';
import type { Logger } from 'pino';
import { DEFAULT_PREFIX } from '../sinks/nats-subjects.js';
import { OrderedWindow } from './ordered-window.js';
import { ensureResultsStream, isStreamGone } from './cluster-connection.js';
import { resultsStreamName, resultsWildcard } from './cluster-names.js';
import type { StoredResult } from './result-publisher.js';
import type { CollectedStats } from './collected-stats.js';
import { openStreamOutputs, readResume, type StreamOutputs, type OverlayFor } from './stream-outputs.js';

/** How often held results are checked against the gap timeout, ms. */
const EXPIRE_INTERVAL_MS = 1_000;

export type { CollectedStats } from './collected-stats.js';

/**
 * How long the server waits for a durable collector's ack before it delivers a result again, ms.
 * Results held in the window are kept from redelivery by `working()` every second, so this only
 * decides how soon a result comes again that was lost on its way (a collector killed, or a server
 * that crashed while delivering): well within the gap timeout.
 */
const DURABLE_ACK_WAIT_MS = 10_000;
const CONSUMER_EXISTS = 10148;
const CONSUMER_NAME_EXISTS = 10013;

export interface StreamSummary {
  readonly stream: string;
  readonly run: string;
  /** Results written, in order, once each. */
  readonly written: number;
  readonly duplicates: number;
  /** Seqs given up (never arrived within the window or the gap timeout). */
  readonly lost: number;
  /** Results that arrived but could not be written to every output (the first reason in `errors`). */
  readonly failed: number;
  /** One line per output that failed. */
  readonly errors?: readonly string[];
  readonly file?: string;
}

export interface StatsCollectorOptions {
  readonly nc: NatsConnection;
  readonly prefix?: string;
  /** Stats file per stream: a path template with `{stream}` (and optionally `{run}`); none: no files. */
  readonly statsPath?: string;
  /** Mask folder per stream (template as `statsPath`): one label PNG per frame; the ingest must ask for masks. */
  readonly masksPath?: string;
  /** Overlay video per stream (its options; the ingest must ask for masks). */
  readonly overlay?: OverlayFor;
  /** Durable consumer name (`stegostream collect`): restarts go on where the last run stopped. */
  readonly durable?: string;
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
  failed: number;
  total: number | undefined;
  outputs: Promise<StreamOutputs>;
  /** The outputs once open (for summaries). */
  outputsNow: StreamOutputs | undefined;
  queue: Promise<void>;
  file: string | undefined;
  done: boolean;
  /** Set once done: resolves when the file is closed. */
  finished: Promise<StreamSummary> | undefined;
  readonly waiters: Array<(s: StreamSummary) => void>;
}

export interface StatsCollector {
  /** Resolves once the results stream is being read (results stored before are read too when durable). */
  readonly ready: Promise<void>;
  /** Resolves when `stream` has all `frames` seqs written or given up. */
  expect(stream: string, frames: number): Promise<StreamSummary>;
  /** Per-stream counters so far. */
  summaries(): StreamSummary[];
  /** Stops listening, writes what is held (in order, gaps skipped) and closes the files. Idempotent. */
  close(): Promise<StreamSummary[]>;
}

export function createStatsCollector(options: StatsCollectorOptions): StatsCollector {
  return new Collector(options);
}

/** The collector's state and handlers: results in, ordered per stream, written, acked. */
class Collector implements StatsCollector {
  ready: Promise<void>;
  private readonly log: Logger;
  private readonly only: ReadonlySet<string> | undefined;
  private readonly states = new Map<string, StreamState>();
  /** Runs that ended per stream: their late results are dropped. */
  private readonly endedRuns = new Set<string>();
  private readonly expected = new Map<string, number>();
  /** Frame counts from ends stored in the results stream, by stream and run. */
  private readonly expectedByRun = new Map<string, number>();
  private readonly pendingWaiters = new Map<string, Array<(s: StreamSummary) => void>>();
  /** Durable: results not yet written, by (stream, run, seq), acked once written or given up. */
  private readonly unacked = new Map<string, JsMsg>();
  private readonly subs: Subscription[];
  private readonly timer: NodeJS.Timeout;
  private messages: ConsumerMessages | undefined;
  private closing: Promise<StreamSummary[]> | undefined;
  /** Time spent disconnected from NATS, ms (and since when, while it lasts): nothing can arrive then. */
  private offlineMs = 0;
  private offlineSince: number | undefined;
  /** The gap timeout's clock: stands still while disconnected, so an outage gives up no result. */
  private readonly onlineClock = (): number =>
    Date.now() - this.offlineMs - (this.offlineSince === undefined ? 0 : Date.now() - this.offlineSince);

  constructor(private readonly options: StatsCollectorOptions) {
    const { nc } = options;
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    this.log = options.logger.child({ stage: 'collector' });
    this.only = options.streams ? new Set(options.streams) : undefined;
    this.subs = [
      nc.subscribe(`${prefix}.*.events`, {
        callback: (err, msg) => (err ? this.log.error({ err }, 'events subscription failed') : this.onEvent(msg)),
      }),
    ];
    this.ready = this.readResults(nc, prefix, false);
    this.watchReconnects(nc, prefix);
    this.ready.catch((err: unknown) => this.log.error({ err }, 'cannot read the results stream'));
    this.timer = setInterval(() => {
      for (const s of this.states.values()) if (!s.done) this.emit(s, s.window.expire());
      // Results held in the window: keep them from being redelivered while they wait.
      for (const m of this.unacked.values()) m.working();
    }, EXPIRE_INTERVAL_MS);
    this.timer.unref();
  }

  /** `fromStart`: read every result the stream holds, also without a durable consumer. */
  private async readResults(nc: NatsConnection, prefix: string, fromStart: boolean): Promise<void> {
    const consumer = await openResultsConsumer(nc, prefix, this.options.durable, fromStart);
    this.messages = await consumer.consume();
    const it = this.messages;
    void (async () => {
      for await (const m of it) this.onResult(m);
    })().catch((err: unknown) => this.log.error({ err }, 'reading results failed'));
  }

  /**
   * After each reconnect: a server that came back without its store has no results stream (or no
   * durable consumer), and the old consumer then reads nothing ever again. Both are created again
   * and read from the start (the new stream holds only results stored since).
   */
  private watchReconnects(nc: NatsConnection, prefix: string): void {
    void (async () => {
      for await (const s of nc.status()) {
        if (this.closing !== undefined) return;
        if (s.type === Events.Disconnect) this.offlineSince ??= Date.now();
        if (s.type !== Events.Reconnect) continue;
        if (this.offlineSince !== undefined) this.offlineMs += Date.now() - this.offlineSince;
        this.offlineSince = undefined;
        if (await resultsConsumerGone(nc, prefix, this.options.durable)) {
          this.log.warn('the results stream was gone from the server (restarted without its store?); reading it again from its start');
          this.messages?.stop();
          this.ready = this.readResults(nc, prefix, true);
          this.ready.catch((err: unknown) => this.log.error({ err }, 'cannot read the results stream'));
        }
      }
    })().catch((err: unknown) => this.log.error({ err }, 'NATS status watch failed'));
  }

  private ack(stream: string, run: string, seq: number): void {
    const k = resultKey(stream, run, seq);
    this.unacked.get(k)?.ack();
    this.unacked.delete(k);
  }

  private open(stream: string, run: string): StreamState {
    const total = this.expectedByRun.get(`${stream}\n${run}`) ?? this.expected.get(stream);
    const s = newStreamState(this.options, stream, run, total, this.pendingWaiters.get(stream) ?? [], this.log, this.onlineClock);
    this.pendingWaiters.delete(stream);
    this.states.set(stream, s);
    return s;
  }

  private emit(s: StreamState, released: { items: CollectedStats[]; gaps: Array<readonly [number, number]> }): void {
    for (const [from, to] of released.gaps) {
      this.log.warn({ stream: s.stream, from, to }, 'results never arrived; giving them up');
      for (let seq = from; seq <= to; seq++) this.ack(s.stream, s.run, seq);
    }
    for (const r of released.items) {
      s.written++;
      this.options.onStats?.(r);
      s.queue = s.queue.then(async () => {
        const ok = await (await s.outputs).write(r);
        if (!ok) s.failed++;
        // Acked once written (or once writing failed for good): a restart does not redo it.
        this.ack(s.stream, s.run, r.stats.seq);
      });
    }
    this.checkDone(s);
  }

  private checkDone(s: StreamState): void {
    if (s.done || s.total === undefined || s.window.next < s.total) return;
    s.done = true;
    s.finished = finishStream(s);
    void s.finished.then((sum) => {
      this.log.info(sum, 'stream complete');
      this.options.onComplete?.(sum);
      for (const w of s.waiters.splice(0)) w(sum);
    });
  }

  /** Ingest's end of a stream, stored in the results stream: the count completes the stream's run. */
  private onStoredEnd(msg: JsMsg): void {
    msg.ack();
    const end = parseStoredEnd(msg);
    if (end === undefined || (this.only && !this.only.has(end.stream))) return;
    const { stream, run, frames } = end;
    if (this.options.run !== undefined && run !== this.options.run) return;
    this.expectedByRun.set(`${stream}\n${run}`, frames);
    const s = this.states.get(stream);
    if (s !== undefined && s.run === run && !s.done) {
      s.total = frames;
      this.checkDone(s);
    }
  }

  private onResult(msg: JsMsg): void {
    if (msg.subject.endsWith('.end')) return this.onStoredEnd(msg);
    let stored: StoredResult;
    try {
      stored = JSON.parse(Buffer.from(msg.data).toString('utf8')) as StoredResult;
    } catch (err) {
      this.log.warn({ err, subject: msg.subject }, 'ignoring a result that is not JSON');
      msg.ack();
      return;
    }
    const stats = stored.stats;
    if (typeof stats?.stream !== 'string' || !Number.isInteger(stats.seq) || (this.only && !this.only.has(stats.stream))) {
      msg.ack();
      return;
    }
    const run = msg.headers?.get('run') ?? '';
    if ((this.options.run !== undefined && run !== this.options.run) || this.endedRuns.has(`${stats.stream}\n${run}`)) {
      msg.ack();
      return;
    }
    const s = this.streamFor(stats.stream, run);
    if (s.done || s.window.passed(stats.seq) || s.window.holds(stats.seq) || !this.holdForAck(s, run, stats.seq, msg)) {
      s.window.duplicates++;
      msg.ack();
      return;
    }
    const item: CollectedStats = {
      stats,
      worker: msg.headers?.get('worker') ?? '',
      ...(stored.mask !== undefined ? { mask: Buffer.from(stored.mask, 'base64') } : {}),
    };
    this.emit(s, s.window.push(stats.seq, item));
  }

  /** The stream's state for `run`; a new ingest run of the stream finishes the old one with what it has. */
  private streamFor(stream: string, run: string): StreamState {
    const s = this.states.get(stream);
    if (s === undefined) return this.open(stream, run);
    if (s.run === run) return s;
    this.log.warn({ stream: s.stream, oldRun: s.run, run }, 'a new ingest run of the stream started; finishing the previous one');
    this.endedRuns.add(`${s.stream}\n${s.run}`);
    this.emit(s, s.window.drain());
    s.total = s.window.next;
    this.checkDone(s);
    return this.open(stream, run);
  }

  /** Durable: keeps `msg` to ack once written; false for a redelivery of a result still held. */
  private holdForAck(s: StreamState, run: string, seq: number, msg: JsMsg): boolean {
    if (this.options.durable === undefined) return true;
    const k = resultKey(s.stream, run, seq);
    if (this.unacked.has(k)) return false;
    this.unacked.set(k, msg);
    return true;
  }

  private setTotal(stream: string, frames: number): void {
    this.expected.set(stream, frames);
    const s = this.states.get(stream);
    if (s !== undefined && !s.done) {
      s.total = frames;
      this.checkDone(s);
    }
  }

  private onEvent(msg: Msg): void {
    const end = parseEndEvent(msg);
    if (end === undefined || (this.only && !this.only.has(end.stream))) return;
    if (this.options.run !== undefined && msg.headers?.get('run') !== this.options.run) return;
    this.setTotal(end.stream, end.frames);
  }

  expect(stream: string, frames: number): Promise<StreamSummary> {
    return new Promise<StreamSummary>((resolve) => {
      const s = this.states.get(stream);
      if (s?.finished !== undefined) return void s.finished.then(resolve);
      if (s !== undefined) s.waiters.push(resolve);
      else this.pendingWaiters.set(stream, [...(this.pendingWaiters.get(stream) ?? []), resolve]);
      this.setTotal(stream, frames);
      if (frames === 0 && s === undefined) resolve({ stream, run: '', written: 0, duplicates: 0, lost: 0, failed: 0 });
    });
  }

  summaries(): StreamSummary[] {
    return [...this.states.values()].map(streamSummary);
  }

  close(): Promise<StreamSummary[]> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<StreamSummary[]> {
    clearInterval(this.timer);
    for (const sub of this.subs) sub.unsubscribe();
    await this.ready.catch(() => undefined);
    this.messages?.stop();
    const out: StreamSummary[] = [];
    for (const s of this.states.values()) {
      if (!s.done) {
        // Held results are written; a durable collector acks them as it writes, so a
        // restart does not redo them (gaps are left unacked: they may still come).
        const released = s.window.drain();
        released.gaps.length = 0;
        this.emit(s, released);
        s.done = true;
        s.finished = finishStream(s);
      }
      out.push(await (s.finished as Promise<StreamSummary>));
    }
    return out;
  }
}

function resultKey(stream: string, run: string, seq: number): string {
  return `${stream}\n${run}\n${seq}`;
}

/** Waits for the stream's writes, closes its outputs and sums it up. */
async function finishStream(s: StreamState): Promise<StreamSummary> {
  await s.queue;
  const outputs = await s.outputs;
  await outputs.close();
  s.outputsNow = outputs;
  return streamSummary(s);
}

function streamSummary(s: StreamState): StreamSummary {
  const errors = s.outputsNow?.errors() ?? [];
  return {
    stream: s.stream,
    run: s.run,
    written: s.written,
    duplicates: s.window.duplicates,
    lost: s.window.lost,
    failed: s.failed,
    ...(errors.length ? { errors } : {}),
    ...(s.file !== undefined ? { file: s.file } : {}),
  };
}

/** A stream's window and outputs; a durable collector that restarts appends to the file it was writing for this run. */
function newStreamState(
  options: StatsCollectorOptions,
  stream: string,
  run: string,
  total: number | undefined,
  waiters: Array<(s: StreamSummary) => void>,
  log: Logger,
  now: () => number,
): StreamState {
  const window = new OrderedWindow<CollectedStats>({
    now,
    ...(options.window !== undefined ? { window: options.window } : {}),
    ...(options.gapTimeoutMs !== undefined ? { gapTimeoutMs: options.gapTimeoutMs } : {}),
  });
  const file = options.statsPath?.replaceAll('{stream}', stream).replaceAll('{run}', run || 'run');
  const resume = options.durable !== undefined && file !== undefined ? readResume(file, run) : undefined;
  if (resume) window.skipTo(resume.next);
  const s: StreamState = {
    stream,
    run,
    window,
    written: resume?.next ?? 0,
    failed: 0,
    total,
    outputs: openStreamOutputs({
      stream,
      run,
      ...(file !== undefined ? { statsFile: file } : {}),
      ...(options.masksPath !== undefined
        ? { masksDir: options.masksPath.replaceAll('{stream}', stream).replaceAll('{run}', run || 'run') }
        : {}),
      ...(options.overlay ? { overlay: options.overlay(stream) } : {}),
      ...(resume ? { resume } : {}),
      recordRun: options.durable !== undefined,
      logger: log,
    }),
    outputsNow: undefined,
    queue: Promise.resolve(),
    file,
    done: false,
    finished: undefined,
    waiters,
  };
  void s.outputs.then((o) => (s.outputsNow = o));
  return s;
}

/** Ingest's end of a stream as stored in the results stream: stream, run and frame count. */
function parseStoredEnd(msg: JsMsg): { stream: string; run: string; frames: number } | undefined {
  const frames = Number(msg.headers?.get('frames') ?? '');
  const run = msg.headers?.get('run') ?? '';
  let stream: string;
  try {
    stream = (JSON.parse(Buffer.from(msg.data).toString('utf8')) as { stream: string }).stream;
  } catch {
    return undefined;
  }
  if (typeof stream !== 'string' || !Number.isInteger(frames) || frames < 0) return undefined;
  return { stream, run, frames };
}

/** Ingest's end-of-stream event on `<prefix>.<stream>.events`; undefined for every other event. */
function parseEndEvent(msg: Msg): { stream: string; frames: number } | undefined {
  // Only ingest's end-of-stream event carries `frames` (nats.js answers '' for a missing header).
  const header = msg.headers?.get('frames') ?? '';
  const frames = Number(header);
  if (header === '' || !Number.isInteger(frames) || frames < 0) return undefined;
  let e: { type?: string; stream?: string; state?: string };
  try {
    e = JSON.parse(Buffer.from(msg.data).toString('utf8')) as typeof e;
  } catch {
    return undefined;
  }
  if (e.type !== 'source-state' || e.state !== 'stopped' || typeof e.stream !== 'string') return undefined;
  return { stream: e.stream, frames };
}

/**
 * The consumer of the results stream: a durable one of that name from the oldest result kept,
 * or an ordered one from this collector's start on (a run's results all come after it).
 */
async function openResultsConsumer(nc: NatsConnection, prefix: string, durable: string | undefined, fromStart: boolean): Promise<Consumer> {
  const jsm = await nc.jetstreamManager();
  const streamName = await ensureResultsStream(jsm, prefix);
  const js = nc.jetstream();
  if (durable !== undefined) {
    const cfg = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(DURABLE_ACK_WAIT_MS),
      max_ack_pending: -1,
      deliver_policy: DeliverPolicy.All,
      filter_subject: resultsWildcard(prefix),
    };
    try {
      await jsm.consumers.add(streamName, cfg);
    } catch (err) {
      const code = (err as { api_error?: { err_code?: number } }).api_error?.err_code;
      if (code !== CONSUMER_EXISTS && code !== CONSUMER_NAME_EXISTS) throw err;
      // Made by an older version with another ack wait: brought to this one.
      await jsm.consumers.update(streamName, durable, { ack_wait: cfg.ack_wait }).catch(() => undefined);
    }
    return js.consumers.get(streamName, durable);
  }
  const info = await jsm.streams.info(streamName);
  if (fromStart) return js.consumers.get(streamName, { filterSubjects: resultsWildcard(prefix), deliver_policy: DeliverPolicy.All });
  return js.consumers.get(streamName, {
    // One subject as a string: nats-server 2.9 (Debian's) has no filter_subjects list.
    filterSubjects: resultsWildcard(prefix),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: info.state.last_seq + 1,
  });
}

/** True when the results stream (or the durable consumer) is not on the server; false when it is or the server cannot tell. */
async function resultsConsumerGone(nc: NatsConnection, prefix: string, durable: string | undefined): Promise<boolean> {
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.info(resultsStreamName(prefix));
    if (durable !== undefined) await jsm.consumers.info(resultsStreamName(prefix), durable);
    return false;
  } catch (err) {
    return isStreamGone(err);
  }
}
