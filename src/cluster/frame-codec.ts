/**
 * Frames on the wire, ingest -> workers. Each message is one frame at the working size, with
 * headers `stream`, `seq`, `pts` (s), `capturedAt` (ms), `width`, `height`, `encoding` and `run`
 * (the ingest run, so results of a restarted ingest can be told apart).
 *
 * JPEG is the default: a 448x252 frame is 339 kB as rgb24 and ~30 kB as JPEG q90 4:4:4, and every
 * byte is written to JetStream's file store and crosses the network twice, while libvips encodes
 * and decodes it in about a millisecond off the event loop. 4:4:4 (no chroma subsampling) keeps
 * the colour detail the features depend on. `rgb24` sends the decoded pixels as they are, for
 * bit-exact parity with the single-process pipeline; it needs max_payload above the frame size.
 */
import sharp from 'sharp';
import { headers as natsHeaders, type MsgHdrs } from 'nats';
import type { Frame } from '../types.js';
import { BadOptionError } from '../errors.js';

export const FRAME_FORMATS = ['jpeg', 'rgb24'] as const;
export type FrameFormat = (typeof FRAME_FORMATS)[number];
export const DEFAULT_FRAME_FORMAT: FrameFormat = 'jpeg';
export const DEFAULT_JPEG_QUALITY = 90;

/** A frame as it crossed the wire, plus the ingest run it belongs to. */
export interface WireFrame {
  readonly frame: Frame;
  readonly run: string;
  /** Header `want: masks`: the ingest (process --cluster --masks/--out) wants the label map in the result. */
  readonly wantMask: boolean;
}

export async function encodeFrame(
  frame: Frame,
  run: string,
  format: FrameFormat,
  quality = DEFAULT_JPEG_QUALITY,
): Promise<{ data: Uint8Array; headers: MsgHdrs }> {
  const h = natsHeaders();
  h.set('stream', frame.streamId);
  h.set('seq', String(frame.seq));
  h.set('pts', String(frame.pts));
  h.set('capturedAt', String(frame.capturedAt));
  h.set('width', String(frame.width));
  h.set('height', String(frame.height));
  h.set('encoding', format);
  h.set('run', run);
  const data =
    format === 'rgb24'
      ? frame.rgb
      : await sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } })
          .jpeg({ quality, chromaSubsampling: '4:4:4' })
          .toBuffer();
  return { data, headers: h };
}

function header(h: MsgHdrs | undefined, name: string): string {
  const v = h?.get(name) ?? '';
  if (v === '') throw new BadOptionError(`frame header ${name}`, 'a value (was this published by stegostream ingest?)', v);
  return v;
}

function numberHeader(h: MsgHdrs | undefined, name: string, integer: boolean): number {
  const raw = header(h, name);
  const v = Number(raw);
  if (!Number.isFinite(v) || (integer && (!Number.isInteger(v) || v < 0))) {
    throw new BadOptionError(`frame header ${name}`, integer ? 'a non-negative integer' : 'a number', raw);
  }
  return v;
}

/** Rebuilds a frame from a message; throws BadOptionError (message to be terminated) when it is not one. */
export async function decodeFrame(data: Uint8Array, h: MsgHdrs | undefined): Promise<WireFrame> {
  const width = numberHeader(h, 'width', true);
  const height = numberHeader(h, 'height', true);
  const encoding = header(h, 'encoding');
  let rgb: Buffer;
  if (encoding === 'rgb24') {
    if (data.length !== width * height * 3)
      throw new BadOptionError('frame data', `${width * height * 3} bytes of rgb24`, `${data.length} bytes`);
    rgb = Buffer.from(data.buffer, data.byteOffset, data.length);
  } else if (encoding === 'jpeg') {
    const out = await sharp(data).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (out.info.width !== width || out.info.height !== height || out.info.channels !== 3) {
      throw new BadOptionError('frame data', `a ${width}x${height} RGB JPEG`, `${out.info.width}x${out.info.height}x${out.info.channels}`);
    }
    rgb = out.data;
  } else {
    throw new BadOptionError('frame header encoding', FRAME_FORMATS.join(' or '), encoding);
  }
  return {
    run: h?.get('run') ?? '',
    wantMask: (h?.get('want') ?? '').split(',').includes('masks'),
    frame: {
      streamId: header(h, 'stream'),
      seq: numberHeader(h, 'seq', true),
      pts: numberHeader(h, 'pts', false),
      capturedAt: numberHeader(h, 'capturedAt', false),
      width,
      height,
      rgb,
    },
  };
}
