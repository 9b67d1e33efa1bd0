import { hungarianMatch } from '../learning/hungarian-match.js';

/** Ground-truth value that is never scored (the common "void" label). */
export const DEFAULT_IGNORE_LABEL = 255;

/**
 * Confusion counts of predicted clusters against ground-truth classes, accumulated over images.
 * Unsupervised: clusters have no names, so `score()` matches them to classes by the Hungarian
 * algorithm on the confusion (maximising matched pixels) before computing IoU (DESIGN.md "Metric").
 */
export class ConfusionMatrix {
  /** [cluster][class] pixel counts. */
  private readonly counts: Float64Array;

  constructor(
    readonly clusters: number,
    readonly classes: number,
    readonly ignore = DEFAULT_IGNORE_LABEL,
  ) {
    this.counts = new Float64Array(clusters * classes);
  }

  add(pred: Uint8Array, truth: Uint8Array): void {
    if (pred.length !== truth.length) throw new RangeError(`prediction has ${pred.length} pixels, ground truth ${truth.length}`);
    const { clusters, classes, counts } = this;
    for (let i = 0; i < pred.length; i++) {
      const t = truth[i] as number;
      const p = pred[i] as number;
      if (t === this.ignore || t >= classes || p >= clusters) continue;
      counts[p * classes + t] = (counts[p * classes + t] as number) + 1;
    }
  }

  /** The matrix as rows [cluster][class] of pixel counts. */
  rows(): number[][] {
    const rows: number[][] = [];
    for (let p = 0; p < this.clusters; p++) rows.push(Array.from(this.counts.subarray(p * this.classes, (p + 1) * this.classes)));
    return rows;
  }

  score(classNames?: readonly string[]): SegmentationScore {
    const { clusters, classes, counts } = this;
    const rows: number[][] = [];
    for (let p = 0; p < clusters; p++) rows.push(Array.from(counts.subarray(p * classes, (p + 1) * classes)));
    const match = hungarianMatch(rows); // cluster -> class or -1
    const predTotal = new Float64Array(classes); // pixels predicted as class c (through the match)
    const truthTotal = new Float64Array(classes);
    const hit = new Float64Array(classes);
    let total = 0;
    for (let p = 0; p < clusters; p++) {
      const m = match[p] as number;
      for (let t = 0; t < classes; t++) {
        const v = counts[p * classes + t] as number;
        truthTotal[t] = (truthTotal[t] as number) + v;
        total += v;
        if (m >= 0) {
          predTotal[m] = (predTotal[m] as number) + v;
          if (m === t) hit[t] = (hit[t] as number) + v;
        }
      }
    }
    const perClass = Array.from({ length: classes }, (_, c) => {
      const union = (truthTotal[c] as number) + (predTotal[c] as number) - (hit[c] as number);
      return {
        id: c,
        name: classNames?.[c] ?? `class ${c}`,
        pixels: truthTotal[c] as number,
        iou: union > 0 ? (hit[c] as number) / union : Number.NaN,
        cluster: match.indexOf(c),
      };
    });
    const present = perClass.filter((c) => c.pixels > 0);
    const mIoU = present.length ? present.reduce((a, c) => a + c.iou, 0) / present.length : 0;
    const hits = hit.reduce((a, b) => a + b, 0);
    return { mIoU, pixelAccuracy: total > 0 ? hits / total : 0, pixels: total, perClass, clusterToClass: Array.from(match) };
  }
}

export interface SegmentationScore {
  /** Mean IoU over ground-truth classes present. */
  readonly mIoU: number;
  readonly pixelAccuracy: number;
  readonly pixels: number;
  readonly perClass: readonly { id: number; name: string; pixels: number; iou: number; cluster: number }[];
  /** For each predicted cluster, the class it was matched to (-1: none). */
  readonly clusterToClass: readonly number[];
}
