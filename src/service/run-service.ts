import { merge, Subscription, concatMap } from 'rxjs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import sharp from 'sharp';
import type { Logger } from 'pino';
import type { ClassInfo, Frame, Segmentation, StageCounters } from '../types.js';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { InferenceClient } from '../backbone/inference-client.js';
import { workingSize } from '../internal/working-size.js';
import { SegmentationEngine } from '../pipeline/segmentation-engine.js';
import { addObjects } from '../pipeline/add-objects.js';
import { batchInfer } from '../operators/batch-infer.js';
import { frameStats } from '../operators/frame-stats.js';
import { loadCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { blendOverlay } from '../sinks/paint-mask.js';
import { encodeLabelPng } from '../sinks/mask-writer.js';
import { createWsHub, type WsHub } from '../sinks/ws-hub.js';
import { natsPublisher } from '../sinks/nats-publisher.js';
import { statsFilePublisher } from '../sinks/stats-file-publisher.js';
import { OVERLAY_ALPHA } from '../sinks/overlay-video-writer.js';
import { fanOutPublisher, type LivePublisher, type ServiceEvent, type SourceState } from './live-publisher.js';
import type { ControlHandler } from './control.js';
import { startHttpService, type HttpService, type Readiness } from './http-server.js';
import { buildSources, type BuiltSource } from './build-sources.js';
import { PipelineMetrics } from './pipeline-metrics.js';

/** Default working-frame aspect for live pipelines (sources of other shapes are scaled to it). */
const DEFAULT_ASPECT = 9 / 16;
/** How often per-stream counters go out as events, ms. */
const COUNTERS_INTERVAL_MS = 1000;

export interface RunningService {
  readonly url: string;
  readonly port: number;
  readonly engine: SegmentationEngine;
  /** Resolves when every source has ended (files without loop) or the service was closed. */
  readonly finished: Promise<void>;
  /** Graceful shutdown: sources stopped, in-flight batch finished, checkpoint written, clients closed (1001). Idempotent. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  readonly logger: Logger;
  /** Overrides service.port (CLI --port, PORT). */
  readonly port?: number;
}

/**
 * Runs a pipeline as a service: sources -> batched backbone + learned head -> per-stream stats,
 * overlay JPEGs and label PNGs to the WebSocket hub, NATS and stats files; HTTP serves the viewer,
 * `/metrics`, `/healthz`, `/readyz`. One failing source never stops the others; a failing sink
 * never stops the pipeline.
 */
export async function runService(config: Readonly<PipelineConfig>, options: ServiceOptions): Promise<RunningService> {
  const logger = options.logger.child({ pipeline: config.name });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'stegostream_process_' });
  const metrics = new PipelineMetrics(registry);

  const inference = await InferenceClient.start(config.model.backbone, {
    device: config.model.device,
    ...(config.model.threads !== undefined ? { threads: config.model.threads } : {}),
  });
  const info = inference.info;
  logger.info({ backbone: info.name, provider: info.provider, reason: info.providerReason }, 'backbone loaded');
  const size =
    info.inputWidth > 0
      ? { width: info.inputWidth, height: info.inputHeight }
      : workingSize({ width: config.model.width, height: config.model.height ?? Math.round(config.model.width * DEFAULT_ASPECT) }, info.patchSize, {
          width: config.model.width,
          ...(config.model.height !== undefined ? { height: config.model.height } : {}),
        });

  const l = config.learning;
  let initial: HeadState | undefined;
  const headFile = l.head ?? (l.resume ? l.checkpoint : undefined);
  if (headFile) initial = await loadCheckpoint(headFile, { dim: info.dim, k: l.classes + l.extraClusters });
  if (l.checkpoint) await mkdir(dirname(l.checkpoint), { recursive: true });

  const streams = config.sources.map((s) => s.name);
  let publisher: LivePublisher | undefined;
  const publishLegend = (classes: readonly ClassInfo[], version: number): void => {
    for (const s of streams) publisher?.classes(s, classes, version);
  };

  const engine = await SegmentationEngine.create({
    inference,
    logger,
    objects: config.model.objects,
    warmupFrames: l.warmupFrames,
    ...(l.checkpoint && !l.freeze ? { checkpoint: l.checkpoint } : {}),
    learner: {
      k: l.classes,
      extraClusters: l.extraClusters,
      codeDim: l.codeDim,
      seed: l.seed,
      freeze: l.freeze,
      bank: { capacityFrames: l.bankFrames },
      train: { everyFrames: l.trainEvery, steps: l.trainSteps },
      ...(l.names ? { names: l.names } : {}),
      ...(initial ? { initial } : {}),
    },
    onHead: (state, classes) => {
      metrics.headVersion.set(state.version);
      publishLegend(classes, state.version);
      publisher?.event({ type: 'head-updated', version: state.version });
    },
  }).catch(async (err: unknown) => {
    await inference.close();
    throw err;
  });

  const sourceStates = new Map<string, SourceState>();
  const control: ControlHandler = {
    renameClass: (id, name) => [...engine.rename(id, name)],
    pauseLearning: () => {
      engine.learner.pause();
      publisher?.event({ type: 'pipeline', learning: 'paused' });
    },
    resumeLearning: () => {
      engine.learner.resume();
      publisher?.event({ type: 'pipeline', learning: 'running' });
    },
    snapshotHead: async () => {
      const r = await engine.snapshot(l.checkpoint ?? '.stegostream/head.ckpt');
      if (!r) throw new Error('no head to snapshot yet (the first fit has not happened)');
      return r;
    },
    status: () => ({
      pipeline: config.name,
      backbone: { name: info.name, provider: info.provider },
      headVersion: engine.headState.version,
      learning: engine.learner.isFrozen ? 'frozen' : engine.learner.paused ? 'paused' : 'running',
      classes: engine.classInfo,
      sources: Object.fromEntries(sourceStates),
      working: size,
    }),
  };

  // Sinks.
  const pubs: LivePublisher[] = [];
  let hub: WsHub | undefined;
  let jpegQuality = 75;
  let maxWidth = 0;
  for (const sink of config.sinks) {
    if (sink.use === 'websocket') {
      hub = createWsHub({
        control,
        registry,
        logger,
        maxPayloadBytes: sink.with.maxPayloadBytes,
        heartbeatIntervalMs: sink.with.heartbeatIntervalMs,
        maxClients: sink.with.maxClients,
      });
      jpegQuality = sink.with.jpegQuality;
      maxWidth = sink.with.maxWidth;
      pubs.push(hub);
    } else if (sink.use === 'nats') {
      pubs.push(
        natsPublisher({
          servers: sink.with.servers,
          prefix: sink.with.prefix,
          frames: sink.with.frames,
          masks: sink.with.masks,
          control,
          registry,
          logger,
          reconnectBufSize: sink.with.reconnectBufSize,
          name: `stegostream-${config.name}`,
          ...(sink.with.jetstream ? { jetstream: sink.with.jetstream } : {}),
        }),
      );
    } else {
      pubs.push(statsFilePublisher(sink.with.path, logger));
    }
  }
  publisher = fanOutPublisher(pubs, logger);
  const pub = publisher;

  const events = (e: ServiceEvent): void => {
    if (e.type === 'source-state') sourceStates.set(e.stream, e.state);
    pub.event(e);
  };

  let http: HttpService;
  try {
    http = await startHttpService({
      registry,
      host: config.service.host,
      port: options.port ?? config.service.port,
      logger,
      ready: (): Readiness => {
        if (engine.headState.version === 0) return { ready: false, reason: 'no head yet: waiting for the first frames' };
        if (![...sourceStates.values()].some((s) => s === 'live')) return { ready: false, reason: 'no source is live' };
        return { ready: true };
      },
      ...(hub ? { hub } : {}),
      ...(config.service.token ? { token: config.service.token } : {}),
    });
  } catch (err) {
    await Promise.allSettled([pub.close(), engine.close(), inference.close()]);
    throw err;
  }
  logger.info({ url: http.url }, 'service listening');

  publishLegend(engine.classInfo, engine.headState.version);
  pub.event({ type: 'pipeline', state: 'running', learning: engine.learner.isFrozen ? 'frozen' : 'running' });

  // The pipeline.
  const built: BuiltSource[] = buildSources(config.sources, size, events, logger);
  const byName = new Map(built.map((b) => [b.name, b]));
  const counters = new Map<string, StageCounters>();
  const published = new Map<string, number>();
  const encoding = new Set<string>();

  const release = (f: Frame): void => byName.get(f.streamId)?.gate?.release();

  const publish = async (seg: Segmentation): Promise<void> => {
    const f = seg.frame;
    const stream = f.streamId;
    pub.stats(frameStats(seg));
    metrics.framesOut.inc({ stream });
    metrics.frameAgeSeconds.observe({ stream }, (Date.now() - f.capturedAt) / 1000);
    published.set(stream, (published.get(stream) ?? 0) + 1);
    const meta = { seq: f.seq, pts: f.pts, headVersion: seg.headVersion, width: f.width, height: f.height };
    if (pub.wantsMasks(stream)) pub.mask(stream, meta, Buffer.from(encodeLabelPng(seg.labels, f.width, f.height, seg.classes)));
    // One JPEG encode per stream at a time: when encoding lags, skip (viewers lose frames, never stats).
    if (pub.wantsFrames(stream) && !encoding.has(stream)) {
      encoding.add(stream);
      const t0 = performance.now();
      let img = sharp(blendOverlay(seg, OVERLAY_ALPHA), { raw: { width: f.width, height: f.height, channels: 3 } });
      if (maxWidth > 0 && f.width > maxWidth) img = img.resize(maxWidth);
      img
        .jpeg({ quality: jpegQuality })
        .toBuffer()
        .then((jpeg) => {
          metrics.stageSeconds.observe({ stage: 'jpeg' }, (performance.now() - t0) / 1000);
          pub.frame(stream, meta, jpeg);
        })
        .catch((err: unknown) => logger.error({ err, stream }, 'overlay encoding failed'))
        .finally(() => encoding.delete(stream));
    }
  };

  const frames$ = merge(
    ...built.map((b) =>
      b.frames.pipe(
        concatMap(async (f) => {
          metrics.framesIn.inc({ stream: f.streamId });
          return f;
        }),
      ),
    ),
  );
  let finishedResolve: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finishedResolve = resolve));
  const subscription: Subscription = frames$
    .pipe(
      batchInfer<Frame, Segmentation>(
        {
          size: config.model.batch.size,
          maxDelayMs: config.model.batch.maxDelayMs,
          key: (f) => f.streamId,
          policy: (k) => byName.get(k)?.policy ?? 'drop-oldest',
          queueSize: (k) => byName.get(k)?.queueSize ?? 2,
          counters,
          onDrop: (f) => {
            metrics.framesDropped.inc({ stream: f.streamId });
            release(f);
          },
        },
        async (batch) => {
          metrics.batchSize.observe(batch.length);
          const t0 = performance.now();
          const segs = await engine.process(batch);
          metrics.stageSeconds.observe({ stage: 'inference' }, (performance.now() - t0) / 1000);
          return config.model.objects ? segs.map(addObjects(info.patchSize)) : segs;
        },
      ),
      concatMap(async (seg) => {
        try {
          await publish(seg);
        } finally {
          release(seg.frame);
        }
      }),
    )
    .subscribe({
      error: (err: unknown) => {
        logger.error({ err }, 'pipeline failed');
        pub.event({ type: 'pipeline', state: 'failed', detail: err instanceof Error ? err.message : String(err) });
        finishedResolve();
      },
      complete: () => {
        logger.info('every source has ended');
        pub.event({ type: 'pipeline', state: 'stopped', detail: 'every source has ended' });
        finishedResolve();
      },
    });

  let lastCount = new Map<string, number>();
  const ticker = setInterval(() => {
    for (const s of streams) {
      const n = published.get(s) ?? 0;
      const fps = ((n - (lastCount.get(s) ?? 0)) * 1000) / COUNTERS_INTERVAL_MS;
      metrics.fps.set({ stream: s }, fps);
      const c = counters.get(s) ?? { received: 0, processed: 0, dropped: 0 };
      pub.event({ type: 'counters', stream: s, counters: { ...c }, fps });
    }
    lastCount = new Map(published);
  }, COUNTERS_INTERVAL_MS);
  ticker.unref();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      logger.info('shutting down');
      pub.event({ type: 'pipeline', state: 'draining' });
      subscription.unsubscribe();
      for (const b of built) b.gate?.close();
      clearInterval(ticker);
      await engine.close().catch((err: unknown) => logger.error({ err }, 'checkpoint on shutdown failed'));
      await inference.close();
      pub.event({ type: 'pipeline', state: 'stopped' });
      await pub.close();
      await http.close();
      finishedResolve();
    })());

  return { url: http.url, port: http.port, engine, finished, close };
}
