import type { Command } from 'commander';
import { loadCheckpoint, saveCheckpoint } from '../learning/checkpoint.js';
import { renameClasses } from '../learning/rename-classes.js';
import { classInfos } from '../learning/head-state.js';
import { createLogger } from '../internal/logger.js';
import { addModelOptions, modelOptionsFrom, resolveModelFlags, type ModelFlags } from './common-options.js';
import { LEARNING_DEFAULTS } from '../learning/learning-options.js';
import { positiveInt } from './parse-options.js';
import { progressBars } from './progress-reporter.js';
import { writeClassSheet } from './class-sheet.js';

interface SheetFlags extends ModelFlags {
  out: string;
  frames: number;
  crops: number;
  progress: boolean;
}

/** `stegostream classes sheet | rename | list`: see what each class is, and name it (README "Naming your classes"). */
export function registerClasses(program: Command): void {
  const classes = program.command('classes').description("look at a checkpoint's classes and name them");

  classes
    .command('list')
    .description("print a checkpoint's classes: id, name, colour")
    .argument('<checkpoint>', 'head checkpoint (process --checkpoint, serve learning.checkpoint)')
    .option('--json', 'as JSON', false)
    .action(async (path: string, flags: { json: boolean }) => {
      const head = await loadCheckpoint(path);
      const list = classInfos(head);
      if (flags.json) process.stdout.write(JSON.stringify({ headVersion: head.version, classes: list }) + '\n');
      else for (const c of list) process.stdout.write(`${String(c.id).padStart(3)}  ${c.name}  rgb(${c.color.join(',')})\n`);
    });

  classes
    .command('rename')
    .description('write class names into a checkpoint (atomically): 0=water 3=sand ...')
    .argument('<checkpoint>', 'head checkpoint to rename classes in')
    .argument('<ID=NAME...>', 'class id and its new name; quote names with spaces ("2=sea grass")')
    .action(async (path: string, pairs: string[]) => {
      const head = await loadCheckpoint(path);
      const renamed = renameClasses(head, pairs);
      await saveCheckpoint(path, renamed);
      for (const c of classInfos(renamed)) process.stdout.write(`${String(c.id).padStart(3)}  ${c.name}\n`);
    });

  const sheet = classes
    .command('sheet')
    .description('a contact sheet: per class its id, colour, name, share and example crops from the input, outlined')
    .argument('<checkpoint>', 'head checkpoint to look at')
    .argument('<input>', 'a video or a folder of images to take the examples from')
    .requiredOption('-o, --out <sheet.png>', 'the PNG to write')
    .option('--frames <n>', 'frames sampled over the input', positiveInt('--frames'), 24)
    .option('--crops <n>', 'example crops per class', positiveInt('--crops'), 4)
    .option('--no-progress', 'no progress bar or progress lines');
  addModelOptions(sheet);
  sheet.action(async (path: string, input: string, flags: SheetFlags) => {
    const logger = createLogger(flags.logLevel);
    await resolveModelFlags(flags);
    const r = await writeClassSheet({
      checkpoint: path,
      input,
      out: flags.out,
      frames: flags.frames,
      crops: flags.crops,
      model: modelOptionsFrom(flags),
      learning: { ...LEARNING_DEFAULTS, k: 'auto', head: path, freeze: true, resume: false },
      progress: progressBars(flags.progress),
      logger,
    });
    process.stdout.write(`${r.out}: ${r.classes} classes, examples from ${r.frames} frames\n`);
  });
}
