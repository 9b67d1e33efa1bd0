import { defer, map, type OperatorFunction } from 'rxjs';
import type { Frame } from '../types.js';

/**
 * Keeps `seq` and `pts` of one stream increasing across restarts of its source (a looping file,
 * a reconnecting feed): each frame gets the next seq, and pts continue from where the previous
 * run ended. State lives per subscription.
 */
export function renumberFrames(): OperatorFunction<Frame, Frame> {
  return (source) =>
    defer(() => {
      let seq = 0;
      let offset = 0;
      let last = -Infinity;
      let step = 0;
      return source.pipe(
        map((f) => {
          let pts = f.pts + offset;
          if (pts <= last) {
            // The source started over: continue one frame interval after the last pts.
            offset = last + (step > 0 ? step : 1 / 30) - f.pts;
            pts = f.pts + offset;
          }
          if (last > -Infinity) step = pts - last;
          last = pts;
          return { ...f, seq: seq++, pts };
        }),
      );
    });
}
