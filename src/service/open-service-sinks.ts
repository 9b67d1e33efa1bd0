import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { natsSecurityOf } from '../internal/nats-security.js';
import type { ControlHandler } from '../sinks/control.js';
import type { LivePublisher } from '../sinks/sink.js';
import { createWsHub, type WsHub } from '../sinks/ws-hub.js';
import { natsPublisher } from '../sinks/nats-publisher.js';
import { statsFilePublisher } from '../sinks/stats-file-publisher.js';
import { OutputUnwritableError } from '../errors.js';
import type { SummaryHistory } from '../engine/summary-history.js';

/** The live outputs a pipeline file lists, and how its overlay JPEGs are made. */
export interface ServiceSinks {
  readonly publishers: LivePublisher[];
  readonly hub?: WsHub;
  /** From the websocket sink: JPEG quality and the widest overlay sent. */
  readonly jpegQuality: number;
  readonly maxWidth: number;
}

/**
 * Makes every sink of `config.sinks`. A sink that cannot be made (a bad option, a stats folder
 * that cannot be created) closes the ones already made and rethrows.
 */
export async function openServiceSinks(
  config: Readonly<PipelineConfig>,
  deps: {
    readonly control: ControlHandler;
    readonly registry: Registry;
    readonly logger: Logger;
    /** Answers the WebSocket `history` requests. */
    readonly history?: SummaryHistory;
  },
): Promise<ServiceSinks> {
  const { control, registry, logger } = deps;
  const publishers: LivePublisher[] = [];
  let hub: WsHub | undefined;
  let jpegQuality = 75;
  let maxWidth = 0;
  try {
    for (const sink of config.sinks) {
      if (sink.use === 'websocket') {
        hub = createWsHub({
          control,
          registry,
          logger,
          maxPayloadBytes: sink.with.maxPayloadBytes,
          heartbeatIntervalMs: sink.with.heartbeatIntervalMs,
          maxClients: sink.with.maxClients,
          ...(deps.history ? { history: (stream, window, since) => deps.history?.since(stream, window, since) ?? [] } : {}),
        });
        jpegQuality = sink.with.jpegQuality;
        maxWidth = sink.with.maxWidth;
        publishers.push(hub);
      } else if (sink.use === 'nats') {
        publishers.push(
          natsPublisher({
            servers: sink.with.servers,
            prefix: sink.with.prefix,
            frames: sink.with.frames,
            masks: sink.with.masks,
            control,
            registry,
            logger,
            reconnectBufSize: sink.with.reconnectBufSize,
            name: `stegostream-${config.name}`,
            security: natsSecurityOf(sink.with),
            ...(sink.with.jetstream ? { jetstream: sink.with.jetstream } : {}),
          }),
        );
      } else {
        await makeStatsFolders(
          sink.with.path,
          config.sources.map((s) => s.name),
        );
        publishers.push(statsFilePublisher(sink.with.path, logger));
      }
    }
  } catch (err) {
    await Promise.allSettled(publishers.map((p) => p.close()));
    throw err;
  }
  return { publishers, ...(hub ? { hub } : {}), jpegQuality, maxWidth };
}

/** The folders must exist before the first frame: the writer would otherwise fail on every one. */
async function makeStatsFolders(template: string, streams: readonly string[]): Promise<void> {
  for (const stream of streams) {
    const path = template.replaceAll('{stream}', stream);
    await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
      throw new OutputUnwritableError(path, `cannot create its folder (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
    });
  }
}
