import { Observable } from 'rxjs';
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Frame } from '../types.js';
import { BadOptionError, InputNotFoundError } from '../errors.js';
import { createLogger } from '../internal/logger.js';
import { resolveBackoff, type BackoffOptions } from './live-backoff.js';
import { resolveLiveInput, urlSecret, type HttpFormat } from './live-url.js';
import { LiveSession, type LiveSettings, type SourceStateEvent } from './live-session.js';
import { KeepEvery, keepFilter } from './keep-every.js';
import { SHOWINFO_FILTER } from '../internal/raw-frame-reader.js';

export { LISTEN_RESTART_MAX_MS, type SourceStateEvent } from './live-session.js';

/** No frame for this long (ms), counted from each start too, and ffmpeg is restarted. */
export const DEFAULT_STALL_TIMEOUT_MS = 5000;

export interface LiveSourceOptions {
  /** rtsp://, rtp://host:port, udp:// (MPEG-TS), srt://, rtmp(s)://, http(s):// (HLS or MJPEG), /dev/videoN, or an .sdp file (see live-url.ts). */
  readonly url: string;
  readonly streamId: string;
  /** Working resolution; ffmpeg scales to it. */
  readonly width: number;
  readonly height: number;
  /** RTSP only: RTP inside the RTSP TCP connection (default 'tcp') or over UDP. */
  readonly transport?: 'tcp' | 'udp';
  /** With an rtp:// URL: the sender's SDP text (default: one for H.264 with payload type 96). */
  readonly sdp?: string;
  /** http(s) only: default 'auto' (.m3u8 is HLS; "mjpeg"/"mjpg" in the URL is MJPEG). */
  readonly httpFormat?: HttpFormat;
  /** At most this many frames a second on average, judged by arrival time; extra frames are dropped. */
  readonly fpsCap?: number;
  /** Default DEFAULT_STALL_TIMEOUT_MS (5000 ms). */
  readonly stallTimeoutMs?: number;
  /** Reconnect delays; defaults in DEFAULT_BACKOFF (500 ms, x2, up to 30 s, +-20 %, reset after 10 s live). */
  readonly backoff?: Partial<BackoffOptions>;
  /** Consecutive failed connections retried before the source errors; default Infinity. */
  readonly maxRetries?: number;
  /** Called synchronously on each state change; exceptions are logged and ignored. */
  readonly onState?: (e: SourceStateEvent) => void;
  /** Extra ffmpeg input options, placed after the source's own (so they override them). */
  readonly inputOptions?: readonly string[];
  /** One decoded frame in this many reaches JavaScript; the rest are dropped inside ffmpeg (keep-every.ts). Changes apply at once. */
  readonly keepEvery?: KeepEvery;
  readonly logger?: Logger;
}

/**
 * Decodes a live feed into rgb24 frames at the working resolution, for as long as it is
 * subscribed, reconnecting whenever the feed drops.
 *
 * Options are checked at call time (`BadOptionError`; an unknown URL scheme lists the supported
 * ones). On subscribe ffmpeg starts (`connecting`); the first frame of each connection reports
 * `live`. ffmpeg's stdout is read as fast as it comes (a live feed is never paused: dropping is the
 * downstream queue's job); `fpsCap` drops frames above a rate before they are emitted. When ffmpeg
 * exits (error or end of stream), or no frame arrives for `stallTimeoutMs` (`stalled`, ffmpeg is
 * killed), the source waits an exponential backoff with jitter (`retrying`, with attempt and
 * delayMs) and starts again; a connection that dies at once still waits. After `resetAfterMs` of
 * frames the backoff starts over. Listening inputs (UDP, RTP, .sdp, SRT listener, RTMP/RTSP in
 * listen mode: `LiveInput.listening`) differ: a stall is reported (`stalled`, then `live` at the
 * next frame) but ffmpeg keeps running, so the port stays open and the decoder picks up at the
 * returning feed's first keyframe; if ffmpeg dies it is started again at once (a receiver that
 * keeps dying waits at most LISTEN_RESTART_MAX_MS). An RTP receiver (rtp://, .sdp) is the exception
 * that proves it: ffmpeg's RTP demuxer would drop a restarted sender's new sequence numbers as
 * old packets forever, so at a stall it is replaced at once by a fresh receiver (the port is
 * closed for the few ms in between), which then listens for as long as it takes. `seq` keeps counting across reconnects and `pts` (seconds from the
 * first frame) stays increasing: each connection continues the timeline by the wall-clock gap.
 *
 * Errors: after `maxRetries` consecutive failures, `stopped` and a `SourceError` naming the URL
 * (password hidden), the last failure and ffmpeg's last stderr lines. Unsubscribing stops ffmpeg
 * (SIGKILL; for RTSP while frames flow, SIGTERM first so the camera gets a TEARDOWN) and every
 * timer, removes any temp SDP file and reports `stopped`; safe to do twice.
 *
 * @example
 * liveSource({ url: 'rtp://0.0.0.0:5600', streamId: 'rov', width: 448, height: 252, onState: publish })
 */
