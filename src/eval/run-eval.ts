import { decode } from 'fast-png';
import { ConfusionMatrix, DEFAULT_IGNORE_LABEL, type SegmentationScore } from './segmentation-metrics.js';
import { readLabelMask, readPalette, type MaskPalette } from './read-label-mask.js';
import { EvalInputError } from '../errors.js';
import { readImage } from '../internal/read-image.js';
import { pairEvalInputs } from './pair-eval-inputs.js';

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

/**
 * Unsupervised mIoU and pixel accuracy of predicted label maps against ground truth after
 * Hungarian matching of clusters to classes over the whole folder (one matching for all images,
 * as in STEGO's evaluation). Every image needs a ground-truth mask and a prediction; all of them
 * are paired (pairEvalInputs) before any is read.
 */
export async function runEval(options: EvalOptions): Promise<EvalResult> {
  const pairs = await pairEvalInputs(options.images, options.truth, options.predictions);
  const palette: MaskPalette | 'auto' | undefined =
    options.palette === undefined ? undefined : options.palette === 'auto' ? 'auto' : await readPalette(options.palette);
  const auto: MaskPalette = new Map();
  const ignore = options.ignore ?? DEFAULT_IGNORE_LABEL;
  const maps: { pred: Uint8Array; gt: Uint8Array }[] = [];
  let clusters = 1;
  let classes = 1;
  for (const p of pairs) {
    const predPath = p.prediction as string;
    const png = decodeLabelPng(predPath, await readImage(predPath));
    const pred = Uint8Array.from(png.data as Uint8Array);
    const gt = await readLabelMask(p.truth, png.width, png.height, palette, auto);
    for (const v of pred) if (v + 1 > clusters) clusters = v + 1;
    for (const v of gt) if (v !== ignore && v + 1 > classes) classes = v + 1;
    maps.push({ pred, gt });
  }
  const cm = new ConfusionMatrix(clusters, classes, ignore);
  for (const m of maps) cm.add(m.pred, m.gt);
  return { ...cm.score(options.classNames), images: pairs.length };
}

/** A predicted label map: an indexed or 8-bit grey PNG, as `process --masks` writes. */
function decodeLabelPng(path: string, bytes: Buffer): ReturnType<typeof decode> {
  const notLabelMap = (why: string): EvalInputError =>
    new EvalInputError(
      `prediction "${path}" is not a label map (${why}): expected an indexed or 8-bit grey PNG (as process --masks writes)`,
    );
  let png: ReturnType<typeof decode>;
  try {
    png = decode(bytes);
  } catch (err) {
    throw notLabelMap((err as Error).message);
  }
  if (!png.palette && png.channels !== 1) throw notLabelMap(`${png.channels} channels`);
  return png;
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
