import { z } from 'zod';
import { DEVICES } from '../backbone/execution-device.js';
import { LEARNING_DEFAULTS } from '../pipeline/learning-options.js';

/**
 * The pipeline file (YAML), validated once: unknown keys are rejected everywhere, every default is
 * here with its unit, and the result is frozen. README "Pipeline YAML" documents each key.
 */

const streamName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 characters of A-Z a-z 0-9 _ - (it becomes a NATS subject token)');
const port = z.number().int().min(0).max(65535);
const positive = z.number().int().min(1);

const sceneSource = z.strictObject({
  use: z.literal('scene'),
  name: streamName,
  with: z
    .strictObject({
      /** easy, or hard (coral the colour of sand). */
      variant: z.enum(['easy', 'hard']).default('easy'),
      seed: z.number().int().default(7),
      /** Frames per second of the rendered scene. */
      fps: z.number().positive().max(120).default(15),
      /** Clip length in frames; with loop it repeats. */
      frames: positive.default(300),
      loop: z.boolean().default(true),
    })
    .default({ variant: 'easy', seed: 7, fps: 15, frames: 300, loop: true }),
});

const fileSource = z.strictObject({
  use: z.literal('file'),
  name: streamName,
  with: z.strictObject({
    path: z.string().min(1),
    /** Keep every n-th frame. */
    every: positive.default(1),
    /** true: emit at the video's frame rate like a live feed (latest frame wins); false: every frame, as fast as the model goes. */
    realtime: z.boolean().default(false),
    /** Start again at the end. */
    loop: z.boolean().default(false),
  }),
});

const liveSource = z.strictObject({
  use: z.literal('live'),
  name: streamName,
  with: z.strictObject({
    /** rtsp://, rtp://, udp://, srt://, rtmp://, http(s):// (HLS or MJPEG), /dev/videoN, or an .sdp file. */
    url: z.string().min(1),
    /** RTSP transport. */
    transport: z.enum(['tcp', 'udp']).default('tcp'),
    /** Inline SDP text (RTP as a BlueROV sends it). */
    sdp: z.string().optional(),
    /** http(s) inputs: auto, hls or mjpeg. */
    httpFormat: z.enum(['auto', 'hls', 'mjpeg']).default('auto'),
    /** Most frames per second kept from this stream. */
    fpsCap: z.number().positive().optional(),
    /** No frame for this long (ms) restarts the input. */
    stallTimeoutMs: positive.default(5000),
    /** Frames queued for the model; the oldest is dropped when full (latest frame wins). */
    queue: z.number().int().min(1).max(8).default(2),
    backoff: z
      .strictObject({ initialMs: positive.default(500), maxMs: positive.default(30000), factor: z.number().min(1).default(2), jitter: z.number().min(0).max(1).default(0.2) })
      .optional(),
    maxRetries: z.number().int().min(0).optional(),
  }),
});

export const sourceSchema = z.discriminatedUnion('use', [sceneSource, fileSource, liveSource]);

const wsSink = z.strictObject({
  use: z.literal('websocket'),
  with: z
    .strictObject({
      /** JPEG quality of the overlay frames (1-100). */
      jpegQuality: z.number().int().min(1).max(100).default(75),
      /** Longest side of the overlay frames sent, px (0: working size). */
      maxWidth: z.number().int().min(0).default(0),
      maxPayloadBytes: positive.default(64 * 1024),
      heartbeatIntervalMs: z.number().int().min(0).default(30000),
      maxClients: positive.default(256),
    })
    .default({ jpegQuality: 75, maxWidth: 0, maxPayloadBytes: 65536, heartbeatIntervalMs: 30000, maxClients: 256 }),
});

