import { refineFrom } from '../backbone/refine-options.js';
import { merge, Subscription, concatMap, tap } from 'rxjs';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { Registry } from 'prom-client';
import sharp from 'sharp';
import type { Logger } from 'pino';
import type { ClassInfo, Frame, Segmentation, StageCounters } from '../types.js';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { InferenceClient } from '../backbone/inference-client.js';
import { workingSize } from '../internal/working-size.js';
import { SegmentationEngine } from '../engine/segmentation-engine.js';
import { expectedClassCount, learnerClassOptions, learnerTrainOptions } from '../learning/learning-options.js';
import { ObjectFinder } from '../objects/object-finder.js';
import { batchInfer } from '../operators/batch-infer.js';
import { frameStats } from '../operators/frame-stats.js';
import { loadCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { blendOverlay } from '../sinks/paint-mask.js';
import { encodeLabelPng } from '../sinks/mask-writer.js';
import { createWsHub, type WsHub } from '../sinks/ws-hub.js';
import { ConfigError, OutputUnwritableError } from '../errors.js';
import { natsPublisher } from '../sinks/nats-publisher.js';
import { natsSecurityOf } from '../internal/nats-security.js';
import { statsFilePublisher } from '../sinks/stats-file-publisher.js';
import { OVERLAY_ALPHA } from '../sinks/overlay-video-writer.js';
import { fanOutPublisher, type LivePublisher, type ServiceEvent, type SourceState } from '../sinks/sink.js';
import type { ControlHandler } from '../sinks/control.js';
import { startHttpService, type HttpService, type Readiness } from './http-server.js';
import { buildSources, type BuiltSource } from '../engine/build-sources.js';
import { PipelineMetrics } from './pipeline-metrics.js';
import { collectProcessMetrics } from '../internal/metrics.js';

/** Default working-frame aspect for live pipelines (sources of other shapes are scaled to it). */
const DEFAULT_ASPECT = 9 / 16;
/** How often per-stream counters go out as events, ms. */
const COUNTERS_INTERVAL_MS = 1000;
/** The package's version, for `stegostream_build_info` (src/service and dist/service alike sit two levels down). */
const { version: PACKAGE_VERSION } = createRequire(import.meta.url)('../../package.json') as { version: string };

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
  /** How the user picks another port, in the error when it is taken (default: serve's --port, PORT, service.port). */
  readonly portHint?: string;
}

/** What `serve` users can change when the port is taken. */
export const SERVE_PORT_HINT =
  'choose another with --port N or the PORT environment variable, or set service.port in the pipeline file (0 picks a free port)';

/**
 * Runs a pipeline as a service: sources -> batched backbone + learned head -> per-stream stats,
 * overlay JPEGs and label PNGs to the WebSocket hub, NATS and stats files; HTTP serves the viewer,
 * `/metrics`, `/healthz`, `/readyz`. One failing source never stops the others; a failing sink
 * never stops the pipeline.
 */
