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
import { headers as natsHeaders, type JetStreamClient, type MsgHdrs, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Frame } from '../types.js';
import type { SourceConfig } from '../config/pipeline-schema.js';
import { buildSources, type BuiltSource } from '../engine/build-sources.js';
import type { ServiceEvent } from '../sinks/sink.js';
import { batchInfer } from '../operators/batch-infer.js';
import { streamSubject, DEFAULT_PREFIX } from '../sinks/nats-subjects.js';
import { ensureFramesStream, ensureResultsStream, type QueueLimits } from './cluster-connection.js';
import { ingestSubject, resultsEndSubject } from './cluster-names.js';
import { encodeFrame, DEFAULT_FRAME_FORMAT, DEFAULT_JPEG_QUALITY, type FrameFormat } from './frame-codec.js';

/** Frames encoded and published at once, across streams. */
const PUBLISH_BATCH = 4;
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;
const PUBLISH_TIMEOUT_MS = 10_000;
/** How often each stream's source state is sent again, ms. */
const STATE_INTERVAL_MS = 5_000;
/** A full queue is logged at most this often, ms. */
const LOG_INTERVAL_MS = 10_000;

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

export interface IngestStreamResult {
  readonly stream: string;
  /** Frames stored in the work queue. */
  readonly frames: number;
  /** Frames a live feed dropped because the queue was full or slow. */
  readonly dropped: number;
  readonly run: string;
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

interface StreamCounters {
  emitted: number;
  published: number;
  dropped: number;
  ended: boolean;
  endSent: boolean;
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

  const counters = new Map<string, StreamCounters>();
  for (const s of options.sources) counters.set(s.config.name, { emitted: 0, published: 0, dropped: 0, ended: false, endSent: false });
  let queueFull = false;
  let lastFullLog = -Infinity;
  let stopping = false;

  const json = (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v), 'utf8');
  const publishEvent = (e: ServiceEvent, frames?: number): void => {
    const stream = 'stream' in e ? e.stream : undefined;
    if (stream === undefined) return;
    const h = natsHeaders();
    h.set('run', run);
    if (frames !== undefined) h.set('frames', String(frames));
    try {
      nc.publish(streamSubject(prefix, stream, 'events'), json(e), { headers: h });
    } catch (err) {
      log.warn({ err, stream }, 'cannot publish a source event');
    }
  };

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

  /** Stores of each stream's end in the results stream: `done` waits for them. */
  const endsStored: Promise<void>[] = [];
  const sendEndIfDone = (stream: string): void => {
    const c = counters.get(stream);
    if (!c || !c.ended || c.endSent || c.published + c.dropped < c.emitted) return;
    c.endSent = true;
    publishEvent({ type: 'source-state', stream, state: 'stopped', detail: `end of input: ${c.published} frames` }, c.published);
    log.info({ stream, frames: c.published, dropped: c.dropped }, 'stream ingested');
    endsStored.push(
      storeStreamEnd(js, prefix, stream, run, c.published).catch((err: unknown) =>
        log.warn({ err, stream }, 'cannot store the end of the stream for late collectors'),
      ),
    );
  };

