import { encode } from 'fast-png';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { ClassInfo, Segmentation } from '../types.js';
import { resizeLabelsNearest } from '../internal/resize-labels.js';
import { isNoSpace, OutputFullError, OutputUnwritableError } from '../errors.js';

/**
 * Indexed (palette) PNG of a label map: pixel values are class ids, exact, and the palette holds
 * the class colours so the file also looks right in an image viewer.
 */
export function encodeLabelPng(labels: Uint8Array, width: number, height: number, classes: readonly ClassInfo[]): Uint8Array {
  const palette: [number, number, number][] = [];
  const maxId = Math.max(0, ...classes.map((c) => c.id));
  for (let i = 0; i <= maxId; i++) {
    const c = classes.find((x) => x.id === i);
    palette.push(c ? [c.color[0], c.color[1], c.color[2]] : [0, 0, 0]);
  }
  return encode({ width, height, data: labels, depth: 8, channels: 1, palette });
}

/** Mask file name: the image's own name for image folders (reef_01.jpg -> reef_01.png), else frame_<seq>.png. */
export function maskFileName(seg: Segmentation): string {
  const name = seg.frame.sourceName;
  if (name) return `${basename(name, extname(name))}.png`;
  return `frame_${String(seg.frame.seq).padStart(6, '0')}.png`;
}

export interface MaskWriterOptions {
  /** Size of the masks written: label maps of another size are resized, nearest neighbour (default: as they come). */
  readonly size?: { readonly width: number; readonly height: number };
  /** Put before each file name (several inputs writing into one folder). */
  readonly prefix?: string;
}

/** Writes one indexed PNG label map per segmented frame into a folder (created if missing). */
export class MaskWriter {
  private frames = 0;
  /** The legend classes.json holds (head version and names), to rewrite it only on change. */
  private legendKey = '';

  private constructor(
    private readonly dir: string,
    private readonly options: MaskWriterOptions = {},
  ) {}

  static async open(dir: string, options: MaskWriterOptions = {}): Promise<MaskWriter> {
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw new OutputUnwritableError(dir, (err as Error).message, err);
    }
    return new MaskWriter(dir, options);
  }

  /** `png`: the frame's label PNG when already rendered (operators/render-outputs.ts), else encoded here. */
  async write(seg: Segmentation, png?: Uint8Array): Promise<string> {
    const path = join(this.dir, `${this.options.prefix ?? ''}${maskFileName(seg)}`);
    const { width, height } = seg.frame;
    const size = this.options.size ?? { width, height };
    if (size.width !== width || size.height !== height) {
      png = encodeLabelPng(resizeLabelsNearest(seg.labels, width, height, size.width, size.height), size.width, size.height, seg.classes);
    }
    png ??= encodeLabelPng(seg.labels, width, height, seg.classes);
    await this.writeLegend(seg);
    try {
      await writeFile(path, png);
    } catch (err) {
      // A partly written PNG is worse than none: the folder then names exactly the frames done.
      await unlink(path).catch(() => undefined);
      if (isNoSpace(err)) throw new OutputFullError(this.dir, this.frames, err);
      throw new OutputUnwritableError(path, (err as Error).message, err);
    }
    this.frames++;
    return path;
  }

  /**
   * `classes.json` beside the masks: what each pixel value means (README "Outputs"), rewritten
   * atomically (a temporary file renamed) whenever the head version or a name changes.
   */
  private async writeLegend(seg: Segmentation): Promise<void> {
    const key = `${seg.headVersion}\n${seg.classes.map((c) => `${c.id}:${c.name}:${c.color.join(',')}`).join('\n')}`;
    if (key === this.legendKey) return;
    const path = join(this.dir, 'classes.json');
    const tmp = `${path}.tmp-${process.pid}`;
    const json = { head_version: seg.headVersion, classes: seg.classes.map((c) => ({ id: c.id, name: c.name, color: [...c.color] })) };
    try {
      await writeFile(tmp, JSON.stringify(json, null, 2) + '\n');
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      if (isNoSpace(err)) throw new OutputFullError(this.dir, this.frames, err);
      throw new OutputUnwritableError(path, (err as Error).message, err);
    }
    this.legendKey = key;
  }
}
