import { readdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { decode } from 'fast-png';
import { readFile } from 'node:fs/promises';
import { ConfusionMatrix, DEFAULT_IGNORE_LABEL, type SegmentationScore } from './segmentation-metrics.js';
import { readLabelMask, readPalette, type MaskPalette } from './read-label-mask.js';
import { EvalInputError } from '../errors.js';
import { listImages } from '../sources/image-folder-source.js';

export interface EvalOptions {
  /** Folder of images (only used to pair files by name). */
  readonly images: string;
  /** Folder of ground-truth masks, one per image, same base name. */
  readonly truth: string;
  /** Folder of predicted label maps (indexed PNGs from `process --masks`). */
  readonly predictions: string;
  /** Palette file or 'auto' for colour-coded ground truth. */
  readonly palette?: string;
  readonly ignore?: number;
  readonly classNames?: readonly string[];
}

export interface EvalResult extends SegmentationScore {
  readonly images: number;
}

function byStem(dir: string): Map<string, string> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    throw new EvalInputError(`folder "${dir}" cannot be read`);
  }
  return new Map(names.map((n) => [basename(n, extname(n)), join(dir, n)]));
}

/**
 * Unsupervised mIoU and pixel accuracy of predicted label maps against ground truth after
 * Hungarian matching of clusters to classes over the whole folder (one matching for all images,
 * as in STEGO's evaluation). Every image needs a ground-truth mask and a prediction.
 */
export async function runEval(options: EvalOptions): Promise<EvalResult> {
  const images = listImages(options.images);
  const truth = byStem(options.truth);
  const preds = byStem(options.predictions);
  const palette: MaskPalette | 'auto' | undefined =
    options.palette === undefined ? undefined : options.palette === 'auto' ? 'auto' : await readPalette(options.palette);
  const auto: MaskPalette = new Map();
  const ignore = options.ignore ?? DEFAULT_IGNORE_LABEL;
  const pairs: { pred: Uint8Array; gt: Uint8Array }[] = [];
  let clusters = 1;
  let classes = 1;
  for (const img of images) {
    const stem = basename(img, extname(img));
    const gtPath = truth.get(stem);
    if (!gtPath) throw new EvalInputError(`no ground-truth mask for image "${basename(img)}" in "${options.truth}" (expected ${stem}.png)`);
    const predPath = preds.get(stem);
    if (!predPath) throw new EvalInputError(`no prediction for image "${basename(img)}" in "${options.predictions}"`);
    const png = decode(await readFile(predPath));
    if (!png.palette && png.channels !== 1) {
      throw new EvalInputError(
        `prediction "${predPath}" is not a label map: expected an indexed or 8-bit grey PNG (as process --masks writes)`,
      );
    }
    const pred = Uint8Array.from(png.data as Uint8Array);
    const gt = await readLabelMask(gtPath, png.width, png.height, palette, auto);
    for (const v of pred) if (v + 1 > clusters) clusters = v + 1;
    for (const v of gt) if (v !== ignore && v + 1 > classes) classes = v + 1;
    pairs.push({ pred, gt });
  }
  const cm = new ConfusionMatrix(clusters, classes, ignore);
  for (const p of pairs) cm.add(p.pred, p.gt);
  return { ...cm.score(options.classNames), images: images.length };
}

/** A terminal table of an evaluation. */
export function formatEval(r: EvalResult): string {
  const w = Math.max(5, ...r.perClass.map((c) => c.name.length));
  return [
    `images: ${r.images}   mIoU: ${(r.mIoU * 100).toFixed(1)}%   pixel accuracy: ${(r.pixelAccuracy * 100).toFixed(1)}%`,
    `${'id'.padStart(3)}  ${'class'.padEnd(w)}  ${'IoU'.padStart(6)}  cluster`,
    ...r.perClass.map(
      (c) =>
        `${String(c.id).padStart(3)}  ${c.name.padEnd(w)}  ${Number.isNaN(c.iou) ? '     -' : `${(c.iou * 100).toFixed(1).padStart(5)}%`}  ${c.cluster >= 0 ? c.cluster : '-'}`,
    ),
  ].join('\n');
}
