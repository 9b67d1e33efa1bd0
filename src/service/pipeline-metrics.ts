import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ClassStat } from '../types.js';

/** Outcome of a training round, as `stegostream_train_rounds_total` counts it. */
export type TrainRoundResult = 'kept' | 'rejected';

/** The pipeline's Prometheus metrics (README "HTTP and metrics" lists them). */
export class PipelineMetrics {
  readonly framesIn: Counter<'stream'>;
  readonly framesOut: Counter<'stream'>;
  readonly framesDropped: Counter<'stream'>;
  readonly stageSeconds: Histogram<'stage'>;
  readonly frameAgeSeconds: Histogram<'stream'>;
  readonly batchSize: Histogram;
  readonly headVersion: Gauge;
  readonly fps: Gauge<'stream'>;
  readonly classFraction: Gauge<'stream' | 'class'>;
  readonly sourceUp: Gauge<'stream'>;
  readonly trainRounds: Counter<'result'>;
  readonly buildInfo: Gauge<'version' | 'backbone'>;
  /** Class names each stream's last frame had: a renamed class's old series is removed, not left stale. */
  private readonly classNames = new Map<string, ReadonlySet<string>>();
  readonly sourceStates: Counter<'stream' | 'state'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.framesIn = new Counter({
      name: 'stegostream_frames_in_total',
      help: 'Frames received from each source',
      labelNames: ['stream'],
      registers,
    });
    this.framesOut = new Counter({
      name: 'stegostream_frames_out_total',
      help: 'Frames segmented and published',
      labelNames: ['stream'],
      registers,
    });
    this.framesDropped = new Counter({
      name: 'stegostream_frames_dropped_total',
      help: 'Frames dropped by a full queue (latest frame wins)',
      labelNames: ['stream'],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: 'stegostream_stage_seconds',
      help: 'Time per batch in each stage',
      labelNames: ['stage'],
      buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    });
    this.frameAgeSeconds = new Histogram({
      name: 'stegostream_frame_age_seconds',
      help: 'Age of a frame when its results are published (capture to publish)',
      labelNames: ['stream'],
      buckets: [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'stegostream_batch_size',
      help: 'Frames per backbone call',
      buckets: [1, 2, 3, 4, 6, 8, 12, 16, 32],
      registers,
    });
    this.headVersion = new Gauge({ name: 'stegostream_head_version', help: 'Version of the segmentation head in use', registers });
    this.fps = new Gauge({
      name: 'stegostream_stream_fps',
      help: 'Frames per second published, per stream (last second)',
      labelNames: ['stream'],
      registers,
    });
    this.sourceStates = new Counter({
      name: 'stegostream_source_state_total',
      help: 'Source state changes (connecting, live, stalled, retrying, stopped), per stream',
      labelNames: ['stream', 'state'],
      registers,
    });
    this.classFraction = new Gauge({
      name: 'stegostream_class_fraction',
      help: "Share of the last published frame's pixels in each class (0-1), per stream; class = the class name",
      labelNames: ['stream', 'class'],
      registers,
    });
    this.sourceUp = new Gauge({
      name: 'stegostream_source_up',
      help: '1 while the source delivers frames (live), 0 while connecting, stalled, retrying or stopped',
      labelNames: ['stream'],
      registers,
    });
    this.trainRounds = new Counter({
      name: 'stegostream_train_rounds_total',
      help: 'Training rounds of the head: kept (swapped in) or rejected (the serving head stayed)',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['kept', 'rejected'] as const) this.trainRounds.inc({ result }, 0);
    this.buildInfo = new Gauge({
      name: 'stegostream_build_info',
      help: 'Always 1; the labels give the stegostream version and the backbone in use',
      labelNames: ['version', 'backbone'],
      registers,
    });
  }

  /**
   * Sets `stegostream_class_fraction` from one frame's class stats. Two classes with the same name
   * (possible after renames) add up into one series, since labels would otherwise collide.
   */
  setClassFractions(stream: string, classes: readonly Pick<ClassStat, 'name' | 'fraction'>[]): void {
    const shares = new Map<string, number>();
    for (const c of classes) shares.set(c.name, (shares.get(c.name) ?? 0) + c.fraction);
    for (const name of this.classNames.get(stream) ?? []) {
      if (!shares.has(name)) this.classFraction.remove({ stream, class: name });
    }
    for (const [name, fraction] of shares) this.classFraction.set({ stream, class: name }, fraction);
    this.classNames.set(stream, new Set(shares.keys()));
  }
}
