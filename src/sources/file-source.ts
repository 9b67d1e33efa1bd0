import { Observable } from 'rxjs';
import { statSync } from 'node:fs';
import type { Frame } from '../types.js';
import { BadOptionError, DamagedInputError, DecodeError, InputEmptyError, InputNotFoundError, InputNotVideoError } from '../errors.js';
import { runFfmpeg } from '../internal/ffmpeg-process.js';
import { parseShowinfo, readRawFrames, SHOWINFO_FILTER } from '../internal/raw-frame-reader.js';
import type { FlowGate } from '../internal/flow-gate.js';

/** ffmpeg stderr lines that mean the decoder met damaged data (it conceals and goes on). */
/** Longest wait for a frame's showinfo line before its pts is extrapolated, ms. */
const PTS_WAIT_MS = 2000;

const DAMAGE_PATTERN =
  /error while decoding|corrupt|concealing|Invalid NAL|non-existing PPS|decode_slice_header error|Packet corrupt|missing picture/i;

export interface FileSourceOptions {
  /** Any file ffmpeg reads (mp4, mov, mkv, ts, avi; H.264, HEVC, ...). */
  readonly path: string;
  readonly streamId?: string;
  /** Working resolution; ffmpeg scales to it, so JS never resizes. */
  readonly width: number;
  readonly height: number;
  /** Keep every n-th frame (1 = all). */
  readonly every?: number;
  /** Lossless backpressure: a credit is taken before each frame is emitted. */
  readonly gate?: FlowGate;
  /** Frame rate used for pts only when ffmpeg does not report one. */
  readonly fps?: number;
  /** When the recording started, ms since the epoch: frames carry `time` = this + pts. */
  readonly startTime?: number;
}

/**
 * Decodes a video file into rgb24 frames at the working resolution, every frame (or every n-th),
 * in order, with pts in seconds from ffmpeg's showinfo.
 *
 * Options are checked at call time (missing or empty file throws at once). ffmpeg starts on
 * subscribe. With a `gate`, ffmpeg's stdout is not read while no credit is free, so memory stays
 * flat on videos of any length. Errors: `InputNotVideoError` when nothing decodes, `DecodeError`
 * (with the frame count and ffmpeg's stderr) when decoding fails midway, after the frames before
 * the failure were emitted; `DamagedInputError` at the end when ffmpeg met damaged data and
 * concealed it (every decodable frame was emitted). Unsubscribing stops ffmpeg (SIGTERM, then SIGKILL).
 */
export function fileSource(options: FileSourceOptions): Observable<Frame> {
  const { path, width, height } = options;
  const every = options.every ?? 1;
  const streamId = options.streamId ?? 'video';
  if (typeof path !== 'string' || path === '') throw new BadOptionError('path', 'a file path', path);
  for (const [name, v] of [
    ['width', width],
    ['height', height],
    ['every', every],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new BadOptionError(name, 'positive integer', v);
  }
  assertVideoFile(path);

  return new Observable<Frame>((subscriber) => {
    let closed = false;
    // pts by showinfo frame index: stderr and stdout are read independently, so a frame can
    // arrive before or after its showinfo line; matching by index keeps them paired.
    const ptsByN = new Map<number, number>();
    let ptsWaiter: (() => void) | undefined;
    let seq = 0;
    const damage = { errors: 0, firstAt: -1, sample: '' };
    const filter = [every > 1 ? `select=not(mod(n\\,${every}))` : '', `scale=${width}:${height}:flags=area`, SHOWINFO_FILTER]
      .filter(Boolean)
      .join(',');
    const run = runFfmpeg({
      input: path,
      outputOptions: ['-map', '0:v:0', '-vf', filter, '-fps_mode', 'passthrough', '-pix_fmt', 'rgb24', '-an', '-sn', '-dn'],
      format: 'rawvideo',
      onStderr: (line) => {
        const info = parseShowinfo(line);
        if (info !== undefined) {
          ptsByN.set(info.n, info.pts);
          ptsWaiter?.();
        } else if (DAMAGE_PATTERN.test(line)) {
          if (damage.errors === 0) {
            damage.firstAt = seq;
            damage.sample = line.trim();
          }
          damage.errors++;
        }
      },
    });
    const frameBytes = width * height * 3;
    const fallbackFps = options.fps ?? 30;

    let ended = false;
    void run.done.then(() => {
      ended = true;
      ptsWaiter?.();
    });
    /** The pts of frame n: waits for its showinfo line (bounded), undefined if it never comes. */
    const ptsOf = async (n: number): Promise<number | undefined> => {
      const deadline = Date.now() + PTS_WAIT_MS;
      while (!ptsByN.has(n) && !ended && !closed && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 50);
          ptsWaiter = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      const pts = ptsByN.get(n);
      ptsByN.delete(n);
      return pts;
    };

    (async () => {
      let lastPts = -1;
      const stdout = run.stdout;
      if (!stdout) throw new Error('ffmpeg stdout missing');
      for await (const rgb of readRawFrames(stdout, frameBytes)) {
        if (closed) return;
        if (options.gate) await options.gate.acquire();
        if (closed) {
          options.gate?.release();
          return;
        }
        // showinfo's line for a frame is written before the frame reaches the pipe; when it
        // has not been read yet, extrapolate from the previous frame.
        const pts = (await ptsOf(seq)) ?? (lastPts >= 0 ? lastPts + every / fallbackFps : (seq * every) / fallbackFps);
        lastPts = pts;
        const time = options.startTime !== undefined ? { time: options.startTime + Math.round(pts * 1000) } : {};
        subscriber.next({ streamId, seq, pts, width, height, rgb, capturedAt: Date.now(), ...time });
        seq++;
      }
      const { error } = await run.done;
      if (closed) return;
      if (error) {
        const tail = run.stderrTail();
        if (seq === 0) subscriber.error(new InputNotVideoError(path, tail || error.message));
        else subscriber.error(new DecodeError(path, seq, tail || error.message, error));
        return;
      }
      if (seq === 0) {
        subscriber.error(new InputEmptyError(path, 'ffmpeg decoded no frames from it'));
        return;
      }
      if (damage.errors > 0) {
        subscriber.error(new DamagedInputError(path, seq, damage.errors, Math.max(0, damage.firstAt), damage.sample));
        return;
      }
      subscriber.complete();
    })().catch((err: unknown) => {
      if (!closed) subscriber.error(err);
    });

    return () => {
      closed = true;
      void run.stop();
    };
  });
}

/** Throws InputNotFoundError / InputEmptyError / BadOptionError for a path that cannot be a video file. */
export function assertVideoFile(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new InputNotFoundError(path, 'video');
  }
  if (st.isDirectory()) throw new BadOptionError('path', 'a video file (for a folder of images use an image-folder source)', path);
  if (st.size === 0) throw new InputEmptyError(path);
}
