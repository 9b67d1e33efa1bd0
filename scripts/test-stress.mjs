#!/usr/bin/env node
/**
 * Runs the test suite on a machine kept busy: one CPU-burning node process per core (a spinning
 * loop each) beside vitest, so a test that only passes on an idle machine shows up here and not
 * on a user's busy laptop or a shared CI runner. The burners are stopped however the run ends
 * (pass, fail, Ctrl-C, SIGTERM).
 *
 *   npm run test:stress                       # the whole suite (after a build)
 *   npm run test:stress -- test/scene.test.ts # some files; arguments go to `vitest run`
 *   STRESS_BURNERS=4 npm run test:stress      # burners: default one per core
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

const count = process.env.STRESS_BURNERS === undefined ? availableParallelism() : Number(process.env.STRESS_BURNERS);
if (!Number.isInteger(count) || count < 0) {
  process.stderr.write(`test-stress: STRESS_BURNERS must be a non-negative integer, received "${process.env.STRESS_BURNERS}"\n`);
  process.exit(2);
}

const burners = Array.from({ length: count }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
let stopped = false;
function stopBurners() {
  if (stopped) return;
  stopped = true;
  for (const b of burners) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
}
// A crash or an exit by any path still takes the burners down.
process.on('exit', stopBurners);

process.stderr.write(`test-stress: ${count} CPU burner(s) beside vitest (pids ${burners.map((b) => b.pid).join(', ')})\n`);
const vitest = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    stopBurners();
    vitest.kill(sig);
  });
}
vitest.on('exit', (code, signal) => {
  stopBurners();
  process.stderr.write(`test-stress: vitest ${signal ? `ended by ${signal}` : `exited with ${code}`}; burners stopped\n`);
  process.exit(code ?? 1);
});
