import { progressBars } from './progress-reporter.js';
import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatEval, runEval } from '../eval/run-eval.js';
import { pairEvalInputs } from '../eval/pair-eval-inputs.js';
import { readPalette } from '../eval/read-label-mask.js';
import { runProcess } from '../process/run-process.js';
import { createLogger } from '../internal/logger.js';
import {
  addLearningOptions,
  addModelOptions,
  learningFrom,
  modelOptionsFrom,
  type LearningFlags,
  type ModelFlags,
} from './common-options.js';
import { integer } from './parse-options.js';

interface EvalFlags extends LearningFlags, ModelFlags {
  pred?: string;
  palette?: string;
  ignore: number;
  json: boolean;
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description('unsupervised mIoU and pixel accuracy (Hungarian matching of clusters to classes) against ground-truth masks')
    .argument('<images>', 'folder of images')
    .argument('<masks>', 'folder of ground-truth masks named after the images (grey or indexed PNG; RGB with --palette)')
    .option('--pred <dir>', 'evaluate these predicted label maps (from process --masks) instead of segmenting the images now')
    .option('--palette <file|auto>', 'colour-coded masks: JSON {"r,g,b": id} / [[r,g,b],...] / CSV id,r,g,b, or auto')
    .option('--ignore <id>', 'ground-truth value never scored', integer('--ignore'), 255)
    .option('--json', 'print JSON instead of a table', false);
  addModelOptions(cmd);
  addLearningOptions(cmd);
  cmd.action(async (images: string, masks: string, flags: EvalFlags) => {
    let predictions = flags.pred;
    let tmp: string | undefined;
    // Every image paired with its mask before any segmenting: a missing mask is reported now.
    await pairEvalInputs(images, masks, predictions);
    if (flags.palette !== undefined && flags.palette !== 'auto') await readPalette(flags.palette);
    try {
      if (!predictions) {
        tmp = await mkdtemp(join(tmpdir(), 'stegostream-eval-'));
        predictions = tmp;
        const r = await runProcess({
          input: images,
          masks: tmp,
          ...modelOptionsFrom(flags),
          every: 1,
          objects: false,
          progress: progressBars(true),
          learning: learningFrom(flags),
          logger: createLogger(flags.logLevel),
        });
        if (r.error) throw r.error;
      }
      const result = await runEval({
        images,
        truth: masks,
        predictions,
        ignore: flags.ignore,
        ...(flags.palette ? { palette: flags.palette } : {}),
      });
      process.stdout.write(flags.json ? JSON.stringify(result, null, 2) + '\n' : formatEval(result) + '\n');
    } finally {
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }
  });
}
