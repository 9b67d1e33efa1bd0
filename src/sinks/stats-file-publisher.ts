import type { Logger } from 'pino';
import type { FrameStats } from '../types.js';
import type { LivePublisher } from './sink.js';
import { StatsFileWriter } from './stats-file-writer.js';

/**
 * A LivePublisher that appends every stream's statistics to a file (.csv or .jsonl). With
 * `{stream}` in the path each stream gets its own file; otherwise JSON lines of all streams share
 * one (CSV needs one file per stream, since its columns are one stream's classes). Writes are
 * queued per file in order; a failing file is logged and never stops the pipeline.
 */
export function statsFilePublisher(pathTemplate: string, logger: Logger): LivePublisher {
  const writers = new Map<string, Promise<StatsFileWriter>>();
  const queues = new Map<string, Promise<void>>();
  const log = logger.child({ stage: 'stats-file' });
  // A path that failed is logged once and then skipped: the pipeline calls at frame rate.
  const failed = new Set<string>();
  const pathFor = (stream: string): string =>
    pathTemplate.includes('{stream}') ? pathTemplate.replaceAll('{stream}', stream) : pathTemplate;
  let closed = false;

  return {
    name: 'stats-file',
    stats(s: FrameStats): void {
      if (closed) return;
      const path = pathFor(s.stream);
      if (failed.has(path)) return;
      let w = writers.get(path);
      if (!w) writers.set(path, (w = StatsFileWriter.open(path)));
      const writer = w;
      const next = (queues.get(path) ?? Promise.resolve())
        .then(async () => (await writer).write(s))
        .catch((err: unknown) => {
          if (!failed.has(path)) log.error({ err, path }, 'stats file write failed; no more rows go to this file');
          failed.add(path);
        });
      queues.set(path, next);
    },
    frame: () => undefined,
    mask: () => undefined,
    wantsFrames: () => false,
    wantsMasks: () => false,
    classes: () => undefined,
    event: () => undefined,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...queues.values()]);
      await Promise.allSettled([...writers.values()].map(async (w) => (await w).close()));
    },
  };
}
