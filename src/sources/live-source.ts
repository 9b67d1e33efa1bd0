import { Observable } from 'rxjs';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Frame } from '../types.js';
import type { ServiceEvent } from '../types.js';
import { BadOptionError, InputNotFoundError, SourceError } from '../errors.js';
import { runFfmpeg, type FfmpegRun } from '../internal/ffmpeg-process.js';
import { createLogger } from '../internal/logger.js';
import { parseShowinfoPts, readRawFrames } from '../internal/raw-frame-reader.js';
import { backoffDelay, resolveBackoff, type BackoffOptions } from './live-backoff.js';
import { resolveLiveInput, urlSecret, type HttpFormat } from './live-url.js';

/** The source's state changes, in the shape the service publishes them. */
export type SourceStateEvent = Extract<ServiceEvent, { readonly type: 'source-state' }>;

/** No frame for this long (ms), counted from each start too, and ffmpeg is restarted. */
export const DEFAULT_STALL_TIMEOUT_MS = 5000;
/** A listening input whose ffmpeg died again soon waits at most this long before listening again. */
export const LISTEN_RESTART_MAX_MS = 1000;
/** pts step (s) across a reconnect or a clock jump back, when frames come faster than 1 ms. */
const MIN_PTS_STEP_S = 0.001;

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
  const { displayUrl, listening } = source;
  // ffmpeg's RTP demuxer drops a restarted sender's packets as "old" (its sequence numbers start
  // anew) for as long as it runs: after a stall an RTP receiver is replaced, once, at once.
  const relisten = source.kind === 'rtp' || source.kind === 'sdp-file';
  const secret = urlSecret(options.url);
  const scrub = (text: string): string => (secret === undefined ? text : text.split(secret).join('***'));
  const frameBytes = width * height * 3;
  const minIntervalMs = fpsCap === undefined ? 0 : 1000 / fpsCap;
  // showinfo gives each frame's pts; passthrough keeps one output frame per decoded frame.
  const vf = `scale=${width}:${height}:flags=area,showinfo`;
  const outputOptions = ['-map', '0:v:0', '-vf', vf, '-fps_mode', 'passthrough', '-pix_fmt', 'rgb24', '-an', '-sn', '-dn'];

  return new Observable<Frame>((subscriber) => {
    const log = (options.logger ?? createLogger()).child({ stage: 'live-source', stream: streamId });
    let closed = false;
    let run: FfmpegRun | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let stallTimer: NodeJS.Timeout | undefined;
    let sdpDir: string | undefined;
    /** Consecutive connections that failed; the backoff grows with it. */
    let failures = 0;
    let seq = 0;
    /** Output pts and arrival time of the last decoded frame, over all connections. */
    let lastPts: number | undefined;
    let lastFrameAt = 0;
    /** The current connection has delivered a frame. */
    let runLive = false;
    /** Listening inputs: reported `stalled` and not live again yet (ffmpeg kept running). */
    let quiet = false;
    /** fpsCap: the grid time of the last emitted frame, ms. */
    let slot = Number.NEGATIVE_INFINITY;

    const state = (s: SourceStateEvent['state'], extra: Omit<SourceStateEvent, 'type' | 'stream' | 'state'> = {}): void => {
      try {
        options.onState?.({ type: 'source-state', stream: streamId, state: s, ...extra });
      } catch (err) {
        log.warn({ err }, 'onState callback threw; ignored');
      }
    };

    const shutdown = (detail: string): void => {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer);
      clearTimeout(stallTimer);
      // Once running, ffmpeg acts on SIGTERM only at its next packet (a blocked read is aborted by
      // a second signal), and runFfmpeg's SIGKILL timer dies with this process if it exits now:
      // a feed that stops at the same time would leave ffmpeg behind, holding its port. Output is a
      // pipe nobody reads any more, so SIGKILL loses nothing; only RTSP, whose camera wants a
      // TEARDOWN for its session, gets SIGTERM while frames are still flowing.
      const quiet = !runLive || Date.now() - lastFrameAt >= stallTimeoutMs / 2;
      void run?.stop(source.kind === 'rtsp' && !quiet ? 'SIGTERM' : 'SIGKILL');
      if (sdpDir !== undefined) rmSync(sdpDir, { recursive: true, force: true });
      state('stopped', { detail });
    };

    let input = source.input;
    if (source.sdpText !== undefined) {
      try {
        sdpDir = mkdtempSync(join(tmpdir(), 'stegostream-sdp-'));
        input = join(sdpDir, 'stream.sdp');
        writeFileSync(input, source.sdpText);
      } catch (err) {
        shutdown('cannot write the SDP file');
        subscriber.error(new SourceError(streamId, displayUrl, `cannot write the SDP to a temp file: ${String(err)}`, err));
        return;
      }
    }

    /** After a stall, ffmpeg's stderr is its banner: left out of the state, kept for the error. */
    const retry = (reason: string, stderrTail: string, stalled: boolean): void => {
      failures++;
      const said = stderrTail === '' ? '' : ` ffmpeg said: ${scrub(stderrTail)}`;
      if (failures > maxRetries) {
        const retries = failures - 1;
        const gaveUp = `gave up after ${retries} ${retries === 1 ? 'retry' : 'retries'}; last failure: ${reason}.`;
        log.error({ reason, stderrTail: scrub(stderrTail) }, 'live source gave up');
        shutdown(gaveUp);
        subscriber.error(new SourceError(streamId, displayUrl, gaveUp + said));
        return;
      }
      // A listener's port is closed while ffmpeg is down and every packet of a returning feed lost:
      // listen again at once, and only a receiver that keeps dying waits (at most a second).
      const delayMs = listening
        ? failures === 1
          ? 0
          : Math.min(LISTEN_RESTART_MAX_MS, backoffDelay(failures - 1, backoff))
        : backoffDelay(failures, backoff);
      log.warn({ attempt: failures, delayMs, reason, stderrTail: scrub(stderrTail) }, 'live source retrying');
      state('retrying', { attempt: failures, delayMs, detail: `${reason}.${stalled ? '' : said}` });
      retryTimer = setTimeout(() => connect(false), delayMs);
    };

    /** `again`: a stalled RTP receiver replaced at once; still stalled, so no `connecting`. */
    const connect = (again = false): void => {
      retryTimer = undefined;
      if (closed) return;
      if (!again) state('connecting', { detail: displayUrl });
      runLive = false;
      quiet = again;
      /** This receiver was stopped to be replaced by a fresh one (RTP after a stall). */
      let replaced = false;
      // Per connection: showinfo's pts by frame index (stderr and stdout race, so match by index).
      const ptsByIndex = new Map<number, number>();
      let n = 0;
      let stalled = false;
      let liveSince: number | undefined;
      let lastActivity = Date.now();
      /** Added to this connection's pts to continue the output timeline. */
      let offset: number | undefined;
      let prevRaw: number | undefined;
      let prevAt = 0;
      const startedAt = Date.now();
      const r = runFfmpeg({
        input,
        inputOptions: source.inputOptions,
        outputOptions,
        format: 'rawvideo',
        onStderr: (line) => {
          const i = parseShowinfoIndex(line);
          const pts = i === undefined || i < n ? undefined : parseShowinfoPts(line);
          if (i !== undefined && pts !== undefined) ptsByIndex.set(i, pts);
        },
      });
      run = r;

      const watch = (): void => {
        const idle = Date.now() - lastActivity;
        if (idle < stallTimeoutMs) {
          stallTimer = setTimeout(watch, stallTimeoutMs - idle);
          return;
        }
        if (listening) {
          // The sender comes to us: keep the port open and ffmpeg's decoder waiting for its next
          // keyframe however long the outage; report the stall once and look again later.
          if (!quiet) {
            quiet = true;
            log.warn({ stallTimeoutMs }, 'live source stalled; still listening');
            state('stalled', { detail: `${stallReason()}; still listening` });
            if (relisten) {
              replaced = true;
              stallTimer = undefined;
              void r.stop('SIGKILL');
              return;
            }
          }
          stallTimer = setTimeout(watch, stallTimeoutMs);
          return;
        }
        stallTimer = undefined;
        stalled = true;
        log.warn({ stallTimeoutMs }, 'live source stalled');
        state('stalled', { detail: stallReason() });
        // Once running, ffmpeg finishes its output on SIGTERM and only aborts a blocked network
        // read on a second signal; a stalled feed has nothing to finish.
        void r.stop('SIGKILL');
      };
      stallTimer = setTimeout(watch, stallTimeoutMs);
      const stallReason = (): string =>
        liveSince === undefined ? `no frame within ${stallTimeoutMs} ms of connecting` : `no frame for ${stallTimeoutMs} ms`;

      const rawPts = (now: number): number => {
        let raw = ptsByIndex.get(n);
        for (const k of ptsByIndex.keys()) if (k <= n) ptsByIndex.delete(k);
        // showinfo's line not read yet: extrapolate by the arrival gap.
        raw ??= prevRaw === undefined ? 0 : prevRaw + (now - prevAt) / 1000;
        prevRaw = raw;
        prevAt = now;
        return raw;
      };

      (async () => {
        const stdout = r.stdout;
        if (!stdout) throw new Error('ffmpeg stdout missing');
        for await (const rgb of readRawFrames(stdout, frameBytes)) {
          // Drained, not left: ffmpeg blocked on a full stdout pipe would not see our signals.
          if (closed || stalled || replaced) continue;
          const now = Date.now();
          lastActivity = now;
          if (liveSince === undefined || quiet) {
            // A listener that receives again is healthy: its next death restarts it at once.
            if (listening) failures = 0;
            // Back from a stall in the same ffmpeg: the sender may have restarted its clock, so
            // the timeline goes on by the wall-clock gap, as across a reconnect.
            if (quiet) offset = undefined;
            liveSince = now;
            runLive = true;
            quiet = false;
            log.info({ url: displayUrl }, 'live source live');
            state('live', { detail: displayUrl });
          } else if (failures > 0 && now - liveSince >= backoff.resetAfterMs) {
            failures = 0;
          }
          const raw = rawPts(now);
          n++;
          let pts = offset === undefined ? Number.NaN : raw + offset;
          if (lastPts === undefined || !(pts > lastPts)) {
            // First frame, first after a reconnect, or the sender's clock went back: continue
            // the timeline by the wall-clock gap since the last frame.
            pts = lastPts === undefined ? 0 : lastPts + Math.max(MIN_PTS_STEP_S, (now - lastFrameAt) / 1000);
            offset = pts - raw;
          }
          lastPts = pts;
          lastFrameAt = now;
          if (minIntervalMs > 0) {
            // Slots on a grid of 1/fpsCap keep the average at the cap; a quarter slot of slack
            // keeps arrival jitter from skipping a slot; a frame later than that starts a new grid.
            const slack = minIntervalMs / 4;
            if (now < slot + minIntervalMs - slack) continue;
            slot = now > slot + minIntervalMs + slack ? now : slot + minIntervalMs;
          }
          subscriber.next({ streamId, seq, pts, width, height, rgb, capturedAt: now });
          seq++;
        }
        // stdout ended: ffmpeg is exiting, which is no stall.
        clearTimeout(stallTimer);
        stallTimer = undefined;
        const { error } = await r.done;
        if (closed) return;
        // ffmpeg's SDP input gives up after 10 s without packets: during an outage a listener
        // that ran for a while is simply started again, still stalled (no retry, no backoff).
        // One that dies sooner goes the retry way, so a receiver that cannot start never spins.
        const outlived = listening && quiet && Date.now() - startedAt >= stallTimeoutMs;
        if (replaced || outlived) {
          log.info({ reason: replaced ? 'replaced at a stall' : 'ffmpeg ended during the outage' }, 'live source listening again');
          connect(true);
          return;
        }
        // fluent-ffmpeg: "ffmpeg exited with code 1: <stderr>"; the stderr tail is added once, below.
        const ended = liveSince === undefined ? 'ffmpeg ended before the first frame' : 'the stream ended';
        const exited = error === undefined ? ended : scrub(error.message.split(':')[0] ?? error.message);
        const reason = stalled ? stallReason() : exited;
        retry(reason, r.stderrTail(), stalled);
      })().catch((err: unknown) => {
        if (closed) return;
        shutdown(`failed: ${String(err)}`);
        subscriber.error(err);
      });
    };

    connect(false);
    return () => shutdown('unsubscribed');
  });
}

/** The frame index `n` of one showinfo line; undefined for other lines. */
function parseShowinfoIndex(line: string): number | undefined {
  const m = /Parsed_showinfo[^\]]*\]\s*n:\s*(\d+)/.exec(line);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
