import { progressBars } from './progress-reporter.js';
import type { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runProcess } from '../process/run-process.js';
import { createLogger } from '../internal/logger.js';
import { createScene } from '../scene/render-scene.js';
import { SCENE_VARIANTS, type SceneVariant } from '../scene/scene-options.js';
import { writeSceneVideo } from '../scene/write-scene-files.js';
import { ConfusionMatrix } from '../eval/segmentation-metrics.js';
import {
  addLearningOptions,
  addModelOptions,
  learningFrom,
  modelOptionsFrom,
  resolveModelFlags,
  type LearningFlags,
  type ModelFlags,
} from './common-options.js';
import { oneOf, positiveInt } from './parse-options.js';
import { printResult, resultJson } from './process-command.js';
import { interruptSignal } from './interrupt.js';
import { resizeLabelsNearest } from '../internal/resize-labels.js';
import { OutputUnwritableError } from '../errors.js';
import { hungarianMatch } from '../learning/hungarian-match.js';

interface DemoFlags extends LearningFlags, ModelFlags {
  outDir: string;
  frames: number;
  variant: SceneVariant;
  sceneSeed: number;
  json: boolean;
}

export const DEMO_SIZE = { width: 640, height: 360 } as const;
export const DEMO_FPS = 15;

export function registerDemo(program: Command): void {
  const cmd = program
    .command('demo')
    .description('render the built-in dive scene (with its ground truth), segment it, and score the result')
    .option('--out-dir <dir>', 'where the demo files go', 'stegostream-demo')
    .option('--frames <n>', 'length of the scene in frames', positiveInt('--frames'), 150)
    .option(
      '--variant <easy|hard|lit>',
      "hard: coral the colour of sand, told apart only by texture; lit: the easy scene under a deep-sea ROV's lamps alone",
      oneOf('--variant', SCENE_VARIANTS),
      'easy',
    )
    .option('--scene-seed <n>', 'layout of the scene', positiveInt('--scene-seed'), 7)
    .option('--json', 'print the result and the scores as one JSON object on stdout', false);
  addModelOptions(cmd);
  addLearningOptions(cmd);
  cmd.action(async (flags: DemoFlags) => {
    const logger = createLogger(flags.logLevel);
    await resolveModelFlags(flags);
    await mkdir(flags.outDir, { recursive: true }).catch((err: unknown) => {
      throw new OutputUnwritableError(
        flags.outDir,
        `the folder cannot be made (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        err,
      );
    });
    const video = join(flags.outDir, 'dive.mp4');
    process.stderr.write(`rendering ${flags.frames} frames of the ${flags.variant} dive scene to ${video}\n`);
    const sceneOpts = { ...DEMO_SIZE, seed: flags.sceneSeed, variant: flags.variant, fps: DEMO_FPS };
    await writeSceneVideo(video, { ...sceneOpts, frames: flags.frames });
    const scene = createScene(sceneOpts);
    let confusion: ConfusionMatrix | undefined;
    const { signal, dispose } = interruptSignal();
    const result = await runProcess({
      input: video,
      out: join(flags.outDir, 'segmented.mp4'),
      stats: join(flags.outDir, 'stats.csv'),
      masks: join(flags.outDir, 'masks'),
      ...modelOptionsFrom(flags),
      every: 1,
      progress: progressBars(true),
      learning: learningFrom(flags),
      logger,
      signal,
      // The classes are named after the scene's classes they overlap most (one to one), from the
      // first batch, so the summary, the stats, the masks' classes.json and the legend show names.
      nameClasses: (segs) => {
        const first = segs[0];
        if (!first) return undefined;
        const m = new ConfusionMatrix(first.classes.length, scene.classNames.length);
        for (const seg of segs) {
          const truth = scene.render(seg.frame.seq);
          m.add(seg.labels, resizeLabelsNearest(truth.labels, truth.width, truth.height, seg.frame.width, seg.frame.height));
        }
        const match = hungarianMatch(m.rows());
        return new Map([...match].flatMap((col, id) => (col >= 0 ? [[id, scene.classNames[col] as string] as const] : [])));
      },
      onSegment: (seg) => {
        const truth = scene.render(seg.frame.seq);
        // With -k auto the count may grow at a later round (up to --max-classes).
        const rows = Math.max(seg.classes.length, flags.classes === 'auto' ? flags.maxClasses : 0);
        confusion ??= new ConfusionMatrix(rows, scene.classNames.length);
        confusion.add(seg.labels, resizeLabelsNearest(truth.labels, truth.width, truth.height, seg.frame.width, seg.frame.height));
      },
    }).finally(dispose);
    const s = confusion?.score(scene.classNames);
    if (flags.json) {
      const scores = s && {
        mIoU: s.mIoU,
        pixelAccuracy: s.pixelAccuracy,
        perClass: s.perClass.map(({ id, name, iou, cluster }) => ({ id, name, iou, cluster })),
      };
      process.stdout.write(JSON.stringify({ ...resultJson(result), variant: flags.variant, sceneSeed: flags.sceneSeed, ...scores }) + '\n');
    } else {
      printResult(result, false);
      if (s) {
        process.stdout.write(
          `\nagainst the scene's ground truth: mIoU ${(s.mIoU * 100).toFixed(1)}%, pixel accuracy ${(s.pixelAccuracy * 100).toFixed(1)}%\n` +
            s.perClass.map((c) => `  ${c.name.padEnd(6)} IoU ${(c.iou * 100).toFixed(1)}%`).join('\n') +
            '\n',
        );
      }
    }
    if (result.error) throw result.error;
  });
}
