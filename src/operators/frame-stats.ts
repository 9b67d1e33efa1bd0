import { basename } from 'node:path';
import { countLabels } from '../internal/count-labels.js';
import type { ClassInfo, FrameStats, Segmentation } from '../types.js';

export { countLabels };

/** The statistics record of DESIGN.md for one segmented frame. */
export function frameStats(seg: Segmentation): FrameStats {
  const counts = countLabels(seg.labels, seg.classes.length);
  const total = seg.labels.length || 1;
  const f = seg.frame;
  return {
    stream: f.streamId,
    seq: f.seq,
    pts: f.pts,
    capturedAt: f.capturedAt,
    headVersion: seg.headVersion,
    ...(f.time !== undefined ? { time: new Date(f.time).toISOString() } : {}),
    ...(f.sourceName !== undefined ? { file: basename(f.sourceName) } : {}),
    classes: seg.classes.map((c: ClassInfo) => ({
      id: c.id,
      name: c.name,
      color: c.color,
      pixels: counts[c.id] ?? 0,
      fraction: (counts[c.id] ?? 0) / total,
    })),
    ...(seg.objects ? { objects: seg.objects } : {}),
  };
}