const natsSink = z.strictObject({
  use: z.literal('nats'),
  with: z.strictObject({
    servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    prefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/).default('stegostream'),
    frames: z.boolean().default(true),
    masks: z.boolean().default(false),
    /** Keep stats history in a JetStream stream. */
    jetstream: z
      .strictObject({
        stream: z.string().regex(/^[A-Za-z0-9_-]+$/).default('STEGOSTREAM_STATS'),
        maxAgeMs: positive.default(7 * 24 * 3600 * 1000),
        maxBytes: positive.default(1024 ** 3),
      })
      .optional(),
    /** Bytes of stats held while disconnected. */
    reconnectBufSize: positive.default(8 * 1024 * 1024),
  }),
});

const statsFileSink = z.strictObject({
  use: z.literal('stats-file'),
  with: z.strictObject({
    /** .csv or .jsonl; with several streams use {stream} in the name, e.g. out/{stream}.jsonl. */
    path: z.string().min(1),
  }),
});

export const sinkSchema = z.discriminatedUnion('use', [wsSink, natsSink, statsFileSink]);

export const pipelineSchema = z.strictObject({
  name: z.string().min(1).default('pipeline'),
  service: z
    .strictObject({
      /** Address the HTTP/WebSocket server binds to; 0.0.0.0 to serve other machines. */
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8080),
      /** Bearer token required on /ws and control (empty: none). */
      token: z.string().default(''),
      /** Graceful shutdown limit, ms, before a forced exit. */
      shutdownTimeoutMs: positive.default(10000),
    })
    .default({ host: '127.0.0.1', port: 8080, token: '', shutdownTimeoutMs: 10000 }),
  sources: z.array(sourceSchema).min(1),
  model: z
    .strictObject({
      backbone: z.string().min(1).default('builtin'),
      device: z.enum(DEVICES).default('auto'),
      threads: positive.optional(),
      /** Working width, px (multiple of the patch size). */
      width: positive.default(448),
      height: positive.optional(),
      batch: z
        .strictObject({ size: positive.max(64).default(4), maxDelayMs: z.number().int().min(0).default(20) })
        .default({ size: 4, maxDelayMs: 20 }),
      /** LOST main-object box per frame. */
      objects: z.boolean().default(false),
    })
    .default({ backbone: 'builtin', device: 'auto', width: 448, batch: { size: 4, maxDelayMs: 20 }, objects: false }),
  learning: z
    .strictObject({
      classes: positive.max(64).default(LEARNING_DEFAULTS.k),
      extraClusters: z.number().int().min(0).default(0),
      codeDim: positive.default(LEARNING_DEFAULTS.codeDim),
      /** A training round every N frames (all streams together). */
      trainEvery: positive.default(LEARNING_DEFAULTS.trainEvery),
      trainSteps: positive.default(LEARNING_DEFAULTS.trainSteps),
      bankFrames: positive.default(LEARNING_DEFAULTS.bankFrames),
      /** Frames seen before the first fit (output starts after them). */
      warmupFrames: positive.default(1),
      seed: z.number().int().default(LEARNING_DEFAULTS.seed),
      checkpoint: z.string().optional(),
      resume: z.boolean().default(false),
      head: z.string().optional(),
      freeze: z.boolean().default(false),
      names: z.array(z.string().min(1).max(64)).optional(),
    })
    .default({
      classes: LEARNING_DEFAULTS.k,
      extraClusters: 0,
      codeDim: LEARNING_DEFAULTS.codeDim,
      trainEvery: LEARNING_DEFAULTS.trainEvery,
      trainSteps: LEARNING_DEFAULTS.trainSteps,
      bankFrames: LEARNING_DEFAULTS.bankFrames,
      warmupFrames: 1,
      seed: LEARNING_DEFAULTS.seed,
      resume: false,
      freeze: false,
    }),
  sinks: z.array(sinkSchema).default([{ use: 'websocket', with: { jpegQuality: 75, maxWidth: 0, maxPayloadBytes: 65536, heartbeatIntervalMs: 30000, maxClients: 256 } }]),
});

export type PipelineConfig = z.infer<typeof pipelineSchema>;
export type SourceConfig = z.infer<typeof sourceSchema>;
export type SinkConfig = z.infer<typeof sinkSchema>;
