/**
 * Writes the scene to disk: numbered PNG images with their ground-truth masks (for eval tests),
 * or an encoded video (demo input, and test input for the file source).
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { BadOptionError, EncodeError, FfmpegMissingError, OutputUnwritableError } from '../errors.js';
import { createScene } from './render-scene.js';
import { expectInteger, resolveSceneOptions, type SceneOptions } from './scene-options.js';

export interface SceneImagesOptions extends SceneOptions {
  /** Frames of scene time to cover, integer >= 1. */
  readonly frames: number;
  /** Write every n-th frame (0, n, 2n, ...), integer >= 1. Default 1. */
  readonly every?: number;
  /** Called after each written image/mask pair. */
  readonly onProgress?: (written: number, total: number) => void;
}

export interface SceneImageFiles {
  /** Paths of the RGB PNGs, in frame order. */
  readonly images: string[];
  /** Paths of the mask PNGs (8-bit grey, value = class id), same order and file names. */
  readonly masks: string[];
}

export type SceneVideoCodec = 'h264' | 'hevc';

export interface SceneVideoOptions extends SceneOptions {
  /** Frames to encode, integer >= 1. */
  readonly frames: number;
  /** Default 'h264' (libx264); 'hevc' uses libx265. */
  readonly codec?: SceneVideoCodec;
  /** Output pixel format, default 'yuv420p' (plays everywhere; needs even sizes); 'yuv444p' keeps full chroma. */
  readonly pixFmt?: string;
  /** Constant rate factor, 0-51, default 18 (visually lossless). */
  readonly crf?: number;
  /** Called after each frame handed to ffmpeg. */
  readonly onProgress?: (written: number, total: number) => void;
}

export const DEFAULT_SCENE_CRF = 18;
export const DEFAULT_SCENE_PIX_FMT = 'yuv420p';
/** Lines of ffmpeg's stderr quoted in an EncodeError. */
const STDERR_TAIL_LINES = 8;

/**
 * Renders frames 0, every, 2*every, ... below `frames` and writes `images/frame_NNNN.png` (RGB)
 * and `masks/frame_NNNN.png` (grey, pixel value = class id) under `dir`, NNNN being the frame
 * index (so a mask lines up with the same frame of a video written with the same options).
 * Creates the folders. Rejects with BadOptionError before writing anything, or with
 * OutputUnwritableError naming the file that could not be written (files before it stay valid).
 */
export async function writeSceneImages(dir: string, options: SceneImagesOptions): Promise<SceneImageFiles> {
  const scene = resolveSceneOptions(options);
  const frames = expectInteger('frames', options.frames, 1, Number.MAX_SAFE_INTEGER);
  const every = expectInteger('every', options.every ?? 1, 1, Number.MAX_SAFE_INTEGER);
  const imageDir = join(dir, 'images');
  const maskDir = join(dir, 'masks');
  for (const d of [imageDir, maskDir]) {
    await mkdir(d, { recursive: true }).catch((error: unknown) => {
      throw new OutputUnwritableError(d, reason(error), error);
    });
  }
  const renderer = createScene(scene);
  const total = Math.ceil(frames / every);
  const images: string[] = [];
  const masks: string[] = [];
  for (let index = 0; index < frames; index += every) {
    const frame = renderer.render(index);
    const name = `frame_${String(index).padStart(4, '0')}.png`;
    const image = join(imageDir, name);
    const mask = join(maskDir, name);
    await Promise.all([
      writePng(image, frame.rgb, frame.width, frame.height, 3),
      writePng(mask, Buffer.from(frame.labels.buffer, frame.labels.byteOffset, frame.labels.length), frame.width, frame.height, 1),
    ]);
    images.push(image);
    masks.push(mask);
    options.onProgress?.(images.length, total);
  }
  return { images, masks };
}

async function writePng(path: string, pixels: Buffer, width: number, height: number, channels: 1 | 3): Promise<void> {
  try {
    const image = sharp(pixels, { raw: { width, height, channels } });
    // Without this sharp widens one channel to sRGB; masks must stay 8-bit grey with the ids as values.
    if (channels === 1) image.toColourspace('b-w');
    await image.png().toFile(path);
  } catch (error) {
    throw new OutputUnwritableError(path, reason(error), error);
  }
}

