#!/usr/bin/env node
// npm run test:stress: the test suite with every core kept busy by spinning processes beside it,
// as on a busy laptop or a shared CI runner. A test that passes only on an idle machine fails here.
//   node scripts/test-stress.mjs [vitest args…]   (default: the whole suite, as `npm test`)
//   STRESS_BURNERS=N                               how many spinning processes (default: one a core)
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

const count = Number(process.env.STRESS_BURNERS ?? availableParallelism());
if (!Number.isInteger(count) || count < 0) {
  console.error(`test:stress: Expected a non-negative integer for STRESS_BURNERS but received "${process.env.STRESS_BURNERS}"`);
  process.exit(2);
}

// Each burner spins at normal priority in its own process and exits with its parent: it reads
// its stdin, which closes when this script ends however it ends (even on SIGKILL).
const SPIN =
  "process.stdin.on('end', () => process.exit(0)); process.stdin.resume(); const spin = () => { const t = Date.now(); while (Date.now() - t < 50); setImmediate(spin); }; spin();";
const burners = Array.from({ length: count }, () => spawn(process.execPath, ['-e', SPIN], { stdio: ['pipe', 'ignore', 'ignore'] }));
const stopBurners = () => {
  for (const b of burners) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
};
process.on('exit', stopBurners);
console.error(`test:stress: ${count} CPU-burning process(es) running beside the suite`);

const args = process.argv.slice(2);
const suite = spawn('npm', ['test', ...(args.length > 0 ? ['--', ...args] : [])], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => suite.kill(sig));
suite.on('close', (code, signal) => {
  stopBurners();
  process.exit(code ?? (signal ? 1 : 0));
});