  async function publishFrame(frame: Frame, seq: number, encoded: Promise<{ data: Uint8Array; headers: MsgHdrs }>): Promise<void> {
    const f = seq === frame.seq ? frame : { ...frame, seq };
    const { data, headers } = await encoded;
    if (options.masks) headers.set('want', 'masks');
    const subject = ingestSubject(prefix, frame.streamId);
    const msgID = `${run}:${frame.streamId}:${seq}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await js.publish(subject, data, { headers, msgID, timeout: PUBLISH_TIMEOUT_MS });
        queueFull = false;
        const c = counters.get(frame.streamId) as StreamCounters;
        c.published++;
        options.onPublished?.(frame.streamId, seq);
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'MAX_PAYLOAD_EXCEEDED') {
          throw new Error(
            `a ${f.width}x${f.height} ${format} frame (${data.length} bytes) is larger than the NATS server's max_payload (${nc.info?.max_payload ?? '?'} bytes): use --frame-format jpeg, a smaller --width, or raise max_payload in the server config`,
            { cause: err },
          );
        }
        if (stopping && attempt > 0) throw err;
        queueFull = true;
        const now = Date.now();
        if (now - lastFullLog > LOG_INTERVAL_MS) {
          lastFullLog = now;
          log.warn({ err: (err as Error).message, stream: frame.streamId }, 'work queue full or unavailable; waiting for workers');
        }
        await new Promise((r) => setTimeout(r, Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 10))));
      }
    }
  }

  const streams$ = merge(
    ...built.map((b) =>
      b.frames.pipe(
        tap({
          next: () => {
            const c = counters.get(b.name);
            if (c) c.emitted++;
          },
          finalize: () => {
            const c = counters.get(b.name);
            if (c) c.ended = true;
            sendEndIfDone(b.name);
          },
        }),
      ),
    ),
  );

  let resolveDone!: (r: IngestStreamResult[]) => void;
  const done = new Promise<IngestStreamResult[]>((resolve) => (resolveDone = resolve));
  const status = (): IngestStreamResult[] =>
    [...counters.entries()].map(([stream, c]) => ({ stream, frames: c.published, dropped: c.dropped, run }));

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
            const c = counters.get(f.streamId);
            if (c) c.dropped++;
            sendEndIfDone(f.streamId);
          },
        },
        async (batch) => {
          // Numbers are given in batch order, so a stream's frames keep their order.
          // Encoded in parallel; published in order per stream (a retry holds back the stream's
          // later frames, so the queue keeps each stream's order) and in parallel across streams.
          const perStream = new Map<string, Array<{ f: Frame; seq: number; encoded: Promise<{ data: Uint8Array; headers: MsgHdrs }> }>>();
          for (const f of batch) {
            const seq = nextSeq(f.streamId);
            const encoded = encodeFrame(seq === f.seq ? f : { ...f, seq }, run, format, quality);
            encoded.catch(() => undefined);
            perStream.set(f.streamId, [...(perStream.get(f.streamId) ?? []), { f, seq, encoded }]);
          }
          await Promise.all(
            [...perStream.values()].map(async (list) => {
              for (const { f, seq, encoded } of list) await publishFrame(f, seq, encoded);
            }),
          );
          return batch;
        },
      ),
      mergeMap(async (f) => {
        byName.get(f.streamId)?.gate?.release();
        sendEndIfDone(f.streamId);
      }),
    )
    .subscribe({
      error: (err: unknown) => {
        log.error({ err }, 'ingest failed');
        finish(err);
      },
      complete: () => finish(),
    });

  const assigned = new Map<string, number>();
  function nextSeq(stream: string): number {
    const n = assigned.get(stream) ?? 0;
    assigned.set(stream, n + 1);
    return n;
  }

  let failure: unknown;
  function finish(err?: unknown): void {
    failure ??= err;
    clearInterval(restate);
    for (const b of built) b.gate?.close();
    resolveDone(status());
  }

  const stop = async (): Promise<IngestStreamResult[]> => {
    stopping = true;
    subscription.unsubscribe();
    for (const name of counters.keys()) {
      const c = counters.get(name) as StreamCounters;
      c.ended = true;
      c.emitted = c.published + c.dropped;
      sendEndIfDone(name);
    }
    finish();
    const r = await done;
    await Promise.all(endsStored);
    return r;
  };
  options.signal?.addEventListener('abort', () => void stop(), { once: true });

  return {
    status,
    done: done.then(async (r) => {
      await Promise.all(endsStored);
      if (failure !== undefined) throw failure;
      return r;
    }),
    stop,
    get queueFull() {
      return queueFull;
    },
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
