import sharp from 'sharp';
import { defer, map, type OperatorFunction } from 'rxjs';
import type { EncodedImage, ImageMeta, RenderedFrame, Segmentation } from '../types.js';

export type { EncodedImage, RenderedFrame } from '../types.js';
import { frameStats } from './frame-stats.js';
import { blendOverlay } from '../sinks/paint-mask.js';
import { encodeLabelPng } from '../sinks/mask-writer.js';
import { OVERLAY_ALPHA } from '../sinks/overlay-video-writer.js';

export interface RenderOptions {
  /** Whether this frame's label PNG is wanted (someone subscribes to masks, or the frame asked for one). */
  readonly png: (seg: Segmentation) => boolean;
  /** Whether an overlay JPEG of this stream is wanted now. */
  readonly jpeg: (stream: string) => boolean;
  /** Whether a JPEG of the picture without overlay is wanted now (default never). */
  readonly raw?: (stream: string) => boolean;
  /** JPEG quality, 1-100 (default 75). */
  readonly jpegQuality?: number;
  /** Wider overlays are scaled down to this width (0: never). */
  readonly maxWidth?: number;
  /**
   * `skip`: while a stream's JPEG is still encoding, its next frames get none (live viewers lose
   * frames when encoding lags, never stats, and no queue grows); `all`: every frame gets one.
   * Default `all`.
   */
  readonly whileEncoding?: 'skip' | 'all';
  /** Seconds each JPEG took (metrics). */
  readonly onJpegEncoded?: (seconds: number) => void;
}

/**
 * Turns each segmentation into its statistics record, label PNG and overlay JPEG, once for every
 * sink (README "WebSocket protocol", "NATS subjects"). PNG and JPEG are made only when wanted.
 * State (which streams are encoding) is per subscription.
 */
export function renderOutputs(options: RenderOptions): OperatorFunction<Segmentation, RenderedFrame> {
  return (source) =>
    defer(() => {
      const encoding = new Set<string>();
      return source.pipe(map((seg) => renderFrame(seg, options, encoding)));
    });
}

/** One frame rendered as `renderOutputs` does; `encoding`: the streams whose JPEG is still encoding (for `whileEncoding: 'skip'`). */
export function renderFrame(seg: Segmentation, options: RenderOptions, encoding: Set<string> = new Set()): RenderedFrame {
  const f = seg.frame;
  const stream = f.streamId;
  const meta: ImageMeta = { seq: f.seq, pts: f.pts, headVersion: seg.headVersion, width: f.width, height: f.height };
  const png = options.png(seg) ? Buffer.from(encodeLabelPng(seg.labels, f.width, f.height, seg.classes)) : undefined;
  let jpeg: Promise<EncodedImage> | undefined;
  const skip = options.whileEncoding === 'skip' && encoding.has(stream);
  if (!skip && options.jpeg(stream)) {
    encoding.add(stream);
    jpeg = encodeOverlayJpeg(seg, meta, options).finally(() => encoding.delete(stream));
  }
  let raw: Promise<EncodedImage> | undefined;
  const rawKey = `${stream}\nraw`;
  if (!(options.whileEncoding === 'skip' && encoding.has(rawKey)) && (options.raw?.(stream) ?? false)) {
    encoding.add(rawKey);
    raw = encodeJpeg(seg.frame.rgb, meta, options).finally(() => encoding.delete(rawKey));
  }
  return { seg, stats: frameStats(seg), meta, ...(png ? { png } : {}), ...(jpeg ? { jpeg } : {}), ...(raw ? { raw } : {}) };
}

function encodeOverlayJpeg(seg: Segmentation, meta: ImageMeta, options: RenderOptions): Promise<EncodedImage> {
  return encodeJpeg(blendOverlay(seg, OVERLAY_ALPHA), meta, options);
}

async function encodeJpeg(rgb: Buffer, meta: ImageMeta, options: RenderOptions): Promise<EncodedImage> {
  const t0 = performance.now();
  const { width, height } = meta;
  let img = sharp(rgb, { raw: { width, height, channels: 3 } });
  const maxWidth = options.maxWidth ?? 0;
  if (maxWidth > 0 && width > maxWidth) img = img.resize(maxWidth);
  const { data, info } = await img.jpeg({ quality: options.jpegQuality ?? 75 }).toBuffer({ resolveWithObject: true });
  options.onJpegEncoded?.((performance.now() - t0) / 1000);
  // The header gives the size of the image sent (maxWidth may have scaled it down).
  return { data, meta: { ...meta, width: info.width, height: info.height } };
}
