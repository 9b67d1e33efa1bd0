/**
 * `stegostream worker`: one of any number of inference processes sharing the durable pull
 * consumer `workers` on the frames work queue (each frame goes to one worker). A worker fetches
 * batches, decodes them, runs backbone + head + probe (InferenceClient, in its ORT thread),
 * publishes results on the normal subjects and stores them in the results stream
 * (./result-publisher.ts), waits for JetStream to have them, and only then acks: at-least-once. Frames are kept alive with `working()` while
 * they wait or run, so a long batch is not redelivered; a worker that dies leaves its frames
 * unacked and JetStream redelivers them to another after the ack wait.
 *
 * The head comes from the KV bucket `<PREFIX>_heads` key `head` (the trainer writes it): the
 * worker watches the key and swaps a new version in between batches, so every result of a batch
 * carries the same head version. Until a head exists, frames are embedded only, their sampled
 * features go to the trainer (so it can fit the first head), and they are nak'ed back to the queue
 * for later. After that, features of every `featuresEvery`-th frame go to the trainer.
 */
import type { RefineOptions } from '../backbone/refine-options.js';
import { hostname } from 'node:os';
import type { Consumer, NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { InferenceClient } from '../backbone/inference-client.js';
import type { Device } from '../backbone/execution-device.js';
import { ObjectFinder } from '../objects/object-finder.js';
import { segmentPipeline, publishTo } from '../engine/segment-pipeline.js';
import { DEFAULT_PREFIX } from '../sinks/nats-subjects.js';
import { counter, gauge } from '../internal/metrics.js';
import type { Readiness } from '../service/http-server.js';
import {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_MAX_ACK_PENDING,
  ensureFramesStream,
  ensureResultsStream,
  ensureWorkersConsumer,
} from './cluster-connection.js';
import { WORKERS_CONSUMER } from './cluster-names.js';
import { ResultPublisher } from './result-publisher.js';
import { HeldFrames } from './held-frames.js';
import { jetstreamFrames } from './jetstream-frames.js';
import { watchHeads } from './head-watch.js';
import { BatchSegmenter } from './batch-segmenter.js';
import { clusterResultSink } from './cluster-result-sink.js';

export const DEFAULT_FEATURES_EVERY = 2;
export const DEFAULT_FEATURE_POINTS = 128;

export interface WorkerOptions {
  readonly nc: NatsConnection;
  readonly prefix?: string;
  /** "builtin" or an ONNX file keeping the backbone contract. */
  readonly backbone: string;
  readonly device: Device;
  readonly threads?: number;
  /** Guided-filter refinement; omitted: DEFAULT_REFINE; null: off. */
  readonly refine?: RefineOptions | null;
  /** Frames per backbone call (default 4). */
  readonly batchSize?: number;
  /** How long a partial batch waits to fill once the worker is free, ms (default 20). */
  readonly maxDelayMs?: number;
  /** Consumer ack wait, ms (default 30 000): how soon a dead worker's frames go to another. */
  readonly ackWaitMs?: number;
  readonly maxAckPending?: number;
  readonly objects?: boolean;
  /** Overlay JPEGs on `.frames` (default true). */
  readonly frames?: boolean;
  readonly masks?: boolean;
  /** Send features of every n-th frame to the trainer (0: never; default 2). */
  readonly featuresEvery?: number;
  /** Patches sampled per frame sent (default 128). */
  readonly featurePoints?: number;
  /** Worker id in headers and logs (default host-pid). */
  readonly name?: string;
  readonly logger: Logger;
  readonly registry?: Registry;
}

export interface RunningWorker {
  readonly name: string;
  readonly registry: Registry;
  ready(): Readiness;
  status(): { frames: number; batches: number; headVersion: number; redelivered: number };
  /** Resolves when the worker has stopped (close, or a fatal error: rejects). */
  readonly done: Promise<void>;
  /** Stops fetching, finishes the batch in hand (acked), naks what is queued, closes the backbone. Idempotent. */
  close(): Promise<void>;
}

export async function runWorker(options: WorkerOptions): Promise<RunningWorker> {
  const { nc, logger } = options;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const name = options.name ?? `${hostname()}-${process.pid}`;
  const batchSize = options.batchSize ?? 4;
  const ackWaitMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const log = logger.child({ stage: 'worker', worker: name });
  const registry = options.registry ?? new Registry();
  const frameCounter = counter(registry, 'stegostream_worker_frames_total', 'Frames segmented and acked', ['outcome']);
  const redeliveredCounter = counter(
    registry,
    'stegostream_worker_redelivered_total',
    'Frames fetched that were delivered before (nak, or a worker died)',
  );

  const openQueue = (): Promise<Consumer> => openWorkQueue(nc, prefix, ackWaitMs, options.maxAckPending ?? DEFAULT_MAX_ACK_PENDING);
  const consumer = await openQueue();

  const inference = await InferenceClient.start(options.backbone, {
    device: options.device,
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.refine !== undefined ? { refine: options.refine } : {}),
  });
  const info = inference.info;
  log.info({ backbone: info.name, provider: info.provider, dim: info.dim }, 'backbone loaded');
  const finder = options.objects
    ? await ObjectFinder.create(info.patchSize, options.threads !== undefined ? { threads: options.threads } : {})
    : undefined;
  const results = new ResultPublisher({
    nc,
    prefix,
    worker: name,
    ...(options.frames !== undefined ? { frames: options.frames } : {}),
    ...(options.masks !== undefined ? { masks: options.masks } : {}),
  });
  const heads = await watchHeads(nc, prefix, info.dim, log);
  const held = new HeldFrames(ackWaitMs, batchSize, { frames: frameCounter, redelivered: redeliveredCounter });
  const segmenter = new BatchSegmenter({
    nc,
    prefix,
    inference,
    backboneName: info.name,
    heads,
    held,
    batches: counter(registry, 'stegostream_worker_batches_total', 'Batches processed'),
    headVersion: gauge(registry, 'stegostream_worker_head_version', 'Head version in use (0: none yet)'),
    log,
    featuresEvery: options.featuresEvery ?? DEFAULT_FEATURES_EVERY,
    featurePoints: options.featurePoints ?? DEFAULT_FEATURE_POINTS,
  });

  let closing = false;
  const frames$ = jetstreamFrames(consumer, openQueue, held, batchSize, () => closing, log);
  let resolveDone!: () => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  let pipelineDone!: () => void;
  const drained = new Promise<void>((resolve) => (pipelineDone = resolve));
  frames$
    .pipe(
      segmentPipeline({
        batch: {
          size: batchSize,
          maxDelayMs: options.maxDelayMs ?? 20,
          key: (f) => f.streamId,
          policy: () => 'wait',
          queueSize: () => batchSize,
        },
        segment: (batch) => segmenter.stage(batch),
        objects: finder,
        render: {
          png: (seg) => (options.masks ?? false) || held.wantsMask(seg.frame),
          jpeg: () => options.frames ?? true,
        },
      }),
      // A batch's results are stored in parallel; each frame is acked once its result is stored.
      publishTo(clusterResultSink(results, held, log, openQueue), batchSize),
    )
    .subscribe({
      error: (err: unknown) => {
        log.error({ err }, 'worker failed');
        pipelineDone();
        rejectDone(err);
      },
      complete: () => pipelineDone(),
    });

  let closingPromise: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closingPromise ??= (async () => {
      // The source stops fetching and ends; what it already handed on is segmented and acked.
      closing = true;
      await drained;
      held.nakAll();
      await heads.stop();
      await nc.flush().catch(() => undefined);
      await inference.close();
      await finder?.close();
      log.info({ frames: held.acked, batches: segmenter.batches }, 'worker stopped');
      resolveDone();
    })());

  return {
    name,
    registry,
    ready: (): Readiness => {
      if (closing) return { ready: false, reason: 'shutting down' };
      if (nc.isClosed()) return { ready: false, reason: 'not connected to NATS' };
      if (!heads.available) return { ready: false, reason: heads.problem ?? 'no head yet' };
      return { ready: true };
    },
    status: () => ({ frames: held.acked, batches: segmenter.batches, headVersion: segmenter.headVersion, redelivered: held.redelivered }),
    done,
    close,
  };
}

/**
 * The work queue's stream and consumer, and the results stream, created if missing (at start, and
 * again after a server came back without its store); the consumer to fetch from.
 */
async function openWorkQueue(nc: NatsConnection, prefix: string, ackWaitMs: number, maxAckPending: number): Promise<Consumer> {
  const jsm = await nc.jetstreamManager();
  const streamName = await ensureFramesStream(jsm, prefix);
  await ensureWorkersConsumer(jsm, prefix, ackWaitMs, maxAckPending);
  await ensureResultsStream(jsm, prefix);
  return nc.jetstream().consumers.get(streamName, WORKERS_CONSUMER);
}
