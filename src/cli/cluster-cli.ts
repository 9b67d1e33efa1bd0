/**
 * What the cluster commands (ingest, worker, trainer, collect) share: the NATS options, an HTTP
 * endpoint for probes and metrics (`/healthz`, `/readyz`, `/metrics`), and a run loop that shuts
 * the role down gracefully on SIGINT/SIGTERM (a second signal exits at once).
 */
import { Option, type Command } from 'commander';
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { LOG_LEVELS } from '../internal/logger.js';
import { startHttpService, type HttpService, type Readiness } from '../service/http-server.js';
import { DEFAULT_PREFIX, checkPrefix } from '../sinks/nats-subjects.js';
import { BadOptionError } from '../errors.js';
import { DEFAULT_NATS_URL } from '../cluster/cluster-connection.js';
import { addNatsSecurityOptions, type NatsSecurityFlags } from './nats-security-options.js';

export interface ClusterFlags extends NatsSecurityFlags {
  nats: string;
  prefix: string;
  healthPort?: number;
  healthHost: string;
  logLevel: string;
}

function portArg(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n > 65535) throw new BadOptionError(name, 'integer 0-65535', v);
    return n;
  };
}

function prefixArg(v: string): string {
  return checkPrefix(v);
}

/** --nats, --prefix, --health-port, --health-host, --log-level. */
export function addClusterOptions(cmd: Command): Command {
  return addNatsSecurityOptions(cmd)
    .addOption(new Option('--nats <url>', 'NATS server URL(s), comma-separated').env('NATS_URL').default(DEFAULT_NATS_URL))
    .option('--prefix <prefix>', 'subject prefix shared by every role', prefixArg, DEFAULT_PREFIX)
    .option('--health-port <n>', 'serve /healthz, /readyz and /metrics on this port (default: none)', portArg('--health-port'))
    .option('--health-host <host>', 'interface the health endpoint binds (0.0.0.0 in containers)', '127.0.0.1')
    .addOption(new Option('--log-level <level>', 'JSON log level on stderr').choices(LOG_LEVELS).default('info'));
}

export function natsServers(flags: { nats: string }): string[] {
  return flags.nats
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Starts the health endpoint when --health-port was given. */
export async function startHealth(
  flags: ClusterFlags,
  registry: Registry,
  ready: () => Readiness,
  logger: Logger,
): Promise<HttpService | undefined> {
  if (flags.healthPort === undefined) return undefined;
  const http = await startHttpService({ registry, host: flags.healthHost, port: flags.healthPort, logger, ready });
  logger.info({ url: http.url }, 'health endpoint listening');
  return http;
}

/**
 * Runs until `done` settles or a signal arrives; then `close()` (bounded by `timeoutMs`), the
 * health endpoint and the connection are closed. Rethrows what `done` rejected with.
 */
export async function runUntilStopped(opts: {
  readonly done: Promise<unknown>;
  readonly close: () => Promise<unknown>;
  readonly nc: NatsConnection;
  readonly http?: HttpService | undefined;
  readonly logger: Logger;
  readonly timeoutMs?: number;
}): Promise<void> {
  let signals = 0;
  let stopRequested!: () => void;
  const stopped = new Promise<void>((resolve) => (stopRequested = resolve));
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) process.exit(130);
    process.stderr.write(`${sig}: shutting down (again to force)\n`);
    stopRequested();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let failure: unknown;
  try {
    await Promise.race([opts.done, stopped]);
  } catch (err) {
    failure = err;
  }
  const force = setTimeout(() => {
    process.stderr.write('shutdown took too long: forcing exit\n');
    process.exit(1);
  }, opts.timeoutMs ?? 20_000);
  force.unref();
  await opts.close().catch((err: unknown) => opts.logger.error({ err }, 'shutdown failed'));
  await opts.http?.close();
  await opts.nc.drain().catch(() => undefined);
  clearTimeout(force);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (failure !== undefined) throw failure;
}
