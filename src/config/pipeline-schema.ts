import { z } from 'zod';
import { DEVICES } from '../backbone/execution-device.js';
import { LEARNING_DEFAULTS } from '../learning/learning-options.js';
import { DEFAULT_REFINE } from '../backbone/refine-options.js';
import { BadOptionError } from '../errors.js';
import { resolveLiveInput } from '../sources/live-url.js';

/**
 * The pipeline file (YAML), validated once: unknown keys are rejected everywhere, every default is
 * here with its unit, and the result is frozen. README "Pipeline YAML" documents each key.
 * Messages say what was expected; load-pipeline.ts adds the path and the value received
 * (`service.port: expected integer 0-65535, received "80a"`).
 */

/** An integer in [min, max]: one message for every way to miss it (type, fraction, range). */
function int(min: number, max?: number): z.ZodNumber {
  const error = max === undefined ? `expected integer >= ${min}` : `expected integer ${min}-${max}`;
  const s = z.number({ error }).int({ error }).min(min, { error });
  return max === undefined ? s : s.max(max, { error });
}

/** A number > 0 (and <= max). */
function positiveNumber(max?: number): z.ZodNumber {
  const error = max === undefined ? 'expected number > 0' : `expected number > 0 and <= ${max}`;
  const s = z.number({ error }).positive({ error });
  return max === undefined ? s : s.max(max, { error });
}

