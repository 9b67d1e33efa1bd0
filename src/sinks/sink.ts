/**
 * The seam between the pipeline and the live outputs (WebSocket hub, NATS). The pipeline holds one
 * `LivePublisher` (usually a `fanOutPublisher` over every enabled sink) and calls it synchronously
 * per frame; sinks never block it and never throw into it.
 */
import type { Logger } from 'pino';
import { createLogger } from '../internal/logger.js';
import type { ClassInfo, FrameStats, ImageMeta, RenderedFrame, ServiceEvent, WindowSummary } from '../types.js';

export type { ControlHandler } from './control.js';

export type { ImageMeta, SourceState, PipelineState, LearningState, ServiceEvent } from '../types.js';
export { eventStream } from '../types.js';

/**
 * What the pipeline calls. Every method but `close` is synchronous and must return quickly: a sink
 * queues or drops, it never waits for a network peer, and it never throws (a sink that does is
 * isolated by `fanOutPublisher`).
 */
export interface LivePublisher {
  /** Name used in logs and metrics. */
  readonly name?: string;
  /** Class statistics of one frame. Every frame; never dropped for slow clients. */
  stats(s: FrameStats): void;
  /** A stream's statistics summarised over a window (1 s, 10 s, 60 s); for sinks that carry them. */
  summary?(s: WindowSummary): void;
  /** Overlay JPEG of one frame; encoded by the pipeline only when `wantsFrames(stream)`. */
  frame(stream: string, meta: ImageMeta, jpeg: Buffer): void;
  /** Label map PNG (pixel value = class id); encoded only when `wantsMasks(stream)`. */
  mask(stream: string, meta: ImageMeta, png: Buffer): void;
  /** The picture without overlay, JPEG (viewers that blend it themselves); encoded only when `wantsRaw(stream)`. */
  raw?(stream: string, meta: ImageMeta, jpeg: Buffer): void;
  wantsRaw?(stream: string): boolean;
  /** True when someone would receive `frame(stream, ...)` now. */
  wantsFrames(stream: string): boolean;
  /** True when someone would receive `mask(stream, ...)` now. */
  wantsMasks(stream: string): boolean;
  /** The legend of a stream; call on change (new head version, rename) and once at start. */
  classes(stream: string, classes: readonly ClassInfo[], headVersion: number): void;
  event(e: ServiceEvent): void;
  /** Flushes and releases; idempotent. */
  close(): Promise<void>;
}

/** Failures of one sink are logged at most this often (the pipeline calls at frame rate). */
const FAILURE_LOG_INTERVAL_MS = 10_000;

/**
 * One publisher that calls each of `pubs` in order. A sink that throws is logged (at most once per
 * 10 s per sink, with the count of failures in between) and skipped; the others still get the
 * call. `wants*` is true when any sink wants the image. `close()` closes every sink, waits for all
 * of them, logs the ones that fail, and never rejects; it is idempotent.
 */
