import { Observable } from 'rxjs';
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import sharp from 'sharp';
import type { Frame } from '../types.js';
import { BadOptionError, ImageUnreadableError, InputEmptyError, InputNotFoundError } from '../errors.js';
import type { FlowGate } from '../internal/flow-gate.js';
import { exifTime } from '../internal/exif-time.js';
import { decodeImage, IMAGE_EXTENSIONS, readImage } from '../internal/read-image.js';

export { IMAGE_EXTENSIONS };

/** Image files of a folder, sorted by name (natural order: img_2 before img_10). */
export function listImages(dir: string): string[] {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new InputNotFoundError(dir, 'image folder');
  }
  if (!st.isDirectory()) throw new BadOptionError('input', 'a folder of images', dir);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    throw new InputNotFoundError(
      dir,
      'image folder',
      `the folder cannot be listed (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  const names = entries
    .filter((n) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(n).toLowerCase()))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  if (names.length === 0)
    throw new InputEmptyError(
      dir,
      `the folder holds no images (${IMAGE_EXTENSIONS.join(', ')})`,
      'Give a video file or a folder with at least one image',
    );
  return names.map((n) => join(dir, n));
}

/** Size of an image file (any format `readImage` takes), read from its header. */
export async function imageSize(path: string): Promise<{ width: number; height: number }> {
  const m = await sharp(await readImage(path))
    .metadata()
    .catch((err: unknown) => {
      throw new ImageUnreadableError(path, `it does not decode (${(err as Error).message})`, err);
    });
  if (!m.width || !m.height) throw new ImageUnreadableError(path, 'its header gives no image size');
  return { width: m.width, height: m.height };
}

export interface ImageFolderSourceOptions {
  readonly dir: string;
  readonly streamId?: string;
  readonly width: number;
  readonly height: number;
  readonly every?: number;
  readonly gate?: FlowGate;
}

/**
 * Emits the images of a folder (sorted by name) as frames resized to the working resolution by
 * sharp; each frame carries its file name so masks can be named after it. pts is the index.
 * Formats sharp does not read (BMP, PPM, ...) are decoded by ffmpeg (see read-image.ts). An image
 * that does not decode errors the stream with ImageUnreadableError naming the file, after the
 * images before it were emitted.
 */
export function imageFolderSource(options: ImageFolderSourceOptions): Observable<Frame> {
  const files = listImages(options.dir);
  const every = options.every ?? 1;
  if (!Number.isInteger(every) || every < 1) throw new BadOptionError('every', 'positive integer', every);
  const { width, height } = options;
  const streamId = options.streamId ?? 'images';
  return new Observable<Frame>((subscriber) => {
    let closed = false;
    (async () => {
      let seq = 0;
      for (let i = 0; i < files.length; i += every) {
        const file = files[i] as string;
        const bytes = await readImage(file);
        const { data: rgb } = await decodeImage(
          file,
          (img) => img.removeAlpha().resize(width, height, { fit: 'fill' }).toColourspace('srgb'),
          bytes,
        );
        const time = await exifTime(bytes);
        if (closed) return;
        if (options.gate) await options.gate.acquire();
        if (closed) return;
        subscriber.next({
          streamId,
          seq,
          pts: seq,
          width,
          height,
          rgb,
          capturedAt: Date.now(),
          sourceName: file,
          ...(time !== undefined ? { time } : {}),
        });
        seq++;
      }
      subscriber.complete();
    })().catch((err: unknown) => {
      if (!closed) subscriber.error(err);
    });
    return () => {
      closed = true;
    };
  });
}
