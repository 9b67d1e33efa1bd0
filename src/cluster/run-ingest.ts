/**
 * `stegostream ingest`: runs sources (video files, live feeds, the demo scene), decodes at the
 * working size, encodes each frame (./frame-codec.ts) and publishes it to the work-queue stream
 * `<PREFIX>_FRAMES` on `<prefix>.ingest.<stream>`, where workers pick frames up.
 *
 * Backpressure comes from the stream's limits (`discard: new`, max frames and bytes): when the
 * queue is full, JetStream refuses the publish and ingest waits and retries (exponential, up to
 * 2 s), so a file source stops reading ffmpeg and memory stays flat; a live feed keeps only its
 * latest frames meanwhile (drop-oldest, as in `serve`). Each publish waits for JetStream's ack and
 * carries a msgID (`<run>:<stream>:<seq>`), so a retry after a lost ack is not stored twice.
 *
 * Published frames of a stream are numbered 0, 1, 2... in publish order (a live feed's dropped
 * frames leave no hole, so the collector never waits for them). When a source ends, ingest
 * publishes a `source-state` `stopped` event on `<prefix>.<stream>.events` with header `frames`
 * (the count), which tells collectors the stream is complete once they hold that many results.
 */
import { randomBytes } from 'node:crypto';
import { merge, mergeMap, tap, type Subscription } from 'rxjs';
import { headers as natsHeaders, type JetStreamClient, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Frame } from '../types.js';
import type { SourceConfig } from '../config/pipeline-schema.js';
import { buildSources, type BuiltSource } from '../engine/build-sources.js';
import type { ServiceEvent } from '../sinks/sink.js';
import { batchInfer } from '../operators/batch-infer.js';
import { streamSubject, DEFAULT_PREFIX } from '../sinks/nats-subjects.js';
import { ensureFramesStream, ensureResultsStream, type QueueLimits } from './cluster-connection.js';
import { resultsEndSubject } from './cluster-names.js';
import { DEFAULT_FRAME_FORMAT, DEFAULT_JPEG_QUALITY, type FrameFormat } from './frame-codec.js';
import { FrameQueuePublisher, PUBLISH_TIMEOUT_MS } from './frame-queue-publisher.js';
import { IngestCounters, type IngestStreamResult } from './ingest-counters.js';

export type { IngestStreamResult } from './ingest-counters.js';

/** Frames encoded and published at once, across streams. */
const PUBLISH_BATCH = 4;
/** How often each stream's source state is sent again, ms. */
const STATE_INTERVAL_MS = 5_000;

export interface IngestSource {
  readonly config: SourceConfig;
  /** Working size frames are decoded at. */
  readonly size: { readonly width: number; readonly height: number };
}

export interface IngestOptions {
  readonly nc: NatsConnection;
  readonly prefix?: string;
  readonly sources: readonly IngestSource[];
  readonly format?: FrameFormat;
  readonly jpegQuality?: number;
  /** Limits of the work queue (applied to the stream); defaults in cluster-connection.ts. */
  readonly limits?: QueueLimits;
  readonly logger: Logger;
  /** Aborting stops the sources; frames being published are finished. */
  readonly signal?: AbortSignal;
  /** Id of this run in every frame's `run` header (default: random). */
  readonly run?: string;
  /** Ask workers for each frame's label map in its durable result (header `want: masks`). */
  readonly masks?: boolean;
  /** Called after each frame is stored in the queue. */
  readonly onPublished?: (stream: string, seq: number) => void;
}

export interface IngestRun {
  /** Counters per stream so far. */
  status(): IngestStreamResult[];
  /** Resolves when every source has ended (or the run was aborted) and its end event is sent. */
  readonly done: Promise<IngestStreamResult[]>;
  /** Stops the sources; resolves like `done`. */
  stop(): Promise<IngestStreamResult[]>;
  /** True while the last publish attempt found the queue full. */
  readonly queueFull: boolean;
}