export function liveSource(options: LiveSourceOptions): Observable<Frame> {
  const settings = liveSettings(options);
  return new Observable<Frame>((subscriber) => {
    const log = (options.logger ?? createLogger()).child({ stage: 'live-source', stream: settings.streamId });
    const session = new LiveSession({ ...settings, log }, subscriber);
    session.start();
    return () => session.shutdown('unsubscribed');
  });
}

/** Checks `liveSource`'s options (`BadOptionError` naming the option) and resolves the input. */
function liveSettings(options: LiveSourceOptions): Omit<LiveSettings, 'log'> {
  if (typeof options !== 'object' || options === null) throw new BadOptionError('options', 'an object', options);
  const { streamId, width, height, fpsCap } = options;
  if (typeof streamId !== 'string' || streamId === '') throw new BadOptionError('streamId', 'a non-empty string', streamId);
  if (!Number.isInteger(width) || width < 1) throw new BadOptionError('width', 'positive integer', width);
  if (!Number.isInteger(height) || height < 1) throw new BadOptionError('height', 'positive integer', height);
  if (fpsCap !== undefined && !(typeof fpsCap === 'number' && Number.isFinite(fpsCap) && fpsCap > 0)) {
    throw new BadOptionError('fpsCap', 'a positive number of frames per second', fpsCap);
  }
  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  if (!(typeof stallTimeoutMs === 'number' && Number.isFinite(stallTimeoutMs) && stallTimeoutMs > 0)) {
    throw new BadOptionError('stallTimeoutMs', 'a positive number of ms', stallTimeoutMs);
  }
  const maxRetries = options.maxRetries ?? Infinity;
  if (!(maxRetries === Infinity || (Number.isInteger(maxRetries) && maxRetries >= 0))) {
    throw new BadOptionError('maxRetries', 'a non-negative integer or Infinity', maxRetries);
  }
  if (options.onState !== undefined && typeof options.onState !== 'function') {
    throw new BadOptionError('onState', 'a function', options.onState);
  }
  const backoff = resolveBackoff(options.backoff);
  const source = resolveLiveInput(options);
  if (source.kind === 'sdp-file') {
    try {
      statSync(source.input);
    } catch {
      throw new InputNotFoundError(source.input, 'SDP file');
    }
  }
  const secret = urlSecret(options.url);
  // The keep filter first (a dropped frame is not scaled); showinfo gives each kept frame's pts;
  // passthrough keeps one output frame per kept frame.
  const keepEvery = options.keepEvery ?? new KeepEvery();
  const outputOptions = (k: number): readonly string[] => [
    '-map',
    '0:v:0',
    '-vf',
    `${keepFilter(k)},scale=${width}:${height}:flags=area,${SHOWINFO_FILTER}`,
    '-fps_mode',
    'passthrough',
    '-pix_fmt',
    'rgb24',
    '-an',
    '-sn',
    '-dn',
  ];
  return {
    streamId,
    width,
    height,
    stallTimeoutMs,
    maxRetries,
    backoff,
    source,
    relisten: source.kind === 'rtp' || source.kind === 'sdp-file',
    scrub: (text: string): string => (secret === undefined ? text : text.split(secret).join('***')),
    minIntervalMs: fpsCap === undefined ? 0 : 1000 / fpsCap,
    outputOptions,
    keepEvery,
    ...(options.onState === undefined ? {} : { onState: options.onState }),
  };
}
