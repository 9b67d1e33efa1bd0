import { BACKBONE_HELP, REFINE_EPS_OPTION, REFINE_RADIUS_OPTION, refineFromFlags } from './common-options.js';
import { resolveBackbone } from '../models/resolve-backbone.js';
import type { Variant } from '../models/model-catalog.js';
import { variantOption } from './models-command.js';
import { runsOnGpu } from '../backbone/execution-device.js';
import { Option, type Command } from 'commander';
import { createLogger } from '../internal/logger.js';
import { DEVICES, type Device } from '../backbone/execution-device.js';
import { nonNegativeInt, positiveInt } from './parse-options.js';
import { addClusterOptions, natsServers, runUntilStopped, startHealth, type ClusterFlags } from './cluster-cli.js';
import { natsSecurityFromFlags } from './nats-security-options.js';
import { connectCluster, DEFAULT_ACK_WAIT_MS, DEFAULT_MAX_ACK_PENDING } from '../cluster/cluster-connection.js';
import { DEFAULT_FEATURE_POINTS, DEFAULT_FEATURES_EVERY, runWorker } from '../cluster/run-worker.js';

interface WorkerFlags extends ClusterFlags {
  backbone: string;
  variant?: Variant;
  device: Device;
  threads?: number;
  refineRadius: number;
  refineEps: number;
  batch: number;
  maxDelay: number;
  ackWait: number;
  maxAckPending: number;
  objects: boolean;
  frames: boolean;
  masks: boolean;
  featuresEvery: number;
  featurePoints: number;
  name?: string;
}

export function registerWorker(program: Command): void {
  const cmd = program
    .command('worker')
    .description('cluster role: take frames from the work queue, segment them with the head from KV, publish results (run any number)')
    .option('--backbone <builtin|name|file.onnx>', BACKBONE_HELP, 'builtin')
    .addOption(variantOption())
    .addOption(new Option('--device <device>', 'execution provider').choices(DEVICES).default('auto'))
    .option(
      '--threads <n>',
      'ONNX Runtime threads of the backbone and of the segmentation (default: all cores; half for the segmentation)',
      positiveInt('--threads'),
    )
    .option('--batch <n>', 'frames per backbone call', positiveInt('--batch'), 4)
    .option('--max-delay <ms>', 'how long a partial batch waits to fill', nonNegativeInt('--max-delay'), 20)
    .option(
      '--ack-wait <ms>',
      "how long a frame may stay unacked before another worker gets it (a dead worker's frames wait this long)",
      positiveInt('--ack-wait'),
      DEFAULT_ACK_WAIT_MS,
    )
    .option(
      '--max-ack-pending <n>',
      'frames out with workers and unacked, across all workers',
      positiveInt('--max-ack-pending'),
      DEFAULT_MAX_ACK_PENDING,
    )
    .option('--objects', 'find the main object per frame (LOST) and report its box', false)
    .option(...REFINE_RADIUS_OPTION)
    .option(...REFINE_EPS_OPTION)
    .option('--no-frames', 'do not publish overlay JPEGs on <prefix>.<stream>.frames')
    .option('--masks', 'publish label-map PNGs on <prefix>.<stream>.masks', false)
    .option(
      '--features-every <n>',
      'send sampled features of every n-th frame to the trainer (0: never)',
      nonNegativeInt('--features-every'),
      DEFAULT_FEATURES_EVERY,
    )
    .option(
      '--feature-points <n>',
      'patches sampled per frame sent to the trainer',
      positiveInt('--feature-points'),
      DEFAULT_FEATURE_POINTS,
    )
    .option('--name <id>', 'worker id in result headers, logs and metrics (default host-pid)');
  addClusterOptions(cmd);
  cmd.action(async (flags: WorkerFlags) => {
    const logger = createLogger(flags.logLevel);
    flags.backbone = await resolveBackbone(flags.backbone, {
      onGpu: runsOnGpu(flags.device),
      ...(flags.variant ? { variant: flags.variant } : {}),
    });
    const nc = await connectCluster(
      natsServers(flags),
      `stegostream-worker${flags.name ? `-${flags.name}` : ''}`,
      logger,
      natsSecurityFromFlags(flags),
    );
    const worker = await runWorker({
      nc,
      prefix: flags.prefix,
      backbone: flags.backbone,
      device: flags.device,
      batchSize: flags.batch,
      maxDelayMs: flags.maxDelay,
      ackWaitMs: flags.ackWait,
      maxAckPending: flags.maxAckPending,
      objects: flags.objects,
      frames: flags.frames,
      masks: flags.masks,
      featuresEvery: flags.featuresEvery,
      featurePoints: flags.featurePoints,
      refine: refineFromFlags(flags),
      logger,
      ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
      ...(flags.name !== undefined ? { name: flags.name } : {}),
    });
    const http = await startHealth(flags, worker.registry, () => worker.ready(), logger);
    process.stdout.write(`stegostream worker ${worker.name}: taking frames from ${flags.nats} (prefix ${flags.prefix})\n`);
    await runUntilStopped({ done: worker.done, close: () => worker.close(), nc, http, logger });
  });
}
