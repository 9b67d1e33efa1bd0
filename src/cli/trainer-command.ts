import type { Command } from 'commander';
import { createLogger } from '../internal/logger.js';
import { addLearningOptions, learningFrom, type LearningFlags } from './common-options.js';
import { nonNegativeInt, positiveInt } from './parse-options.js';
import { addClusterOptions, natsServers, runUntilStopped, startHealth, type ClusterFlags } from './cluster-cli.js';
import { natsSecurityFromFlags } from './nats-security-options.js';
import { connectCluster } from '../cluster/cluster-connection.js';
import { DEFAULT_WARMUP_FRAMES, runTrainer } from '../cluster/run-trainer.js';
import { DEFAULT_LEASE_TTL_MS } from '../cluster/trainer-lease.js';

interface TrainerFlags extends ClusterFlags, LearningFlags {
  warmupFrames: number;
  leaseTtl: number;
  standby: boolean;
  name?: string;
}

export function registerTrainer(program: Command): void {
  const cmd = program
    .command('trainer')
    .description(
      "cluster role: learn the head from workers' sampled features and publish each version to KV (one per cluster, held by a lease)",
    )
    .option('--warmup-frames <n>', 'feature frames before the first head', nonNegativeInt('--warmup-frames'), DEFAULT_WARMUP_FRAMES)
    .option(
      '--lease-ttl <ms>',
      'a lease not renewed for this long is taken over by a waiting trainer',
      positiveInt('--lease-ttl'),
      DEFAULT_LEASE_TTL_MS,
    )
    .option('--standby', 'when another trainer holds the lease, wait and take over when it stops (default: exit)', false)
    .option('--name <id>', 'trainer id in the lease and logs (default host-pid)');
  addLearningOptions(cmd);
  addClusterOptions(cmd);
  cmd.action(async (flags: TrainerFlags) => {
    const logger = createLogger(flags.logLevel);
    const nc = await connectCluster(natsServers(flags), 'stegostream-trainer', logger, natsSecurityFromFlags(flags));
    const abort = new AbortController();
    const onSignal = (): void => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let trainer;
    try {
      trainer = await runTrainer({
        nc,
        prefix: flags.prefix,
        learning: learningFrom(flags),
        warmupFrames: Math.max(1, flags.warmupFrames),
        leaseTtlMs: flags.leaseTtl,
        standby: flags.standby,
        logger,
        signal: abort.signal,
        ...(flags.name !== undefined ? { name: flags.name } : {}),
      });
    } catch (err) {
      await nc.close();
      throw err;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const http = await startHealth(flags, trainer.registry, () => trainer.ready(), logger);
    process.stdout.write(`stegostream trainer: holding the lease on ${flags.nats} (prefix ${flags.prefix})\n`);
    await runUntilStopped({ done: trainer.done, close: () => trainer.close(), nc, http, logger });
  });
}
