import { merge, Subscription, tap } from 'rxjs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Frame, Segmentation, ServiceEvent, SourceState, StageCounters, StagedCall } from '../types.js';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { SegmentationEngine } from '../engine/segmentation-engine.js';
import { segmentPipeline, publishTo } from '../engine/segment-pipeline.js';
import { buildSources, type BuiltSource } from '../engine/build-sources.js';
import { learnerOptions } from '../learning/learning-options.js';
import { ConfigError } from '../errors.js';
import { fanOutPublisher, liveSink, sinksInOrder, type LivePublisher, type Sink } from '../sinks/sink.js';
import type { ControlHandler } from '../sinks/control.js';
import { collectProcessMetrics } from '../internal/metrics.js';
import { startHttpService, type HttpService, type Readiness } from './http-server.js';
import { FeedFreshness } from './feed-freshness.js';
import { PipelineMetrics } from './pipeline-metrics.js';
import { openServiceModel, type ServiceModel } from './open-service-model.js';
import { openServiceSinks, type ServiceSinks } from './open-service-sinks.js';
import { WindowedSummaries } from '../operators/windowed-summaries.js';
import { SummaryHistory } from '../engine/summary-history.js';
import { loadStatsHistory } from './load-stats-history.js';
import { natsSecurityOf } from '../internal/nats-security.js';
import { liveRateControl } from '../engine/live-rate.js';

/** How often ended summary windows are looked for, ms (a window goes out at most this late). */
const SUMMARY_FLUSH_MS = 250;
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
  // A start that fails releases the port and whatever else already runs, in reverse order.
  const started: Array<() => Promise<unknown>> = [() => http.close()];
  try {
    const model = await openServiceModel(config, logger);
    started.unshift(() => model.close());
    metrics.buildInfo.set({ version: PACKAGE_VERSION, backbone: model.info.name }, 1);
    const live: { publisher?: LivePublisher } = {};
    const engine = await createServiceEngine(config, model, metrics, live, logger);
    started.unshift(() => engine.close());
    const sourceStates = new Map<string, SourceState>();
    const control = serviceControl(config, model, engine, sourceStates, live);
    const history = new SummaryHistory();
    // A NATS sink that keeps stats in JetStream gives the viewer the hour before this start.
    for (const sink of config.sinks) {
      if (sink.use !== 'nats' || !sink.with.jetstream) continue;
      const source = {
        servers: sink.with.servers,
        security: natsSecurityOf(sink.with),
        prefix: sink.with.prefix,
        stream: sink.with.jetstream.stream,
      };
      void loadStatsHistory(source, history, logger);
    }
    const sinks = await openServiceSinks(config, { control, registry, logger, history });
    const pub = fanOutPublisher(sinks.publishers, logger);
    live.publisher = pub;
    const state = { failed: undefined as string | undefined };
    const freshness = new FeedFreshness();
    readiness = () => serviceReadiness(engine, sourceStates, freshness, state.failed);
    if (sinks.hub) http.attachHub(sinks.hub);
    logger.info({ url: http.url }, 'service listening');
    return runPipeline({ config, model, engine, metrics, pub, sinks, sourceStates, freshness, state, http, history, logger });
  } catch (err) {
    for (const stop of started) await stop().catch(() => undefined);
    throw err;
  }
}

/** The engine with the head, metrics and legend hooks of a service. */
async function createServiceEngine(
  config: Readonly<PipelineConfig>,
  model: ServiceModel,
  metrics: PipelineMetrics,
  live: { publisher?: LivePublisher },
  logger: Logger,
): Promise<SegmentationEngine> {
  const l = config.learning;
  const streams = config.sources.map((s) => s.name);
  let lastHeadVersion = model.initial?.version ?? 0;
  // From the start, so a restart that resumed a checkpoint shows its version at once.
  metrics.headVersion.set(lastHeadVersion);
  const engine = await SegmentationEngine.create({
    inference: model.inference,
    logger,
    objects: config.model.objects,
    warmupFrames: l.warmupFrames,
    ...(l.checkpoint && !l.freeze ? { checkpoint: l.checkpoint } : {}),
    learner: learnerOptions({ ...l, k: l.classes }, model.initial),
    onHead: (state, classes) => {
      // Same version: the names changed (a rename), not the weights.
      const reason = state.version === lastHeadVersion ? 'rename' : 'training round';
      lastHeadVersion = state.version;
      metrics.headVersion.set(state.version);
      // The sinks may not exist yet (nobody to tell then).
      for (const s of streams) live.publisher?.classes(s, classes, state.version);
      live.publisher?.event({ type: 'head-updated', version: state.version, reason });
    },
    onRound: (r) => {
      // A skipped round (too little data yet) trained nothing: not counted.
      if (r.kind === 'rejected') metrics.trainRounds.inc({ result: 'rejected' });
      else if (r.kind !== 'skipped') metrics.trainRounds.inc({ result: 'kept' });
    },
  });
  // A head loaded from a file is in use before any round.
  metrics.headVersion.set(engine.headState.version);
  return engine;
}

