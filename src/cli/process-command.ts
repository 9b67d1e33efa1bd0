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
import { oneOf, positiveInt, sizeArg } from './parse-options.js';
import { interruptSignal } from './interrupt.js';
import { X264_PRESETS, type X264Preset } from '../sinks/overlay-video-writer.js';
import { BadOptionError } from '../errors.js';
import { ClusterIncompleteError } from '../errors.js';
import { printClusterResult, runProcessCluster } from '../cluster/process-cluster.js';
import type { Variant } from '../models/model-catalog.js';
import { variantOption } from './models-command.js';

interface ProcessFlags extends LearningFlags, ModelFlags {
  variant?: Variant;
  out?: string;
  outSize?: { width: number; height: number };
  masks?: string;
  masksSize: 'input' | 'working';
  stats?: string;
  coco?: string;
  startTime?: number;
  learnPerFile: boolean;
  legend: boolean;
  outPreset: X264Preset;
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
      "video files (mp4, mov, mkv, ts, avi; H.264, HEVC, ...), folders of videos or of images, or quoted globs ('dive/*.mov'); several run one after another with the head carried over",
    )
    .option(
      '-o, --out <file.mp4>',
      'overlay video (class colours over the picture), same frame count and rate as the input; .mp4, .m4v, .mov or .mkv; {stream} for one per input',
    )
    .option('--out-size <WxH>', "overlay video size (default: the input's)", sizeArg('--out-size'))
    .option('--no-legend', 'no legend (colour, name, share) burnt into the overlay video')
    .option(
      '--out-preset <preset>',
      `libx264 preset of the overlay video: ${X264_PRESETS.join(', ')}`,
      oneOf('--out-preset', X264_PRESETS),
      'veryfast',
    )
    .option('--masks <dir>', 'indexed PNG label map per frame (per image: named after it); {stream} for a folder per input')
    .option(
      '--masks-size <input|working>',
      "masks at the input's size (nearest neighbour) or the model's working size",
      masksSizeArg,
      'input',
    )
    .option(
      '--stats <file>',
      'per-frame class statistics: .csv or .jsonl; {stream} for a file per input, else one file with a stream column',
    )
    .option('--coco <file.json>', 'object boxes (--objects) as COCO-style annotations, in input pixels')
    .option(
      '--start-time <ISO>',
      "when the (first) input was recorded, e.g. 2026-03-14T09:30:00Z: dates the stats rows (default: the file's creation_time)",
      isoTime,
    )
    .option('--learn-per-file', 'a learning pass at the start of every input, not only the first', false)
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
    const { signal, dispose } = interruptSignal();
    let result: ProcessResult;
    try {
      result = await runProcess({
        inputs,
        masksSize: flags.masksSize,
        legend: flags.legend,
        outPreset: flags.outPreset,
        learnPerFile: flags.learnPerFile,
        ...(flags.startTime !== undefined ? { startTime: flags.startTime } : {}),
        ...(flags.coco ? { coco: flags.coco } : {}),
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
      progress: progressBars(flags.progress),
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
    wallSeconds: r.wallSeconds,
    inputs: r.inputs,
    interrupted: r.interrupted,
    learned: r.learned,
    reused: r.reused,
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
    `\n${r.frames} frames in ${r.wallSeconds.toFixed(1)} s (segmenting ${r.seconds.toFixed(1)} s, ${r.fps.toFixed(1)} fps)${state}, backbone ${r.backbone}, head version ${r.headVersion}\n`,
  );
  if (r.inputs.length > 1)
    for (const i of r.inputs) process.stdout.write(`  ${i.stream}: ${i.frames} frames${i.error ? ` (stopped: ${i.error})` : ''}\n`);
  process.stdout.write(`\n${r.summary}\n`);
  for (const w of r.warnings) process.stdout.write(`\nwarning: ${w}\n`);
  if (r.outputs.length) process.stdout.write(`\noutputs:\n${r.outputs.map((o) => `  ${o}`).join('\n')}\n`);
}

function masksSizeArg(v: string): 'input' | 'working' {
  if (v === 'input' || v === 'working') return v;
  throw new BadOptionError('--masks-size', 'input or working', v);
}

/** An ISO 8601 date-time with a time zone (Z or ±hh:mm), as ms since the epoch. */
function isoTime(v: string): number {
  const ms = Date.parse(v);
  if (!/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v) || !/(Z|[+-]\d{2}:?\d{2})$/i.test(v) || !Number.isFinite(ms))
    throw new BadOptionError('--start-time', 'an ISO 8601 time with a time zone, e.g. 2026-03-14T09:30:00Z', v);
  return ms;
}
