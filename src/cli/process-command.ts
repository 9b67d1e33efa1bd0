import type { Command } from 'commander';
import { runProcess, type ProcessResult } from '../pipeline/run-process.js';
import { createLogger } from '../internal/logger.js';
import { addLearningOptions, addModelOptions, learningFrom, modelOptionsFrom, type LearningFlags, type ModelFlags } from './common-options.js';
import { positiveInt, sizeArg } from './parse-options.js';
import { interruptSignal } from './interrupt.js';

interface ProcessFlags extends LearningFlags, ModelFlags {
  out?: string;
  outSize?: { width: number; height: number };
  masks?: string;
  stats?: string;
  every: number;
  progress: boolean;
  json: boolean;
}

export function registerProcess(program: Command): void {
  const cmd = program
    .command('process')
    .description('segment a recorded video (or a folder of images): overlay video, label maps, per-frame statistics and a summary')
    .argument('<input>', 'video file (mp4, mov, mkv, ts, avi; H.264, HEVC, ...) or folder of images')
    .option('-o, --out <file.mp4>', 'overlay video (class colours over the picture), same frame count and rate as the input')
    .option('--out-size <WxH>', "overlay video size (default: the input's)", sizeArg('--out-size'))
    .option('--masks <dir>', 'indexed PNG label map per frame (per image: named after it)')
    .option('--stats <file>', 'per-frame class statistics: .csv or .jsonl')
    .option('--every <n>', 'keep every n-th frame', positiveInt('--every'), 1)
    .option('--no-progress', 'no progress bar or progress lines')
    .option('--json', 'print the result as JSON on stdout', false);
  addModelOptions(cmd);
  addLearningOptions(cmd);
  cmd.action(async (input: string, flags: ProcessFlags) => {
    const logger = createLogger(flags.logLevel);
    const { signal, dispose } = interruptSignal();
    let result: ProcessResult;
    try {
      result = await runProcess({
        input,
        ...modelOptionsFrom(flags),
        every: flags.every,
        progress: flags.progress,
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

export function printResult(r: ProcessResult, json: boolean): void {
  if (json) {
    process.stdout.write(
      JSON.stringify({ frames: r.frames, seconds: r.seconds, fps: r.fps, interrupted: r.interrupted, headVersion: r.headVersion, backbone: r.backbone, classes: r.shares, outputs: r.outputs, error: r.error?.message, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n',
    );
    return;
  }
  const state = r.interrupted ? ' (interrupted)' : r.error ? ' (stopped by an input error)' : '';
  process.stdout.write(
    `\n${r.frames} frames in ${r.seconds.toFixed(1)} s (${r.fps.toFixed(1)} fps)${state}, backbone ${r.backbone}, head version ${r.headVersion}\n\n${r.summary}\n`,
  );
  if (r.outputs.length) process.stdout.write(`\noutputs:\n${r.outputs.map((o) => `  ${o}`).join('\n')}\n`);
}
