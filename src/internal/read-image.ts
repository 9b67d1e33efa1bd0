/**
 * Reads a still image into something sharp decodes. sharp (libvips) reads JPEG, PNG, WebP, TIFF,
 * GIF, AVIF/HEIF and SVG from memory, but not BMP, PPM/PGM/PAM, TGA, DPX, EXR, QOI, ... that
 * image folders and ground-truth masks of underwater datasets come in; ffmpeg reads those, so
 * they are decoded there (first frame) and handed over as a lossless PNG. The PNG keeps the
 * source's sample layout where PNG has one (indexed stays indexed, grey stays grey), so label
 * masks keep their values.
 */
import { readFile } from 'node:fs/promises';
import sharp, { type OutputInfo, type Sharp } from 'sharp';
import { ImageUnreadableError } from '../errors.js';
import { runFfmpeg } from './ffmpeg-process.js';

/** Extensions of image files a folder input or a mask folder takes (lower case, with the dot). */
export const IMAGE_EXTENSIONS = [
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.tif',
  '.tiff',
  '.gif',
  '.avif',
  '.bmp',
  '.dib',
  '.ppm',
  '.pgm',
  '.pbm',
  '.pnm',
  '.pam',
  '.tga',
  '.dpx',
  '.exr',
  '.qoi',
  '.sgi',
  '.pcx',
  '.xwd',
  '.jp2',
] as const;

/**
 * The bytes of an image file in a format sharp decodes: the file itself when sharp knows its
 * format, else the first frame as a PNG decoded by ffmpeg.
 *
 * @throws ImageUnreadableError naming the file when it cannot be read, is empty, or neither
 *   sharp nor ffmpeg decodes it (with ffmpeg's words).
 */
export async function readImage(path: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImageUnreadableError(path, code === 'ENOENT' ? 'no such file' : `the file cannot be read (${code ?? String(err)})`, err);
  }
  if (bytes.length === 0) throw new ImageUnreadableError(path, 'the file is empty (0 bytes)');
  const format = await sharp(bytes)
    .metadata()
    .then((m) => m.format)
    .catch(() => undefined);
  if (format !== undefined) return bytes;
  return decodeWithFfmpeg(path);
}

/**
 * Raw pixels of an image, decoded through `readImage` (or from `bytes` it returned), with any
 * decoding failure as ImageUnreadableError naming the file.
 */
export async function decodeImage(
  path: string,
  pipeline: (image: Sharp) => Sharp,
  read?: Buffer,
): Promise<{ data: Buffer; info: OutputInfo }> {
  const bytes = read ?? (await readImage(path));
  try {
    return await pipeline(sharp(bytes)).raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ImageUnreadableError(path, `it does not decode (${(err as Error).message})`, err);
  }
}

async function decodeWithFfmpeg(path: string): Promise<Buffer> {
  const run = runFfmpeg({
    input: path,
    inputOptions: ['-v', 'error'],
    outputOptions: ['-frames:v', '1', '-c:v', 'png'],
    format: 'image2pipe',
  });
  const chunks: Buffer[] = [];
  run.stdout?.on('data', (c: Buffer) => chunks.push(c));
  const [{ error }] = await Promise.all([
    run.done,
    new Promise<void>((resolve) => {
      if (!run.stdout) return resolve();
      run.stdout.once('end', resolve);
      run.stdout.once('close', resolve);
    }),
  ]);
  const png = Buffer.concat(chunks);
  if (error || png.length === 0) {
    // ffmpeg repeats itself per decoder instance, with addresses: keep each message once.
    const lines = run
      .stderrTail()
      .split(' | ')
      .map((l) => l.replace(/^\[[\w-]+ @ 0x[0-9a-f]+\] /, '').trim());
    const said = [...new Set(lines.filter((l) => l !== ''))].join(' | ') || error?.message || 'no picture in it';
    throw new ImageUnreadableError(path, `it is not an image ffmpeg or libvips can decode (ffmpeg said: ${said})`, error);
  }
  return png;
}
