import type { Command } from 'commander';
import { createLogger } from '../internal/logger.js';
import { statsFormatFor } from '../sinks/stats-file-writer.js';
import { positiveInt } from './parse-options.js';
import { addClusterOptions, natsServers, runUntilStopped, startHealth, type ClusterFlags } from './cluster-cli.js';
import { natsSecurityFromFlags } from './nats-security-options.js';
import { connectCluster } from '../cluster/cluster-connection.js';
import { createStatsCollector } from '../cluster/stats-collector.js';
import { DEFAULT_GAP_TIMEOUT_MS, DEFAULT_ORDER_WINDOW } from '../cluster/ordered-window.js';
import { BadOptionError } from '../errors.js';
import { COLLECTOR_CONSUMER } from '../cluster/cluster-names.js';
import { Registry } from 'prom-client';
import { startViewerRelay } from '../cluster/viewer-relay.js';

interface CollectFlags extends ClusterFlags {
  stats: string;
  streams?: string[];
  window: number;
  gapTimeout: number;
  exitWhenDone: boolean;
  viewerPort?: number;
  viewerHost: string;
  consumer: string;
}

export function registerCollect(program: Command): void {
  const cmd = program
    .command('collect')
    .description(
      "cluster results to files: de-duplicates workers' stats by (stream, seq), restores each stream's order, one stats file per stream",
    )
    .option('--stats <template>', 'stats file per stream: {stream} (and {run}) in the name; .csv or .jsonl', '{stream}.stats.csv')
    .option('--streams <names...>', 'only these streams (default: all)')
    .option('--window <n>', 'results held while an earlier frame is missing', positiveInt('--window'), DEFAULT_ORDER_WINDOW)
    .option(
      '--gap-timeout <ms>',
      'how long a missing frame holds later ones back before it is given up',
      positiveInt('--gap-timeout'),
      DEFAULT_GAP_TIMEOUT_MS,
    )
    .option(
      '--consumer <name>',
      'durable consumer of the results stream: a collector restarted with the same name goes on where it stopped (one name per collector)',
      COLLECTOR_CONSUMER,
    )
    .option('--exit-when-done', 'exit once every stream given with --streams is complete', false)
    .option(
      '--viewer-port <n>',
      "also serve the live viewer (/, /ws) fed from the cluster's results on this port",
      positiveInt('--viewer-port'),
    )
    .option('--viewer-host <host>', 'interface the viewer binds (0.0.0.0 to serve other machines)', '127.0.0.1');
  addClusterOptions(cmd);
  cmd.action(async (flags: CollectFlags) => {
    const logger = createLogger(flags.logLevel);
    statsFormatFor(flags.stats);
    if (!flags.stats.includes('{stream}'))
      throw new BadOptionError('--stats', 'a file name template holding {stream} (one file per stream)', flags.stats);
    if (flags.exitWhenDone && !flags.streams)
      throw new BadOptionError('--exit-when-done', 'a list of streams to wait for: add --streams NAME...', true);
    const nc = await connectCluster(natsServers(flags), 'stegostream-collect', logger, natsSecurityFromFlags(flags));
    const pending = new Set(flags.streams ?? []);
    let allDone!: () => void;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    const collector = createStatsCollector({
      nc,
      prefix: flags.prefix,
      statsPath: flags.stats,
      window: flags.window,
      gapTimeoutMs: flags.gapTimeout,
      durable: flags.consumer,
      logger,
      ...(flags.streams ? { streams: flags.streams } : {}),
      onComplete: (s) => {
        process.stdout.write(
          `${s.stream}: ${s.written} frames in order${s.duplicates ? `, ${s.duplicates} duplicates dropped` : ''}${s.lost ? `, ${s.lost} missing` : ''}${s.failed ? `, ${s.failed} not written` : ''}${s.file ? ` -> ${s.file}` : ''}\n`,
        );
        pending.delete(s.stream);
        if (flags.exitWhenDone && pending.size === 0) allDone();
      },
    });
    await collector.ready;
    const http = await startHealth(flags, new Registry(), () => ({ ready: true }), logger);
    const viewer =
      flags.viewerPort === undefined
        ? undefined
        : await startViewerRelay({ nc, prefix: flags.prefix, host: flags.viewerHost, port: flags.viewerPort, logger });
    if (viewer) process.stderr.write(`stegostream collect: live viewer at ${viewer.url}/\n`);
    process.stderr.write(`stegostream collect: writing ${flags.stats} from ${flags.nats} (prefix ${flags.prefix})\n`);
    await runUntilStopped({
      done: flags.exitWhenDone ? done : new Promise(() => undefined),
      close: async () => {
        await viewer?.close();
        return collector.close();
      },
      nc,
      http,
      logger,
    });
  });
}
