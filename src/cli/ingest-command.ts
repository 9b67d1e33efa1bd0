import { Option, type Command } from 'commander';
import { Registry } from 'prom-client';
import { createLogger } from '../internal/logger.js';
import { loadPipeline } from '../config/load-pipeline.js';
import type { SourceConfig } from '../config/pipeline-schema.js';
import { BadOptionError } from '../errors.js';
import { positiveInt } from './parse-options.js';
import { addClusterOptions, natsServers, runUntilStopped, startHealth, type ClusterFlags } from './cluster-cli.js';
import { natsSecurityFromFlags } from './nats-security-options.js';
import { connectCluster, DEFAULT_QUEUE_MAX_BYTES, DEFAULT_QUEUE_MAX_MSGS } from '../cluster/cluster-connection.js';
import { backboneGeometry, sourceSize, sourcesFromArgs } from '../cluster/cluster-inputs.js';
import { checkClusterStream } from '../cluster/cluster-names.js';
import { DEFAULT_FRAME_FORMAT, DEFAULT_JPEG_QUALITY, FRAME_FORMATS, type FrameFormat } from '../cluster/frame-codec.js';
import { runIngest } from '../cluster/run-ingest.js';
import { counter } from '../internal/metrics.js';

interface IngestFlags extends ClusterFlags {
  pipeline?: string;
  backbone?: string;
  width?: number;
  height?: number;
  every: number;
  loop: boolean;
  realtime: boolean;
  frameFormat: FrameFormat;
  jpegQuality: number;
  queueMaxFrames: number;
  queueMaxBytes: number;
}

export function registerIngest(program: Command): void {
  const cmd = program
    .command('ingest')
    .description('cluster role: decode videos or live feeds at the working size and queue the frames for workers (JetStream work queue)')
    .argument('[inputs...]', 'video files, folders of videos or live URLs; [name=]input names the stream')
    .option('--pipeline <file.yaml>', 'take the sources (and model width/backbone) from a pipeline file')
    .option('--backbone <builtin|file.onnx>', "the workers' backbone: its patch size sets the working size (default builtin)")
    .option('--width <px>', 'working width (multiple of the patch size; default 448)', positiveInt('--width'))
    .option('--height <px>', 'working height (default: keeps the aspect ratio)', positiveInt('--height'))
    .option('--every <n>', 'files: keep every n-th frame', positiveInt('--every'), 1)
    .option('--loop', 'files: start again at the end', false)
    .option('--realtime', 'files: pace at the video frame rate like a live feed (latest frame wins)', false)
    .addOption(
      new Option('--frame-format <format>', 'how frames travel: jpeg (q90 4:4:4, ~10x smaller) or rgb24 (bit-exact)')
        .choices(FRAME_FORMATS)
        .default(DEFAULT_FRAME_FORMAT),
    )
    .option('--jpeg-quality <q>', 'JPEG quality 1-100', positiveInt('--jpeg-quality'), DEFAULT_JPEG_QUALITY)
    .option(
      '--queue-max-frames <n>',
      'frames the work queue holds before ingest waits',
      positiveInt('--queue-max-frames'),
      DEFAULT_QUEUE_MAX_MSGS,
    )
    .option(
      '--queue-max-bytes <n>',
      'bytes the work queue holds before ingest waits',
      positiveInt('--queue-max-bytes'),
      DEFAULT_QUEUE_MAX_BYTES,
    );
  addClusterOptions(cmd);
  cmd.action(async (inputs: string[], flags: IngestFlags) => {
    const logger = createLogger(flags.logLevel);
    let sources: SourceConfig[];
    let backbone = flags.backbone ?? 'builtin';
    let width = flags.width;
    let height = flags.height;
    if (flags.pipeline) {
      if (inputs.length > 0) throw new BadOptionError('inputs', 'either input arguments or --pipeline, not both', inputs.join(' '));
      const config = await loadPipeline(flags.pipeline);
      sources = [...config.sources];
      for (const s of sources) checkClusterStream(s.name);
      backbone = flags.backbone ?? config.model.backbone;
      width ??= config.model.width;
      height ??= config.model.height;
    } else {
      sources = sourcesFromArgs(inputs, { every: flags.every, loop: flags.loop, realtime: flags.realtime });
    }
    const geometry = backboneGeometry(backbone);
    const sized = await Promise.all(
      sources.map(async (config) => ({ config, size: await sourceSize(config, geometry, { width, height }) })),
    );
    const nc = await connectCluster(natsServers(flags), 'stegostream-ingest', logger, natsSecurityFromFlags(flags));
    const registry = new Registry();
    const mFrames = counter(registry, 'stegostream_ingest_frames_total', 'Frames stored in the work queue', ['stream']);
    const run = await runIngest({
      nc,
      prefix: flags.prefix,
      sources: sized,
      format: flags.frameFormat,
      jpegQuality: flags.jpegQuality,
      limits: { maxMsgs: flags.queueMaxFrames, maxBytes: flags.queueMaxBytes },
      logger,
      onPublished: (stream) => mFrames.inc({ stream }),
    });
    const http = await startHealth(
      flags,
      registry,
      () => (nc.isClosed() ? { ready: false, reason: 'not connected to NATS' } : { ready: true }),
      logger,
    );
    await runUntilStopped({ done: run.done, close: () => run.stop(), nc, http, logger });
    for (const s of run.status())
      process.stdout.write(`${s.stream}: ${s.frames} frames queued${s.dropped ? `, ${s.dropped} dropped (live)` : ''}\n`);
  });
}
