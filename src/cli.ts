#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { StegoError } from './errors.js';

/** Time for stdout/stderr to drain before a forced exit, ms. */
const EXIT_GRACE_MS = 2000;

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

// `--version` answers before the commands (ONNX Runtime, sharp, NATS...) are loaded.
if (process.argv.length === 3 && ['--version', '-V'].includes(process.argv[2] as string)) {
  process.stdout.write(`${version}\n`);
  process.exit(0);
}

const [
  { registerProcess },
  { registerEval },
  { registerDemo },
  { registerServe },
  { registerIngest },
  { registerWorker },
  { registerTrainer },
  { registerCollect },
  { registerDoctor },
  { registerModels },
  { registerClasses },
] = await Promise.all([
  import('./cli/process-command.js'),
  import('./cli/eval-command.js'),
  import('./cli/demo-command.js'),
  import('./cli/serve-command.js'),
  import('./cli/ingest-command.js'),
  import('./cli/worker-command.js'),
  import('./cli/trainer-command.js'),
  import('./cli/collect-command.js'),
  import('./cli/doctor-command.js'),
  import('./cli/models-command.js'),
  import('./cli/classes-command.js'),
]);

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
