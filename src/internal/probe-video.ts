import ffmpeg from 'fluent-ffmpeg';
import { InputNotFoundError, InputNotVideoError } from '../errors.js';

export interface VideoInfo {
  readonly width: number;
  readonly height: number;
  /** Average frame rate in frames/s (r_frame_rate when avg is unknown). */
  readonly fps: number;
  /** Seconds, when known. */
  readonly duration: number | undefined;
  /** Frame count when the container says it, else estimated from duration * fps. */
  readonly frames: number | undefined;
  readonly codec: string;
  readonly pixFmt: string;
  /** The container's (or stream's) `creation_time` tag, ms since the epoch, when it has a valid one. */
  readonly creationTime?: number;
}

function parseRate(rate: string | undefined): number {
  if (!rate) return 0;
  const [num, den] = rate.split('/').map(Number);
  if (num === undefined || !Number.isFinite(num)) return 0;
  if (den === undefined) return num;
  return den > 0 ? num / den : 0;
}

/** Reads the first video stream's geometry and timing with ffprobe. */
export function probeVideo(path: string): Promise<VideoInfo> {
  return new Promise((resolve, reject) => {
    ffmpeg.ffprobe(path, (err, data) => {
      if (err) {
        const msg = String((err as Error).message ?? err);
        if (/No such file or directory/.test(msg)) {
          reject(new InputNotFoundError(path, 'video file'));
          return;
        }
        reject(
          new InputNotVideoError(
            path,
            msg
              .split('\n')
              // ffprobe's banner (version, build, library versions) says nothing about the file.
              .filter((l) => l.trim() && !/^\s*(lib\w+\s+\d|ffprobe version|built with|configuration:)/.test(l))
              .slice(-2)
              .join(' | '),
          ),
        );
        return;
      }
      const v = data.streams.find((s) => s.codec_type === 'video');
      if (!v || !v.width || !v.height) {
        reject(new InputNotVideoError(path, 'no video stream'));
        return;
      }
      const fps = parseRate(v.avg_frame_rate) || parseRate(v.r_frame_rate) || 25;
      const durRaw = Number(v.duration ?? data.format.duration);
      const duration = Number.isFinite(durRaw) && durRaw > 0 ? durRaw : undefined;
      const nb = Number(v.nb_frames);
      const frames = Number.isFinite(nb) && nb > 0 ? nb : duration !== undefined ? Math.round(duration * fps) : undefined;
      const tag = (data.format.tags?.['creation_time'] ?? v.tags?.['creation_time']) as string | undefined;
      const creationTime = tag !== undefined ? Date.parse(tag) : NaN;
      resolve({
        ...(Number.isFinite(creationTime) ? { creationTime } : {}),
        width: v.width,
        height: v.height,
        fps,
        duration,
        frames,
        codec: v.codec_name ?? 'unknown',
        pixFmt: v.pix_fmt ?? 'unknown',
      });
    });
  });
}
