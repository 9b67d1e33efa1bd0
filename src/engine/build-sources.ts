import { catchError, defer, EMPTY, map, repeat, switchMap, tap, type Observable } from 'rxjs';
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
import type { ServiceEvent, SourceState } from '../types.js';
import type { SourceStateEvent } from '../sources/live-source.js';
import { InputNotFoundError, StegoError } from '../errors.js';
import { access } from 'node:fs/promises';
import { KeepEvery } from '../sources/keep-every.js';

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
  /** Live feeds: how many decoded frames per kept one ffmpeg drops (live-rate.ts sets it). */
  readonly keepEvery?: KeepEvery;
}

/**
 * Turns the pipeline's source entries into frame streams at the working size. Each stream is
 * isolated: an error, at creation (bad options, a missing file) or later, ends that stream only,
 * published as one `stopped` event whose detail is the error message; a stream that ends (a file,
 * a clip without loop) reports `stopped` with why, and so does one unsubscribed on shutdown. Live feeds and real-time files queue under drop-oldest (latest frame wins); plain
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
    // The last state this stream reported: a source that reports its own `stopped` (live) and
    // then errors must not send a second one without the reason.
    let last: SourceState | undefined;
    const state = (e: SourceStateEvent): void => {
      if (e.state === 'stopped' && last === 'stopped') return;
      last = e.state;
      events(e);
    };
    const stopped = (detail: string): void => state({ type: 'source-state', stream: src.name, state: 'stopped', detail });
    // Options are checked when the source is made (BadOptionError, InputNotFoundError): inside
    // defer, so such an error ends this stream only, like one that happens later.
    const isolate = (make: () => Observable<Frame>, ended: string): Observable<Frame> =>
      defer(make).pipe(
        tap({ complete: () => stopped(ended), unsubscribe: () => stopped('the service is stopping') }),
        catchError((err: unknown) => {
          const msg = err instanceof Error ? err.message : String(err);
          log.error({ err, code: err instanceof StegoError ? err.code : undefined }, 'source failed; the other streams go on');
          stopped(msg);
          return EMPTY;
        }),
      );
    switch (src.use) {
      case 'scene': {
        const w = src.with;
        const frames = isolate(() => {
          state({ type: 'source-state', stream: src.name, state: 'live' });
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
          }).pipe(map(arrivalTime));
        }, 'the scene clip ended');
        return { name: src.name, frames, policy: 'drop-oldest', queueSize: 2 };
      }
      case 'file': {
        const w = src.with;
        const gate = new FlowGate(w.realtime ? 3 : FILE_GATE_FRAMES);
        const frames = isolate(() => {
          // Probe first, so a bad file fails this stream (with a clear error), not the service.
          const once = defer(async () => {
            // ffprobe reports a missing file as "no video stream": say what is wrong instead.
            await access(w.path).catch(() => {
              throw new InputNotFoundError(w.path, 'video file');
            });
            return probeVideo(w.path);
          }).pipe(
            switchMap((info) => {
              state({ type: 'source-state', stream: src.name, state: 'live', detail: w.path });
              return fileSource({
                path: w.path,
                width: size.width,
                height: size.height,
                every: w.every,
                gate,
                fps: info.fps,
                streamId: src.name,
                // A recorded file's frames are dated from its creation time; one played as if live, on arrival.
                ...(info.creationTime !== undefined && !w.realtime ? { startTime: info.creationTime } : {}),
              });
            }),
          );
          let f = w.loop ? once.pipe(repeat()) : once;
          f = f.pipe(renumberFrames());
          return w.realtime ? f.pipe(paceRealtime(), map(arrivalTime)) : f;
        }, 'the file ended');
        return { name: src.name, frames, policy: w.realtime ? 'drop-oldest' : 'wait', queueSize: w.realtime ? 2 : FILE_GATE_FRAMES, gate };
      }
      case 'live': {
        const w = src.with;
        const keepEvery = new KeepEvery();
        const frames = isolate(
          () =>
            liveSource({
              url: w.url,
              keepEvery,
              streamId: src.name,
              width: size.width,
              height: size.height,
              stallTimeoutMs: w.stallTimeoutMs,
              // Not `log`: the live source adds its own stream and stage (pino would repeat the keys).
              logger,
              onState: state,
              ...(w.transport !== undefined ? { transport: w.transport } : {}),
              ...(w.httpFormat !== undefined ? { httpFormat: w.httpFormat } : {}),
              ...(w.sdp !== undefined ? { sdp: w.sdp } : {}),
              ...(w.fpsCap !== undefined ? { fpsCap: w.fpsCap } : {}),
              ...(w.backoff !== undefined ? { backoff: w.backoff } : {}),
              ...(w.maxRetries !== undefined ? { maxRetries: w.maxRetries } : {}),
            }).pipe(map(arrivalTime)),
          'the feed ended',
        );
        return { name: src.name, frames, policy: 'drop-oldest', queueSize: w.queue, keepEvery };
      }
    }
  });
}

/** A live frame is dated by its arrival (the wall clock when it left the decoder). */
function arrivalTime(f: Frame): Frame {
  return { ...f, time: f.capturedAt };
}