/**
 * Renders `frames` frames and encodes them with ffmpeg (raw RGB on its stdin; FFMPEG_PATH or
 * `ffmpeg` on the PATH) into `path`, whose extension picks the container. Waits for ffmpeg to
 * drain its input before sending more, so memory stays flat for long videos. Creates the folder.
 *
 * Rejects with BadOptionError before starting ffmpeg (yuv420p and other subsampled formats need
 * even sizes), FfmpegMissingError when ffmpeg is not found, or EncodeError carrying the last lines
 * of ffmpeg's stderr when encoding fails.
 */
export async function writeSceneVideo(path: string, options: SceneVideoOptions): Promise<void> {
  const scene = resolveSceneOptions(options);
  const frames = expectInteger('frames', options.frames, 1, Number.MAX_SAFE_INTEGER);
  const codec = options.codec ?? 'h264';
  if (codec !== 'h264' && codec !== 'hevc') throw new BadOptionError('codec', '"h264" or "hevc"', codec);
  const pixFmt = options.pixFmt ?? DEFAULT_SCENE_PIX_FMT;
  if (typeof pixFmt !== 'string' || !/^[a-z0-9_]+$/.test(pixFmt)) {
    throw new BadOptionError('pixFmt', 'an ffmpeg pixel format name such as "yuv420p"', pixFmt);
  }
  // Chroma subsampled horizontally (4:2:x, nv12) needs an even width; 4:2:0 an even height too.
  if (/420|422|411|nv1[26]|nv21/.test(pixFmt) && scene.width % 2 !== 0) {
    throw new BadOptionError('width', `even integer for pixFmt ${pixFmt}`, scene.width);
  }
  if (/420|nv1[26]|nv21/.test(pixFmt) && scene.height % 2 !== 0) {
    throw new BadOptionError('height', `even integer for pixFmt ${pixFmt}`, scene.height);
  }
  const crf = expectInteger('crf', options.crf ?? DEFAULT_SCENE_CRF, 0, 51);
  await mkdir(dirname(path), { recursive: true }).catch((error: unknown) => {
    throw new OutputUnwritableError(path, reason(error), error);
  });

  const renderer = createScene(scene);
  const bin = process.env['FFMPEG_PATH'] ?? 'ffmpeg';
  const args = [
    ...['-hide_banner', '-loglevel', 'error', '-y'],
    ...['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${scene.width}x${scene.height}`, '-r', String(scene.fps), '-i', 'pipe:0'],
    ...['-an', '-c:v', codec === 'hevc' ? 'libx265' : 'libx264', '-crf', String(crf), '-pix_fmt', pixFmt],
    // x265 logs a banner per run unless told not to; hvc1 makes .mp4/.mov HEVC play on Apple devices.
    ...(codec === 'hevc' ? ['-x265-params', 'log-level=error'] : []),
    ...(codec === 'hevc' && /\.(mp4|mov|m4v)$/i.test(path) ? ['-tag:v', 'hvc1'] : []),
    path,
  ];
  const child = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  const tail: string[] = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    tail.push(...chunk.split('\n').filter((l) => l.trim() !== ''));
    tail.splice(0, Math.max(0, tail.length - STDERR_TAIL_LINES));
  });
  // A broken pipe shows up as ffmpeg's exit status, reported below with its stderr.
  child.stdin.on('error', () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let finished = false;
  void exited.then(() => (finished = true));

  try {
    for (let index = 0; index < frames && !finished; index++) {
      const { rgb } = renderer.render(index);
      if (!child.stdin.write(rgb)) {
        await Promise.race([new Promise((resolve) => child.stdin.once('drain', resolve)), exited]);
      }
      options.onProgress?.(index + 1, frames);
    }
  } finally {
    child.stdin.end();
  }
  const result = await exited;
  if (result.error !== undefined) {
    if ((result.error as NodeJS.ErrnoException).code === 'ENOENT') throw new FfmpegMissingError(bin);
    throw new EncodeError(path, result.error.message, result.error);
  }
  if (result.code !== 0) {
    const said = tail.join(' | ') || `exited with ${result.signal ?? `code ${String(result.code)}`}`;
    throw new EncodeError(path, said);
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
