import { rename, writeFile } from 'node:fs/promises';
import type { RenderedFrame } from '../types.js';
import { isNoSpace, OutputFullError, OutputUnwritableError } from '../errors.js';
import { maskFileName } from './mask-writer.js';
import type { BoxScale } from './stats-file-writer.js';
import type { Sink } from './sink.js';

interface CocoImage {
  readonly id: number;
  readonly file_name: string;
  readonly width: number;
  readonly height: number;
  readonly stream: string;
  readonly seq: number;
  readonly pts: number;
  readonly time?: string;
}

interface CocoAnnotation {
  readonly id: number;
  readonly image_id: number;
  readonly category_id: number;
  readonly bbox: readonly [number, number, number, number];
  readonly area: number;
  readonly score: number;
  readonly iscrowd: 0;
}

/**
 * The object boxes of a run as a COCO-style `annotations.json` (README "Outputs"): one image per
 * frame (named as its mask, with stream, seq, pts and time), one annotation per LOST box, bbox
 * `[x, y, width, height]` in input pixels, category 1 `object`. Written on close, atomically
 * (a temporary file renamed), so the file is whole or absent.
 */
export function cocoSink(path: string, inputSize: (stream: string) => { width: number; height: number; scale: BoxScale }): Sink {
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  let closing: Promise<void> | undefined;
  return {
    name: 'coco',
    write(r: RenderedFrame): void {
      const f = r.seg.frame;
      const { width, height, scale } = inputSize(f.streamId);
      const id = images.length + 1;
      images.push({
        id,
        file_name: `${f.streamId}/${maskFileName(r.seg)}`,
        width,
        height,
        stream: f.streamId,
        seq: f.seq,
        pts: f.pts,
        ...(r.stats.time !== undefined ? { time: r.stats.time } : {}),
      });
      for (const o of r.seg.objects ?? []) {
        const [x0, y0, x1, y1] = o.box;
        const round = (v: number): number => Math.round(v * 100) / 100;
        const bbox = [round(x0 * scale.x), round(y0 * scale.y), round((x1 - x0) * scale.x), round((y1 - y0) * scale.y)] as const;
        annotations.push({
          id: annotations.length + 1,
          image_id: id,
          category_id: 1,
          bbox,
          area: round(bbox[2] * bbox[3]),
          score: o.score,
          iscrowd: 0,
        });
      }
    },
    close(): Promise<void> {
      closing ??= (async () => {
        const json = JSON.stringify({ images, annotations, categories: [{ id: 1, name: 'object', supercategory: 'object' }] });
        const tmp = `${path}.tmp-${process.pid}`;
        try {
          await writeFile(tmp, json);
          await rename(tmp, path);
        } catch (err) {
          if (isNoSpace(err)) throw new OutputFullError(path, images.length, err);
          throw new OutputUnwritableError(path, (err as Error).message, err);
        }
      })();
      return closing;
    },
  };
}
