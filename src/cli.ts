#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { StegoError } from './errors.js';
import { registerProcess } from './cli/process-command.js';
import { registerEval } from './cli/eval-command.js';
import { registerDemo } from './cli/demo-command.js';
import { registerServe } from './cli/serve-command.js';
import { registerIngest } from './cli/ingest-command.js';
import { registerWorker } from './cli/worker-command.js';
import { registerTrainer } from './cli/trainer-command.js';
import { registerCollect } from './cli/collect-command.js';
import { registerDoctor } from './cli/doctor-command.js';
import { registerModels } from './cli/models-command.js';
import { registerClasses } from './cli/classes-command.js';

/** Time for stdout/stderr to drain before a forced exit, ms. */
const EXIT_GRACE_MS = 2000;

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

const program = new Command()
  .name('stegostream')
  .description('Unsupervised semantic segmentation of video: learns the classes of a scene without labels')
  .version(version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerProcess(program);
registerEval(program);
registerDemo(program);
registerServe(program);
registerIngest(program);
registerWorker(program);
registerTrainer(program);
registerCollect(program);
registerDoctor(program);
registerModels(program);
registerClasses(program);

try {
  await program.parseAsync(process.argv);
  // Batch commands are done here: a handle left open by a library (a worker, a socket) must
  // not keep the process alive. Long-running commands (serve) do not return until shut down.
  setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof StegoError) {
    process.stderr.write(`stegostream: ${err.message} [${err.code}]\n`);
    process.exitCode = 1;
  } else if (isSystemError(err)) {
    // A file-system or network failure no check foresaw (a disk full, a permission): the
    // environment's doing, so one line naming the path, not a stack.
    process.stderr.write(`stegostream: ${err.message}. Check the path, its permissions and the free space. [${err.code}]\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`stegostream: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
  setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
}

/** Node's errors from the operating system (ENOENT, EACCES, ENOSPC, ...) carry an errno code and a syscall. */
function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  const e = err as NodeJS.ErrnoException | undefined;
  return e instanceof Error && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code) && typeof e.syscall === 'string';
}