export async function runIngest(options: IngestOptions): Promise<IngestRun> {
  const { nc, logger } = options;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const format = options.format ?? DEFAULT_FRAME_FORMAT;
  const quality = options.jpegQuality ?? DEFAULT_JPEG_QUALITY;
  const log = logger.child({ stage: 'ingest' });
  const run = options.run ?? randomBytes(6).toString('hex');
  const jsm = await nc.jetstreamManager();
  const streamName = await ensureFramesStream(jsm, prefix, options.limits ?? {});
  await ensureResultsStream(jsm, prefix);
  const js: JetStreamClient = nc.jetstream();
  log.info({ stream: streamName, run, format, sources: options.sources.map((s) => s.config.name) }, 'ingest starting');

  const frames = new FrameQueuePublisher({
    nc,
    js,
    prefix,
    run,
    format,
    quality,
    masks: options.masks === true,
    log,
    limits: options.limits ?? {},
    onStored: (stream, seq) => {
      counters.published(stream);
      options.onPublished?.(stream, seq);
    },
  });

  const publishEvent = eventPublisher(nc, prefix, run, log);
  const counters = new IngestCounters({
    streams: options.sources.map((s) => s.config.name),
    run,
    publishEvent,
    storeEnd: (stream, n) => storeStreamEnd(js, prefix, stream, run, n),
    log,
  });

  // Each stream's latest state is sent again now and then, so viewers that join later see it.
  const states = new Map<string, ServiceEvent>();
  const built: BuiltSource[] = options.sources.flatMap((s) =>
    buildSources(
      [s.config],
      s.size,
      (e) => {
        if (e.type === 'source-state') states.set(e.stream, e);
        publishEvent(e);
      },
      logger,
    ),
  );
  const restate = setInterval(() => {
    for (const e of states.values()) if (e.type === 'source-state' && e.state !== 'stopped') publishEvent(e);
  }, STATE_INTERVAL_MS);
  restate.unref();
  const byName = new Map(built.map((b) => [b.name, b]));

  const streams$ = merge(
    ...built.map((b) => b.frames.pipe(tap({ next: () => counters.emitted(b.name), finalize: () => counters.ended(b.name) }))),
  );

  let resolveDone!: (r: IngestStreamResult[]) => void;
  const done = new Promise<IngestStreamResult[]>((resolve) => (resolveDone = resolve));
  const status = (): IngestStreamResult[] => counters.status();

  const subscription: Subscription = streams$
    .pipe(
      batchInfer<Frame, Frame>(
        {
          size: PUBLISH_BATCH,
          maxDelayMs: 0,
          key: (f) => f.streamId,
          policy: (k) => byName.get(k)?.policy ?? 'drop-oldest',
          queueSize: (k) => byName.get(k)?.queueSize ?? 2,
          onDrop: (f) => {
            byName.get(f.streamId)?.gate?.release();
            counters.dropped(f.streamId);
          },
        },
        async (batch) => {
          await frames.publishBatch(batch);
          return batch;
        },
      ),
      mergeMap(async (f) => {
        byName.get(f.streamId)?.gate?.release();
        counters.sendEndIfDone(f.streamId);
      }),
    )
    .subscribe({
      error: (err: unknown) => {
        log.error({ err }, 'ingest failed');
        finish(err);
      },
      complete: () => finish(),
    });

  let failure: unknown;
  function finish(err?: unknown): void {
    failure ??= err;
    clearInterval(restate);
    for (const b of built) b.gate?.close();
    resolveDone(status());
  }

  const stop = async (): Promise<IngestStreamResult[]> => {
    frames.stopping = true;
    subscription.unsubscribe();
    counters.endAll();
    finish();
    const r = await done;
    await counters.stored();
    return r;
  };
  options.signal?.addEventListener('abort', () => void stop(), { once: true });

  return {
    status,
    done: done.then(async (r) => {
      await counters.stored();
      if (failure !== undefined) throw failure;
      return r;
    }),
    stop,
    get queueFull() {
      return frames.queueFull;
    },
  };
}

/** Publishes a stream's source events on `<prefix>.<stream>.events` with the run (and a frame count at the end). */
function eventPublisher(nc: NatsConnection, prefix: string, run: string, log: Logger): (e: ServiceEvent, frames?: number) => void {
  return (e, frames) => {
    const stream = 'stream' in e ? e.stream : undefined;
    if (stream === undefined) return;
    const h = natsHeaders();
    h.set('run', run);
    if (frames !== undefined) h.set('frames', String(frames));
    try {
      nc.publish(streamSubject(prefix, stream, 'events'), Buffer.from(JSON.stringify(e), 'utf8'), { headers: h });
    } catch (err) {
      log.warn({ err, stream }, 'cannot publish a source event');
    }
  };
}

/**
 * Stores a stream's end (its frame count) in the results stream, after its results' subjects, so
 * a collector that reads the stream later knows when the stream is complete. Once per run.
 */
export async function storeStreamEnd(js: JetStreamClient, prefix: string, stream: string, run: string, frames: number): Promise<void> {
  const h = natsHeaders();
  h.set('run', run);
  h.set('frames', String(frames));
  await js.publish(resultsEndSubject(prefix, stream), Buffer.from(JSON.stringify({ stream, frames }), 'utf8'), {
    headers: h,
    msgID: `${run}:${stream}:end`,
    timeout: PUBLISH_TIMEOUT_MS,
  });
}
