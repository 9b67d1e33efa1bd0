import { catchError, defer, EMPTY, finalize, repeat, switchMap, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import type { Frame, OverflowPolicy } from '../types.js';
import type { SourceConfig } from '../config/pipeline-schema.js';
import { FlowGate } from '../internal/flow-gate.js';
import { sceneSource } from '../sources/scene-source.js';
import { fileSource } from '../sources/file-source.js';
import { liveSource } from '../sources/live-source.js';
import { probeVideo } from '../internal/probe-video.js';
import { renumberFrames } from '../operators/renumber-frames.js';
import { paceRealtime } from '../operators/pace-realtime.js';
import type { ServiceEvent } from './live-publisher.js';
import { StegoError } from '../errors.js';

/** Frames a lossless file source may have in flight through the pipeline. */
export const FILE_GATE_FRAMES = 8;

export interface BuiltSource {
  readonly name: string;
  readonly frames: Observable<Frame>;
  /** How the batcher treats this stream's queue. */
  readonly policy: OverflowPolicy;
  readonly queueSize: number;
  /** Lossless sources: give a credit back when a frame is done (published or dropped). */
  readonly gate?: FlowGate;
}

/**
 * Turns the pipeline's source entries into frame streams at the working size. Each stream is
 * isolated: an error ends that stream (published as a `stopped` event with the reason) and never
 * the others. Live feeds and real-time files queue under drop-oldest (latest frame wins); plain
 * files are lossless and gated.
 */
export function buildSources(
  sources: readonly SourceConfig[],
  size: { width: number; height: number },
  events: (e: ServiceEvent) => void,
  logger: Logger,
): BuiltSource[] {
  return sources.map((src): BuiltSource => {
    const log = logger.child({ stream: src.name, stage: 'source' });
    const isolate = (frames: Observable<Frame>): Observable<Frame> =>
      frames.pipe(
        catchError((err: unknown) => {
          const msg = err instanceof Error ? err.message : String(err);
          log.error({ err, code: err instanceof StegoError ? err.code : undefined }, 'source failed');
          events({ type: 'source-state', stream: src.name, state: 'stopped', detail: msg });
          return EMPTY;
        }),
      );
    switch (src.use) {
      case 'scene': {
        const w = src.with;
        const frames = defer(() => {
          events({ type: 'source-state', stream: src.name, state: 'live' });
          return sceneSource({
            width: size.width,
            height: size.height,
            seed: w.seed,
            variant: w.variant,
            fps: w.fps,
            frames: w.frames,
            loop: w.loop,
            realtime: true,
            streamId: src.name,
          });
        }).pipe(finalize(() => events({ type: 'source-state', stream: src.name, state: 'stopped' })));
        return { name: src.name, frames: isolate(frames), policy: 'drop-oldest', queueSize: 2 };
      }
      case 'file': {
        const w = src.with;
        const gate = new FlowGate(w.realtime ? 3 : FILE_GATE_FRAMES);
        // Probe first, so a bad file fails this stream (with a clear error), not the service.
        const once = defer(() => probeVideo(w.path)).pipe(
          switchMap((info) => {
            events({ type: 'source-state', stream: src.name, state: 'live' });
            return fileSource({ path: w.path, width: size.width, height: size.height, every: w.every, gate, fps: info.fps, streamId: src.name });
          }),
        );
        let frames = w.loop ? once.pipe(repeat()) : once;
        frames = frames.pipe(renumberFrames());
        if (w.realtime) frames = frames.pipe(paceRealtime());
        frames = frames.pipe(finalize(() => events({ type: 'source-state', stream: src.name, state: 'stopped' })));
        return { name: src.name, frames: isolate(frames), policy: w.realtime ? 'drop-oldest' : 'wait', queueSize: w.realtime ? 2 : FILE_GATE_FRAMES, gate };
      }
      case 'live': {
        const w = src.with;
        const frames = liveSource({
          url: w.url,
          streamId: src.name,
          width: size.width,
          height: size.height,
          transport: w.transport,
          httpFormat: w.httpFormat,
          stallTimeoutMs: w.stallTimeoutMs,
          logger: log,
          onState: (e) => events(e),
          ...(w.sdp !== undefined ? { sdp: w.sdp } : {}),
          ...(w.fpsCap !== undefined ? { fpsCap: w.fpsCap } : {}),
          ...(w.backoff !== undefined ? { backoff: w.backoff } : {}),
          ...(w.maxRetries !== undefined ? { maxRetries: w.maxRetries } : {}),
        });
        return { name: src.name, frames: isolate(frames), policy: 'drop-oldest', queueSize: w.queue };
      }
    }
  });
}
