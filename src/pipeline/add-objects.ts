import type { Segmentation } from '../types.js';
import { lostBox } from '../operators/lost.js';

/** Adds the LOST main-object box (from the backbone's keys, or its tokens) to a segmentation. */
export function addObjects(patchSize: number): (seg: Segmentation) => Segmentation {
  return (seg) => {
    const e = seg.embedding;
    if (!e) return seg;
    const keys = e.keys ?? e.patchTokens;
    const r = lostBox(keys, e.gridH, e.gridW, e.dim, patchSize);
    return { ...seg, objects: [{ box: r.box, score: r.score }] };
  };
}
