import type { Command } from 'commander';
import { loadPipeline } from '../config/load-pipeline.js';
import { runService } from '../service/run-service.js';
import { createLogger, LOG_LEVELS } from '../internal/logger.js';
import { Option } from 'commander';
import { BadOptionError } from '../errors.js';
import { resolveBackbone } from '../models/resolve-backbone.js';
import { runsOnGpu } from '../backbone/execution-device.js';

interface ServeFlags {
  port?: number;
  logLevel: string;
  exitWhenDone: boolean;
}

function portArg(v: string, name = '--port'): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new BadOptionError(name, 'integer 0-65535', v);
  return n;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run a pipeline file as a live service: viewer at /, WebSocket at /ws, /metrics, /healthz, /readyz')
    .argument('<pipeline.yaml>', 'pipeline file (see pipelines/ and README "Pipeline YAML")')
    .option('-p, --port <n>', 'HTTP port (default: $PORT, then service.port of the file, then 8080)', (v: string) => portArg(v))
    .option('--exit-when-done', 'exit once every source has ended (recorded videos without loop)', false)
    .addOption(new Option('--log-level <level>', 'JSON log level on stderr').choices(LOG_LEVELS).default('info'))
    .action(async (file: string, flags: ServeFlags) => {
      const logger = createLogger(flags.logLevel);
      const config = await loadPipeline(file);
      // A model name in the file is pulled now (progress on stderr); the backbone loads it from the cache.
      await resolveBackbone(config.model.backbone, { onGpu: runsOnGpu(config.model.device) });
      const envPort = process.env['PORT'];
      const port = flags.port ?? (envPort !== undefined && envPort !== '' ? portArg(envPort, 'the PORT environment variable') : undefined);
      const service = await runService(config, { logger, ...(port !== undefined ? { port } : {}) });
      process.stdout.write(`stegostream: pipeline "${config.name}" running; viewer at ${service.url}/\n`);
      await new Promise<void>((resolve) => {
        let signals = 0;
        const stop = (sig: string): void => {
          signals++;
          if (signals > 1) process.exit(130);
          process.stderr.write(`${sig}: shutting down (again to force)\n`);
          const force = setTimeout(() => {
            process.stderr.write(`shutdown took longer than ${config.service.shutdownTimeoutMs} ms: forcing exit\n`);
            process.exit(1);
          }, config.service.shutdownTimeoutMs);
          force.unref();
          void service.close().then(resolve);
        };
        process.on('SIGINT', () => stop('SIGINT'));
        process.on('SIGTERM', () => stop('SIGTERM'));
        if (flags.exitWhenDone) void service.finished.then(() => service.close()).then(resolve);
      });
    });
}
