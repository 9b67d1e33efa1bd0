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
import type { JsMsg, NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Frame, Segmentation } from '../types.js';
import { InferenceClient } from '../backbone/inference-client.js';
import type { Device } from '../backbone/execution-device.js';
import { decodeCheckpoint } from '../learning/checkpoint.js';
import { classInfos, type HeadState } from '../learning/head-state.js';
import { addObjects } from '../objects/object-finder.js';
import { DEFAULT_PREFIX } from '../sinks/nats-subjects.js';
import { counter, gauge } from '../internal/metrics.js';
import type { Readiness } from '../service/http-server.js';
import {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_MAX_ACK_PENDING,
  ensureFramesStream,
  ensureResultsStream,
  ensureWorkersConsumer,
  openHeadsBucket,
} from './cluster-connection.js';
import { featuresSubject, HEAD_KEY, headsBucketName, WORKERS_CONSUMER } from './cluster-names.js';
import { decodeFrame, type WireFrame } from './frame-codec.js';
import { encodeFeatures, sampleFeatures } from './feature-message.js';
import { ResultPublisher } from './result-publisher.js';

/** A frame seen before the first head goes back to the queue for this long, ms. */
const WARMUP_NAK_DELAY_MS = 500;
/** A batch that failed inference is retried after this long, ms. */
const FAILURE_NAK_DELAY_MS = 2_000;
/** Deliveries after which a frame that keeps failing inference is terminated. */
const MAX_FAILED_DELIVERIES = 20;
/** How long one fetch waits for a batch to fill, ms (nats.js minimum: 1000). */
const FETCH_EXPIRES_MS = 1_000;
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
  const maxDelayMs = options.maxDelayMs ?? 20;
  const ackWaitMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const featuresEvery = options.featuresEvery ?? DEFAULT_FEATURES_EVERY;
  const featurePoints = options.featurePoints ?? DEFAULT_FEATURE_POINTS;
  const log = logger.child({ stage: 'worker', worker: name });
  const registry = options.registry ?? new Registry();
  const mFrames = counter(registry, 'stegostream_worker_frames_total', 'Frames segmented and acked', ['outcome']);
  const mBatches = counter(registry, 'stegostream_worker_batches_total', 'Batches processed');
  const mHead = gauge(registry, 'stegostream_worker_head_version', 'Head version in use (0: none yet)');
  const mRedelivered = counter(
    registry,
    'stegostream_worker_redelivered_total',
    'Frames fetched that were delivered before (nak, or a worker died)',
  );

  const jsm = await nc.jetstreamManager();
  const streamName = await ensureFramesStream(jsm, prefix);
  await ensureWorkersConsumer(jsm, prefix, ackWaitMs, options.maxAckPending ?? DEFAULT_MAX_ACK_PENDING);
  await ensureResultsStream(jsm, prefix);
  const consumer = await nc.jetstream().consumers.get(streamName, WORKERS_CONSUMER);
  const kv = await openHeadsBucket(nc, prefix);

  const inference = await InferenceClient.start(options.backbone, {
    device: options.device,
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.refine !== undefined ? { refine: options.refine } : {}),
  });
  const info = inference.info;
  log.info({ backbone: info.name, provider: info.provider, dim: info.dim }, 'backbone loaded');
  const results = new ResultPublisher({
    nc,
    prefix,
    worker: name,
    ...(options.frames !== undefined ? { frames: options.frames } : {}),
    ...(options.masks !== undefined ? { masks: options.masks } : {}),
  });
  const objects = options.objects ? addObjects(info.patchSize) : undefined;

  // Heads: the latest from KV; swapped in between batches.
  let latest: HeadState | undefined;
  let head: HeadState | undefined;
  let headProblem: string | undefined = 'waiting for the first head from the trainer';
  const watch = await kv.watch({ key: HEAD_KEY });
  const where = `KV ${headsBucketName(prefix)}/${HEAD_KEY}`;
  const watching = (async () => {
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      try {
        latest = decodeCheckpoint(e.value, `${where} revision ${e.revision}`, { dim: info.dim });
        headProblem = undefined;
        log.info({ headVersion: latest.version, revision: e.revision }, 'head received');
      } catch (err) {
        headProblem = (err as Error).message;
        log.error({ err, revision: e.revision }, 'cannot use the head in KV; keeping the current one');
      }
    }
  })();

  let closing = false;
  let frames = 0;
  let batches = 0;
  let redelivered = 0;
  /** Messages fetched and not yet acked/nak'ed/terminated: kept alive with working(). */
  const held = new Set<JsMsg>();
  const keepAlive = setInterval(
    () => {
      for (const m of held) m.working();
    },
    Math.max(250, Math.floor(ackWaitMs / 3)),
  );
  keepAlive.unref();

  const queue: JsMsg[] = [];
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const waitFor = (ms?: number): Promise<void> =>
    new Promise((resolve) => {
      wake = resolve;
      if (ms !== undefined) setTimeout(resolve, ms).unref();
    });

  // Fetch loop: keeps about one batch in hand beyond the one running, so a batch is ready the
  // moment the backbone is free, and no worker hoards frames another could run.
  const fetching = (async () => {
    while (!closing) {
      if (queue.length >= batchSize) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      try {
        const iter = await consumer.fetch({ max_messages: batchSize - queue.length, expires: FETCH_EXPIRES_MS });
        for await (const m of iter) {
          held.add(m);
          if (closing) {
            m.nak();
            held.delete(m);
            continue;
          }
          if (m.redelivered) {
            redelivered++;
            mRedelivered.inc();
          }
          queue.push(m);
          notify();
        }
      } catch (err) {
        if (closing) break;
        log.warn({ err: (err as Error).message }, 'fetch failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();

  const settle = (m: JsMsg, how: 'ack' | 'nak' | 'term', delayMs?: number): void => {
    held.delete(m);
    if (how === 'ack') m.ack();
    else if (how === 'nak') m.nak(delayMs);
    else m.term();
  };

  type Decoded = Array<{ m: JsMsg; w: WireFrame }>;

  /** Decodes a batch's frames (libvips threads); messages that are not frames are terminated. */
  async function decodeBatch(batch: JsMsg[]): Promise<Decoded> {
    const decoded: Decoded = [];
    await Promise.all(
      batch.map(async (m) => {
        try {
          decoded.push({ m, w: await decodeFrame(m.data, m.headers) });
        } catch (err) {
          log.error({ err: (err as Error).message, subject: m.subject }, 'not a frame; terminating the message');
          mFrames.inc({ outcome: 'terminated' });
          settle(m, 'term');
        }
      }),
    );
    decoded.sort((a, b) => a.m.seq - b.m.seq);
    return decoded;
  }

  async function processBatch(decoded: Decoded): Promise<void> {
    if (latest !== undefined && latest !== head) {
      head = latest;
      mHead.set(head.version);
      log.info({ headVersion: head.version }, 'head swapped in');
    }
    // One backbone call per working size (normally one).
    const groups = new Map<string, Array<{ m: JsMsg; w: WireFrame }>>();
    for (const d of decoded) {
      const k = `${d.w.frame.width}x${d.w.frame.height}`;
      groups.set(k, [...(groups.get(k) ?? []), d]);
    }
    for (const group of groups.values()) {
      const framesOf = group.map((d) => d.w.frame);
      try {
        if (head === undefined) {
          await warmup(framesOf);
          for (const d of group) settle(d.m, 'nak', WARMUP_NAK_DELAY_MS);
          continue;
        }
        await segment(group, head);
        await nc.flush();
        for (const d of group) settle(d.m, 'ack');
        frames += group.length;
        mFrames.inc({ outcome: 'acked' }, group.length);
      } catch (err) {
        log.error({ err, frames: group.length }, 'batch failed; returning its frames to the queue');
        for (const d of group) {
          if (d.m.info.deliveryCount >= MAX_FAILED_DELIVERIES) {
            mFrames.inc({ outcome: 'terminated' });
            settle(d.m, 'term');
          } else settle(d.m, 'nak', FAILURE_NAK_DELAY_MS);
        }
      }
    }
    batches++;
    mBatches.inc();
  }

  async function warmup(batch: Frame[]): Promise<void> {
    const r = await inference.infer(batch);
    for (const e of r.embeddings) sendFeatures(e);
  }

  async function segment(group: Array<{ m: JsMsg; w: WireFrame }>, h: HeadState): Promise<void> {
    const batch = group.map((d) => d.w.frame);
    const r = await inference.infer(batch, h);
    const classes = classInfos(h);
    const labels = r.labels ?? [];
    await Promise.all(
      r.embeddings.map(async (e, i) => {
        let seg: Segmentation = { frame: e.frame, labels: labels[i] as Uint8Array, headVersion: h.version, classes, embedding: e };
        if (objects) seg = objects(seg);
        const w = (group[i] as { w: WireFrame }).w;
        await results.publish(seg, w.run, w.wantMask);
        if (featuresEvery > 0 && e.frame.seq % featuresEvery === 0) sendFeatures(e);
      }),
    );
  }

  function sendFeatures(e: Parameters<typeof sampleFeatures>[0]): void {
    const { data, headers } = encodeFeatures(sampleFeatures(e, featurePoints, info.name));
    nc.publish(featuresSubject(prefix), data, { headers });
  }

  // The next batch is decoded while the current one runs (when a whole batch is already queued).
  const loop = (async () => {
    let next: Promise<Decoded> | undefined;
    while (!closing) {
      if (next === undefined) {
        if (queue.length === 0) {
          await waitFor(1000);
          continue;
        }
        if (queue.length < batchSize && maxDelayMs > 0) await waitFor(maxDelayMs);
        const batch = queue.splice(0, batchSize);
        if (batch.length === 0) continue;
        next = decodeBatch(batch);
      }
      const current = await next;
      next = queue.length >= batchSize && !closing ? decodeBatch(queue.splice(0, batchSize)) : undefined;
      await processBatch(current);
    }
    // A batch decoded ahead goes back to the queue.
    for (const d of (await next) ?? []) settle(d.m, 'nak');
  })();

  let closingPromise: Promise<void> | undefined;
  let resolveDone!: () => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  loop.catch((err: unknown) => {
    log.error({ err }, 'worker failed');
    rejectDone(err);
  });

  const close = (): Promise<void> =>
    (closingPromise ??= (async () => {
      closing = true;
      notify();
      await loop.catch(() => undefined);
      await fetching.catch(() => undefined);
      for (const m of queue.splice(0)) settle(m, 'nak');
      for (const m of held) m.nak();
      held.clear();
      clearInterval(keepAlive);
      watch.stop();
      await watching.catch(() => undefined);
      await nc.flush().catch(() => undefined);
      await inference.close();
      log.info({ frames, batches }, 'worker stopped');
      resolveDone();
    })());

  return {
    name,
    registry,
    ready: (): Readiness => {
      if (closing) return { ready: false, reason: 'shutting down' };
      if (nc.isClosed()) return { ready: false, reason: 'not connected to NATS' };
      if (head === undefined && latest === undefined) return { ready: false, reason: headProblem ?? 'no head yet' };
      return { ready: true };
    },
    status: () => ({ frames, batches, headVersion: head?.version ?? 0, redelivered }),
    done,
    close,
  };
}