export function fanOutPublisher(pubs: readonly LivePublisher[], logger?: Logger): LivePublisher {
  const log = (logger ?? createLogger()).child({ stage: 'live-publisher' });
  const failures = pubs.map(() => ({ count: 0, lastLoggedAt: -Infinity }));
  let closing: Promise<void> | undefined;

  function report(i: number, method: string, err: unknown): void {
    const f = failures[i];
    if (f === undefined) return;
    f.count++;
    const now = Date.now();
    if (now - f.lastLoggedAt < FAILURE_LOG_INTERVAL_MS) return;
    log.error({ err, sink: pubs[i]?.name ?? `#${i}`, method, failures: f.count }, 'live sink failed; other sinks go on');
    f.lastLoggedAt = now;
    f.count = 0;
  }

  function each(method: string, call: (p: LivePublisher) => void): void {
    for (let i = 0; i < pubs.length; i++) {
      const p = pubs[i];
      if (p === undefined) continue;
      try {
        call(p);
      } catch (err) {
        report(i, method, err);
      }
    }
  }

  function any(method: string, ask: (p: LivePublisher) => boolean): boolean {
    let wanted = false;
    for (let i = 0; i < pubs.length && !wanted; i++) {
      const p = pubs[i];
      if (p === undefined) continue;
      try {
        wanted = ask(p);
      } catch (err) {
        report(i, method, err);
      }
    }
    return wanted;
  }

  return {
    name: 'fan-out',
    stats: (s) => each('stats', (p) => p.stats(s)),
    summary: (s) => each('summary', (p) => p.summary?.(s)),
    frame: (stream, meta, jpeg) => each('frame', (p) => p.wantsFrames(stream) && p.frame(stream, meta, jpeg)),
    mask: (stream, meta, png) => each('mask', (p) => p.wantsMasks(stream) && p.mask(stream, meta, png)),
    raw: (stream, meta, jpeg) => each('raw', (p) => (p.wantsRaw?.(stream) ?? false) && p.raw?.(stream, meta, jpeg)),
    wantsRaw: (stream) => any('wantsRaw', (p) => p.wantsRaw?.(stream) ?? false),
    wantsFrames: (stream) => any('wantsFrames', (p) => p.wantsFrames(stream)),
    wantsMasks: (stream) => any('wantsMasks', (p) => p.wantsMasks(stream)),
    classes: (stream, classes, headVersion) => each('classes', (p) => p.classes(stream, classes, headVersion)),
    event: (e) => each('event', (p) => p.event(e)),
    close() {
      closing ??= Promise.allSettled(
        pubs.map((p) => {
          try {
            return p.close();
          } catch (err) {
            return Promise.reject(err);
          }
        }),
      ).then((results) => {
        results.forEach((r, i) => {
          if (r.status === 'rejected') log.error({ err: r.reason, sink: pubs[i]?.name ?? `#${i}` }, 'live sink failed to close');
        });
      });
      return closing;
    },
  };
}

/**
 * What the pipeline's last stage hands every rendered frame to (engine/segment-pipeline.ts
 * `publishTo`): the live outputs (`liveSink` over the WebSocket hub, NATS and stats files), the
 * files of `process` (`fileOutputsSink`), the cluster worker's results (`clusterResultSink`).
 */
export interface Sink {
  /** Name used in logs and metrics. */
  readonly name: string;
  /**
   * One rendered frame. Live sinks queue or drop and return at once, and never throw; file and
   * result sinks resolve once the frame is written or stored and reject when it could not be.
   */
  write(r: RenderedFrame): void | Promise<void>;
  /** Flushes and releases; idempotent. */
  close(): Promise<void>;
}

/**
 * The pipeline-facing side of a live publisher: statistics of every frame, the label PNG and the
 * overlay JPEG when rendered (the JPEG is handed on when its encoding finishes; a failed one is
 * logged and the frame goes without). `close` closes the publisher.
 */
export function liveSink(pub: LivePublisher, logger?: Logger): Sink {
  const log = (logger ?? createLogger()).child({ stage: 'live-sink' });
  return {
    name: pub.name ?? 'live',
    write(r: RenderedFrame): void {
      const stream = r.seg.frame.streamId;
      pub.stats(r.stats);
      if (r.png) pub.mask(stream, r.meta, r.png);
      r.jpeg?.then(
        (img) => pub.frame(stream, img.meta, img.data),
        (err: unknown) => log.error({ err, stream }, 'overlay encoding failed'),
      );
      r.raw?.then(
        (img) => pub.raw?.(stream, img.meta, img.data),
        (err: unknown) => log.error({ err, stream }, 'picture encoding failed'),
      );
    },
    close: () => pub.close(),
  };
}

/** Writes each frame to every sink in order (each awaited); closes them all. */
export function sinksInOrder(name: string, sinks: readonly Sink[]): Sink {
  return {
    name,
    async write(r: RenderedFrame): Promise<void> {
      for (const s of sinks) await s.write(r);
    },
    async close(): Promise<void> {
      await Promise.all(sinks.map((s) => s.close()));
    },
  };
}
