/**
 * Records that flow between stages. All are immutable: a stage that needs to change one makes a
 * new record. Units are in the field names or comments.
 */

/** One decoded picture from a source, at the working resolution (DESIGN.md "Contracts"). */
export interface Frame {
  readonly streamId: string;
  /** 0-based index of the frame among those the source emitted. */
  readonly seq: number;
  /** Presentation time in seconds from the start of the stream. */
  readonly pts: number;
  readonly width: number;
  readonly height: number;
  /** HWC uint8 RGB, width * height * 3 bytes. */
  readonly rgb: Buffer;
  /** Wall-clock time the frame left the decoder, ms since the epoch. */
  readonly capturedAt: number;
  /** For image-folder sources: the file the frame came from (masks are named after it). */
  readonly sourceName?: string;
  /**
   * When the picture was taken, ms since the epoch, when known: a recording's creation time (or
   * `--start-time`) plus pts, an image's EXIF time, the arrival time of a live frame.
   */
  readonly time?: number;
}

/** Backbone output for one frame. Arrays are views into the batch output; do not mutate. */
export interface Embedding {
  readonly frame: Frame;
  /** Patch grid size: gridH * gridW = N. */
  readonly gridH: number;
  readonly gridW: number;
  /** Embedding dimension C. */
  readonly dim: number;
  /** [N, C] row-major. */
  readonly patchTokens: Float32Array;
  /** [C]. */
  readonly clsToken: Float32Array;
  /** [N, C] or undefined when the model has no `keys` output. */
  readonly keys?: Float32Array;
}

/** One class as the segmentation head currently knows it. */
export interface ClassInfo {
  readonly id: number;
  readonly name: string;
  /** [r, g, b], 0-255. */
  readonly color: readonly [number, number, number];
}

/** An object box from LOST, in working-resolution pixels. */
export interface ObjectBox {
  /** [x0, y0, x1, y1], x1/y1 exclusive. */
  readonly box: readonly [number, number, number, number];
  readonly score: number;
}

/** Segmentation of one frame at the working resolution. */
export interface Segmentation {
  readonly frame: Frame;
  /** width * height class ids (uint8). */
  readonly labels: Uint8Array;
  readonly headVersion: number;
  readonly classes: readonly ClassInfo[];
  readonly objects?: readonly ObjectBox[];
  /** Kept so that online learning can sample features from segmented frames. */
  readonly embedding?: Embedding;
}

export interface ClassStat {
  readonly id: number;
  readonly name: string;
  readonly color: readonly [number, number, number];
  readonly pixels: number;
  readonly fraction: number;
}

/** Per-frame class statistics (DESIGN.md "Class statistics"). */
export interface FrameStats {
  readonly stream: string;
  readonly seq: number;
  readonly pts: number;
  readonly capturedAt: number;
  readonly headVersion: number;
  /** When the picture was taken (Frame.time), UTC ISO 8601 with milliseconds. */
  readonly time?: string;
  /** Image folders: the image's file name. */
  readonly file?: string;
  readonly classes: readonly ClassStat[];
  readonly objects?: readonly ObjectBox[];
}

/** How a buffering stage behaves when full (STYLE.md: backpressure by name). */
/**
 * A call that lets the next batch start before its results are ready: `taken` settles once the
 * batch has left its first stage (the backbone), `results` when it is done. `results` must reject
 * whenever `taken` does.
 */
export interface StagedCall<R> {
  readonly taken: Promise<unknown>;
  readonly results: Promise<R[]>;
}

export type OverflowPolicy = 'wait' | 'drop-oldest' | 'drop-latest';

/** Counters every buffering stage exposes. */
export interface StageCounters {
  received: number;
  processed: number;
  dropped: number;
}

// Service events and states: what sources report and sinks carry (README "WebSocket protocol").

