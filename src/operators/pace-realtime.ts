import { concatMap, defer, timer, map, of, type OperatorFunction } from 'rxjs';
import type { Frame } from '../types.js';

/**
 * Emits each frame no earlier than its pts after the first frame, by the wall clock: a recorded
 * video played like a live feed. Upstream should be gated (at most a few frames waiting here).
 * The clock starts at each subscription's first frame.
 */
export function paceRealtime(): OperatorFunction<Frame, Frame> {
  return (source) =>
    defer(() => {
      let start = -1;
      let firstPts = 0;
      return source.pipe(
        concatMap((f) => {
          const now = performance.now();
          if (start < 0) {
            start = now;
            firstPts = f.pts;
          }
          const due = start + (f.pts - firstPts) * 1000;
          const stamped = (): Frame => ({ ...f, capturedAt: Date.now() });
          return due > now ? timer(due - now).pipe(map(stamped)) : of(stamped());
        }),
      );
    });
}
