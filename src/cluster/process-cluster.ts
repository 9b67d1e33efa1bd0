/**
 * `stegostream process --cluster nats://...`: recorded videos split across the cluster's workers.
 * The videos (files, or folders of videos) are ingested into the work queue, one stream each,
 * while a collector (./stats-collector.ts) reads this run's results back from the results stream,
 * drops duplicates and writes one complete stats file per video, in frame order, and with
 * `out`/`masks` an overlay video and a mask folder per video, as `process` writes them (the
 * workers put each frame's label map in its result when the ingest asks). Every output path is
 * checked before any work. Workers and a trainer must be running on the same NATS server and
 * prefix; without results for a while, a hint says so.
 *
 * Abort (Ctrl-C): ingest stops; what was collected is written, in order, and the files are closed.
 */
import type { SourceConfig } from '../config/pipeline-schema.js';
import type { NatsConnection } from 'nats';
import type { ProgressFactory } from '../types.js';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect } from 'nats';
import type { Logger } from 'pino';
import { BadOptionError, NatsSecurityError, OutputUnwritableError } from '../errors.js';
import { probeVideo } from '../internal/probe-video.js';
import type { OverlayVideoOptions } from '../sinks/overlay-video-writer.js';
import { explainNatsError, natsConnectOptions, type NatsSecurity } from '../internal/nats-security.js';
import { statsFormatFor } from '../sinks/stats-file-writer.js';
import { DEFAULT_PREFIX } from '../sinks/nats-subjects.js';
import { backboneGeometry, sourceSize, sourcesFromArgs } from './cluster-inputs.js';
import { runIngest } from './run-ingest.js';
import { createStatsCollector, type StreamSummary } from './stats-collector.js';
import { ClusterStalledError } from '../errors.js';
import type { FrameFormat } from './frame-codec.js';

/** No result for this long: tell the user what to check, ms. */
const STALL_HINT_MS = 30_000;
const DEFAULT_STATS_TEMPLATE = '{stream}.stats.csv';

export interface ProcessClusterOptions {
  /** Video files or folders of videos. */
  readonly inputs: readonly string[];
  readonly servers: string | readonly string[];
  /** Credentials and TLS of the NATS connection. */
  readonly security?: NatsSecurity | undefined;
  readonly prefix?: string;
  /** Stats file template; `{stream}` is needed for several videos (default `{stream}.stats.csv`). */
  readonly stats?: string;
  /** Overlay video per video (template as `stats`). */
  readonly out?: string;
  readonly outSize?: { readonly width: number; readonly height: number };
  /** Mask folder per video (template as `stats`). */
  readonly masks?: string;
  readonly backbone?: string;
  readonly width?: number;
  readonly height?: number;
  readonly every?: number;
  readonly format?: FrameFormat;
  /** Progress meter for the collected frames (the CLI's bar); none when omitted. */
  readonly progress?: ProgressFactory;
  /** Give up when no result came for this long, ms (default: wait forever, with a hint every 30 s). */
  readonly stallTimeoutMs?: number;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
}

export interface ProcessClusterResult {
  readonly streams: readonly StreamSummary[];
  readonly frames: number;
  /** Results of this run not written to every output: never arrived, or an output failed. */
  readonly notWritten: number;
  readonly seconds: number;
  readonly fps: number;
  readonly interrupted: boolean;
}