/** What the WebSocket and NATS control requests do in a service. */
function serviceControl(
  config: Readonly<PipelineConfig>,
  model: ServiceModel,
  engine: SegmentationEngine,
  sourceStates: ReadonlyMap<string, SourceState>,
  live: { publisher?: LivePublisher },
): ControlHandler {
  return {
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
      const r = await engine.snapshot(config.learning.checkpoint ?? '.stegostream/head.ckpt');
      if (!r) throw new Error('no head to snapshot yet (the first fit has not happened)');
      return r;
    },
    status: () => ({
      pipeline: config.name,
      backbone: { name: model.info.name, provider: model.info.provider },
      headVersion: engine.headState.version,
      learning: engine.learner.isFrozen ? 'frozen' : engine.learner.paused ? 'paused' : 'running',
      classes: engine.classInfo,
      sources: Object.fromEntries(sourceStates),
      working: model.size,
    }),
  };
}

/** Ready: no failure, a head, and at least one source live that sent a frame lately (./feed-freshness.ts). */
function serviceReadiness(
  engine: SegmentationEngine,
  sourceStates: ReadonlyMap<string, SourceState>,
  freshness: FeedFreshness,
  failed: string | undefined,
): Readiness {
  if (failed !== undefined) return { ready: false, reason: `the pipeline failed: ${failed}` };
  if (engine.headState.version === 0) return { ready: false, reason: 'no head yet: waiting for the first frames' };
  const live = [...sourceStates].filter(([, st]) => st === 'live').map(([stream]) => stream);
  if (live.length === 0) return { ready: false, reason: 'no source is live' };
  if (!live.some((stream) => freshness.fresh(stream))) {
    const ages = live.map((stream) => `${stream} ${Math.round(freshness.ageMs(stream) ?? Infinity)} ms`).join(', ');
    return { ready: false, reason: `no frame lately from any live source (since the last: ${ages})` };
  }
  return { ready: true };
}

interface PipelineParts {
  readonly config: Readonly<PipelineConfig>;
  readonly model: ServiceModel;
  readonly engine: SegmentationEngine;
  readonly metrics: PipelineMetrics;
  readonly pub: LivePublisher;
  readonly sinks: ServiceSinks;
  readonly sourceStates: Map<string, SourceState>;
  readonly freshness: FeedFreshness;
  /** Set when inference fails: the service stays up to say so (readyz, events) but segments nothing. */
  readonly state: { failed: string | undefined };
  readonly http: HttpService;
  /** The windowed summaries of the last hour (WebSocket `history`). */
  readonly history: SummaryHistory;
  readonly logger: Logger;
}

/** `engine.stage` with the batch size and the time to its results in the metrics. */
function measuredStage(engine: SegmentationEngine, metrics: PipelineMetrics, batch: Frame[]): StagedCall<Segmentation> {
  metrics.batchSize.observe(batch.length);
  const t0 = performance.now();
  const call = engine.stage(batch);
  const results = call.results.then((segs) => {
    metrics.stageSeconds.observe({ stage: 'inference' }, (performance.now() - t0) / 1000);
    return segs;
  });
  return { taken: call.taken, results };
}

