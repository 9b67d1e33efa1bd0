import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { access, constants, stat, unlink } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import type { Segmentation } from '../types.js';
import { BadOptionError, EncodeError, isNoSpace, OutputFullError, OutputUnwritableError } from '../errors.js';
import { runFfmpeg, type FfmpegRun } from '../internal/ffmpeg-process.js';
import { blendOverlay, paintMaskRgba } from './paint-mask.js';
import { drawLegend, LegendRenderer } from './legend-image.js';
import { countLabels } from '../internal/count-labels.js';

/** Containers the overlay video is written in, by the output's extension. */
const CONTAINERS: Readonly<Record<string, string>> = { '.mp4': 'mp4', '.m4v': 'mp4', '.mov': 'mov', '.mkv': 'matroska' };

/** The container for an overlay video path; throws naming the supported ones otherwise (before any work). */
export function overlayContainer(path: string, option = '--out'): string {
  const format = CONTAINERS[extname(path).toLowerCase()];
  if (format === undefined) throw new BadOptionError(option, `a video file name ending in ${Object.keys(CONTAINERS).join(', ')}`, path);
  return format;
}

/** Opacity of the class colours over the picture, 0-255. */
export const OVERLAY_ALPHA = 115;

export interface OverlayVideoOptions {
  readonly path: string;
  /** Working resolution of the label maps. */
  readonly width: number;
  readonly height: number;
  /** Output frame rate (input fps / every). */
  readonly fps: number;
  /** Output size (default: the input's size). */
  readonly outWidth: number;
  readonly outHeight: number;
  /**
   * The original file, decoded a second time by the encoder so the picture under the mask is at
   * full resolution; `every` must match the source's. Without it the working-resolution frames
   * are scaled up.
   */
  readonly background?: { readonly file: string; readonly every: number };
  /** Burn in a legend (colour, name, share) in the top-left corner (default true). */
  readonly legend?: boolean;
  /** libx264 preset (default veryfast): faster presets cost less CPU and give bigger files. */
  readonly preset?: X264Preset;
}

export const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow'] as const;
export type X264Preset = (typeof X264_PRESETS)[number];

/**
 * Encodes the segmented frames as an H.264 video: class colours blended over the picture, LOST
 * boxes outlined. The mask is sent at working resolution and ffmpeg scales and blends it, so no
 * per-pixel work at output resolution happens in JS. The file is fragmented MP4 or QuickTime (or Matroska, by
 * extension), so it stays playable up to the last written fragment even if the run is killed;
 * `close()` finalises it. Frames are written in order with pipe backpressure.
 *
 * The encoder starts with the first frame: ffmpeg's overlay passes the background through
 * unblended when the mask input ends before its first frame, so a run stopped before any frame
 * was segmented would otherwise write every frame of the input raw. With no frame written,
 * `close()` leaves no file at the path (the video would hold nothing the stats do not).
 */
export class OverlayVideoWriter {
  private readonly stdin = new PassThrough({ highWaterMark: 1 << 20 });
  private run: FfmpegRun | undefined;
  private exited: { error?: Error } | undefined;
  /** ffmpeg's line about a full disk: ffmpeg 5 can exit 0 after "Error closing file ...: No space left on device". */
  private noSpace: string | undefined;
  private frames = 0;
  private closing: Promise<void> | undefined;
  private readonly legend: LegendRenderer | undefined;

  private constructor(private readonly options: OverlayVideoOptions) {
    this.legend = options.legend === false ? undefined : new LegendRenderer(options.width, options.height);
    this.stdin.on('error', () => {
      // ffmpeg went away; `close()` reports why from its exit status.
    });
  }