export async function runProcessCluster(options: ProcessClusterOptions): Promise<ProcessClusterResult> {
  const { logger } = options;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  for (const i of options.inputs) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(i))
      throw new BadOptionError('input', 'a video file or folder of videos (for live feeds use stegostream ingest)', i);
  }
  const sources = sourcesFromArgs(options.inputs, { every: options.every ?? 1 });
  const template = options.stats ?? DEFAULT_STATS_TEMPLATE;
  checkClusterOutputs(options, sources, template);
  const geometry = backboneGeometry(options.backbone ?? 'builtin');
  const sized = await Promise.all(
    sources.map(async (config) => ({ config, size: await sourceSize(config, geometry, { width: options.width, height: options.height }) })),
  );
  const overlays = await overlayOptions(options, sized);

  const nc = await connectCluster(options);
  const run = randomBytes(6).toString('hex');
  const progress = options.progress?.('segmenting (cluster)', undefined) ?? { tick: () => undefined, stop: () => undefined };
  let lastResult = Date.now();
  const collector = createStatsCollector({
    nc,
    prefix,
    run,
    statsPath: template,
    ...(options.masks ? { masksPath: options.masks } : {}),
    ...(options.out ? { overlay: (stream: string) => overlays.get(stream) } : {}),
    streams: sources.map((s) => s.name),
    logger,
    onStats: () => {
      lastResult = Date.now();
      progress.tick();
    },
  });
  const started = performance.now();
  let interrupted = false;
  let stalled: ClusterStalledError | undefined;
  let ingest;
  try {
    // Results are read from the results stream before the first frame is queued.
    await collector.ready;
    ingest = await runIngest({
      nc,
      prefix,
      run,
      sources: sized,
      logger,
      ...(options.masks || options.out ? { masks: true } : {}),
      ...(options.format ? { format: options.format } : {}),
    });
  } catch (err) {
    await collector.close().catch(() => undefined);
    await nc.drain().catch(() => undefined);
    throw err;
  }
  const onAbort = (): void => {
    interrupted = true;
    void ingest.stop();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const hints = watchForStall({
    idleMs: () => Date.now() - lastResult,
    waitingFor: () =>
      collector
        .summaries()
        .map((x) => x.stream)
        .join(', ') || sources.map((x) => x.name).join(', '),
    ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
    onStalled: (err) => {
      stalled = err;
      void ingest.stop();
      void collector.close();
    },
  });

  let streams: readonly StreamSummary[];
  try {
    const ingested = await ingest.done;
    if (interrupted) streams = await collector.close();
    else {
      const aborted = new Promise<'aborted'>((resolve) =>
        options.signal?.addEventListener('abort', () => resolve('aborted'), { once: true }),
      );
      const complete = Promise.all(ingested.map((s) => collector.expect(s.stream, s.frames)));
      const closedEarly = new Promise<'stalled'>((resolve) => {
        const t = setInterval(() => {
          if (stalled) {
            clearInterval(t);
            resolve('stalled');
          }
        }, 200);
        t.unref();
        void complete.finally(() => clearInterval(t));
      });
      const outcome = await Promise.race([complete, aborted, closedEarly]);
      streams = Array.isArray(outcome) ? outcome : await collector.close();
      if (stalled) throw stalled;
      await collector.close();
    }
  } finally {
    clearInterval(hints);
    progress.stop();
    options.signal?.removeEventListener('abort', onAbort);
    await nc.drain().catch(() => undefined);
  }
  const seconds = (performance.now() - started) / 1000;
  const frames = streams.reduce((n, s) => n + s.written - s.failed, 0);
  const notWritten = streams.reduce((n, s) => n + s.lost + s.failed, 0);
  return { streams, frames, notWritten, seconds, fps: seconds > 0 ? frames / seconds : 0, interrupted };
}

/** Checks the output templates (one per video needs {stream}) and every output's folder, before any work. */
function checkClusterOutputs(options: ProcessClusterOptions, sources: readonly SourceConfig[], template: string): void {
  statsFormatFor(template);
  const templates: Array<[string, string | undefined]> = [
    ['--stats', template],
    ['--out', options.out],
    ['--masks', options.masks],
  ];
  for (const [option, t] of templates) {
    if (t !== undefined && sources.length > 1 && !t.includes('{stream}')) {
      throw new BadOptionError(
        option,
        `a name template with {stream} for ${sources.length} videos (e.g. out/{stream}${option === '--masks' ? '' : option === '--out' ? '.mp4' : '.csv'})`,
        t,
      );
    }
  }
  // Every output's folder is checked now, as `process` does, not after the cluster did the work.
  for (const src of sources) {
    const path = (t: string): string => t.replaceAll('{stream}', src.name).replaceAll('{run}', 'run');
    checkWritableFolder(path(template));
    if (options.out) checkWritableFolder(path(options.out));
    if (options.masks) {
      const dir = path(options.masks);
      if (existsSync(dir) && !statSync(dir).isDirectory()) throw new OutputUnwritableError(dir, 'it is a file, not a folder');
      checkWritableFolder(dir);
    }
  }
}

