import { concatMap, identity, type MonoTypeOperatorFunction } from 'rxjs';
import type { Segmentation } from '../types.js';

/** What adds object boxes to a segmentation (objects/object-finder.ts `ObjectFinder`). */
export interface ObjectBoxer {
  addOne(seg: Segmentation): Promise<Segmentation>;
}

/**
 * Adds the LOST main-object box to each segmentation, in order (one frame at a time: the degree
 * pass's N×N intermediate is not multiplied by the batch). Without a finder, segmentations pass
 * through unchanged.
 */
export function findObjects(finder: ObjectBoxer | undefined): MonoTypeOperatorFunction<Segmentation> {
  return finder ? concatMap((seg) => finder.addOne(seg)) : identity;
}