const text = (what = 'a non-empty string'): z.ZodString => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` });

const streamName = z
  .string({ error: 'expected a stream name' })
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 characters of A-Z a-z 0-9 _ - (it becomes a NATS subject token)');
const port = int(0, 65535);
const positive = int(1);

const sceneSource = z.strictObject({
  use: z.literal('scene'),
  name: streamName,
  with: z
    .strictObject({
      /** easy, hard (coral the colour of sand) or lit (the easy scene under a deep-sea ROV's lamps alone). */
      variant: z.enum(['easy', 'hard', 'lit']).default('easy'),
      seed: int(0).default(7),
      /** Frames per second of the rendered scene. */
      fps: positiveNumber(120).default(15),
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
    /** Video file; relative paths are from the working directory of the service. */
    path: text('a video file path'),
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
  with: z
    .strictObject({
      /** rtsp://, rtp://, udp://, srt://, rtmp://, http(s):// (HLS or MJPEG), /dev/videoN, or an .sdp file. */
      url: text('a stream URL'),
      /** rtsp:// only: RTP inside the RTSP TCP connection (tcp, the default) or over UDP. */
      transport: z.enum(['tcp', 'udp']).optional(),
      /** Inline SDP text (RTP as a BlueROV sends it). */
      sdp: z.string({ error: 'expected SDP text' }).optional(),
      /** http(s):// only: auto (the default: .m3u8 is HLS, "mjpeg" in the URL is MJPEG), hls or mjpeg. */
      httpFormat: z.enum(['auto', 'hls', 'mjpeg']).optional(),
      /** Most frames per second kept from this stream. */
      fpsCap: positiveNumber().optional(),
      /** No frame for this long (ms) restarts the input. */
      stallTimeoutMs: positive.default(5000),
      /** Frames queued for the model; the oldest is dropped when full (latest frame wins). */
      queue: int(1, 8).default(2),
      /** Reconnect delays: first wait (ms), longest wait (ms), growth factor, +- jitter fraction, reset (ms). */
      backoff: z
        .strictObject({
          initialMs: positive.default(500),
          maxMs: positive.default(30000),
          factor: z.number({ error: 'expected number >= 1' }).min(1, { error: 'expected number >= 1' }).default(2),
          jitter: z
            .number({ error: 'expected number 0-1' })
            .min(0, { error: 'expected number 0-1' })
            .max(1, { error: 'expected number 0-1' })
            .default(0.2),
          /** After this long live (ms), the next failure waits initialMs again. */
          resetAfterMs: positive.default(10000),
        })
        .optional(),
      /** Consecutive failed connections before the stream stops (default: retry forever). */
      maxRetries: int(0).optional(),
    })
    // URL, transport, sdp and httpFormat must fit together; checked here so a bad feed fails at load, with its path.
    .superRefine((w, ctx) => {
      try {
        resolveLiveInput({
          url: w.url,
          ...(w.transport !== undefined ? { transport: w.transport } : {}),
          ...(w.sdp !== undefined ? { sdp: w.sdp } : {}),
          ...(w.httpFormat !== undefined ? { httpFormat: w.httpFormat } : {}),
        });
      } catch (err) {
        if (!(err instanceof BadOptionError)) throw err;
        const { option, expected } = err.details as { option: string; expected: string };
        ctx.addIssue({ code: 'custom', path: [option], message: `expected ${expected}`, input: w[option as keyof typeof w] });
      }
    }),
});

export const sourceSchema = z.discriminatedUnion('use', [sceneSource, fileSource, liveSource]);

const wsSink = z.strictObject({
  use: z.literal('websocket'),
  with: z
    .strictObject({
      /** JPEG quality of the overlay frames (1-100). */
      jpegQuality: int(1, 100).default(75),
      /** Width of the overlay frames sent, px: wider frames are scaled down (0: the working size). */
      maxWidth: int(0).default(0),
      /** Largest message a client may send, bytes. */
      maxPayloadBytes: positive.default(64 * 1024),
      /** Ping period, ms (0: none); a client that misses a pong is cut off. */
      heartbeatIntervalMs: int(0).default(30000),
      /** Connections beyond this many are refused (close code 1013). */
      maxClients: positive.default(256),
    })
    .default({ jpegQuality: 75, maxWidth: 0, maxPayloadBytes: 65536, heartbeatIntervalMs: 30000, maxClients: 256 }),
});

/**
 * Credentials and TLS of a NATS connection (src/internal/nats-security.ts reads them). Secrets go
 * in files (`*File`) or come from the environment (`pass: ${NATS_PASS}`), not in the YAML itself.
 */
export const natsSecurityKeys = {
  /** User name (with pass or passFile). */
  user: text('a user name').optional(),
  /** Password; prefer passFile or `${NATS_PASS}`. */
  pass: text('a password').optional(),
  /** File holding the password. */
  passFile: text('a file path').optional(),
  /** Token; prefer tokenFile or `${NATS_TOKEN}`. */
  token: text('a token').optional(),
  /** File holding the token. */
  tokenFile: text('a file path').optional(),
  /** File holding a user NKey seed (SU...). */
  nkeySeedFile: text('a file path').optional(),
  /** A .creds file (user JWT + seed) as NATS accounts issue them. */
  credsFile: text('a file path to a .creds file').optional(),
  /** TLS to the server (tls:// URLs turn it on with the system CAs). */
  tls: z
    .strictObject({
      /** CA that signed the server's certificate. */
      caFile: text('a file path').optional(),
      /** Client certificate (mutual TLS). */
      certFile: text('a file path').optional(),
      /** Key of certFile. */
      keyFile: text('a file path').optional(),
      /** Name the server's certificate must carry, if not the URL's host. */
      serverName: text('a host name').optional(),
    })
    .optional(),
};

const natsSink = z.strictObject({
  use: z.literal('nats'),
  with: z.strictObject({
    /** nats://host:port, or a list of them (a cluster). */
    servers: z.union([text('a NATS URL'), z.array(text('a NATS URL')).min(1)], {
      error: 'expected a NATS URL like "nats://127.0.0.1:4222" or a list of them',
    }),
    /** First subject tokens: <prefix>.<stream>.stats and so on. */
    prefix: z
      .string({ error: 'expected a subject prefix' })
      .regex(
        /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/,
        'expected tokens of A-Z a-z 0-9 _ - joined by dots, like "stegostream" or "site1.stego"',
      )
      .default('stegostream'),
    /** Publish overlay JPEGs on <prefix>.<stream>.frames. */
    frames: z.boolean().default(true),
    /** Publish label-map PNGs on <prefix>.<stream>.masks (costs a PNG encode per frame). */
    masks: z.boolean().default(false),
    /** Keep stats history in a JetStream stream. */
    jetstream: z
      .strictObject({
        /** JetStream stream name. */
        stream: z
          .string({ error: 'expected a stream name' })
          .regex(/^[A-Za-z0-9_-]+$/, 'expected characters of A-Z a-z 0-9 _ -')
          .default('STEGOSTREAM_STATS'),
        /** Stats older than this are discarded, ms (default 7 days). */
        maxAgeMs: positive.default(7 * 24 * 3600 * 1000),
        /** Oldest stats are discarded beyond this size, bytes (default 1 GiB). */
        maxBytes: positive.default(1024 ** 3),
      })
      .optional(),
    /** Bytes of stats held while disconnected. */
    reconnectBufSize: positive.default(8 * 1024 * 1024),
    ...natsSecurityKeys,
  }),
});

const statsFileSink = z.strictObject({
  use: z.literal('stats-file'),
  with: z.strictObject({
    /** .csv or .jsonl; with several streams use {stream} in the name, e.g. out/{stream}.jsonl. */
    path: text('a file path ending in .csv or .jsonl').regex(/\.(csv|jsonl|ndjson)$/i, 'expected a file path ending in .csv or .jsonl'),
  }),
});

export const sinkSchema = z.discriminatedUnion('use', [wsSink, natsSink, statsFileSink]);

export const pipelineSchema = z
  .strictObject({
    /** Shown in logs, metrics and the NATS client name. */
    name: text().default('pipeline'),
    service: z
      .strictObject({
        /** Address the HTTP/WebSocket server binds to; 0.0.0.0 to serve other machines. */
        host: text('a host name or address').default('127.0.0.1'),
        port: port.default(8080),
        /** Bearer token required on /ws and control (empty: none); `${STEGO_TOKEN}` keeps it out of the file. */
        token: z.string({ error: 'expected a string' }).default(''),
        /** A token that may watch but not rename, pause, resume or snapshot (needs token). */
        readOnlyToken: z.string({ error: 'expected a string' }).optional(),
        /** HTTPS and WSS instead of HTTP and WS. */
        tls: z
          .strictObject({
            /** PEM certificate (with its chain). */
            certFile: text('a file path'),
            /** PEM private key of certFile. */
            keyFile: text('a file path'),
            /** PEM CA: when given, clients must present a certificate it signed. */
            caFile: text('a file path').optional(),
          })
          .optional(),
        /** Graceful shutdown limit, ms, before a forced exit. */
        shutdownTimeoutMs: positive.default(10000),
      })
      .default({ host: '127.0.0.1', port: 8080, token: '', shutdownTimeoutMs: 10000 }),
    /** The feeds; each is one stream, named in every output. */
    sources: z.array(sourceSchema, { error: 'expected a list of sources' }).min(1, { error: 'expected at least one source' }),
    model: z
      .strictObject({
        /** builtin (no download), a model name (dino-vits8, hub:OWNER/REPO; pulled by serve), or an ONNX file (README "Models"). */
        backbone: text('"builtin", a model name or an ONNX model path').default('builtin'),
        /** Execution provider; auto picks the best available. */
        device: z.enum(DEVICES).default('auto'),
        /** ONNX Runtime intra-op threads of the backbone and of the segmentation (default: all cores; half for the segmentation). */
        threads: positive.optional(),
        /** Working width, px (multiple of the patch size). */
        width: positive.default(448),
        /** Working height, px (default: 16:9 of the width, or the model's fixed input size). */
        height: positive.optional(),
        /** Frames of all streams per backbone call, and the longest wait for a batch to fill, ms. */
        batch: z.strictObject({ size: int(1, 64).default(4), maxDelayMs: int(0).default(20) }).default({ size: 4, maxDelayMs: 20 }),
        /** LOST main-object box per frame. */
        objects: z.boolean().default(false),
        /** Guided filter moving class boundaries onto colour edges: radius px (0 = off), eps. */
        refine: z
          .strictObject({ radius: int(0).default(DEFAULT_REFINE.radius), eps: positiveNumber().default(DEFAULT_REFINE.eps) })
          .default(DEFAULT_REFINE),
      })
      .default({
        backbone: 'builtin',
        device: 'auto',
        width: 448,
        batch: { size: 4, maxDelayMs: 20 },
        objects: false,
        refine: DEFAULT_REFINE,
      }),
    learning: z
      .strictObject({
        /** Number of classes K the head learns, or "auto": as many as the features hold, at most maxClasses. */
        classes: z.union([int(1, 64), z.literal('auto')], { error: 'expected integer 1-64 or "auto"' }).default(LEARNING_DEFAULTS.k),
        /** With classes "auto": most classes. */
        maxClasses: int(1, 64).default(LEARNING_DEFAULTS.maxClasses),
        /** Extra centroids beyond K (over-clustering). */
        extraClusters: int(0).default(0),
        /** Code dimension D of the head. */
        codeDim: positive.default(LEARNING_DEFAULTS.codeDim),
        /** A training round every N frames (all streams together). */
        trainEvery: positive.default(LEARNING_DEFAULTS.trainEvery),
        /** Adam steps per training round. */
        trainSteps: positive.default(LEARNING_DEFAULTS.trainSteps),
        /** Learning-rate decay T, Adam steps: step t runs at lr·(T/(T+t))² over the head's life; 0 = constant. */
        lrDecaySteps: int(0).default(LEARNING_DEFAULTS.lrDecaySteps),
        /** Keep a trained head only while its classes fit the features within this times k-means' dispersion; 0 = no check. */
        maxDispersionRatio: z
          .number({ error: 'expected a number >= 1, or 0 for no check' })
          .refine((v) => v === 0 || v >= 1, { error: 'expected a number >= 1, or 0 for no check' })
          .default(LEARNING_DEFAULTS.maxDispersionRatio),
        /** Share of the machine's CPU a training round beside inference takes while it is busy (idle cores are taken too), in (0, 1]; 1 = no limit. */
        cpuShare: z
          .number({ error: 'expected a number in (0, 1] (1 = no limit)' })
          .refine((v) => v > 0 && v <= 1, { error: 'expected a number in (0, 1] (1 = no limit)' })
          .default(LEARNING_DEFAULTS.cpuShare),
        /** Frames the feature bank keeps (memory cap). */
        bankFrames: positive.default(LEARNING_DEFAULTS.bankFrames),
        /** Frames seen before the first fit (output starts after them). */
        warmupFrames: positive.default(1),
        seed: int(0).default(LEARNING_DEFAULTS.seed),
        /** Head checkpoint file, written after each round and on shutdown (atomically). */
        checkpoint: text('a file path').optional(),
        /** Start from the checkpoint file when it exists (the first run learns a new head and writes it). */
        resume: z.boolean().default(false),
        /** Start from this head file instead (e.g. a snapshot). */
        head: text('a file path').optional(),
        /** Never update the head (reproducible output; needs head or resume). */
        freeze: z.boolean().default(false),
        /** Names for class ids 0, 1, ... (rename live in the viewer or over control). */
        names: z
          .array(
            z
              .string({ error: 'expected a class name' })
              .min(1, { error: 'expected a class name of 1-64 characters' })
              .max(64, { error: 'expected a class name of 1-64 characters' }),
          )
          .optional(),
      })
      .superRefine((l, ctx) => {
        const k = l.classes === 'auto' ? l.maxClasses : l.classes + l.extraClusters;
        if (l.classes === 'auto' && l.extraClusters > 0) {
          ctx.addIssue({
            code: 'custom',
            path: ['extraClusters'],
            input: l.extraClusters,
            message: 'expected 0 with classes "auto" (it chooses the count itself)',
          });
        }
        if (l.names !== undefined && l.names.length > k) {
          ctx.addIssue({
            code: 'custom',
            path: ['names'],
            input: l.names,
            message: `expected at most ${k} names (${l.classes === 'auto' ? 'learning.maxClasses with classes "auto"' : 'learning.classes + learning.extraClusters'})`,
          });
        }
        if (l.resume && l.checkpoint === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['resume'],
            input: l.resume,
            message: 'expected learning.checkpoint to be set too (the file to resume from)',
          });
        }
      })
      .default({
        classes: LEARNING_DEFAULTS.k,
        maxClasses: LEARNING_DEFAULTS.maxClasses,
        extraClusters: 0,
        codeDim: LEARNING_DEFAULTS.codeDim,
        trainEvery: LEARNING_DEFAULTS.trainEvery,
        trainSteps: LEARNING_DEFAULTS.trainSteps,
        lrDecaySteps: LEARNING_DEFAULTS.lrDecaySteps,
        maxDispersionRatio: LEARNING_DEFAULTS.maxDispersionRatio,
        cpuShare: LEARNING_DEFAULTS.cpuShare,
        bankFrames: LEARNING_DEFAULTS.bankFrames,
        warmupFrames: 1,
        seed: LEARNING_DEFAULTS.seed,
        resume: false,
        freeze: false,
      }),
    /** Where results go (default: the WebSocket hub of the service). */
    sinks: z
      .array(sinkSchema, { error: 'expected a list of sinks' })
      .default([
        { use: 'websocket', with: { jpegQuality: 75, maxWidth: 0, maxPayloadBytes: 65536, heartbeatIntervalMs: 30000, maxClients: 256 } },
      ]),
  })
  .superRefine((p, ctx) => {
    const first = new Map<string, number>();
    p.sources.forEach((src, i) => {
      const j = first.get(src.name);
      if (j === undefined) first.set(src.name, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['sources', i, 'name'],
          input: src.name,
          message: `expected a name not used before (sources[${j}] is named so too; names key every output)`,
        });
    });
    p.sinks.forEach((sink, i) => {
      if (sink.use === 'websocket' && p.sinks.findIndex((x) => x.use === 'websocket') < i) {
        ctx.addIssue({
          code: 'custom',
          path: ['sinks', i, 'use'],
          input: sink.use,
          message: 'expected one websocket sink at most (the service has one /ws endpoint)',
        });
      }
      if (sink.use === 'stats-file' && p.sources.length > 1 && /\.csv$/i.test(sink.with.path) && !sink.with.path.includes('{stream}')) {
        ctx.addIssue({
          code: 'custom',
          path: ['sinks', i, 'with', 'path'],
          input: sink.with.path,
          message:
            "expected {stream} in a .csv path when there are several sources (CSV columns are one stream's classes), or a .jsonl path",
        });
      }
    });
  });

export type PipelineConfig = z.infer<typeof pipelineSchema>;
export type SourceConfig = z.infer<typeof sourceSchema>;
export type SinkConfig = z.infer<typeof sinkSchema>;