/** Overlay video options per stream (file sources), from each video's own size and rate. */
async function overlayOptions(
  options: ProcessClusterOptions,
  sized: ReadonlyArray<{ config: SourceConfig; size: { width: number; height: number } }>,
): Promise<Map<string, OverlayVideoOptions>> {
  const overlays = new Map<string, OverlayVideoOptions>();
  if (options.out) {
    for (const { config, size } of sized) {
      if (config.use !== 'file') continue;
      const v = await probeVideo(config.with.path);
      const every = config.with.every;
      overlays.set(config.name, {
        path: options.out.replaceAll('{stream}', config.name).replaceAll('{run}', 'run'),
        width: size.width,
        height: size.height,
        fps: v.fps / every,
        outWidth: options.outSize?.width ?? v.width,
        outHeight: options.outSize?.height ?? v.height,
        background: { file: config.with.path, every },
      });
    }
  }
  return overlays;
}

/** The NATS connection of `process --cluster`; a server that cannot be reached names --cluster. */
async function connectCluster(options: ProcessClusterOptions): Promise<NatsConnection> {
  const secured = natsConnectOptions('stegostream-process', options.servers, options.security);
  try {
    return await connect({
      ...secured.options,
      servers: secured.servers,
      name: 'stegostream-process',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
    });
  } catch (err) {
    const explained = explainNatsError('stegostream-process', err, secured.security);
    if (explained instanceof NatsSecurityError) throw explained;
    throw new BadOptionError('--cluster', `a reachable NATS server (${(err as Error).message})`, [options.servers].flat().join(','));
  }
}

/**
 * Every third of the stall interval: when no result came for STALL_HINT_MS, a hint on stderr;
 * past `stallTimeoutMs`, `onStalled` (the run gives up with ClusterStalledError).
 */
function watchForStall(w: {
  idleMs: () => number;
  waitingFor: () => string;
  stallTimeoutMs?: number;
  onStalled: (err: ClusterStalledError) => void;
}): NodeJS.Timeout {
  const hints = setInterval(
    () => {
      const idle = w.idleMs();
      if (idle < STALL_HINT_MS) return;
      const err = new ClusterStalledError(idle, `results of ${w.waitingFor()}`);
      if (w.stallTimeoutMs !== undefined && idle >= w.stallTimeoutMs) w.onStalled(err);
      else process.stderr.write(`stegostream: ${err.message}\n`);
    },
    Math.min(STALL_HINT_MS, w.stallTimeoutMs ?? STALL_HINT_MS) / 3,
  );
  hints.unref();
  return hints;
}

/** Throws OutputUnwritableError when the folder a file goes to is missing or not writable. */
function checkWritableFolder(path: string): void {
  const dir = dirname(resolve(path));
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new OutputUnwritableError(path, `folder ${dir} does not exist or is not writable`, err);
  }
}

/** What `process --cluster` prints. */
export function printClusterResult(r: ProcessClusterResult, json: boolean): void {
  if (json) {
    process.stdout.write(
      JSON.stringify({
        frames: r.frames,
        notWritten: r.notWritten,
        seconds: r.seconds,
        fps: r.fps,
        interrupted: r.interrupted,
        streams: r.streams,
      }) + '\n',
    );
    return;
  }
  process.stdout.write(
    `\n${r.frames} frames in ${r.seconds.toFixed(1)} s (${r.fps.toFixed(1)} fps) across the cluster${r.interrupted ? ' (interrupted)' : ''}\n`,
  );
  for (const s of r.streams) {
    process.stdout.write(
      `  ${s.stream}: ${s.written - s.failed} frames in order${s.duplicates ? `, ${s.duplicates} duplicates dropped` : ''}${s.lost ? `, ${s.lost} missing` : ''}${s.failed ? `, ${s.failed} not written` : ''}${s.file ? ` -> ${s.file}` : ''}\n`,
    );
    for (const e of s.errors ?? []) process.stdout.write(`    ${e}\n`);
  }
}