/** Opens the sources, runs the shared pipeline into the sinks, and returns the running service. */
function runPipeline(p: PipelineParts): RunningService {
  const { config, model, engine, metrics, pub, sinks, sourceStates, logger } = p;
  const streams = config.sources.map((s) => s.name);
  const events = (e: ServiceEvent): void => {
    if (e.type === 'source-state') {
      sourceStates.set(e.stream, e.state);
      metrics.sourceStates.inc({ stream: e.stream, state: e.state });
      metrics.sourceUp.set({ stream: e.stream }, e.state === 'live' ? 1 : 0);
    }
    pub.event(e);
  };
  for (const s of streams) pub.classes(s, engine.classInfo, engine.headState.version);
  pub.event({ type: 'pipeline', state: 'running', learning: engine.learner.isFrozen ? 'frozen' : 'running' });

  const built: BuiltSource[] = buildSources(config.sources, model.size, events, logger);
  const byName = new Map(built.map((b) => [b.name, b]));
  const counters = new Map<string, StageCounters>();
  const published = new Map<string, number>();
  // Every per-stream series exists from the start (at 0), so dashboards and alerts see them.
  for (const stream of streams) {
    metrics.framesIn.inc({ stream }, 0);
    metrics.framesOut.inc({ stream }, 0);
    metrics.framesDropped.inc({ stream }, 0);
    if (!sourceStates.has(stream)) metrics.sourceUp.set({ stream }, 0);
  }
  const release = (f: Frame): void => byName.get(f.streamId)?.gate?.release();
  // Windowed summaries (1 s, 10 s, 60 s) to the sinks that carry them and to the hour of history.
  const summaries = new WindowedSummaries((s) => {
    p.history.add(s);
    pub.summary?.(s);
  });
  const summaryTicker = setInterval(() => summaries.flush(), SUMMARY_FLUSH_MS);
  summaryTicker.unref();
  const sink = sinksInOrder('service', [serviceMetricsSink(metrics, published, release, summaries), liveSink(pub, logger)]);

  /** The last batch called, settled or not (it settles after any called before it); close() waits for it. */
  let inFlight: Promise<void> = Promise.resolve();
  let finishedResolve: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finishedResolve = resolve));
  const frames$ = merge(
    ...built.map((b) =>
      b.frames.pipe(
        tap((f) => {
          metrics.framesIn.inc({ stream: f.streamId });
          p.freshness.seen(f.streamId);
        }),
      ),
    ),
  );
  const subscription: Subscription = frames$
    .pipe(
      segmentPipeline({
        batch: {
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
        segment: (batch) => {
          const call = measuredStage(engine, metrics, batch);
          // A batch's results settle after those of the batch before it (the engine segments
          // in order), so waiting on the last one waits on both in flight.
          inFlight = call.results.then(
            () => undefined,
            () => undefined,
          );
          return call;
        },
        objects: model.finder,
        render: {
          png: (seg) => pub.wantsMasks(seg.frame.streamId),
          jpeg: (stream) => pub.wantsFrames(stream),
          raw: (stream) => pub.wantsRaw?.(stream) ?? false,
          jpegQuality: sinks.jpegQuality,
          maxWidth: sinks.maxWidth,
          // One JPEG encode per stream at a time: when encoding lags, skip (viewers lose frames, never stats).
          whileEncoding: 'skip',
          onJpegEncoded: (seconds) => metrics.stageSeconds.observe({ stage: 'jpeg' }, seconds),
        },
      }),
      publishTo(sink),
    )
    .subscribe({
      error: (err: unknown) => {
        p.state.failed = err instanceof Error ? err.message : String(err);
        logger.error({ err }, 'pipeline failed');
        pub.event({ type: 'pipeline', state: 'failed', detail: p.state.failed });
        finishedResolve();
      },
      complete: () => {
        logger.info('every source has ended');
        pub.event({ type: 'pipeline', state: 'stopped', detail: 'every source has ended' });
        finishedResolve();
      },
    });
  const ticker = countersTicker(streams, published, counters, metrics, pub);
  // Live feeds keep in ffmpeg only about what the model takes of them (live-rate.ts).
  const stopRate = liveRateControl(built, counters);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      logger.info('shutting down');
      pub.event({ type: 'pipeline', state: 'draining' });
      subscription.unsubscribe();
      for (const b of built) b.gate?.close();
      clearInterval(ticker);
      clearInterval(summaryTicker);
      stopRate();
      // The batch in the worker finishes first: terminating a worker while ONNX Runtime runs in
      // it aborts the whole process (a native exception in a torn-down environment).
      await inFlight;
      await engine.close().catch((err: unknown) => logger.error({ err }, 'checkpoint on shutdown failed'));
      await model.close();
      pub.event({ type: 'pipeline', state: 'stopped' });
      await pub.close();
      await p.http.close();
      finishedResolve();
    })());

  return { url: p.http.url, port: p.http.port, engine, finished, close };
}

/** Per-frame metrics of a service, and the frame's gate credit given back once it is published. */
function serviceMetricsSink(
  metrics: PipelineMetrics,
  published: Map<string, number>,
  release: (f: Frame) => void,
  summaries: WindowedSummaries,
): Sink {
  return {
    name: 'metrics',
    write(r) {
      const f = r.seg.frame;
      const stream = f.streamId;
      metrics.setClassFractions(stream, r.stats.classes);
      metrics.framesOut.inc({ stream });
      metrics.frameAgeSeconds.observe({ stream }, (Date.now() - f.capturedAt) / 1000);
      published.set(stream, (published.get(stream) ?? 0) + 1);
      summaries.add(r.stats);
      release(f);
    },
    close: () => Promise.resolve(),
  };
}

/** Per-stream counters and fps, as events and metrics, every second. */
function countersTicker(
  streams: readonly string[],
  published: ReadonlyMap<string, number>,
  counters: ReadonlyMap<string, StageCounters>,
  metrics: PipelineMetrics,
  pub: LivePublisher,
): NodeJS.Timeout {
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
  return ticker;
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
