import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { globSync, isDynamicPattern } from 'tinyglobby';
import { BadOptionError, InputEmptyError, InputNotFoundError } from '../errors.js';
import { IMAGE_EXTENSIONS } from '../internal/read-image.js';

export const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.mkv', '.ts', '.avi', '.webm', '.m4v'] as const;

/** One input of a run: a video file, or a folder of images (one stream either way). */
export interface InputFile {
  /** Stream name: the file's stem (a folder of images: the folder's name), made unique with -2, -3... */
  readonly stream: string;
  readonly path: string;
  readonly kind: 'video' | 'images';
}

const byName = (a: string, b: string): number => a.localeCompare(b, undefined, { numeric: true });
const hasExt = (exts: readonly string[]) => (n: string) => exts.includes(extname(n).toLowerCase());

/** Video files of a folder, sorted by name (natural order). */
export function listVideos(dir: string): string[] {
  const names = readdirSync(dir).filter(hasExt(VIDEO_EXTENSIONS)).sort(byName);
  if (names.length === 0) throw new InputEmptyError(dir, `the folder holds no videos (${VIDEO_EXTENSIONS.join(', ')})`);
  return names.map((n) => join(dir, n));
}

/** A stream name from a path: its stem with anything but letters, digits, _ and - made _. */
export function streamNameFor(path: string): string {
  const n = basename(path, extname(path))
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 64);
  return n === '' ? 'video' : n;
}

/**
 * The inputs of `process a.mp4 b.mp4 dir/ 'dive/*.mov'`, in order: a video file; a folder of
 * videos (each video, by name); a folder of images (one input); a glob (quoted, so the shell
 * leaves it) with its matches sorted by name. Throws naming the argument that gives nothing.
 */
export function expandInputs(args: readonly string[]): InputFile[] {
  const paths: Array<{ path: string; kind: 'video' | 'images' }> = [];
  for (const arg of args) {
    if (isDynamicPattern(arg)) {
      const matches = globSync(arg, { onlyFiles: false, expandDirectories: false }).sort(byName);
      if (matches.length === 0) throw new InputNotFoundError(arg, 'input', 'the pattern matches no file');
      for (const m of matches) paths.push(...inputsAt(m));
    } else paths.push(...inputsAt(arg));
  }
  if (paths.length === 0) throw new BadOptionError('input', 'at least one video file or folder', args.join(' '));
  const used = new Set<string>();
  return paths.map((p) => {
    const base = streamNameFor(p.path.replace(/[/\\]+$/, ''));
    let stream = base;
    for (let i = 2; used.has(stream); i++) stream = `${base}-${i}`;
    used.add(stream);
    return { ...p, stream };
  });
}

function inputsAt(path: string): Array<{ path: string; kind: 'video' | 'images' }> {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new InputNotFoundError(path, 'input');
  }
  if (!isDir) return [{ path, kind: 'video' }];
  const names = readdirSync(path);
  // A folder of videos is several inputs; a folder of images is one (its frames).
  if (names.some(hasExt(VIDEO_EXTENSIONS)) && !names.some(hasExt(IMAGE_EXTENSIONS)))
    return listVideos(path).map((v) => ({ path: v, kind: 'video' }));
  return [{ path, kind: 'images' }];
}
