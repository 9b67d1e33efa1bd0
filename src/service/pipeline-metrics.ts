import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The pipeline's Prometheus metrics (README "Operations" lists them). */
export class PipelineMetrics {
  readonly framesIn: Counter<'stream'>;
  readonly framesOut: Counter<'stream'>;
  readonly framesDropped: Counter<'stream'>;
  readonly stageSeconds: Histogram<'stage'>;
  readonly frameAgeSeconds: Histogram<'stream'>;
  readonly batchSize: Histogram;
  readonly headVersion: Gauge;
  readonly fps: Gauge<'stream'>;
  readonly sourceStates: Counter<'stream' | 'state'>;
  readonly sourceLive: Gauge<'stream'>;

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
    this.sourceLive = new Gauge({
      name: 'stegostream_source_live',
      help: '1 while a source delivers frames, 0 while it is stalled, retrying or stopped',
      labelNames: ['stream'],
      registers,
    });
  }
}
