import { progressBars } from './progress-reporter.js';
import { addNatsSecurityOptions, natsSecurityFromFlags, type NatsSecurityFlags } from './nats-security-options.js';
import type { Command } from 'commander';
import { runProcess, type ProcessResult } from '../process/run-process.js';
import { createLogger } from '../internal/logger.js';
import {
  addLearningOptions,
  addModelOptions,
  learningFrom,
  modelOptionsFrom,
  resolveModelFlags,
  type LearningFlags,
  type ModelFlags,
} from './common-options.js';
import { positiveInt, sizeArg } from './parse-options.js';
import { interruptSignal } from './interrupt.js';
import { BadOptionError } from '../errors.js';
import { ClusterIncompleteError } from '../cluster/cluster-errors.js';
import { printClusterResult, runProcessCluster } from '../cluster/process-cluster.js';
import type { Variant } from '../models/model-catalog.js';
import { variantOption } from './models-command.js';

interface ProcessFlags extends LearningFlags, ModelFlags {
  variant?: Variant;
  out?: string;
  outSize?: { width: number; height: number };
  masks?: string;
  stats?: string;
  every: number;
  progress: boolean;
  json: boolean;
  cluster?: string;
  clusterPrefix?: string;
}

type ProcessAllFlags = ProcessFlags & NatsSecurityFlags;

export function registerProcess(program: Command): void {
  const cmd = program
    .command('process')
    .description('segment a recorded video (or a folder of images): overlay video, label maps, per-frame statistics and a summary')
    .argument(
      '<input...>',
      'video file (mp4, mov, mkv, ts, avi; H.264, HEVC, ...) or folder of images; with --cluster, any number of videos or folders of videos',
    )
    .option('-o, --out <file.mp4>', 'overlay video (class colours over the picture), same frame count and rate as the input')
    .option('--out-size <WxH>', "overlay video size (default: the input's)", sizeArg('--out-size'))
    .option('--masks <dir>', 'indexed PNG label map per frame (per image: named after it)')
    .option('--stats <file>', 'per-frame class statistics: .csv or .jsonl')
    .option('--every <n>', 'keep every n-th frame', positiveInt('--every'), 1)
    .option('--no-progress', 'no progress bar or progress lines')
    .option('--json', 'print the result as JSON on stdout', false)
    .option(
      '--cluster <nats-url>',
      'split the videos across cluster workers on this NATS server: stats, overlay video and masks per video ({stream} in the names for several)',
    )
    .option('--cluster-prefix <prefix>', 'subject prefix of the cluster', 'stegostream');
  addModelOptions(cmd);
  cmd.addOption(variantOption());
  addLearningOptions(cmd);
  addNatsSecurityOptions(cmd);
  cmd.action(async (inputs: string[], flags: ProcessAllFlags) => {
    const logger = createLogger(flags.logLevel);
    await resolveModelFlags(flags, flags.variant);
    if (flags.cluster) return processOnCluster(inputs, flags, logger);
    if (inputs.length > 1) throw new BadOptionError('input', 'one video or image folder (several videos need --cluster)', inputs.join(' '));
    const input = inputs[0] as string;
    const { signal, dispose } = interruptSignal();
    let result: ProcessResult;
    try {
      result = await runProcess({
        input,
        ...modelOptionsFrom(flags),
        every: flags.every,
        progress: progressBars(flags.progress),
        learning: learningFrom(flags),
        logger,
        signal,
        ...(flags.out ? { out: flags.out } : {}),
        ...(flags.outSize ? { outSize: flags.outSize } : {}),
        ...(flags.masks ? { masks: flags.masks } : {}),
        ...(flags.stats ? { stats: flags.stats } : {}),
      });
    } finally {
      dispose();
    }
    printResult(result, flags.json);
    if (result.error) throw result.error;
    if (result.interrupted) process.exitCode = 130;
  });
}

/** `process --cluster`: ingest here, segment on the cluster's workers, collect the stats back. */
async function processOnCluster(inputs: string[], flags: ProcessAllFlags, logger: ReturnType<typeof createLogger>): Promise<void> {
  const { signal, dispose } = interruptSignal();
  try {
    const r = await runProcessCluster({
      inputs,
      servers: (flags.cluster as string).split(','),
      security: natsSecurityFromFlags(flags),
      prefix: flags.clusterPrefix ?? 'stegostream',
      backbone: flags.backbone,
      every: flags.every,
      progress: flags.progress,
      logger,
      signal,
      ...(flags.stats ? { stats: flags.stats } : {}),
      ...(flags.out ? { out: flags.out } : {}),
      ...(flags.outSize ? { outSize: flags.outSize } : {}),
      ...(flags.masks ? { masks: flags.masks } : {}),
      ...(flags.width ? { width: flags.width } : {}),
      ...(flags.height ? { height: flags.height } : {}),
    });
    printClusterResult(r, flags.json);
    if (r.interrupted) process.exitCode = 130;
    else if (r.notWritten > 0) {
      const reasons = r.streams.flatMap((s) => [...(s.lost ? [`${s.stream}: ${s.lost} never came back`] : []), ...(s.errors ?? [])]);
      throw new ClusterIncompleteError(r.notWritten, r.frames, reasons);
    }
  } finally {
    dispose();
  }
}

/** The result as `--json` prints it (demo adds its scores to the same object). */
export function resultJson(r: ProcessResult): Record<string, unknown> {
  return {
    frames: r.frames,
    seconds: r.seconds,
    fps: r.fps,
    interrupted: r.interrupted,
    learned: r.learned,
    headVersion: r.headVersion,
    backbone: r.backbone,
    classes: r.shares,
    outputs: r.outputs,
    warnings: r.warnings,
    error: r.error?.message,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
  };
}

export function printResult(r: ProcessResult, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(resultJson(r)) + '\n');
    return;
  }
  const state = r.interrupted
    ? r.frames === 0 && r.learned > 0
      ? ` (interrupted during the learning pass, after ${r.learned} frames)`
      : ' (interrupted)'
    : r.error
      ? ' (stopped by an error)'
      : '';
  process.stdout.write(
    `\n${r.frames} frames in ${r.seconds.toFixed(1)} s (${r.fps.toFixed(1)} fps)${state}, backbone ${r.backbone}, head version ${r.headVersion}\n\n${r.summary}\n`,
  );
  for (const w of r.warnings) process.stdout.write(`\nwarning: ${w}\n`);
  if (r.outputs.length) process.stdout.write(`\noutputs:\n${r.outputs.map((o) => `  ${o}`).join('\n')}\n`);
}