export async function runService(config: Readonly<PipelineConfig>, options: ServiceOptions): Promise<RunningService> {
  const logger = options.logger.child({ pipeline: config.name });
  const registry = new Registry();
  collectProcessMetrics(registry);
  const metrics = new PipelineMetrics(registry);

  // The port first: a port in use is reported at once, not after the model has loaded. Until the
  // pipeline runs, /readyz says it is starting and /ws answers 503.
  let readiness: () => Readiness = () => ({ ready: false, reason: 'starting: loading the model' });
  const http: HttpService = await startHttpService({
    registry,
    host: config.service.host,
    port: options.port ?? config.service.port,
    logger,
    portHint: options.portHint ?? SERVE_PORT_HINT,
    hubLater: config.sinks.some((s) => s.use === 'websocket'),
    ready: () => readiness(),
    ...(config.service.token ? { token: config.service.token } : {}),
    ...(config.service.readOnlyToken ? { readOnlyToken: config.service.readOnlyToken } : {}),
    ...(config.service.tls ? { tls: await readServiceTls(config.service.tls) } : {}),
  });
  /** A start that fails releases the port and whatever else already runs. */
  const failStart = async (err: unknown, ...running: (Promise<unknown> | undefined)[]): Promise<never> => {
    await Promise.allSettled([...running, http.close()]);
    throw err;
  };

  const l = config.learning;
  if (l.checkpoint)
    await mkdir(dirname(l.checkpoint), { recursive: true }).catch((err: unknown) =>
      failStart(
        new OutputUnwritableError(
          l.checkpoint as string,
          `cannot create its folder for learning.checkpoint (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
          err,
        ),
      ),
    );
  const inference = await InferenceClient.start(config.model.backbone, {
    device: config.model.device,
    ...(config.model.threads !== undefined ? { threads: config.model.threads } : {}),
    refine: refineFrom(config.model.refine.radius, config.model.refine.eps, 'model.refine'),
  }).catch((err: unknown) => failStart(err));
  const info = inference.info;
  metrics.buildInfo.set({ version: PACKAGE_VERSION, backbone: info.name }, 1);
  logger.info({ backbone: info.name, provider: info.provider, reason: info.providerReason }, 'backbone loaded');
  const size =
    info.inputWidth > 0
      ? { width: info.inputWidth, height: info.inputHeight }
      : workingSize(
          { width: config.model.width, height: config.model.height ?? Math.round(config.model.width * DEFAULT_ASPECT) },
          info.patchSize,
          {
            width: config.model.width,
            ...(config.model.height !== undefined ? { height: config.model.height } : {}),
          },
        );

  let initial: HeadState | undefined;
  // resume: the checkpoint of an earlier run, when there is one (the first run starts afresh);
  // head: a file that must exist.
  const resumeFrom = l.resume && l.checkpoint !== undefined && existsSync(l.checkpoint) ? l.checkpoint : undefined;
  if (l.resume && resumeFrom === undefined)
    logger.info({ checkpoint: l.checkpoint }, 'no checkpoint to resume from yet: learning a new head');
  const headFile = l.head ?? resumeFrom;
  if (headFile) {
    const k = expectedClassCount({ k: l.classes, extraClusters: l.extraClusters });
    initial = await loadCheckpoint(headFile, { dim: info.dim, ...(k === undefined ? {} : { k }) }).catch((err: unknown) =>
      failStart(err, inference.close()),
    );
  }

  const streams = config.sources.map((s) => s.name);
  /** Set once the sinks exist; the engine's callbacks may come before (nobody to tell then). */
  const live: { publisher?: LivePublisher } = {};
  const publishLegend = (classes: readonly ClassInfo[], version: number): void => {
    for (const s of streams) live.publisher?.classes(s, classes, version);
  };

  let lastHeadVersion = initial?.version ?? 0;
  // From the start, so a restart that resumed a checkpoint shows its version at once.
  metrics.headVersion.set(lastHeadVersion);
  // LOST's N² degree pass runs in ONNX Runtime (ObjectFinder): in JS it costs as much as the backbone.
  const finder = config.model.objects
    ? await ObjectFinder.create(info.patchSize, config.model.threads !== undefined ? { threads: config.model.threads } : {}).catch(
        (err: unknown) => failStart(err, inference.close()),
      )
    : undefined;
  const engine = await SegmentationEngine.create({
    inference,
    logger,
    objects: config.model.objects,
    warmupFrames: l.warmupFrames,
    ...(l.checkpoint && !l.freeze ? { checkpoint: l.checkpoint } : {}),
    learner: {
      ...learnerClassOptions({ k: l.classes, maxClasses: l.maxClasses, extraClusters: l.extraClusters }),
      codeDim: l.codeDim,
      seed: l.seed,
      freeze: l.freeze,
      bank: { capacityFrames: l.bankFrames },
      train: learnerTrainOptions(l),
      ...(l.names ? { names: l.names } : {}),
      ...(initial ? { initial } : {}),
    },
    onHead: (state, classes) => {
      // Same version: the names changed (a rename), not the weights.
      const reason = state.version === lastHeadVersion ? 'rename' : 'training round';
      lastHeadVersion = state.version;
      metrics.headVersion.set(state.version);
      publishLegend(classes, state.version);
      live.publisher?.event({ type: 'head-updated', version: state.version, reason });
    },
    onRound: (r) => {
      // A skipped round (too little data yet) trained nothing: not counted.
      if (r.kind === 'rejected') metrics.trainRounds.inc({ result: 'rejected' });
      else if (r.kind !== 'skipped') metrics.trainRounds.inc({ result: 'kept' });
    },
  }).catch((err: unknown) => failStart(err, inference.close(), finder?.close()));
  // A head loaded from a file is in use before any round.
  metrics.headVersion.set(engine.headState.version);

  const sourceStates = new Map<string, SourceState>();
  /** Set when inference fails: the service stays up to say so (readyz, events) but segments nothing. */
  let pipelineFailed: string | undefined;
  const control: ControlHandler = {
    renameClass: (id, name) => [...engine.rename(id, name)],
    pauseLearning: () => {
      engine.learner.pause();
      live.publisher?.event({ type: 'pipeline', learning: 'paused' });
    },
    resumeLearning: () => {
      engine.learner.resume();
      live.publisher?.event({ type: 'pipeline', learning: 'running' });
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
  try {
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
            security: natsSecurityOf(sink.with),
            ...(sink.with.jetstream ? { jetstream: sink.with.jetstream } : {}),
          }),
        );
      } else {
        // The folders must exist before the first frame: the writer would otherwise fail on every one.
        for (const stream of streams) {
          const path = sink.with.path.replaceAll('{stream}', stream);
          await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
            throw new OutputUnwritableError(path, `cannot create its folder (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
          });
        }
        pubs.push(statsFilePublisher(sink.with.path, logger));
      }
    }
  } catch (err) {
    // A sink that cannot be made (bad option) fails the start: release what is already running.
    return failStart(err, ...pubs.map((p) => p.close()), engine.close(), inference.close(), finder?.close());
  }
  const pub = fanOutPublisher(pubs, logger);
  live.publisher = pub;

  const events = (e: ServiceEvent): void => {
    if (e.type === 'source-state') {
      sourceStates.set(e.stream, e.state);
      metrics.sourceStates.inc({ stream: e.stream, state: e.state });
      metrics.sourceUp.set({ stream: e.stream }, e.state === 'live' ? 1 : 0);
    }
    pub.event(e);
  };

  readiness = (): Readiness => {
    if (pipelineFailed !== undefined) return { ready: false, reason: `the pipeline failed: ${pipelineFailed}` };
    if (engine.headState.version === 0) return { ready: false, reason: 'no head yet: waiting for the first frames' };
    if (![...sourceStates.values()].some((st) => st === 'live')) return { ready: false, reason: 'no source is live' };
    return { ready: true };
  };
  if (hub) http.attachHub(hub);
  logger.info({ url: http.url }, 'service listening');

  publishLegend(engine.classInfo, engine.headState.version);
  pub.event({ type: 'pipeline', state: 'running', learning: engine.learner.isFrozen ? 'frozen' : 'running' });

  // The pipeline.
  const built: BuiltSource[] = buildSources(config.sources, size, events, logger);
  const byName = new Map(built.map((b) => [b.name, b]));
  const counters = new Map<string, StageCounters>();
  const published = new Map<string, number>();
  const encoding = new Set<string>();

  // Every per-stream series exists from the start (at 0), so dashboards and alerts see them.
  for (const stream of streams) {
    metrics.framesIn.inc({ stream }, 0);
    metrics.framesOut.inc({ stream }, 0);
    metrics.framesDropped.inc({ stream }, 0);
    if (!sourceStates.has(stream)) metrics.sourceUp.set({ stream }, 0);
  }
  const release = (f: Frame): void => byName.get(f.streamId)?.gate?.release();

  const publish = async (seg: Segmentation): Promise<void> => {
    const f = seg.frame;
    const stream = f.streamId;
    const stats = frameStats(seg);
    pub.stats(stats);
    metrics.setClassFractions(stream, stats.classes);
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
        .toBuffer({ resolveWithObject: true })
        .then(({ data, info: out }) => {
          metrics.stageSeconds.observe({ stage: 'jpeg' }, (performance.now() - t0) / 1000);
          // The header gives the size of the image sent (maxWidth may have scaled it down).
          pub.frame(stream, { ...meta, width: out.width, height: out.height }, data);
        })
        .catch((err: unknown) => logger.error({ err, stream }, 'overlay encoding failed'))
        .finally(() => encoding.delete(stream));
    }
  };

  const frames$ = merge(...built.map((b) => b.frames.pipe(tap((f) => metrics.framesIn.inc({ stream: f.streamId })))));
  /** The batch being segmented, settled or not; close() waits for it. */
  let inFlight: Promise<void> = Promise.resolve();
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
          const run = engine.process(batch);
          inFlight = run.then(
            () => undefined,
            () => undefined,
          );
          const segs = await run;
          metrics.stageSeconds.observe({ stage: 'inference' }, (performance.now() - t0) / 1000);
          return finder ? finder.add(segs) : segs;
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
        pipelineFailed = err instanceof Error ? err.message : String(err);
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
      // The batch in the worker finishes first: terminating a worker while ONNX Runtime runs in
      // it aborts the whole process (a native exception in a torn-down environment).
      await inFlight;
      await engine.close().catch((err: unknown) => logger.error({ err }, 'checkpoint on shutdown failed'));
      await inference.close();
      await finder?.close();
      pub.event({ type: 'pipeline', state: 'stopped' });
      await pub.close();
      await http.close();
      finishedResolve();
    })());

  return { url: http.url, port: http.port, engine, finished, close };
}

/** The service's PEM files, read before listening; a missing one is a ConfigError naming the key. */
async function readServiceTls(t: {
  certFile: string;
  keyFile: string;
  caFile?: string | undefined;
}): Promise<{ cert: string; key: string; ca?: string }> {
  const read = async (key: string, path: string): Promise<string> =>
    readFile(path, 'utf8').catch((err: unknown) => {
      throw new ConfigError('service.tls', [
        `${key}: cannot read "${path}" (${(err as NodeJS.ErrnoException).code ?? String(err)}); give a PEM file`,
      ]);
    });
  const [cert, key, ca] = await Promise.all([
    read('certFile', t.certFile),
    read('keyFile', t.keyFile),
    t.caFile === undefined ? Promise.resolve(undefined) : read('caFile', t.caFile),
  ]);
  return { cert, key, ...(ca !== undefined ? { ca } : {}) };
}