/** What a binary image message describes; the same for overlay JPEGs and label-map PNGs. */
export interface ImageMeta {
  readonly seq: number;
  /** Presentation time, seconds from the start of the stream. */
  readonly pts: number;
  readonly headVersion: number;
  readonly width: number;
  readonly height: number;
}

export type SourceState = 'connecting' | 'live' | 'stalled' | 'retrying' | 'stopped';
export type PipelineState = 'starting' | 'running' | 'draining' | 'stopped' | 'failed';
export type LearningState = 'running' | 'paused' | 'frozen';

/** Service events, keyed on `type`. Events with a `stream` concern that stream only. */
export type ServiceEvent =
  | {
      readonly type: 'source-state';
      readonly stream: string;
      readonly state: SourceState;
      readonly detail?: string;
      /** Reconnect attempt number (1-based) when `state` is `retrying`. */
      readonly attempt?: number;
      /** Wait before the next attempt, ms, when `state` is `retrying`. */
      readonly delayMs?: number;
    }
  | {
      readonly type: 'head-updated';
      readonly version: number;
      /** Why the head changed: a training round, a checkpoint load, a user rename. */
      readonly reason?: string;
      readonly loss?: number;
    }
  | {
      readonly type: 'pipeline';
      readonly state?: PipelineState;
      readonly learning?: LearningState;
      readonly detail?: string;
    }
  | {
      /** Per-stream counters of the pipeline's buffering stages, sent now and then (e.g. 1 Hz). */
      readonly type: 'counters';
      readonly stream: string;
      readonly counters: Readonly<StageCounters>;
      /** Frames segmented per second, measured by the pipeline. */
      readonly fps?: number;
    };

/** The stream an event concerns, or undefined for service-wide events. */
export function eventStream(e: ServiceEvent): string | undefined {
  return e.type === 'source-state' || e.type === 'counters' ? e.stream : undefined;
}

/** An encoded image and the header that describes it (its size is the size sent). */
export interface EncodedImage {
  readonly data: Buffer;
  readonly meta: ImageMeta;
}

/** One segmented frame with everything the sinks send: made once, whatever the sinks. */
export interface RenderedFrame {
  readonly seg: Segmentation;
  readonly stats: FrameStats;
  /** Header of the frame's images at the working size. */
  readonly meta: ImageMeta;
  /** Indexed label-map PNG (pixel value = class id), when asked for. */
  readonly png?: Buffer;
  /**
   * Overlay JPEG (class colours over the picture), when asked for. Encoded by libvips off the main
   * thread, so the pipeline does not wait for it; rejects if the encoding fails.
   */
  readonly jpeg?: Promise<EncodedImage>;
  /** The picture without overlay, JPEG, when asked for (viewers that blend the mask themselves). */
  readonly raw?: Promise<EncodedImage>;
}

/** Progress of a run as the CLI shows it (a bar on a terminal, plain lines otherwise): runners only tick it. */
export interface ProgressMeter {
  tick(n?: number): void;
  stop(): void;
}

/** Makes a progress meter for a phase (`label`) of `total` frames (undefined: unknown). */
export type ProgressFactory = (label: string, total: number | undefined) => ProgressMeter;

/** A class's share over a summary window. */
export interface ClassWindowStat {
  readonly id: number;
  readonly name: string;
  readonly color: readonly [number, number, number];
  /** Mean, min and max of the class's fraction of each frame's pixels over the window. */
  readonly mean: number;
  readonly min: number;
  readonly max: number;
}

/** A stream's class statistics summarised over a wall-clock window (README "Summaries"). */
export interface WindowSummary {
  readonly stream: string;
  readonly window: '1s' | '10s' | '60s';
  /** Window start and end, UTC ISO 8601 (end exclusive). */
  readonly start: string;
  readonly end: string;
  readonly frames: number;
  /** seq of the window's first and last frame (to join with the per-frame stats). */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Head version of the window's last frame. */
  readonly headVersion: number;
  readonly classes: readonly ClassWindowStat[];
}