  private start(): FfmpegRun {
    const { options } = this;
    const { width, height, fps, outWidth, outHeight, background } = options;
    const ow = outWidth - (outWidth % 2);
    const oh = outHeight - (outHeight % 2);
    const rate = fps.toFixed(6);
    const pixFmt = background ? 'rgba' : 'rgb24';
    const raw = { source: this.stdin, options: ['-f', 'rawvideo', '-pix_fmt', pixFmt, '-s', `${width}x${height}`, '-framerate', rate] };
    // The mask is converted to YUV at working size and scaled in planar YUV, and blended in YUV:
    // scaling RGBA to the output size first cost a third of the run (20 -> 31 fps at 1080p).
    // Both inputs are re-timed by frame index, so the n-th mask meets the n-th kept frame
    // whatever the source's timestamps look like (variable frame rate, B-frames, --every).
    const filter = background
      ? [
          `[0:v]${background.every > 1 ? `select=not(mod(n\\,${background.every})),` : ''}setpts=N/(${rate}*TB),scale=${ow}:${oh},format=yuv420p[bg]`,
          `[1:v]setpts=N/(${rate}*TB),format=yuva420p,scale=${ow}:${oh}:flags=bilinear[m]`,
          `[bg][m]overlay=shortest=1:format=yuv420,format=yuv420p[out]`,
        ].join(';')
      : `[0:v]format=yuv420p,scale=${ow}:${oh}:flags=bilinear[out]`;
    const container = overlayContainer(options.path);
    const mkv = container === 'matroska';
    const run = runFfmpeg({
      inputs: background ? [{ source: background.file }, raw] : [raw],
      outputOptions: [
        '-y',
        '-filter_complex',
        filter,
        '-map',
        '[out]',
        '-an',
        '-c:v',
        'libx264',
        '-preset',
        options.preset ?? 'veryfast',
        '-crf',
        '23',
        '-r',
        rate,
        ...(mkv ? [] : ['-movflags', '+frag_keyframe+empty_moov+default_base_moof']),
      ],
      format: container,
      output: options.path,
      onStderr: (line) => {
        if (isNoSpace(undefined, line)) this.noSpace ??= line.trim();
      },
    });
    void run.done.then((r) => (this.exited = r));
    return run;
  }

  /** Checks the output folder is writable before any work starts. */
  static async open(options: OverlayVideoOptions): Promise<OverlayVideoWriter> {
    const dir = dirname(resolve(options.path));
    try {
      await access(dir, constants.W_OK);
      // root may write anywhere, so access() alone passes a file standing where the folder should be.
      if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is a file`);
    } catch (err) {
      throw new OutputUnwritableError(options.path, `folder ${dir} does not exist or is not writable`, err);
    }
    if (
      await stat(options.path).then(
        (st) => st.isDirectory(),
        () => false,
      )
    )
      throw new OutputUnwritableError(options.path, 'it is a folder; give a video file name such as out.mp4');
    overlayContainer(options.path);
    return new OverlayVideoWriter(options);
  }

  get framesWritten(): number {
    return this.frames;
  }

  /** Throws if the encoder died mid-run (a full disk, most often): check before writing a frame's other outputs. */
  assertRunning(): void {
    if (this.closing) return;
    if (this.noSpace !== undefined) throw this.failure(new Error(this.noSpace));
    if (this.exited) throw this.failure(this.exited.error ?? new Error('ffmpeg exited early'));
  }

  async write(seg: Segmentation): Promise<void> {
    if (this.closing) return;
    this.assertRunning();
    const run = (this.run ??= this.start());
    const { width, height } = this.options;
    const channels = this.options.background ? 4 : 3;
    const buf = this.options.background ? paintMaskRgba(seg, OVERLAY_ALPHA) : blendOverlay(seg, OVERLAY_ALPHA);
    if (buf.length !== width * height * channels) throw new Error('overlay frame size mismatch');
    if (this.legend) {
      const counts = countLabels(seg.labels, seg.classes.length);
      const shares = seg.classes.map((c) => (counts[c.id] ?? 0) / (seg.labels.length || 1));
      const legend = await this.legend.render(seg.classes, shares);
      if (legend) drawLegend(buf, width, channels, legend);
    }
    this.frames++;
    if (!this.stdin.write(buf)) {
      await Promise.race([once(this.stdin, 'drain'), run.done]);
    }
  }

  /** Ends the input and waits for ffmpeg to finalise the file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stdin.end();
      if (!this.run) {
        // Nothing segmented: no file, rather than one that disagrees with the other outputs.
        await unlink(this.options.path).catch(() => undefined);
        return;
      }
      const { error } = await this.run.done;
      if (error) throw this.failure(error);
      if (this.noSpace !== undefined) throw this.failure(new Error(this.noSpace));
    })();
    return this.closing;
  }

  /** Stops the encoder at once (the file keeps its complete fragments). */
  async abort(): Promise<void> {
    this.stdin.end();
    await this.run?.stop();
  }

  private failure(error: Error): Error {
    const tail = this.run?.stderrTail() ?? '';
    // Frames sent when the encoder failed: the file holds fewer, whatever ffmpeg had flushed.
    if (isNoSpace(error, `${error.message} ${tail}`)) return new OutputFullError(this.options.path, this.frames, error);
    return new EncodeError(this.options.path, tail || error.message, error);
  }
}
